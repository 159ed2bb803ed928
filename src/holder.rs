//! Who holds a lock: the typed answer, and the one place that asks each protocol for it.
// Only Linux finds OS-lock holders: elsewhere only the soft lock uses some constructors.
#![cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]

use std::fmt;

use crate::LockMode;

/// The process that holds a lock this acquire could not take, as far as it can be known.
///
/// Found on contention only: for the OS lock on Linux from `/proc/locks` (the process that
/// took the lock, its command line from `/proc/<pid>/cmdline` when readable); elsewhere the
/// OS lock's holder is not known and none is reported. It is a snapshot: the holder may have
/// gone by the time you read it.
///
/// Displays as `pid 4242 (cargo build)`, with `on <host>` after the pid when the host is
/// known and without the parentheses when the command is not.
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
    /// The holder's host name, when the protocol records it (the soft lock's marker).
    pub host: Option<String>,
    /// The holder's command line (arguments joined by spaces, shortened), when readable.
    pub command: Option<String>,
    /// How the holder holds it.
    pub mode: LockMode,
    /// The holder's server session, for a lock kept by a server
    /// ([`PgLock`](crate::postgres::PgLock)); `None` for file locks.
    pub session: Option<Box<HolderSession>>,
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

/// The longest command line kept in a [`Holder`], in bytes (then cut at a character
/// boundary and marked with `...`).
pub(crate) const MAX_COMMAND_LEN: usize = 200;

impl Holder {
    /// A holder known by its pid only. Protocols add what else they know.
    pub(crate) fn new(pid: u32, mode: LockMode) -> Self {
        Holder {
            pid,
            host: None,
            command: None,
            mode,
            session: None,
        }
    }

    /// The holder with its host name (for protocols that record one).
    pub(crate) fn with_host(mut self, host: Option<String>) -> Self {
        self.host = host.filter(|h| !h.is_empty());
        self
    }

    /// The holder with its command line, from the raw bytes of a NUL-separated argument
    /// list (`/proc/<pid>/cmdline`): arguments joined by spaces, lossily decoded, cut to
    /// [`MAX_COMMAND_LEN`]. An empty list (a kernel thread, a zombie) is no command.
    pub(crate) fn with_cmdline(mut self, raw: &[u8]) -> Self {
        self.command = command_line(raw);
        self
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(host) = &self.host {
            write!(f, " on {host}")?;
        }
        if let Some(command) = &self.command {
            write!(f, " ({command})")?;
        }
        if let Some(address) = self.session.as_ref().and_then(|s| s.address.as_ref()) {
            write!(f, " from {address}")?;
        }
        Ok(())
    }
}

fn command_line(raw: &[u8]) -> Option<String> {
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let mut line = args.join(" ");
    // Control characters (a newline in an argument) would break the one-line messages.
    line.retain(|c| !c.is_control());
    if line.is_empty() {
        return None;
    }
    if line.len() > MAX_COMMAND_LEN {
        let mut end = MAX_COMMAND_LEN;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    Some(line)
}

/// What a contended attempt leaves for finding its holder: one variant per protocol. The
/// lookup reads files, so it runs where attempts run (the blocking pool, or the calling
/// thread of the sync facade), never on a runtime worker.
///
/// A protocol plugs in with a variant here and a blocking function that answers it.
#[derive(Debug, Clone)]
pub(crate) enum Probe {
    /// The OS lock on the file with this identity, which an attempt in `wanted` mode found
    /// held.
    Os {
        id: crate::sys::FileId,
        wanted: LockMode,
    },
    /// The soft lock's marker at this path.
    Soft {
        marker: std::sync::Arc<std::path::Path>,
    },
}

/// What a holder lookup found: the holder, if it can be named, and what else a timeout
/// should say.
#[derive(Debug, Clone, Default)]
pub(crate) struct Found {
    pub(crate) holder: Option<Holder>,
    /// The soft lock's marker was empty (never broken; see `Error::Timeout`).
    pub(crate) empty_marker: bool,
}

impl Probe {
    /// Who holds it, if that can be found. Blocking: reads files.
    pub(crate) fn find(&self) -> Found {
        match self {
            Probe::Os { id, wanted } => Found {
                holder: crate::sys::os_lock_holder(*id, *wanted),
                empty_marker: false,
            },
            Probe::Soft { marker } => crate::soft::found(marker),
        }
    }
}

#[cfg(test)]
mod tests {
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
    fn command_lines_are_cleaned_and_bounded() {
        assert_eq!(command_line(b""), None);
        assert_eq!(command_line(b"\0\0"), None);
        assert_eq!(command_line(b"a\nb\0c\0").as_deref(), Some("ab c"));
        let long = "é".repeat(MAX_COMMAND_LEN);
        let cut = command_line(long.as_bytes()).unwrap();
        assert!(cut.ends_with("...") && cut.len() <= MAX_COMMAND_LEN + 3);
        assert!(cut.starts_with("éé"));
    }
}
