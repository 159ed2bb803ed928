//! Who this process is, as a marker records it (PID, host name, start token), and the start
//! token of another process, exactly as Python `filelock` 4.x computes them.
//!
//! Linux reads procfs (through `sys::procfs`), Windows asks for the process creation time,
//! macOS reads the start time of `sysctl(KERN_PROC_PID)`; other platforms have no
//! start token (two-line markers), which Python's readers accept: liveness is then judged
//! by the PID alone.

use std::sync::OnceLock;

use super::marker::{Holder, Token};
#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::sys::procfs;
use crate::sys::soft_calls as sys;

/// Marks a host name written from a PID namespace other than the initial one.
pub(crate) const NAMESPACE_MARK: &str = "?pidns-";

/// The longest host line Python writes before shortening it with a digest.
const HOST_NAME_LIMIT: usize = 253;

/// This process's record (computed once: PID, host and start time do not change).
pub(crate) fn ours() -> &'static Holder {
    static OURS: OnceLock<Holder> = OnceLock::new();
    OURS.get_or_init(|| {
        let pid = std::process::id();
        Holder {
            pid,
            host: host_name().to_owned(),
            token: start_token(pid),
        }
    })
}

/// The host line: `gethostname`, each byte outside `0x21..=0x7e` and each `?` written as
/// `?xx` (lower hex), then, on Linux outside the initial PID namespace,
/// `?pidns-<inode in hex>`. Empty becomes `?`.
pub(crate) fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut name = escape(&sys::hostname());
        if let Some(ns) = pid_namespace() {
            name.push_str(&format!("{NAMESPACE_MARK}{ns:x}"));
        }
        if name.len() > HOST_NAME_LIMIT {
            // Python shortens it to 244 bytes plus a SHA-256 digest; this crate does not
            // carry SHA-256. Unreachable on Linux (64-byte host names). Elsewhere the names
            // then differ, and each side sees the other's markers as foreign: never broken,
            // which is safe.
            tracing::debug!(target: "tokio_filelock", host = %name, "host name longer than 253 bytes");
        }
        if name.is_empty() { "?".to_owned() } else { name }
    })
}

fn escape(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    for &b in raw {
        if (0x21..=0x7e).contains(&b) && b != b'?' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("?{b:02x}"));
        }
    }
    out
}

/// The PID namespace's inode, unless it is the initial one (or unknown).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn pid_namespace() -> Option<u64> {
    const INITIAL: u64 = 0xEFFF_FFFC;
    let ino = procfs::pid_namespace().ok()?.ino;
    (ino != INITIAL).then_some(ino)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn pid_namespace() -> Option<u64> {
    None
}

/// The start token of process `pid`, or `None` when it cannot be known reliably here.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn start_token(pid: u32) -> Option<Token> {
    linux::start_token(pid)
}

/// Windows: the process creation time, as Python filelock records it.
#[cfg(windows)]
pub(crate) fn start_token(pid: u32) -> Option<Token> {
    sys::process_start(pid).map(|low| Token { high: 0, low })
}

/// macOS: the start time `kinfo_proc` records, as Python filelock computes it there.
#[cfg(target_os = "macos")]
pub(crate) fn start_token(pid: u32) -> Option<Token> {
    darwin_start_token(&sys::kinfo_proc(pid).ok()?)
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    windows
)))]
pub(crate) fn start_token(_pid: u32) -> Option<Token> {
    None
}

/// The start token Python filelock computes on macOS from a `kinfo_proc` (the `sysctl`
/// `KERN_PROC_PID` record): its first `timeval` (`p_starttime`) read as a little-endian
/// `i64` of seconds and an `i32` of microseconds (`struct` format `<qi`), as
/// `seconds * 1_000_000 + microseconds`. `None` when the record is shorter than those 12
/// bytes, or the value is negative (no writer records one).
#[cfg(any(test, target_os = "macos"))]
pub(crate) fn darwin_start_token(kinfo: &[u8]) -> Option<Token> {
    let seconds = i64::from_le_bytes(kinfo.get(..8)?.try_into().ok()?);
    let micros = i32::from_le_bytes(kinfo.get(8..12)?.try_into().ok()?);
    let value = i128::from(seconds) * 1_000_000 + i128::from(micros);
    let value = u128::try_from(value).ok()?;
    Some(Token {
        high: value >> 64,
        low: value as u64,
    })
}

/// Whether a process in another PID namespace runs with innermost PID `pid` and the
/// recorded start: then a marker without a namespace mark may be its, and is not broken.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn owner_runs_elsewhere(pid: u32, token: Option<Token>) -> bool {
    linux::owner_runs_elsewhere(pid, token)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn owner_runs_elsewhere(_pid: u32, _token: Option<Token>) -> bool {
    false
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux {
    use std::sync::OnceLock;

    use super::Token;
    use super::procfs::{self, Process};

    /// `TIME_NS_INIT_INO`: the initial time namespace.
    const INITIAL_TIME_NAMESPACE: u64 = 0xEFFF_FFFA;

    /// The boot id as a 128-bit integer, read once; 0 when unreadable or when the procfs
    /// file looks replaced (another device, or a mount point of its own).
    fn boot_id() -> u128 {
        static ID: OnceLock<u128> = OnceLock::new();
        *ID.get_or_init(|| procfs::boot_id().unwrap_or(0))
    }

    pub(super) fn start_token(pid: u32) -> Option<Token> {
        if !proc_numbers_tasks_as_here() || !starttime_unshifted() {
            return None;
        }
        read_start_token(pid)
    }

    fn read_start_token(pid: u32) -> Option<Token> {
        let low = procfs::start_time(pid).ok()?;
        Some(Token {
            high: boot_id(),
            low,
        })
    }

    /// This procfs numbers processes as this process sees them: `/proc/self` is our PID and
    /// no `NSpid` line shows an outer namespace.
    fn proc_numbers_tasks_as_here() -> bool {
        let own = std::process::id();
        if procfs::self_pid().ok() != Some(own) {
            return false;
        }
        match procfs::ns_pids(Process::Current) {
            Ok(None) => true,
            Ok(Some(pids)) => pids == [own],
            Err(_) => false,
        }
    }

    /// Start times are comparable: no time namespace, or one whose boot-time offset is 0.
    fn starttime_unshifted() -> bool {
        let ns = match procfs::time_namespace(false) {
            Ok(ns) => ns,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(_) => return false,
        };
        if ns.ino == INITIAL_TIME_NAMESPACE {
            return true;
        }
        let same_for_children = procfs::time_namespace(true).is_ok_and(|c| c == ns);
        same_for_children && matches!(procfs::boottime_offset(), Ok(Some((0, 0))))
    }

    pub(super) fn owner_runs_elsewhere(pid: u32, token: Option<Token>) -> bool {
        let Some(token) = token else {
            return false;
        };
        let boot = boot_id();
        if boot != 0 && token.high != 0 && token.high != boot {
            return false;
        }
        let unshifted = starttime_unshifted();
        let Ok(mut tasks) = procfs::pids() else {
            return false;
        };
        tasks.any(|task| {
            task != pid
                && (!unshifted || read_start_token(task).is_some_and(|t| t.same_start(&token)))
                && innermost_pid(task) == Some(pid)
        })
    }

    /// The PID of `task` in its innermost PID namespace.
    fn innermost_pid(task: u32) -> Option<u32> {
        procfs::ns_pids(Process::Pid(task)).ok()??.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn darwin_start_token_is_pythons_seconds_times_a_million_plus_micros() {
        // A kinfo_proc beginning with p_starttime = {tv_sec: 1_700_000_000, tv_usec:
        // 123_456} (then padding and the rest of the record). Python: struct.unpack_from(
        // "<qi", buf) -> 1700000000 * 1_000_000 + 123456.
        let mut kinfo = Vec::new();
        kinfo.extend_from_slice(&1_700_000_000i64.to_le_bytes());
        kinfo.extend_from_slice(&123_456i32.to_le_bytes());
        kinfo.extend_from_slice(&[0xAB; 4]);
        kinfo.extend_from_slice(&[0x11; 600]);
        let token = darwin_start_token(&kinfo).expect("a token");
        assert_eq!(token.to_string(), "1700000000123456");
        assert_eq!(
            token,
            Token {
                high: 0,
                low: 1_700_000_000_123_456
            }
        );
        // Only the first 12 bytes count.
        assert_eq!(darwin_start_token(&kinfo[..12]), Some(token));
        assert_eq!(darwin_start_token(&kinfo[..11]), None, "too short");
        assert_eq!(darwin_start_token(&[]), None);
        let mut negative = (-5i64).to_le_bytes().to_vec();
        negative.extend_from_slice(&0i32.to_le_bytes());
        assert_eq!(darwin_start_token(&negative), None);
    }

    #[test]
    fn escaping_follows_python() {
        assert_eq!(escape(b"vm"), "vm");
        assert_eq!(escape(b"a b?c\xc3\xa9"), "a?20b?3fc?c3?a9");
        assert_eq!(escape(b""), "");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn our_token_is_boot_id_and_starttime() {
        let ours = ours();
        assert_eq!(ours.pid, std::process::id());
        let token = ours
            .token
            .expect("a start token on Linux outside containers");
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_eq!(
            token.high,
            u128::from_str_radix(&boot.trim().replace('-', ""), 16).unwrap()
        );
        assert_eq!(start_token(ours.pid), Some(token));
        // A PID that does not exist has no token.
        assert_eq!(start_token(i32::MAX as u32), None);
    }
}
