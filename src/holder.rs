//! Who holds a lock: the typed answer ([`Holder`], and [`WaitEvent`] for the waiting hook), and
//! the one place that asks each protocol for it.
// Only Linux finds OS-lock holders: elsewhere only the soft lock uses some constructors.
#![cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]

use std::fmt;
use std::path::Path;

use crate::LockMode;
use crate::display_text::{MAX_COMMAND, MAX_HOST, Untrusted};

/// The process that holds a lock this acquire could not take, as far as it can be known.
///
/// Found on contention only: for the OS lock on Linux from `/proc/locks` (the process that
/// took the lock, its command line from `/proc/<pid>/cmdline` when readable); elsewhere the
/// OS lock's holder is not known and none is reported. It is a snapshot: the holder may have
/// gone by the time you read it.
///
/// Displays as `pid 4242 (cargo build)`, with `on <host>` after the pid when the host is
/// known and without the parentheses when the command is not; a holder that is this very
/// process (another handle, thread or task of it) displays as `pid 4242, this process`.
///
/// # Untrusted text
///
/// [`host`](Self::host) and [`command`](Self::command) are what another process wrote (its
/// soft-lock marker, its command line): anyone who can write the marker or start a process
/// chooses them, control characters and invalid UTF-8 included. The fields keep them raw
/// for programs that need the exact value; print them only through `Holder`'s `Display`
/// (used by [`Error`](crate::Error)'s `Display` too), which writes control characters,
/// bidirectional-formatting characters and invalid UTF-8 visibly escaped (`\x1b`,
/// `\u{202e}`, `\xff`) and bounds their length, so that they cannot rewrite a terminal or
/// forge a log line.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let lock = tokio_filelock::FileLock::new("cache.lock");
/// match lock.acquire_timeout(std::time::Duration::from_secs(1)).await {
///     Err(tokio_filelock::Error::Timeout { holder: Some(holder), .. }) => {
///         eprintln!("held by {holder}"); // held by pid 4242 (cargo build)
///     }
///     other => drop(other),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The holder's process id (for an OS lock: the process that took it; a lock inherited
    /// across `fork` may be held by a child of this process too).
    pub pid: u32,
    /// The holder's host name as its soft-lock marker records it, when the protocol records
    /// one. Raw and untrusted (see [Untrusted text](#untrusted-text)).
    pub host: Option<String>,
    /// The holder's command line, when readable: its arguments joined by single spaces, the
    /// bytes as the operating system gave them (the first 4096 read). Raw and untrusted:
    /// it may hold control characters and invalid UTF-8 (see
    /// [Untrusted text](#untrusted-text)).
    pub command: Option<std::ffi::OsString>,
    /// How the holder holds it.
    pub mode: LockMode,
    /// The holder's server session, for a lock kept by a server
    /// ([`PgLock`](crate::postgres::PgLock)); `None` for file locks.
    pub session: Option<Box<HolderSession>>,
    /// The holder is this process.
    this_process: bool,
}

/// What a lock server knows of the session that holds a lock, in [`Holder::session`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HolderSession {
    /// The server's process id of the session (PostgreSQL backend pid).
    pub backend_pid: u32,
    /// The client's address and port, where the role may see them.
    pub address: Option<String>,
    /// Since when it holds the lock: when the session last changed state, which for a
    /// lock session of this crate is when it took the lock.
    pub since: Option<std::time::SystemTime>,
}

impl Holder {
    /// A holder known by its pid only. Protocols add what else they know.
    pub(crate) fn new(pid: u32, mode: LockMode) -> Self {
        Holder {
            pid,
            host: None,
            command: None,
            mode,
            session: None,
            this_process: pid == std::process::id(),
        }
    }

    /// The holder with its host name (for protocols that record one): this process only if
    /// the host is this one's too.
    pub(crate) fn with_host(mut self, host: Option<String>) -> Self {
        self.host = host.filter(|h| !h.is_empty());
        #[cfg(any(unix, windows))]
        {
            self.this_process &= self.host.as_deref() == Some(crate::attempt::soft::host_name());
        }
        self
    }

    /// The holder with its command line, from the raw bytes of a NUL-separated argument
    /// list (`/proc/<pid>/cmdline`): arguments joined by spaces. An empty list (a kernel
    /// thread, a zombie) is no command.
    #[cfg(unix)]
    pub(crate) fn with_cmdline(mut self, raw: &[u8]) -> Self {
        self.command = command_line(raw);
        self
    }

    /// `true` when the holder is this very process: another handle, thread or task of it
    /// holds the lock.
    #[must_use]
    pub fn is_this_process(&self) -> bool {
        self.this_process
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(host) = &self.host {
            write!(f, " on {}", Untrusted::new(host.as_bytes(), MAX_HOST))?;
        }
        if self.this_process {
            return f.write_str(", this process");
        }
        if let Some(command) = &self.command {
            let command = Untrusted::new(command.as_encoded_bytes(), MAX_COMMAND);
            write!(f, " ({command})")?;
        }
        if let Some(address) = self.session.as_ref().and_then(|s| s.address.as_ref()) {
            write!(f, " from {address}")?;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn command_line(raw: &[u8]) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    let args: Vec<&[u8]> = raw
        .split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .collect();
    let line = args.join(&b' ');
    (!line.is_empty()).then(|| std::ffi::OsString::from_vec(line))
}

/// What an acquire tells the [waiting hook](crate::FileLockBuilder::on_wait) when it starts
/// to wait (its first attempt found the lock held, or it lined up behind other waiters of
/// this process).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let lock = tokio_filelock::FileLock::builder(dir.path().join("cache.lock"))
///     .on_wait(|event| match event.holder() {
///         Some(holder) => eprintln!(
///             "Blocking: waiting for file lock on {} (held by {holder})",
///             event.path().display()
///         ),
///         None => eprintln!("Blocking: waiting for file lock on {}", event.path().display()),
///     })
///     .build();
/// # drop(lock);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct WaitEvent<'a> {
    path: &'a Path,
    mode: LockMode,
    holder: Option<&'a Holder>,
}

impl<'a> WaitEvent<'a> {
    pub(crate) fn new(path: &'a Path, mode: LockMode, holder: Option<&'a Holder>) -> Self {
        WaitEvent { path, mode, holder }
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The mode this acquire asks for.
    #[must_use]
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Who holds the lock, when that can be found (see [`Holder`]).
    #[must_use]
    pub fn holder(&self) -> Option<&'a Holder> {
        self.holder
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn displays_pid_host_and_command() {
        let holder = Holder::new(4242, LockMode::Exclusive).with_cmdline(b"cargo\0build\0");
        assert_eq!(holder.to_string(), "pid 4242 (cargo build)");
        let holder = holder.with_host(Some("box".into()));
        assert_eq!(holder.to_string(), "pid 4242 on box (cargo build)");
        assert_eq!(Holder::new(7, LockMode::Shared).to_string(), "pid 7");
    }

    #[test]
    fn this_process_says_so() {
        let me = std::process::id();
        let holder = Holder::new(me, LockMode::Exclusive).with_cmdline(b"me\0");
        assert!(holder.is_this_process());
        assert_eq!(holder.to_string(), format!("pid {me}, this process"));
        // The same pid on another host is someone else.
        let other = Holder::new(me, LockMode::Exclusive).with_host(Some("elsewhere".into()));
        assert!(!other.is_this_process());
        assert_eq!(other.to_string(), format!("pid {me} on elsewhere"));
    }

    #[test]
    fn command_lines_are_kept_raw_and_shown_escaped_and_bounded() {
        assert_eq!(command_line(b""), None);
        assert_eq!(command_line(b"\0\0"), None);
        let holder = Holder::new(1, LockMode::Exclusive).with_cmdline(b"a\nb\xff\0c\x1b\0");
        assert_eq!(
            holder.command.as_deref(),
            Some(std::ffi::OsStr::from_bytes(b"a\nb\xff c\x1b"))
        );
        assert_eq!(holder.to_string(), "pid 1 (a\\x0ab\\xff c\\x1b)");
        let long = "é".repeat(MAX_COMMAND);
        let shown = Holder::new(1, LockMode::Exclusive)
            .with_cmdline(long.as_bytes())
            .to_string();
        assert!(shown.ends_with("...)") && shown.len() <= "pid 1 ()".len() + MAX_COMMAND + 3);
        assert!(shown.starts_with("pid 1 (éé"));
    }
}
