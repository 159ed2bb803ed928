//! The same lock, held in PostgreSQL: [`PgLock`] (feature `postgres`).
//!
//! # When to use which backend
//!
//! | backend | excludes | survives | pick it for |
//! |---|---|---|---|
//! | [`FileLock`](crate::FileLock) | processes of one machine (one file system) | nothing to clean: the OS drops the lock when the holder dies | everything on one host |
//! | [`SoftFileLock`](crate::SoftFileLock) | processes sharing a file system without `flock` | a dead holder's marker stays until proven stale | NFS/FUSE mounts, Python interop |
//! | [`PgLock`] | processes on any number of hosts that reach one PostgreSQL primary | the server drops the lock when the holder's session ends (crash, kill, network cut after ~5 s of silence) | fleets, cron on several machines, CI runners |
//!
//! # How it works
//!
//! A lock is a **session-level advisory lock** on the 64-bit key of its name, held by a
//! session of its own (one server connection per held guard; idle sessions of a handle are
//! reused). An attempt is one `pg_try_advisory_lock` (or `_shared`): the server never
//! keeps a waiting lock call, so a cancelled or timed-out acquire can leave nothing
//! waiting on the server. Waiters `LISTEN` on the channel `tokio_filelock` and announce
//! themselves with a **waiter mark**: a shared hold of the two-key advisory lock
//! `(hi, lo)` made of the key's two 32-bit halves (`pg_try_advisory_lock_shared(hi, lo)`;
//! `pg_locks` shows it with the lock's `classid`/`objid` and `objsubid = 2`), taken before
//! the attempt that precedes their first sleep and dropped when the wait ends. A release
//! runs, in one statement, `pg_advisory_unlock`, then a probe of the mark (a momentary
//! `pg_try_advisory_lock(hi, lo)`, which fails while a waiter holds it), and `pg_notify`
//! only when the probe found a waiter: a waiter in any process on any host attempts again
//! at once, and a release nobody waits for costs no notification (which would assign a
//! transaction id and commit, with a WAL flush on a durable server). Since the waiter
//! announces itself before an attempt and the release probes after its unlock, either
//! that attempt finds the lock free or the probe finds the waiter. The poll schedule (as for `FileLock`, capped at the
//! poll interval, default 200 ms) stays underneath for holders that are not this crate
//! (`psql`, other languages) and for holders that died.
//!
//! - **Reentrancy**: every acquire is a hold of its own, with a session of its own; two
//!   tasks (or threads) sharing one `PgLock` exclude each other. An owner (task, or thread
//!   outside a task) that holds the lock and asks again without a timeout gets
//!   [`Error::WouldDeadlock`] at once. Locks stack per session on the server; the crate
//!   never stacks them.
//! - **Timeouts**: as for `FileLock` (none = forever, `ZERO` = one attempt, `blocking(false)`
//!   wins, a final attempt at the deadline).
//! - **Cancellation**: dropping an acquire future while an attempt is in flight closes its
//!   session (the outcome is uncertain: the server ends the backend, and with it any lock
//!   it just won); dropped while sleeping, the session held nothing and is kept for reuse.
//!   A session never waits in a lock call, so none is ever handed back with a wait pending.
//! - **Release**: the guard's drop (or `release()`) hands the unlock to a task on the
//!   session's runtime and returns. The next acquire of the same handle, if it comes
//!   first, takes the unlock over and sends it with its attempt in one statement on that
//!   session (unlock, then attempt: one round trip for both); an acquire of the same lock
//!   through another handle of this process waits for the unlock first. Either way a
//!   dropped guard is a free lock on the next line here. Other processes see it free one
//!   round trip later (or, when this process acquires it again at once, for the instant
//!   between the two halves of that statement: there is no fairness, as with `flock`).
//! - **A server that goes away** while an acquire waits: the acquire fails with
//!   [`Error::Server`] ([`ServerError::SessionLost`]) at
//!   once; it does not reconnect (retry it if you want to wait for the server).
//!
//! # The key of a name
//!
//! `key = the first 8 bytes of SHA-256("tokio-filelock:" || name), big-endian, as a signed
//! 64-bit integer`, in SQL (PostgreSQL 11+):
//!
//! ```sql
//! SELECT ('x' || left(encode(sha256(convert_to('tokio-filelock:' || 'nightly', 'UTF8')), 'hex'), 16))::bit(64)::bigint;
//! ```
//!
//! Any client in any language can compute it and exclude this crate (`pg_advisory_lock(key)`
//! in `psql` is a holder like any other). The name itself only ever travels as a bind
//! parameter. [`PgLock::key`] gives it.
//!
//! # Fencing tokens
//!
//! An exclusive acquire also draws the next value of the sequence
//! `tokio_filelock_fence_seq`, in the same statement that takes the lock
//! (`SELECT CASE WHEN pg_try_advisory_lock($1) THEN nextval('tokio_filelock_fence_seq')
//! END`): [`LockGuard::fencing_token`](crate::LockGuard::fencing_token) strictly increases
//! with every exclusive acquisition of the name, by any client, since one sequence serves
//! all names and a value is drawn only under the lock. Tokens of different names are not
//! consecutive.
//!
//! - **Privileges**: the sequence is created on first use (`CREATE SEQUENCE IF NOT EXISTS
//!   tokio_filelock_fence_seq AS bigint MINVALUE 1 NO CYCLE CACHE 1`, in the session's
//!   `search_path`), which needs `CREATE` on that schema once; every client then needs
//!   `USAGE` (or `UPDATE`) on the sequence. An administrator can create it instead and
//!   `GRANT USAGE ON SEQUENCE tokio_filelock_fence_seq TO ...`: the crate only creates it
//!   when the attempt finds none. It must keep `CACHE 1` and `NO CYCLE` (a cache gives each
//!   session numbers of its own, out of order across sessions).
//! - **Crashes**: PostgreSQL WAL-logs a sequence 32 values ahead of what it hands out and
//!   flushes that record with the transaction that wrote it, so after a crash and
//!   restart the sequence resumes above every value handed out (it may skip up to 32):
//!   tokens never repeat with `fsync` on (`tests/postgres.rs` crashes the server to check
//!   it). After a failover to an asynchronous replica they may go back, as any write may.
//! - **Cost**: no row write and no commit of its own per acquire; a WAL record every 32
//!   tokens.
//! - **Earlier versions** of this crate (before the first release) bumped a row of the
//!   table `tokio_filelock_fence` instead: the table is no longer used (drop it), and
//!   clients of both kinds must not share a name.
//! - **Off**: [`PgLockBuilder::fencing`]`(false)` or `?fencing=off` in a URL; guards then
//!   have no token and nothing is created.

//! # Who holds it
//!
//! Every lock session sets `application_name` to `tfl h=<host> p=<pid> <command>` (63 bytes
//! at most): [`Error::Timeout`], the waiting hook and [`PgLock::holder`] read it back from
//! `pg_locks` and `pg_stat_activity` as [`Holder`] (host, pid and command of the holding
//! process; the client address and since when, where the role may see them). A holder that
//! is not this crate is named by its backend pid and `application_name`.
//!
//! # Session settings, and what survives what
//!
//! Each lock session sets `idle_session_timeout=0` (an idle holder must not be timed out),
//! `client_connection_check_interval=1s`, and server TCP keepalives 2 s idle / 1 s interval
//! / 3 probes (the client's are the same), so the server frees the lock of a holder whose
//! network went silent in about 5 s instead of 2 hours. These are sent in the startup
//! packet: **PostgreSQL 14 or newer**. The session ends, and the lock is freed, when the
//! holder process dies or closes it, an administrator terminates it, the network is cut,
//! or the server restarts. [`LockGuard::lost`](crate::LockGuard::lost) resolves on the
//! holder's side when the client sees its connection end (at once for a termination or a
//! restart, within about 5 s for a silent network).
//!
//! Always talk to the primary (locks are not replicated). **PgBouncer in transaction
//! pooling mode breaks session locks** (lock and unlock can land on different server
//! sessions): connect directly or through session pooling; the crate does not detect it.
//! TLS: the connection uses `NoTls` (plain TCP or a Unix socket).

mod session;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::Config;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

use crate::WaitEvent;
use crate::display_text::redact;
use crate::driver::WaitHook;
use crate::driver::schedule::{Schedule, Wait};
use crate::lost::{Lost, LostFuture, Remote};
use crate::state::State;
use crate::state::owner::Owner;
use crate::wake::Woke;
use crate::{Error, Holder, HolderSession, Lock, LockGuard, LockMode, Op, ServerError};
use session::{CHANNEL, Session};

/// The default cap of the poll schedule: notifications hand the lock over at once, the
/// poll only catches holders that are not this crate or died.
const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Idle sessions a handle keeps for reuse.
const IDLE_SESSIONS: usize = 2;
/// How long an acquire waits for this process's own pending unlock of the same lock.
const RELEASE_WAIT: Duration = Duration::from_secs(5);
const HASH_PREFIX: &[u8] = b"tokio-filelock:";

/// A lock held as a PostgreSQL session-level advisory lock, by any number of processes on
/// any number of hosts: the same API as [`FileLock`](crate::FileLock). See the [module
/// documentation](self) for how it works, the key of a name, fencing tokens and what the
/// server must allow.
///
/// ```no_run
/// use std::time::Duration;
/// use tokio_filelock::postgres::PgLock;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tokio_filelock::Error> {
/// let lock = PgLock::builder("host=db.internal user=app dbname=app", "nightly-report")
///     .timeout(Duration::from_secs(30))
///     .build()?;
/// let guard = lock.acquire().await?;
/// let token = guard.fencing_token(); // pass it to the resource you write
/// tokio::select! {
///     _ = async { /* the nightly report */ } => {}
///     lost = guard.lost() => eprintln!("stopping: {lost}"),
/// }
/// # drop(token);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PgLock {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    name: String,
    key: i64,
    /// `postgres://user@host:port/db?lock=NAME`: names the lock in errors and guards.
    state: Arc<State>,
    /// Which lock space the key lives in: host, port and database.
    database: String,
    timeout: Option<Duration>,
    blocking: bool,
    poll_interval: Duration,
    on_wait: Option<WaitHook>,
    on_acquired: Option<crate::acquired::AcquiredHook>,
    /// Ends this lock's waits when cancelled.
    cancel: Option<crate::wake::Cancel>,
    application: String,
    fencing: bool,
    idle: Mutex<Vec<Session>>,
    /// Released holds whose unlock is not sent yet (see [`Handover`]).
    handovers: Mutex<Vec<Handover>>,
}

/// A released hold: its session still holds the lock until the unlock is sent, by the task
/// the release spawned or by the next acquire of the same handle, whichever takes it
/// first. Dropped with its session unsent, it closes the session (which frees the lock).
struct Handover {
    session: Option<Session>,
    mode: LockMode,
    /// Marks the unlock as in flight for other handles' acquires until dropped.
    done: releases::Done,
}

/// The outcome of an attempt that first had to release an earlier hold of its session.
enum Unlocked {
    /// That release did not succeed: the session may still hold the lock.
    Failed,
}

/// Settings for a [`PgLock`]; from [`PgLock::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct PgLockBuilder {
    conn: String,
    name: String,
    timeout: Option<Duration>,
    blocking: bool,
    poll_interval: Duration,
    on_wait: Option<WaitHook>,
    on_acquired: Option<crate::acquired::AcquiredHook>,
    cancel: Option<crate::wake::Cancel>,
    application: Option<String>,
    fencing: bool,
}

impl fmt::Debug for PgLockBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLockBuilder")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .field("blocking", &self.blocking)
            .finish_non_exhaustive()
    }
}

impl PgLockBuilder {
    /// How long [`acquire`](PgLock::acquire) waits. Default: forever; `Duration::ZERO`:
    /// one attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// `false`: every acquire makes exactly one attempt. Default: `true`.
    pub fn blocking(mut self, blocking: bool) -> Self {
        self.blocking = blocking;
        self
    }

    /// The longest sleep between two attempts. Default: 200 ms (releases by this crate
    /// wake waiters at once through `NOTIFY`).
    pub fn poll_interval(mut self, poll_interval: Duration) -> Self {
        self.poll_interval = poll_interval;
        self
    }

    /// Calls `hook` once per acquire that finds the lock held and starts to wait, with the
    /// holder when it can be found. It runs on the acquiring task: keep it short.
    pub fn on_wait(mut self, hook: impl Fn(&WaitEvent<'_>) + Send + Sync + 'static) -> Self {
        self.on_wait = Some(WaitHook::new(hook));
        self
    }

    /// Calls `hook` right after each hold is won (not on re-entry), before the acquire
    /// returns, on Tokio's blocking pool, as
    /// [`FileLockBuilder::on_acquired`](crate::FileLockBuilder::on_acquired):
    /// [`Acquired::path`](crate::Acquired::path) is the lock's URL (no password) and
    /// [`Acquired::file`](crate::Acquired::file) is `None`. An error from it releases the
    /// hold and fails the acquire with [`Error::OnAcquired`].
    pub fn on_acquired(
        mut self,
        hook: impl Fn(&crate::Acquired<'_>) -> Result<(), crate::HookError> + Send + Sync + 'static,
    ) -> Self {
        self.on_acquired = Some(crate::acquired::AcquiredHook::new(hook));
        self
    }

    /// Lets `token` stop this lock's waiting acquires at once, with
    /// [`Error::Cancelled`] (the session's waiter mark is withdrawn, nothing stays held on
    /// the server), as [`FileLockBuilder::cancel_token`](crate::FileLockBuilder::cancel_token).
    pub fn cancel_token(mut self, token: &crate::CancelToken) -> Self {
        self.cancel = Some(token.inner().clone());
        self
    }

    /// What the sessions' `application_name` says after `tfl h=<host> p=<pid> `. Default:
    /// this process's command line. Cut to 63 bytes in all.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application = Some(name.into());
        self
    }

    /// `false`: no fencing tokens, and no sequence is created. Default: `true`.
    pub fn fencing(mut self, fencing: bool) -> Self {
        self.fencing = fencing;
        self
    }

    /// The handle. Connects to nothing yet.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSpec`] when the connection string does not parse or the name is
    /// empty.
    pub fn build(self) -> Result<PgLock, Error> {
        let config: Config = self.conn.parse().map_err(|e| Error::InvalidSpec {
            path: PathBuf::from(redact(&self.conn)),
            reason: format!("not a PostgreSQL connection string: {e}"),
        })?;
        if self.name.is_empty() {
            return Err(Error::InvalidSpec {
                path: PathBuf::from(redact(&self.conn)),
                reason: "the lock name is empty".into(),
            });
        }
        let database = database_of(&config);
        let user = config.get_user().unwrap_or("");
        let display = format!(
            "postgres://{}{database}?lock={}",
            if user.is_empty() {
                String::new()
            } else {
                format!("{user}@")
            },
            self.name
        );
        let key = PgLock::key(&self.name);
        Ok(PgLock {
            inner: Arc::new(Inner {
                config,
                key,
                name: self.name,
                state: Arc::new(State::new(Arc::from(Path::new(&display)))),
                database,
                timeout: self.timeout,
                blocking: self.blocking,
                poll_interval: self.poll_interval,
                on_wait: self.on_wait,
                on_acquired: self.on_acquired,
                cancel: self.cancel,
                application: session::application_name(self.application.as_deref()),
                fencing: self.fencing,
                idle: Mutex::new(Vec::new()),
                handovers: Mutex::new(Vec::new()),
            }),
        })
    }
}

/// `host:port/db` of a config, for display and as the lock space.
fn database_of(config: &Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

impl PgLock {
    /// A lock named `name` on the server of `conn` (libpq `key=value` string or
    /// `postgres://` URL), with the default settings: exclusive, waits forever, fencing on.
    ///
    /// # Errors
    ///
    /// As [`PgLockBuilder::build`].
    pub fn new(conn: &str, name: &str) -> Result<PgLock, Error> {
        PgLock::builder(conn, name).build()
    }

    /// A builder for a lock with other settings.
    pub fn builder(conn: &str, name: &str) -> PgLockBuilder {
        PgLockBuilder {
            conn: conn.to_owned(),
            name: name.to_owned(),
            timeout: None,
            blocking: true,
            poll_interval: DEFAULT_POLL_INTERVAL,
            on_wait: None,
            on_acquired: None,
            cancel: None,
            application: None,
            fencing: true,
        }
    }

    /// The lock a URL names: `postgres://[user[:password]@]host[:port]/db?lock=NAME`, with
    /// `fencing=off` optional and any other query parameter passed to the connection (as
    /// libpq does: `connect_timeout`, `application_name`, ...). The name is
    /// percent-decoded.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSpec`] without `lock=`, with an empty name, or when the rest does not
    /// parse.
    pub fn from_url(url: &str) -> Result<PgLock, Error> {
        PgLock::builder_from_url(url)?.build()
    }

    /// A builder for the lock a URL names (as [`from_url`](Self::from_url)), to change
    /// other settings.
    ///
    /// # Errors
    ///
    /// As [`from_url`](Self::from_url), for a URL without `lock=` or a name that is not
    /// UTF-8; the rest is checked by [`PgLockBuilder::build`].
    pub fn builder_from_url(url: &str) -> Result<PgLockBuilder, Error> {
        let invalid = |reason: &str| Error::InvalidSpec {
            path: PathBuf::from(redact(url)),
            reason: reason.to_owned(),
        };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut name = None;
        let mut fencing = true;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "lock" => {
                    name = Some(
                        percent_decode(v).ok_or_else(|| invalid("the lock name is not UTF-8"))?,
                    )
                }
                "fencing" => fencing = !matches!(v, "off" | "false" | "0"),
                _ => rest.push(pair),
            }
        }
        let name = name.ok_or_else(|| invalid("no lock name: add `?lock=NAME`"))?;
        let conn = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        Ok(PgLock::builder(&conn, &name).fencing(fencing))
    }

    /// The 64-bit advisory lock key of `name` (see [the key of a name](self#the-key-of-a-name)).
    ///
    /// ```
    /// let key = tokio_filelock::postgres::PgLock::key("nightly");
    /// assert_eq!(key, tokio_filelock::postgres::PgLock::key("nightly"));
    /// ```
    pub fn key(name: &str) -> i64 {
        let mut hash = Sha256::new();
        hash.update(HASH_PREFIX);
        hash.update(name.as_bytes());
        let digest = hash.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The lock as errors and guards name it: `postgres://user@host:port/db?lock=NAME`.
    pub fn path(&self) -> &Path {
        self.inner.state.path()
    }

    /// Acquires the exclusive lock, waiting as configured (default: forever).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] (naming the holder) when the wait runs out,
    /// [`Error::WouldDeadlock`] when this owner holds the lock and would wait forever,
    /// [`Error::Server`] at once when the server cannot be reached, refuses the login, has
    /// no such database, or the session breaks while waiting.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future leaves nothing held and nothing waiting on the
    /// server (an attempt in flight has its session closed).
    pub async fn acquire(&self) -> Result<LockGuard, Error> {
        self.acquire_with(LockMode::Exclusive, self.wait(), true)
            .await
    }

    /// Acquires the exclusive lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.acquire_with(LockMode::Exclusive, self.wait_for(timeout), true)
            .await
    }

    /// One attempt at the exclusive lock: `None` if it is held elsewhere.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), but never a timeout.
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        none_if_held(
            self.acquire_with(LockMode::Exclusive, Wait::Once, false)
                .await,
        )
    }

    /// Acquires a shared lock: any number of shared holders coexist; an exclusive holder
    /// excludes them. A queued exclusive waiter does not hold shared acquires back (the
    /// attempts are non-blocking). Shared holds have no fencing token.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    pub async fn acquire_shared(&self) -> Result<LockGuard, Error> {
        self.acquire_with(LockMode::Shared, self.wait(), true).await
    }

    /// Acquires a shared lock, waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    pub async fn acquire_shared_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.acquire_with(LockMode::Shared, self.wait_for(timeout), true)
            .await
    }

    /// One attempt at a shared lock: `None` if it is held exclusively elsewhere.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// # Cancel safety
    ///
    /// As [`acquire`](Self::acquire).
    pub async fn try_acquire_shared(&self) -> Result<Option<LockGuard>, Error> {
        none_if_held(self.acquire_with(LockMode::Shared, Wait::Once, false).await)
    }

    /// Sync facade of [`acquire`](Self::acquire): needs no runtime. The sessions of locks
    /// acquired this way are driven by a private one-thread Tokio runtime of the crate
    /// (started on first use, thread `tokio-filelock-pg`), which keeps them alive while the
    /// guards live.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire(&self) -> Result<LockGuard, Error> {
        self.blocking(LockMode::Exclusive, self.wait(), true)
    }

    /// Sync facade of [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.blocking(LockMode::Exclusive, self.wait_for(timeout), true)
    }

    /// Sync facade of [`try_acquire`](Self::try_acquire).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    pub fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        none_if_held(self.blocking(LockMode::Exclusive, Wait::Once, false))
    }

    /// Sync facade of [`acquire_shared`](Self::acquire_shared).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_shared(&self) -> Result<LockGuard, Error> {
        self.blocking(LockMode::Shared, self.wait(), true)
    }

    /// Sync facade of [`acquire_shared_timeout`](Self::acquire_shared_timeout).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    pub fn blocking_acquire_shared_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        self.blocking(LockMode::Shared, self.wait_for(timeout), true)
    }

    /// Sync facade of [`try_acquire_shared`](Self::try_acquire_shared).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    pub fn blocking_try_acquire_shared(&self) -> Result<Option<LockGuard>, Error> {
        none_if_held(self.blocking(LockMode::Shared, Wait::Once, false))
    }

    /// Who holds the lock now (one of them, for shared holders): `None` when nobody does.
    /// A snapshot. Opens a session (or reuses an idle one).
    ///
    /// # Errors
    ///
    /// [`Error::Server`] when the server cannot be used.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: it only reads.
    pub async fn holder(&self) -> Result<Option<Holder>, Error> {
        let session = self.session().await?;
        let found = holder_of(&session, self.inner.key).await;
        self.keep(session);
        Ok(found)
    }

    /// Sync facade of [`holder`](Self::holder).
    ///
    /// # Errors
    ///
    /// As [`holder`](Self::holder).
    pub fn blocking_holder(&self) -> Result<Option<Holder>, Error> {
        let lock = self.clone();
        block_on(self.path(), async move { lock.holder().await })?
    }

    fn wait(&self) -> Wait {
        Wait::new(self.inner.timeout, self.inner.blocking)
    }

    fn wait_for(&self, timeout: Duration) -> Wait {
        Wait::new(Some(timeout), self.inner.blocking)
    }

    fn blocking(&self, mode: LockMode, wait: Wait, name_holder: bool) -> Result<LockGuard, Error> {
        let lock = self.clone();
        // The owner is the calling thread (or task), not the runtime's worker.
        let owner = Owner::current();
        block_on(self.path(), async move {
            lock.acquire_as(owner, mode, wait, name_holder).await
        })?
    }

    async fn acquire_with(
        &self,
        mode: LockMode,
        wait: Wait,
        name_holder: bool,
    ) -> Result<LockGuard, Error> {
        crate::driver::asynchronous::require_runtime(self.path())?;
        self.acquire_as(Owner::current(), mode, wait, name_holder)
            .await
    }

    /// The wait: attempts on the schedule of [`crate::schedule`], woken early by a
    /// notification of a release of this key.
    async fn acquire_as(
        &self,
        owner: Owner,
        mode: LockMode,
        wait: Wait,
        name_holder: bool,
    ) -> Result<LockGuard, Error> {
        let inner = &self.inner;
        let path = self.path();
        let start = Instant::now();
        // A hold of this handle just released, whose unlock has not been sent yet: this
        // acquire sends it, pipelined with its first attempt on the same session (the
        // server runs them in that order, so the lock is free for the attempt).
        let mut handover = self.take_handover();
        releases::settled(
            &inner.database,
            inner.key,
            handover.as_ref().map(|h| h.done.id()),
        )
        .await;
        let mut schedule = Schedule::new(wait, inner.poll_interval);
        let session = match handover.as_mut().and_then(|h| h.session.take()) {
            Some(session) => session,
            None => self.session().await?,
        };
        // Owns the session while it may hold something it has not handed over: dropped
        // with the future, it closes the session (see `Pending`).
        let cancel = inner.cancel.as_ref().map(crate::wake::Cancel::register);
        let mut pending = Pending {
            session: Some(session),
            lock: self,
            certain: true,
        };
        let mut attempts: u32 = 0;
        let mut waiting = false;
        loop {
            attempts += 1;
            tracing::debug!(target: "tokio_filelock", path = %path.display(), attempt = attempts, ?mode, "attempt");
            pending.certain = false;
            // Once it waits, the session announces itself as a waiter (see `statements`).
            let unlock = handover.as_ref().map(|h| h.mode);
            let won = self.attempt(pending.session(), mode, waiting, unlock).await;
            // The unlock has ended (or the session will be closed): others may go on.
            drop(handover.take());
            let won = match won {
                Ok(Ok(won)) => won,
                Ok(Err(Unlocked::Failed)) => {
                    // The session may still hold the old hold: close it, go on with
                    // another one.
                    drop(pending.session.take());
                    pending.session = Some(self.session().await?);
                    pending.certain = true;
                    attempts -= 1;
                    continue;
                }
                Err(e) => return Err(e), // `pending` closes the session
            };
            pending.certain = true;
            if let Some(token) = won {
                let session = pending.take();
                tracing::debug!(target: "tokio_filelock", path = %path.display(), attempts, waited = ?start.elapsed(), token, "acquired");
                let guard = self.guard(session, owner, mode, token);
                if let Some(hook) = inner.on_acquired.clone() {
                    // User code, which may wait: on the blocking pool. Its error drops the
                    // guard, which releases the hold.
                    let at = path.to_path_buf();
                    tokio::task::spawn_blocking(move || hook.run(&at, mode, None))
                        .await
                        .map_err(|e| {
                            Error::io(path, crate::Op::Spawn, std::io::Error::other(e))
                        })??;
                }
                return Ok(guard);
            }
            if wait == Wait::Forever && held::blocks(&inner.database, inner.key, owner, mode) {
                return Err(Error::WouldDeadlock {
                    path: path.to_path_buf(),
                });
            }
            let Some(sleep) = schedule.next_sleep(start.elapsed()) else {
                let waited = if wait == Wait::Once {
                    Duration::ZERO
                } else {
                    start.elapsed()
                };
                tracing::debug!(target: "tokio_filelock", path = %path.display(), attempts, ?waited, "timeout");
                let (holder, unmarked) = tokio::join!(
                    async {
                        if name_holder {
                            holder_of(pending.peek(), inner.key).await
                        } else {
                            None
                        }
                    },
                    unannounce(pending.peek(), inner.key)
                );
                if unmarked {
                    pending.session().announced = false;
                } else {
                    // The mark may still be held: close the session.
                    pending.certain = false;
                }
                return Err(Error::Timeout {
                    path: path.to_path_buf(),
                    waited,
                    holder: holder.map(Box::new),
                    empty_marker: false,
                });
            };
            if attempts == 1 {
                tracing::debug!(target: "tokio_filelock", path = %path.display(), "waiting");
                if let Some(hook) = &inner.on_wait {
                    let holder = holder_of(pending.session(), inner.key).await;
                    hook.call(&WaitEvent::new(path, mode, holder.as_ref()));
                }
                listen(pending.session(), path).await?;
                waiting = true;
                // Announce, and attempt once more before sleeping: a release that came
                // before the announcement sent no notification.
                continue;
            }
            let woke =
                wake_or_sleep(pending.session(), inner.key, sleep, path, cancel.as_ref()).await?;
            if woke == Woke::Cancelled {
                tracing::debug!(target: "tokio_filelock", path = %path.display(), "cancelled");
                if unannounce(pending.peek(), inner.key).await {
                    pending.session().announced = false;
                } else {
                    // The mark may still be held: close the session.
                    pending.certain = false;
                }
                return Err(Error::Cancelled {
                    path: path.to_path_buf(),
                    waited: start.elapsed(),
                });
            }
        }
    }

    /// One non-blocking attempt: `Some(token)` when won (`token` = fencing token, 0 when
    /// none). One round trip (see [`Session::query_lock_path`]). With `announce`, the
    /// session first marks itself as a waiter (pipelined, the same round trip) unless it
    /// already has; a session that wins drops its mark in the same statement. With
    /// `unlock`, the same statement first releases the hold the session had in that mode
    /// ([`statements::handover`]): [`Unlocked::Failed`] when that release did not succeed
    /// (the caller closes the session).
    async fn attempt(
        &self,
        session: &mut Session,
        mode: LockMode,
        announce: bool,
        unlock: Option<LockMode>,
    ) -> Result<Result<Option<u64>, Unlocked>, Error> {
        let inner = &self.inner;
        let path = self.path();
        let key = inner.key;
        let fence = mode == LockMode::Exclusive && inner.fencing;
        let (hi, lo) = mark_of(key);
        let fail = |e| session::server_error(path, e, ServerError::Query);
        let mut created = false;
        loop {
            let announced = session.announced;
            let marked = unlock.is_none() && (announce || announced);
            let sql = match unlock {
                Some(held) => statements::handover(held, mode, fence),
                None => statements::attempt(mode, fence, marked),
            };
            let with_mark: [(&(dyn ToSql + Sync), Type); 3] =
                [(&key, Type::INT8), (&hi, Type::INT4), (&lo, Type::INT4)];
            let params = if marked || unlock.is_some() {
                &with_mark[..]
            } else {
                &with_mark[..1]
            };
            let mark: [(&(dyn ToSql + Sync), Type); 2] = [(&hi, Type::INT4), (&lo, Type::INT4)];
            let first = (marked && !announced).then_some((statements::ANNOUNCE, &mark[..]));
            let (first_rows, rows) = session.query_lock_path_after(first, sql, params).await;
            if let Some(first_rows) = first_rows {
                session.announced = first_rows
                    .map_err(fail)?
                    .first()
                    .is_some_and(|row| row.get::<_, bool>(0));
            }
            let rows = match rows {
                // No sequence yet: the statement failed to parse, so it ran nothing (no
                // unlock either). Create the sequence and run it again.
                Err(e) if fence && !created && e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
                    create_sequence(session, path).await?;
                    created = true;
                    continue;
                }
                Err(e) if unlock.is_some() => {
                    tracing::warn!(target: "tokio_filelock", path = %path.display(), error = %e, "unlock failed; closing the session");
                    return Ok(Err(Unlocked::Failed));
                }
                rows => rows.map_err(fail)?,
            };
            let row = rows.first();
            if unlock.is_some() && !row.is_some_and(|row| row.get::<_, bool>(1)) {
                return Ok(Err(Unlocked::Failed));
            }
            let won = row.and_then(|row| row.get::<_, Option<i64>>(0));
            if won.is_some() {
                // The statement dropped the waiter mark with the win.
                session.announced = false;
            }
            return Ok(Ok(won.map(|token| u64::try_from(token).unwrap_or(0))));
        }
    }

    fn guard(&self, session: Session, owner: Owner, mode: LockMode, token: u64) -> LockGuard {
        held::add(&self.inner.database, self.inner.key, owner, mode);
        let hold = Hold {
            lock: self.clone(),
            session: Some(session),
            owner,
            mode,
            token: (mode == LockMode::Exclusive && self.inner.fencing).then_some(token),
            runtime: tokio::runtime::Handle::current(),
        };
        LockGuard::remote(self.inner.state.clone(), mode, Box::new(hold))
    }

    /// A released hold of this handle whose unlock nobody has sent yet (its session still
    /// open); ended sessions are dropped (closing them frees their locks).
    fn take_handover(&self) -> Option<Handover> {
        let mut handovers = self
            .inner
            .handovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while let Some(handover) = handovers.pop() {
            if handover
                .session
                .as_ref()
                .is_some_and(|s| s.end_reason().is_none())
            {
                return Some(handover);
            }
        }
        None
    }

    /// An idle session of this handle, or a new one.
    async fn session(&self) -> Result<Session, Error> {
        loop {
            let idle = self
                .inner
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match idle {
                Some(session) if session.end_reason().is_none() => return Ok(session),
                Some(_) => continue,
                None => break,
            }
        }
        Session::connect(&self.inner.config, &self.inner.application, self.path()).await
    }

    /// Keeps a session that holds nothing for reuse (or closes it if enough are idle).
    fn keep(&self, mut session: Session) {
        while session.notes.try_recv().is_ok() {}
        if session.end_reason().is_some() {
            return;
        }
        let mut idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_SESSIONS {
            idle.push(session);
        }
    }
}

/// The two 32-bit halves of `key`: the waiter mark of a lock is the two-key advisory lock
/// `(hi, lo)`, which PostgreSQL keeps apart from the one-key lock `key` (`pg_locks` shows
/// both with `classid = hi, objid = lo`; the lock has `objsubid = 1`, the mark 2).
fn mark_of(key: i64) -> (i32, i32) {
    let bits = key as u64;
    ((bits >> 32) as u32 as i32, bits as u32 as i32)
}

/// Creates the fencing sequence (first use on a server). Two sessions racing to create it
/// is fine: the loser's error says it exists.
async fn create_sequence(session: &mut Session, path: &Path) -> Result<(), Error> {
    match session
        .client
        .batch_execute(statements::FENCE_SEQUENCE)
        .await
    {
        Ok(()) => Ok(()),
        Err(e)
            if e.code().is_some_and(|c| {
                *c == SqlState::UNIQUE_VIOLATION
                    || *c == SqlState::DUPLICATE_TABLE
                    || *c == SqlState::DUPLICATE_OBJECT
            }) =>
        {
            Ok(())
        }
        Err(e) => Err(session::server_error(path, e, ServerError::Query)),
    }
}

/// The SQL of the lock path. `$1` is the key (`int8`); `$2, $3` the two halves of the
/// waiter mark (`int4`, see [`mark_of`]). Every statement is one round trip.
mod statements {
    use crate::LockMode;

    /// The sequence fencing tokens come from: one for all names (a token that increases
    /// across all names increases per name). `CACHE 1` (the default, said out loud): a
    /// session must not keep a range of numbers of its own, or tokens would not follow the
    /// order of acquisitions across sessions.
    pub(super) const FENCE_SEQUENCE: &str = "CREATE SEQUENCE IF NOT EXISTS \
         tokio_filelock_fence_seq AS bigint MINVALUE 1 NO CYCLE CACHE 1";

    /// A waiter announces itself before the attempt that precedes its sleep: a shared hold
    /// of the mark, never a waiting lock call. `false` while a release is probing the mark
    /// at this very moment: the waiter then tries again before its next sleep.
    pub(super) const ANNOUNCE: &str = "SELECT pg_try_advisory_lock_shared($1, $2)";

    // The fragments the statements are made of (macros, for `concat!`).
    macro_rules! core {
        // The attempt: the token (or 0 without fencing) when won, else NULL.
        (ex_fence) => {
            "CASE WHEN pg_try_advisory_lock($1) THEN nextval('tokio_filelock_fence_seq') END"
        };
        (ex) => {
            "CASE WHEN pg_try_advisory_lock($1) THEN 0::int8 END"
        };
        (sh) => {
            "CASE WHEN pg_try_advisory_lock_shared($1) THEN 0::int8 END"
        };
    }
    // The release (see `release`): `u` = the session held the lock, `n` = the notification
    // (NULL when no waiter holds the mark). `OFFSET 0` keeps each level a subquery of its
    // own, evaluated before the level around it: unlock, then probe, then notify.
    macro_rules! released {
        ($unlock:literal) => {
            concat!(
                "(SELECT u, CASE WHEN w THEN pg_notify('tokio_filelock', $1::text) END AS n \
                 FROM (SELECT u, CASE WHEN pg_try_advisory_lock($2, $3) \
                 THEN NOT pg_advisory_unlock($2, $3) ELSE true END AS w \
                 FROM (SELECT ",
                $unlock,
                "($1) AS u OFFSET 0) a OFFSET 0) b OFFSET 0) r"
            )
        };
    }
    // An attempt of a marked waiter: drops the mark in the same statement when it wins.
    macro_rules! marked {
        ($core:tt) => {
            concat!(
                "SELECT t, CASE WHEN t IS NOT NULL THEN pg_advisory_unlock_shared($2, $3) END \
                 FROM (SELECT ",
                core!($core),
                " AS t OFFSET 0) s"
            )
        };
    }
    // A release and an attempt in one statement: `(token or NULL, unlocked, notification)`.
    macro_rules! handover {
        ($unlock:literal, $core:tt) => {
            concat!(
                "SELECT CASE WHEN u THEN ",
                core!($core),
                " END, u, n FROM ",
                released!($unlock)
            )
        };
    }

    /// The attempt: the token (or 0 without fencing) when won, else NULL. With `marked`,
    /// the session holds (or has just asked for) the waiter mark and drops it in the same
    /// statement when it wins.
    pub(super) fn attempt(mode: LockMode, fence: bool, marked: bool) -> &'static str {
        match (mode, fence, marked) {
            (LockMode::Exclusive, true, false) => concat!("SELECT ", core!(ex_fence)),
            (LockMode::Exclusive, true, true) => marked!(ex_fence),
            (LockMode::Exclusive, false, false) => concat!("SELECT ", core!(ex)),
            (LockMode::Exclusive, false, true) => marked!(ex),
            (LockMode::Shared, _, false) => concat!("SELECT ", core!(sh)),
            (LockMode::Shared, _, true) => marked!(sh),
        }
    }

    /// Drops the waiter mark (a wait that ends without the lock).
    pub(super) const UNANNOUNCE: &str = "SELECT pg_advisory_unlock_shared($1, $2)";

    /// The release: the unlock first, then a probe of the waiter mark (a momentary
    /// exclusive hold of it, which fails while any waiter holds it shared), and
    /// `pg_notify` only when the probe found a waiter. A waiter announces itself before
    /// its last attempt ahead of a sleep, and this probe comes after the unlock: either
    /// that attempt sees the lock free, or this probe sees the waiter. `true` in the
    /// first column when the session held the lock.
    pub(super) fn release(mode: LockMode) -> &'static str {
        match mode {
            LockMode::Exclusive => concat!("SELECT u, n FROM ", released!("pg_advisory_unlock")),
            LockMode::Shared => {
                concat!("SELECT u, n FROM ", released!("pg_advisory_unlock_shared"))
            }
        }
    }

    /// The release of a hold in mode `held` (as [`release`]) and then, when it succeeded,
    /// an attempt in `mode` (as [`attempt`], unmarked), in one statement: what the next
    /// acquire of a handle sends when it takes over the unlock of a hold just released.
    pub(super) fn handover(held: LockMode, mode: LockMode, fence: bool) -> &'static str {
        use LockMode::{Exclusive as Ex, Shared as Sh};
        match (held, mode, fence) {
            (Ex, Ex, true) => handover!("pg_advisory_unlock", ex_fence),
            (Ex, Ex, false) => handover!("pg_advisory_unlock", ex),
            (Ex, Sh, _) => handover!("pg_advisory_unlock", sh),
            (Sh, Ex, true) => handover!("pg_advisory_unlock_shared", ex_fence),
            (Sh, Ex, false) => handover!("pg_advisory_unlock_shared", ex),
            (Sh, Sh, _) => handover!("pg_advisory_unlock_shared", sh),
        }
    }
}

/// The session of an acquire in progress. Dropped with the acquire future: kept for reuse
/// when it is known to hold nothing, closed when an attempt was in flight (it may have won).
struct Pending<'a> {
    session: Option<Session>,
    lock: &'a PgLock,
    certain: bool,
}

impl Pending<'_> {
    fn session(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .unwrap_or_else(|| unreachable!("the session is taken only on success"))
    }

    fn peek(&self) -> &Session {
        self.session
            .as_ref()
            .unwrap_or_else(|| unreachable!("the session is taken only on success"))
    }

    fn take(&mut self) -> Session {
        self.session
            .take()
            .unwrap_or_else(|| unreachable!("the session is taken once"))
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        // Kept when it holds nothing for sure; else dropped, which closes it.
        if let Some(session) = self.session.take()
            && self.certain
        {
            if !session.announced {
                self.lock.keep(session);
                return;
            }
            // It holds its waiter mark: drop the mark first (or close the session, where
            // no runtime runs the unlock).
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let lock = self.lock.clone();
                runtime.spawn(async move {
                    let mut session = session;
                    if unannounce(&session, lock.inner.key).await {
                        session.announced = false;
                        lock.keep(session);
                    }
                });
            }
        }
    }
}

/// Drops the session's waiter mark, if it holds one: `true` when it holds none now.
async fn unannounce(session: &Session, key: i64) -> bool {
    if !session.announced {
        return true;
    }
    let (hi, lo) = mark_of(key);
    match session
        .client
        .query_typed(
            statements::UNANNOUNCE,
            &[(&hi, Type::INT4), (&lo, Type::INT4)],
        )
        .await
    {
        Ok(rows) => rows.first().is_some_and(|row| row.get::<_, bool>(0)),
        Err(error) => {
            tracing::debug!(target: "tokio_filelock", %error, "could not drop the waiter mark");
            false
        }
    }
}

async fn listen(session: &mut Session, path: &Path) -> Result<(), Error> {
    if !session.listening {
        session
            .client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| session::server_error(path, e, ServerError::Query))?;
        session.listening = true;
    }
    Ok(())
}

/// Sleeps `sleep`, or less when a release of `key` is announced or `cancel` is cancelled;
/// says which ([`Woke`], the wake-up engine's answer). Fails when the session ends
/// meanwhile (a server that goes away).
async fn wake_or_sleep(
    session: &mut Session,
    key: i64,
    sleep: Duration,
    path: &Path,
    cancel: Option<&crate::wake::cancel::Registration>,
) -> Result<Woke, Error> {
    let deadline = Instant::now() + sleep;
    let wanted = key.to_string();
    let mut ended = session.ended.clone();
    let cancelled = std::future::poll_fn(|cx| match cancel {
        Some(cancel) => cancel.poll(cx),
        None => std::task::Poll::Pending,
    });
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Ok(Woke::Timer),
            note = session.notes.recv() => match note {
                Some(payload) if payload == wanted => return Ok(Woke::Signal),
                Some(_) => {}
                None => return Err(session_lost(path, session)),
            },
            _ = ended.wait_for(Option::is_some) => return Err(session_lost(path, session)),
            () = &mut cancelled => return Ok(Woke::Cancelled),
        }
    }
}

fn session_lost(path: &Path, session: &Session) -> Error {
    let reason = session
        .end_reason()
        .unwrap_or_else(|| "the connection ended".into());
    Error::Server {
        path: path.to_path_buf(),
        what: ServerError::SessionLost,
        source: reason.into(),
    }
}

/// Who holds `key`, from `pg_locks` and `pg_stat_activity` (`None` if nobody, or the
/// lookup failed: it only decorates a message).
async fn holder_of(session: &Session, key: i64) -> Option<Holder> {
    const SQL: &str = "SELECT a.pid, a.application_name, host(a.client_addr), a.client_port, \
         l.mode, extract(epoch FROM a.state_change)::float8 \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND l.classid = $1 AND l.objid = $2 AND l.pid <> pg_backend_pid() \
         ORDER BY l.mode DESC LIMIT 1";
    let bits = key as u64;
    let classid = (bits >> 32) as u32;
    let objid = bits as u32;
    let row = match session.client.query_opt(SQL, &[&classid, &objid]).await {
        Ok(row) => row?,
        Err(error) => {
            tracing::debug!(target: "tokio_filelock", %error, "could not look up the holder");
            return None;
        }
    };
    let backend: i32 = row.get(0);
    let application: Option<String> = row.get(1);
    let addr: Option<String> = row.get(2);
    let port: Option<i32> = row.get(3);
    let mode: String = row.get(4);
    let since: Option<f64> = row.get(5);
    let mode = if mode == "ShareLock" {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    };
    let application = application.unwrap_or_default();
    let mut holder = match session::parse_application_name(&application) {
        Some((host, pid, command)) => {
            let mut h = Holder::new(pid, mode).with_host(Some(host));
            h.command = Some(command).filter(|c| !c.is_empty()).map(Into::into);
            h
        }
        None => {
            let mut h = Holder::new(u32::try_from(backend).unwrap_or(0), mode);
            h.command = Some(if application.is_empty() {
                format!("PostgreSQL backend {backend}").into()
            } else {
                format!("{application} (PostgreSQL backend {backend})").into()
            });
            h
        }
    };
    holder.session = Some(Box::new(HolderSession {
        backend_pid: u32::try_from(backend).unwrap_or(0),
        address: addr.map(|a| match port {
            Some(p) if p > 0 => format!("{a}:{p}"),
            _ => a,
        }),
        since: since
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(s)),
    }));
    Some(holder)
}

/// A hold: the session that holds the lock.
struct Hold {
    lock: PgLock,
    session: Option<Session>,
    owner: Owner,
    mode: LockMode,
    token: Option<u64>,
    /// Where the session's connection is driven: the unlock runs there.
    runtime: tokio::runtime::Handle,
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hold")
            .field("lock", &self.lock.path())
            .field("mode", &self.mode)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Remote for Hold {
    fn release(&mut self) -> Result<(), Error> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let inner = &self.lock.inner;
        held::remove(&inner.database, inner.key, self.owner, self.mode);
        tracing::debug!(target: "tokio_filelock", path = %self.lock.path().display(), "released");
        let done = releases::start(&inner.database, inner.key);
        inner
            .handovers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Handover {
                session: Some(session),
                mode: self.mode,
                done,
            });
        let lock = self.lock.clone();
        // The unlock runs here unless an acquire of this handle takes it over first.
        // Dropped unrun if the runtime is gone: the session closes, freeing the lock.
        self.runtime.spawn(async move {
            let Some(mut handover) = lock.take_handover() else {
                return;
            };
            let Some(mut session) = handover.session.take() else {
                return;
            };
            let key = lock.inner.key;
            let (hi, lo) = mark_of(key);
            let params: [(&(dyn ToSql + Sync), Type); 3] =
                [(&key, Type::INT8), (&hi, Type::INT4), (&lo, Type::INT4)];
            match session
                .query_lock_path(statements::release(handover.mode), &params)
                .await
            {
                Ok(rows) if rows.first().is_some_and(|row| row.get::<_, bool>(0)) => {
                    lock.keep(session)
                }
                // Not held any more (the session was replaced?) or failed: close it.
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(target: "tokio_filelock", path = %lock.path().display(), %error, "unlock failed; closing the session");
                }
            }
            drop(handover);
        });
        Ok(())
    }

    fn lost(&self) -> LostFuture {
        let path = self.lock.path().to_path_buf();
        let ended = self.session.as_ref().map(|s| s.ended.clone());
        Box::pin(async move {
            let reason = match ended {
                Some(mut ended) => match ended.wait_for(Option::is_some).await {
                    Ok(reason) => reason.clone().unwrap_or_default(),
                    Err(_) => "the connection ended".to_owned(),
                },
                None => std::future::pending().await,
            };
            Lost::SessionEnded { path, reason }
        })
    }

    fn is_lost(&self) -> Option<Lost> {
        let reason = self.session.as_ref()?.end_reason()?;
        Some(Lost::SessionEnded {
            path: self.lock.path().to_path_buf(),
            reason,
        })
    }

    fn fencing_token(&self) -> Option<u64> {
        self.token
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.session.is_some() {
            let _ = Remote::release(self);
        }
    }
}

/// Which (lock space, key) this process holds, by whom: what it takes to see that a wait
/// could never end (`Error::WouldDeadlock`).
mod held {
    use super::*;

    type Entry = (String, i64, Owner, LockMode);
    static HELD: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

    fn held() -> std::sync::MutexGuard<'static, Vec<Entry>> {
        HELD.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn add(db: &str, key: i64, owner: Owner, mode: LockMode) {
        held().push((db.to_owned(), key, owner, mode));
    }

    pub(super) fn remove(db: &str, key: i64, owner: Owner, mode: LockMode) {
        let mut held = held();
        if let Some(i) = held
            .iter()
            .position(|e| e.0 == db && e.1 == key && e.2 == owner && e.3 == mode)
        {
            held.swap_remove(i);
        }
    }

    /// `owner` holds `key` in a mode that conflicts with `mode`.
    pub(super) fn blocks(db: &str, key: i64, owner: Owner, mode: LockMode) -> bool {
        held().iter().any(|e| {
            e.0 == db
                && e.1 == key
                && e.2 == owner
                && (e.3 == LockMode::Exclusive || mode == LockMode::Exclusive)
        })
    }
}

/// Unlocks of this process still on their way to the server: an acquire of the same key
/// waits for them first, so that a dropped guard is a free lock on the next line.
mod releases {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    type Entry = (String, i64, u64, watch::Receiver<()>);
    static PENDING: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);

    /// Marks an unlock of `key` in flight until the returned value is dropped.
    pub(super) fn start(db: &str, key: i64) -> Done {
        let (tx, rx) = watch::channel(());
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|e| e.3.has_changed().is_ok());
        pending.push((db.to_owned(), key, id, rx));
        Done(tx, id)
    }

    /// Ends when every unlock of `key` in flight has ended (bounded), but `except` (the
    /// caller's own).
    pub(super) async fn settled(db: &str, key: i64, except: Option<u64>) {
        let waits: Vec<watch::Receiver<()>> = {
            let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
            pending.retain(|e| e.3.has_changed().is_ok());
            pending
                .iter()
                .filter(|e| e.0 == db && e.1 == key && Some(e.2) != except)
                .map(|e| e.3.clone())
                .collect()
        };
        for mut rx in waits {
            // `changed` fails once the sender (the unlock) is gone.
            let _ =
                tokio::time::timeout(RELEASE_WAIT, async { while rx.changed().await.is_ok() {} })
                    .await;
        }
    }

    /// Dropped when the unlock ends.
    pub(super) struct Done(#[allow(dead_code)] watch::Sender<()>, u64);

    impl Done {
        pub(super) fn id(&self) -> u64 {
            self.1
        }
    }
}

/// Runs `future` to its end from synchronous code: on the crate's private runtime, whose
/// one worker thread goes on driving the sessions the future opened.
fn block_on<T: Send + 'static>(
    path: &Path,
    future: impl Future<Output = T> + Send + 'static,
) -> Result<T, Error> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    let runtime = RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("tokio-filelock-pg")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::io(path, Op::Spawn, std::io::Error::other(e.clone())))?;
    let task = runtime.spawn(future);
    let joined = if tokio::runtime::Handle::try_current().is_ok() {
        // Inside a runtime `block_on` would panic: wait on a thread of our own.
        std::thread::scope(|s| {
            s.spawn(|| runtime.block_on(task))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    } else {
        runtime.block_on(task)
    };
    joined.map_err(|join| crate::driver::asynchronous::joined(path, join))
}

fn none_if_held(result: Result<LockGuard, Error>) -> Result<Option<LockGuard>, Error> {
    match result {
        Ok(guard) => Ok(Some(guard)),
        Err(Error::Timeout { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Debug for PgLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgLock")
            .field("lock", &self.path())
            .field("key", &self.inner.key)
            .field("timeout", &self.inner.timeout)
            .field("blocking", &self.inner.blocking)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Lock for PgLock {
    fn spec(&self) -> String {
        self.path().display().to_string()
    }
    async fn acquire(&self) -> Result<LockGuard, Error> {
        PgLock::acquire(self).await
    }
    async fn acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        PgLock::acquire_timeout(self, timeout).await
    }
    async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        PgLock::try_acquire(self).await
    }
    async fn acquire_shared(&self) -> Result<LockGuard, Error> {
        PgLock::acquire_shared(self).await
    }
    async fn acquire_shared_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        PgLock::acquire_shared_timeout(self, timeout).await
    }
    async fn try_acquire_shared(&self) -> Result<Option<LockGuard>, Error> {
        PgLock::try_acquire_shared(self).await
    }
    fn blocking_acquire(&self) -> Result<LockGuard, Error> {
        PgLock::blocking_acquire(self)
    }
    fn blocking_acquire_timeout(&self, timeout: Duration) -> Result<LockGuard, Error> {
        PgLock::blocking_acquire_timeout(self, timeout)
    }
    fn blocking_try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        PgLock::blocking_try_acquire(self)
    }
    async fn holder(&self) -> Result<Option<Holder>, Error> {
        PgLock::holder(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_the_name_and_the_rest() {
        let lock =
            PgLock::from_url("postgres://u:pw@h:5433/db?lock=a%2Fb&connect_timeout=3").unwrap();
        assert_eq!(lock.name(), "a/b");
        assert_eq!(lock.path(), Path::new("postgres://u@h:5433/db?lock=a/b"));
        assert!(matches!(
            PgLock::from_url("postgres://h/db"),
            Err(Error::InvalidSpec { .. })
        ));
        assert!(matches!(
            PgLock::from_url("postgres://h/db?lock="),
            Err(Error::InvalidSpec { .. })
        ));
    }

    #[test]
    fn the_key_is_stable() {
        // The first 8 bytes of SHA-256("tokio-filelock:nightly"), checked against the SQL
        // expression of the docs in tests/postgres.rs.
        assert_eq!(PgLock::key("nightly"), PgLock::key("nightly"));
        assert_ne!(PgLock::key("nightly"), PgLock::key("nightly2"));
    }
}
