//! Linux: every read of `/proc`. Who holds an OS lock, from `/proc/locks`, and a process's
//! command line, from `/proc/<pid>/cmdline`: plain data, for the holder lookup to name.
//!
//! `/proc/locks` lists every lock on the system, one per line:
//!
//! ```text
//! 1: FLOCK  ADVISORY  WRITE 15695 fe:00:10010957 0 EOF
//! 1: -> FLOCK  ADVISORY  WRITE 15700 fe:00:10010957 0 EOF
//! ```
//!
//! (id, `->` for a process blocked waiting rather than holding, kind, advisory, mode, pid,
//! `MAJOR:MINOR:INODE` with the device numbers in hex as the kernel's `MAJOR(dev)` and
//! `MINOR(dev)`, range). The lock file is matched on its `st_dev` split with
//! `libc::major`/`libc::minor`, and its `st_ino`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use super::unix::FileId;
use crate::LockMode;

/// The most bytes read from `/proc/<pid>/cmdline` (a command line can be megabytes).
const MAX_CMDLINE_READ: u64 = 4096;

/// A held OS lock as the system lists it: who took it, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LockEntry {
    pub(crate) pid: u32,
    pub(crate) mode: LockMode,
}

/// One held (not awaited) `flock` lock from `/proc/locks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    mode: LockMode,
    pid: u32,
    major: u32,
    minor: u32,
    ino: u64,
}

/// The process holding the `flock` lock on the file `id` that conflicts with a request in
/// `wanted` mode.
///
/// The pid is the one that took the lock. An entry of this very process is a real holder
/// (another handle, thread or task of this process holds the lock: the failed attempt itself
/// holds nothing and never waits in the kernel), so it is reported, but only when no other
/// process holds a conflicting lock: another process is the likelier thing to wait for.
/// Entries that do not conflict with `wanted` (shared holders, when asking for shared) and
/// processes blocked waiting (`->`) are no holders; pids that this pid namespace cannot see
/// (shown as 0) or that name no process (`-1`) are skipped.
pub(crate) fn lock_holder(id: FileId, wanted: LockMode) -> Option<LockEntry> {
    let file = File::open("/proc/locks").ok()?;
    let entry = find(BufReader::new(file), id, wanted, std::process::id())?;
    Some(LockEntry {
        pid: entry.pid,
        mode: entry.mode,
    })
}

fn find(locks: impl BufRead, id: FileId, wanted: LockMode, own_pid: u32) -> Option<Entry> {
    let dev = id.dev as libc::dev_t;
    #[allow(clippy::unnecessary_cast)] // `c_uint` on Linux, `c_int` on Android
    let (major, minor) = (libc::major(dev) as u32, libc::minor(dev) as u32);
    let mut own = None;
    for line in locks.lines() {
        let Ok(line) = line else { break };
        let Some(entry) = parse(&line) else { continue };
        let same_file = (entry.major, entry.minor, entry.ino) == (major, minor, id.ino);
        let conflicts = wanted == LockMode::Exclusive || entry.mode == LockMode::Exclusive;
        if !same_file || !conflicts {
            continue;
        }
        if entry.pid != own_pid {
            return Some(entry);
        }
        own.get_or_insert(entry);
    }
    own
}

/// One line of `/proc/locks`, if it is a held `flock` lock with a visible pid.
fn parse(line: &str) -> Option<Entry> {
    let mut fields = line.split_ascii_whitespace();
    fields.next()?; // "1:"
    if fields.next()? != "FLOCK" {
        return None; // POSIX, OFDLCK, LEASE, or "->" (a waiter, not a holder)
    }
    fields.next()?; // ADVISORY
    let mode = match fields.next()? {
        "WRITE" => LockMode::Exclusive,
        "READ" => LockMode::Shared,
        _ => return None,
    };
    let pid: i64 = fields.next()?.parse().ok()?;
    let pid = u32::try_from(pid).ok().filter(|&p| p > 0)?;
    let mut device = fields.next()?.splitn(3, ':');
    let major = u32::from_str_radix(device.next()?, 16).ok()?;
    let minor = u32::from_str_radix(device.next()?, 16).ok()?;
    let ino = device.next()?.parse().ok()?;
    Some(Entry {
        mode,
        pid,
        major,
        minor,
        ino,
    })
}

/// The raw bytes of `/proc/<pid>/cmdline` (NUL-separated arguments), the first 4096.
pub(crate) fn cmdline(pid: u32) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    File::open(format!("/proc/{pid}/cmdline"))?
        .take(MAX_CMDLINE_READ)
        .read_to_end(&mut raw)?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(major: u32, minor: u32, ino: u64) -> FileId {
        FileId {
            dev: libc::makedev(major, minor) as u64,
            ino,
        }
    }

    const LOCKS: &str = "\
1: POSIX  ADVISORY  WRITE 5265 fe:00:77 0 0
2: FLOCK  ADVISORY  READ  300 fe:00:10010957 0 EOF
3: FLOCK  ADVISORY  READ  100 fe:00:10010957 0 EOF
3: -> FLOCK  ADVISORY  WRITE 400 fe:00:10010957 0 EOF
4: FLOCK  ADVISORY  WRITE 0 fe:00:555 0 EOF
5: FLOCK  ADVISORY  WRITE 200 103:05:555 0 EOF
6: OFDLCK ADVISORY  WRITE -1 fe:00:10010957 0 EOF
";

    fn holder_pid(id: FileId, wanted: LockMode, own: u32) -> Option<u32> {
        find(LOCKS.as_bytes(), id, wanted, own).map(|e| e.pid)
    }

    #[test]
    fn parses_held_flock_lines_only() {
        assert_eq!(
            parse("5: FLOCK  ADVISORY  WRITE 200 103:05:555 0 EOF"),
            Some(Entry {
                mode: LockMode::Exclusive,
                pid: 200,
                major: 0x103,
                minor: 5,
                ino: 555
            })
        );
        assert_eq!(
            parse("3: -> FLOCK  ADVISORY  WRITE 400 fe:00:1 0 EOF"),
            None
        );
        assert_eq!(parse("1: POSIX  ADVISORY  WRITE 5265 fe:00:77 0 0"), None);
        assert_eq!(parse("6: OFDLCK ADVISORY  WRITE -1 fe:00:1 0 EOF"), None);
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn matches_device_in_hex_and_inode() {
        // 0x103:5, a device whose numbers differ in hex and decimal.
        assert_eq!(
            holder_pid(id(0x103, 5, 555), LockMode::Exclusive, 1),
            Some(200)
        );
        assert_eq!(holder_pid(id(103, 5, 555), LockMode::Exclusive, 1), None);
        // Pid 0 (not visible in this pid namespace) is no holder.
        assert_eq!(holder_pid(id(0xfe, 0, 555), LockMode::Exclusive, 1), None);
    }

    #[test]
    fn shared_holders_do_not_block_a_shared_request() {
        assert_eq!(holder_pid(id(0xfe, 0, 10010957), LockMode::Shared, 1), None);
        assert_eq!(
            holder_pid(id(0xfe, 0, 10010957), LockMode::Exclusive, 1),
            Some(300)
        );
    }

    #[test]
    fn prefers_another_process_but_reports_this_one_alone() {
        assert_eq!(
            holder_pid(id(0xfe, 0, 10010957), LockMode::Exclusive, 300),
            Some(100)
        );
        let only_own = "1: FLOCK  ADVISORY  WRITE 42 fe:00:9 0 EOF\n";
        let found = find(only_own.as_bytes(), id(0xfe, 0, 9), LockMode::Shared, 42);
        assert_eq!(found.map(|e| e.pid), Some(42));
    }
}
