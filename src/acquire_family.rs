//! The acquire family of the locks that run on a [`FileLock`](crate::FileLock) speaking
//! another protocol (`SoftFileLock`, `StrictSoftFileLock`): one definition of the
//! forwarding methods and of what their docs share; each lock says in its own words what
//! an acquire does, which errors it adds, what a cancelled attempt leaves, and how the
//! holder is found.

/// Defines `is_locked`, `lock_counter`, `acquire`, `acquire_timeout`, `try_acquire`,
/// `with_lock`, their `blocking_*` forms, `blocking_holder` and `holder` on a type with a
/// field `inner: FileLock`.
macro_rules! forward_acquire_family {
    (
        acquire { $(#[$acquire:meta])* }
        errors { $(#[$errors:meta])* }
        cancelled { $(#[$cancelled:meta])* }
        holder { $(#[$holder:meta])* }
    ) => {
        /// `true` when the current task or thread holds this lock through this handle; as
        /// [`FileLock::is_locked`](crate::FileLock::is_locked).
        #[must_use]
        pub fn is_locked(&self) -> bool {
            self.inner.is_locked()
        }

        /// How many holds the current task or thread has on this lock through this handle;
        /// as [`FileLock::lock_counter`](crate::FileLock::lock_counter).
        #[must_use]
        pub fn lock_counter(&self) -> usize {
            self.inner.lock_counter()
        }

        $(#[$acquire])*
        ///
        /// # Errors
        ///
        $(#[$errors])*
        ///
        /// # Cancel safety
        ///
        $(#[$cancelled])*
        pub fn acquire(
            &self,
        ) -> impl std::future::Future<Output = Result<crate::LockGuard, crate::Error>>
        + Send
        + 'static
        + use<> {
            self.inner.acquire()
        }

        /// Acquires the lock, waiting at most `timeout` (`Duration::ZERO`: one attempt).
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire).
        ///
        /// # Cancel safety
        ///
        /// Cancel-safe, as [`acquire`](Self::acquire).
        pub fn acquire_timeout(
            &self,
            timeout: std::time::Duration,
        ) -> impl std::future::Future<Output = Result<crate::LockGuard, crate::Error>>
        + Send
        + 'static
        + use<> {
            self.inner.acquire_timeout(timeout)
        }

        /// Makes exactly one attempt: `Ok(None)` if the lock is held elsewhere.
        ///
        /// # Errors
        ///
        /// The permanent errors of [`acquire`](Self::acquire).
        ///
        /// # Cancel safety
        ///
        /// Cancel-safe, as [`acquire`](Self::acquire).
        pub fn try_acquire(
            &self,
        ) -> impl std::future::Future<Output = Result<Option<crate::LockGuard>, crate::Error>>
        + Send
        + 'static
        + use<> {
            self.inner.try_acquire()
        }

        /// Runs `future` while holding the lock (acquired as by [`acquire`](Self::acquire)),
        /// then releases it.
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire); `future` does not run then.
        ///
        /// # Cancel safety
        ///
        /// Dropping the returned future releases the lock, whether `future` had started or
        /// not.
        pub fn with_lock<F: std::future::Future>(
            &self,
            future: F,
        ) -> impl std::future::Future<Output = Result<F::Output, crate::Error>> + use<F> {
            self.inner.with_lock(future)
        }

        /// Sync facade of [`acquire`](Self::acquire): the same attempts and schedule on the
        /// calling thread. Needs no runtime; blocks the calling thread while it waits, so
        /// not for a Tokio worker or a `block_on` body (see
        /// [`FileLock::blocking_acquire`](crate::FileLock::blocking_acquire)).
        ///
        /// # Panics
        ///
        /// In debug builds, when it has to wait on a thread that drives a Tokio runtime, as
        /// [`FileLock::blocking_acquire`](crate::FileLock::blocking_acquire).
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire).
        pub fn blocking_acquire(&self) -> Result<crate::LockGuard, crate::Error> {
            self.inner.blocking_acquire()
        }

        /// Sync facade of [`acquire_timeout`](Self::acquire_timeout).
        ///
        /// # Panics
        ///
        /// As [`blocking_acquire`](Self::blocking_acquire).
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire).
        pub fn blocking_acquire_timeout(
            &self,
            timeout: std::time::Duration,
        ) -> Result<crate::LockGuard, crate::Error> {
            self.inner.blocking_acquire_timeout(timeout)
        }

        /// Sync facade of [`try_acquire`](Self::try_acquire): one attempt that never waits
        /// for another holder.
        ///
        /// # Errors
        ///
        /// The permanent errors of [`acquire`](Self::acquire).
        pub fn blocking_try_acquire(&self) -> Result<Option<crate::LockGuard>, crate::Error> {
            self.inner.blocking_try_acquire()
        }

        /// Sync facade of [`with_lock`](Self::with_lock): runs `f` while holding the lock.
        ///
        /// # Panics
        ///
        /// As [`blocking_acquire`](Self::blocking_acquire).
        ///
        /// # Errors
        ///
        /// As [`acquire`](Self::acquire); `f` does not run then.
        pub fn blocking_with_lock<R>(&self, f: impl FnOnce() -> R) -> Result<R, crate::Error> {
            self.inner.blocking_with_lock(f)
        }

        $(#[$holder])*
        ///
        /// # Errors
        ///
        /// As [`FileLock::blocking_holder`](crate::FileLock::blocking_holder).
        pub fn blocking_holder(&self) -> Result<Option<crate::Holder>, crate::Error> {
            self.inner.blocking_holder()
        }

        /// Async form of [`blocking_holder`](Self::blocking_holder): the read runs on
        /// Tokio's blocking pool.
        ///
        /// # Errors
        ///
        /// As [`blocking_holder`](Self::blocking_holder).
        ///
        /// # Cancel safety
        ///
        /// Cancel-safe: it only reads.
        pub async fn holder(&self) -> Result<Option<crate::Holder>, crate::Error> {
            self.inner.holder().await
        }
    };
}

pub(crate) use forward_acquire_family;
