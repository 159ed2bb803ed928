//! Test support: child processes made from the test binary itself, with bounded waits and
//! cleanup on every path (a `ChildProcess` is killed and reaped when dropped).
//!
//! A test binary that spawns children declares one entry test:
//!
//! ```ignore
//! #[test]
//! fn child_entry() { common::child_entry(run_role) }
//! fn run_role(role: &str, args: &[String]) { ... }
//! ```
//!
//! `common::spawn(role, args)` re-executes the current test binary filtered to that test,
//! with the role in the environment. The child talks on stdout with lines starting with
//! `@@` (anything else, such as libtest's own output, is ignored) and reads commands from
//! stdin; when its stdin closes (the parent died or dropped it) it exits.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod capture;
#[cfg(all(unix, feature = "postgres"))]
pub mod pg;
#[cfg(unix)]
pub mod tools;
#[cfg(unix)]
pub mod workload;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const ROLE_ENV: &str = "TOKIO_FILELOCK_TEST_ROLE";
const ARGS_ENV: &str = "TOKIO_FILELOCK_TEST_ARGS";
const ENTRY_TEST: &str = "child_entry";

/// How long any test waits for a child's message before failing.
pub const CHILD_WAIT: Duration = Duration::from_secs(30);

/// The body of the `child_entry` test: runs `role` when this process is a child, and does
/// nothing when it is the normal test run.
pub fn child_entry(run: impl FnOnce(&str, &[String])) {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let args: Vec<String> = std::env::var(ARGS_ENV)
        .unwrap_or_default()
        .split('\u{1f}')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    run(&role, &args);
    std::process::exit(0);
}

/// Reports that a test cannot check its claim on this platform (found out at run time,
/// e.g. under wine) and returns. Written to the process's stderr directly, which libtest
/// does not capture, so every skip shows in the log with its reason, as `SKIPPED: ...`.
pub fn skipped(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}

/// Sends a protocol line to the parent (from inside a child).
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@{}", line.as_ref()).unwrap();
    out.flush().unwrap();
}

/// Blocks until the parent sends a line (returns it) or closes stdin (returns `None`).
pub fn hear() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_owned()),
    }
}

/// A child process running a role; killed and reaped on drop.
pub struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

/// Starts a child running `role` with `args`.
pub fn spawn(role: &str, args: &[&str]) -> ChildProcess {
    spawn_with(role, args, |_| {}).unwrap()
}

/// Starts a child running `role` with `args`, after `configure` adjusted its command (for
/// example `CommandExt::uid` to run it as another user). Fails if it cannot be started.
pub fn spawn_with(
    role: &str,
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> std::io::Result<ChildProcess> {
    let exe = std::env::current_exe().unwrap();
    let mut command = Command::new(exe);
    configure(&mut command);
    command
        .args([
            ENTRY_TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE_ENV, role)
        .env(ARGS_ENV, args.join("\u{1f}"));
    try_spawn_command(command)
}

/// Starts another program (a Python script, `flock(1)`, ...) that speaks the same protocol:
/// `@@` lines on stdout, commands on stdin, exit when stdin closes. Panics, naming the
/// program, if it cannot be started.
pub fn spawn_command(command: Command) -> ChildProcess {
    let described = format!("{command:?}");
    try_spawn_command(command).unwrap_or_else(|e| panic!("cannot start {described}: {e}"))
}

/// [`spawn_command`], returning an error if the program cannot be started.
pub fn try_spawn_command(mut command: Command) -> std::io::Result<ChildProcess> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(msg) = line.strip_prefix("@@")
                && tx.send(msg.to_owned()).is_err()
            {
                break;
            }
        }
    });
    let stdin = child.stdin.take();
    Ok(ChildProcess {
        child,
        stdin,
        lines,
    })
}

impl ChildProcess {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next message, waiting at most [`CHILD_WAIT`].
    pub fn next_message(&mut self) -> String {
        self.must_say_within(CHILD_WAIT)
    }

    /// The next message within `wait`; panics saying whether the child ended or went quiet.
    fn must_say_within(&mut self, wait: Duration) -> String {
        match self.lines.recv_timeout(wait) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("child {} said nothing within {wait:?}", self.id())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                panic!("child {} ended ({status:?}) without saying more", self.id())
            }
        }
    }

    /// The next message, or `None` if none comes within `wait` (or the child ended).
    pub fn next_message_within(&mut self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    /// Waits (bounded) for a message equal to `expected`; panics on anything else.
    pub fn expect(&mut self, expected: &str) {
        let got = self.next_message();
        assert_eq!(got, expected, "child {} said something else", self.id());
    }

    /// Waits at most `wait` for a message equal to `expected`; panics on anything else.
    pub fn expect_within(&mut self, expected: &str, wait: Duration) {
        let got = self.must_say_within(wait);
        assert_eq!(got, expected, "child {} said something else", self.id());
    }

    /// Sends a line to the child's stdin.
    pub fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Closes the child's stdin (children exit when it closes).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Kills the child with SIGKILL (no cleanup in it) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the child to exit; returns whether it succeeded.
    pub fn wait_success(&mut self) -> bool {
        self.wait_status(CHILD_WAIT).success()
    }

    /// Closes stdin and waits at most `wait` for the child to exit; its exit status.
    pub fn wait_status(&mut self, wait: Duration) -> std::process::ExitStatus {
        self.close_stdin();
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "child {} did not exit",
                self.id()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The `i`th caller's flavor, alternating: `async` (acquires in Tokio tasks) or `sync`
/// (the `blocking_*` facade on threads).
pub fn flavor(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "async" } else { "sync" }
}

/// A Tokio runtime for a child role that runs async code: multi-threaded (two workers), so
/// tasks of the child run in parallel, with time enabled.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for the whole machine, so readings taken in
/// different processes compare (`std::time::Instant` values cannot cross a process).
#[cfg(unix)]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_MONOTONIC is supported on every Unix this crate targets.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime: {}", std::io::Error::last_os_error());
    u64::try_from(ts.tv_sec).unwrap() * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap()
}

/// Panics with `install` in the message unless `program args` runs and exits 0: tests that
/// need an outside tool fail clearly when it is missing, never pass silently.
pub fn require_tool(program: &str, args: &[&str], install: &str) {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!(
            "`{program} {}` failed ({s}): this test needs it; {install}",
            args.join(" ")
        ),
        Err(e) => panic!("`{program}` cannot run ({e}): this test needs it; {install}"),
    }
}

/// A role for [`child_entry`]: `hold` (exclusive) or `hold_shared` takes a `FileLock` on
/// `args[0]`, says `acquired`, and holds it until a line arrives or stdin closes.
pub fn hold_role(role: &str, args: &[String]) {
    let lock = tokio_filelock::FileLock::new(&args[0]);
    let guard = match role {
        "hold" => lock.blocking_acquire().unwrap(),
        "hold_shared" => lock.blocking_acquire_shared().unwrap(),
        // The second hold of a handle whose first release kept its lock file open
        // (Linux, local file system): released, it is unlocked and kept unless a waiter
        // marked the file.
        "hold_kept" => {
            drop(lock.blocking_acquire().unwrap());
            let path = std::path::Path::new(&args[0]);
            let open_on_path = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
                .filter(|target| target == path)
                .count();
            assert_eq!(open_on_path, 1, "the first release kept the lock file open");
            lock.blocking_acquire().unwrap()
        }
        other => panic!("unknown role {other}"),
    };
    say("acquired");
    let _ = hear();
    drop(guard);
    if role == "hold_kept" {
        // Alive, with the handle, until told again (or stdin closes): the exit would close
        // a kept descriptor, and a close is what this role's users must not rely on.
        let _ = hear();
        drop(lock);
    }
}

/// Child side of starting together: says `ready`, then waits for the parent's `go`.
pub fn ready_steady_go() {
    say("ready");
    assert_eq!(hear().as_deref(), Some("go"), "expected go");
}

/// Parent side of starting together: waits (bounded) until every child said `ready`
/// ([`ready_steady_go`]), then tells them all `go`, so that they contend from the start.
/// `child` picks the process out of each element.
pub fn start_together<T>(children: &mut [T], child: impl Fn(&mut T) -> &mut ChildProcess) {
    for element in children.iter_mut() {
        child(element).expect("ready");
    }
    for element in children.iter_mut() {
        child(element).tell("go");
    }
}

/// Whether some waiter of this crate holds a place in the line of the lock file `lock`
/// (a byte lock in `<lock>.queue`).
#[cfg(target_os = "linux")]
pub fn someone_in_line(lock: &std::path::Path) -> bool {
    use std::os::fd::AsRawFd;
    let mut queue = lock.as_os_str().to_owned();
    queue.push(".queue");
    let Ok(file) = std::fs::File::open(queue) else {
        return false;
    };
    // SAFETY (test): plain data, all zeroes is valid; `l_pid` must be 0 for OFD commands.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as libc::c_short;
    probe.l_whence = libc::SEEK_SET as libc::c_short;
    probe.l_start = 1;
    // SAFETY (test): `file` is open and `probe` a valid, writable `struct flock`.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut probe) };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    probe.l_type != libc::F_UNLCK as libc::c_short
}

/// The inodes of this process's inotify watches, one entry per watch (from
/// /proc/self/fdinfo; Linux).
#[allow(dead_code)]
pub fn inotify_watched_inodes() -> Vec<u64> {
    std::fs::read_dir("/proc/self/fdinfo")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .filter_map(|l| {
                    let ino = l.split_whitespace().find_map(|f| f.strip_prefix("ino:"))?;
                    u64::from_str_radix(ino, 16).ok()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
