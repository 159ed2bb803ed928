//! The plumbing between the benchmark and its child processes (the same binary, started with
//! `child <role> ...`): one line per message on stdin and stdout, and a clock that every
//! process reads alike.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Nanoseconds of CLOCK_MONOTONIC: comparable between processes.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A child process of this binary, spoken to by lines. Killed and reaped when dropped.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    /// Starts `<this binary> child <args...>`.
    pub fn start(args: &[&str]) -> Proc {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .arg("child")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Proc {
            child,
            stdin,
            stdout,
        }
    }

    pub fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn hear(&mut self) -> String {
        let mut line = String::new();
        assert!(self.stdout.read_line(&mut line).unwrap() > 0, "child ended");
        line.trim_end().to_owned()
    }

    pub fn expect(&mut self, what: &str) {
        let got = self.hear();
        assert_eq!(got, what);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// In a child: one line to the parent.
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", line.as_ref()).unwrap();
    out.flush().unwrap();
}

/// In a child: the parent's next line, or `None` when it closed our stdin.
pub fn hear() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_owned()),
    }
}

/// Threads of this process blocked in the `flock` system call right now (from
/// `/proc/self/task/*/syscall`, whose first field is the number of the call a thread sleeps in).
pub fn threads_in_flock() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let flock = libc::SYS_flock.to_string();
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("syscall"))
                .is_ok_and(|text| text.split_whitespace().next() == Some(flock.as_str()))
        })
        .count()
}
