//! Linux: every read of `/proc`, as plain data. Who holds an OS lock, from `/proc/locks`,
//! and a process's command line, from `/proc/<pid>/cmdline`, for the holder lookup to name;
//! the boot id, process start times, PID and time namespaces, for the soft protocol's
//! start token (`attempt::soft::identity` decides what they mean).
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

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;

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

/// The kernel's boot id.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Index of `starttime` (field 22 of `/proc/<pid>/stat`) among the fields after the
/// command's last `)`.
const STARTTIME_INDEX: usize = 19;

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// The boot id (`/proc/sys/kernel/random/boot_id`) as a 128-bit integer. `InvalidData` when
/// the file looks replaced (on another device than `/proc`, or a mount point of its own, as
/// a container may bind one) or does not parse.
pub(crate) fn boot_id() -> io::Result<u128> {
    if fs::metadata(BOOT_ID)?.dev() != fs::metadata("/proc")?.dev() {
        return Err(invalid("boot_id is not on procfs"));
    }
    let mounts = fs::read("/proc/self/mountinfo")?;
    let mounted = mounts
        .split(|&b| b == b'\n')
        .any(|line| line.split(|&b| b == b' ').nth(4) == Some(BOOT_ID.as_bytes()));
    if mounted {
        return Err(invalid("boot_id is a mount point"));
    }
    let text = fs::read_to_string(BOOT_ID)?;
    u128::from_str_radix(&text.trim().replace('-', ""), 16).map_err(|_| invalid("boot_id"))
}

/// The `starttime` field of `/proc/<pid>/stat`: clock ticks after boot.
pub(crate) fn start_time(pid: u32) -> io::Result<u64> {
    let stat = fs::read(format!("/proc/{pid}/stat"))?;
    let close = stat
        .iter()
        .rposition(|&b| b == b')')
        .ok_or_else(|| invalid("stat"))?;
    let field = stat[close + 1..]
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty())
        .nth(STARTTIME_INDEX)
        .ok_or_else(|| invalid("stat"))?;
    std::str::from_utf8(field)
        .ok()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| invalid("stat"))
}

/// A process whose `/proc` entries to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Process {
    /// `/proc/self`.
    Current,
    /// `/proc/<pid>`.
    Pid(u32),
}

/// The PID `/proc/self` links to: this process's PID as this procfs numbers it.
pub(crate) fn self_pid() -> io::Result<u32> {
    let link = fs::read_link("/proc/self")?;
    link.to_str()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| invalid("/proc/self"))
}

/// The `NSpid:` line of `/proc/<pid>/status`: the process's PID in each PID namespace it is
/// in, outermost first. `None` when the kernel writes no such line (before Linux 4.1).
pub(crate) fn ns_pids(process: Process) -> io::Result<Option<Vec<u32>>> {
    let status = match process {
        Process::Current => fs::read("/proc/self/status")?,
        Process::Pid(pid) => fs::read(format!("/proc/{pid}/status"))?,
    };
    let Some(line) = status
        .split(|&b| b == b'\n')
        .find(|line| line.starts_with(b"NSpid:"))
    else {
        return Ok(None);
    };
    line[b"NSpid:".len()..]
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
        .map(|w| {
            std::str::from_utf8(w)
                .ok()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| invalid("NSpid"))
        })
        .collect::<io::Result<Vec<u32>>>()
        .map(Some)
}

/// The PIDs listed in `/proc` (every process this PID namespace sees), lazily.
pub(crate) fn pids() -> io::Result<impl Iterator<Item = u32>> {
    Ok(fs::read_dir("/proc")?.flatten().filter_map(|entry| {
        entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
    }))
}

/// A namespace's identity: the device and inode of its `/proc/.../ns/` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Namespace {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

fn namespace(path: &str) -> io::Result<Namespace> {
    let meta = fs::metadata(path)?;
    Ok(Namespace {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// This process's PID namespace (`/proc/self/ns/pid`).
pub(crate) fn pid_namespace() -> io::Result<Namespace> {
    namespace("/proc/self/ns/pid")
}

/// This thread's time namespace (`/proc/thread-self/ns/time`; `NotFound` on kernels
/// without time namespaces), or the one its children get (`time_for_children`).
pub(crate) fn time_namespace(for_children: bool) -> io::Result<Namespace> {
    namespace(if for_children {
        "/proc/thread-self/ns/time_for_children"
    } else {
        "/proc/thread-self/ns/time"
    })
}

/// The boot-time offset of this thread's time namespace (`/proc/thread-self/timens_offsets`,
/// the `boottime` or `7` line) as seconds and nanoseconds; `None` when there is no such line.
pub(crate) fn boottime_offset() -> io::Result<Option<(i64, i64)>> {
    let offsets = fs::read_to_string("/proc/thread-self/timens_offsets")?;
    for line in offsets.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [clock, secs, nanos] = words[..]
            && (clock == "boottime" || clock == "7")
        {
            let secs = secs.parse().map_err(|_| invalid("timens_offsets"))?;
            let nanos = nanos.parse().map_err(|_| invalid("timens_offsets"))?;
            return Ok(Some((secs, nanos)));
        }
    }
    Ok(None)
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
