//! The `filelock` command-line tool against real processes and util-linux `flock(1)`.
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const FILELOCK: &str = env!("CARGO_BIN_EXE_filelock");

#[test]
fn child_entry() {
    common::child_entry(common::hold_role);
}

fn lock_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cli.lock");
    (dir, path)
}

/// Runs a program to completion; its stdin is closed. Bounded by the lock waits it is given.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn holding(role: &str, path: &Path) -> common::ChildProcess {
    let mut child = common::spawn(role, &[path.to_str().unwrap()]);
    child.expect("acquired");
    child
}

/// A shell holding the lock through `program` (`filelock` or `flock`) until its stdin
/// closes.
fn shell_holding(program: &str, mode: &str, path: &Path) -> common::ChildProcess {
    let mut command = Command::new(program);
    command.args([
        mode,
        path.to_str().unwrap(),
        "sh",
        "-c",
        "echo @@acquired; cat >/dev/null",
    ]);
    let mut child = common::spawn_command(command);
    child.expect("acquired");
    child
}

#[test]
fn who_prints_the_holders_pid_and_command() {
    let (_dir, path) = lock_path();
    let out = run(FILELOCK, &["--who", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "not locked");
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("not locked\n"));

    let child = holding("hold", &path);
    let out = run(FILELOCK, &["--who", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let expected = format!(
        "{}: exclusive lock held by pid {} (",
        path.display(),
        child.id()
    );
    assert!(stdout.starts_with(&expected), "{stdout}");
    assert!(stdout.contains("child_entry --exact"), "{stdout}");
}

#[test]
fn nonblock_returns_the_conflict_exit_code() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    let _child = holding("hold", &path);
    let out = run(FILELOCK, &["-n", p, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.is_empty(), "-n fails silently, as flock(1)");
    assert_eq!(
        run(FILELOCK, &["-n", "-E", "42", p, "true"]).status.code(),
        Some(42)
    );
    assert_eq!(run(FILELOCK, &["-nE42", p, "true"]).status.code(), Some(42));
}

#[test]
fn timeout_waits_at_least_its_time_and_names_the_holder() {
    let (_dir, path) = lock_path();
    let child = holding("hold", &path);
    let start = Instant::now();
    let out = run(FILELOCK, &["-w", "0.2", path.to_str().unwrap(), "true"]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1));
    // 0.2 s plus one attempt, plus starting a process: generous but bounded.
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Quiet by default, as flock(1).
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(
        FILELOCK,
        &["--verbose", "-w", "0.05", path.to_str().unwrap(), "true"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let waiting = format!(
        "Blocking: waiting for file lock on {} (held by pid {} (",
        path.display(),
        child.id()
    );
    assert!(stderr.starts_with(&waiting), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "could not be acquired: held by pid {} (",
            child.id()
        )),
        "{stderr}"
    );

    let quiet = run(
        FILELOCK,
        &[
            "-q",
            "--verbose",
            "-w",
            "0.05",
            path.to_str().unwrap(),
            "true",
        ],
    );
    assert_eq!(quiet.status.code(), Some(1));
    assert!(quiet.stderr.is_empty(), "-q prints nothing");
}

#[test]
fn runs_the_command_and_passes_its_exit_code_through() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    assert_eq!(
        run(FILELOCK, &[p, "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    assert_eq!(run(FILELOCK, &[p, "-c", "exit 9"]).status.code(), Some(9));
    assert_eq!(
        run(FILELOCK, &[p, "-c", "kill -TERM $$"]).status.code(),
        Some(128 + 15)
    );
    // The command runs while the lock is held.
    let out = run(FILELOCK, &[p, FILELOCK, "--who", p]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("exclusive lock held by pid"), "{stdout}");
    assert_eq!(
        run(FILELOCK, &[p, "/nonexistent/program"]).status.code(),
        Some(69)
    );
    assert_eq!(run(FILELOCK, &[]).status.code(), Some(64));
    assert_eq!(
        run(FILELOCK, &["-w", "soon", p, "true"]).status.code(),
        Some(64)
    );
    assert_eq!(
        run(FILELOCK, &["-E", "256", p, "true"]).status.code(),
        Some(64)
    );
}

#[test]
fn shared_and_exclusive_behave_as_flock() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    // (held by the child, asked for) -> exit code; checked against flock(1) itself.
    for (role, asked, expected) in [
        ("hold_shared", "-s", 0),
        ("hold_shared", "-x", 1),
        ("hold", "-s", 1),
        ("hold", "-x", 1),
    ] {
        let child = holding(role, &path);
        for program in [FILELOCK, common::tools::flock()] {
            let code = run(program, &["-n", asked, p, "true"]).status.code();
            assert_eq!(code, Some(expected), "{program} {asked} while {role}");
        }
        drop(child);
    }
}

#[test]
fn filelock_and_util_linux_flock_exclude_each_other() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    let flock = common::tools::flock();
    for (holder, other) in [(FILELOCK, flock), (flock, FILELOCK)] {
        let mut held = shell_holding(holder, "-x", &path);
        assert_eq!(
            run(other, &["-n", p, "true"]).status.code(),
            Some(1),
            "{other} while {holder} holds"
        );
        assert_eq!(run(other, &["-n", "-s", p, "true"]).status.code(), Some(1));
        assert!(held.wait_success());
        assert_eq!(
            run(other, &["-n", p, "true"]).status.code(),
            Some(0),
            "{other} after {holder}"
        );
    }
    // flock(1) takes the lock itself and runs the command in a child: the holder named is
    // flock's own process.
    let held = shell_holding(flock, "-s", &path);
    let out = run(FILELOCK, &["--who", p]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = format!("shared lock held by pid {} (flock -s {p} sh -c", held.id());
    assert!(stdout.contains(&expected), "{stdout}");
}

#[test]
fn soft_uses_the_marker_file_lock() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    let mut holder = shell_holding(FILELOCK, "--soft", &path);
    // The marker names the CLI process (the shell is its child).
    let record = std::fs::read_to_string(&path).unwrap();
    let marker_pid: u32 = record.lines().next().unwrap().parse().unwrap();
    assert_eq!(marker_pid, holder.id(), "{record:?}");

    // A soft lock in this process is excluded, and so is another `--soft` run.
    let soft = tokio_filelock::SoftFileLock::new(&path);
    assert!(soft.blocking_try_acquire().unwrap().is_none());
    assert_eq!(
        run(FILELOCK, &["--soft", "-n", p, "true"]).status.code(),
        Some(1)
    );
    // `--who --soft` reads the holder from the marker.
    let out = run(FILELOCK, &["--soft", "--who", p]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("held by pid {}", holder.id())),
        "{stdout}"
    );

    assert!(holder.wait_success());
    assert!(!path.exists(), "the marker is removed on release");
    assert_eq!(
        run(FILELOCK, &["--soft", "-n", p, "true"]).status.code(),
        Some(0)
    );
}

#[test]
fn a_strict_spec_uses_the_claim_lock() {
    let (_dir, path) = lock_path();
    let spec = format!("strict:{}", path.display());
    let mut holder = shell_holding(FILELOCK, "-x", Path::new(&spec));
    // The claims name the CLI process (the shell is its child).
    let lock = tokio_filelock::StrictSoftFileLock::new(&path);
    let claims = lock.blocking_claims().unwrap();
    assert_eq!(claims.len(), 2, "{claims:?}");
    assert!(claims.iter().all(|c| c.pid() == holder.id()), "{claims:?}");
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    assert_eq!(run(FILELOCK, &["-n", &spec, "true"]).status.code(), Some(1));
    let out = run(FILELOCK, &["--who", &spec]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("held by pid {}", holder.id())),
        "{stdout}"
    );
    assert!(holder.wait_success());
    assert!(lock.blocking_claims().unwrap().is_empty(), "released");
    assert_eq!(run(FILELOCK, &["-n", &spec, "true"]).status.code(), Some(0));
}

#[test]
fn a_lease_spec_holds_a_python_compatible_lease() {
    let (_dir, path) = lock_path();
    let spec = format!("lease:{}?duration=30", path.to_str().unwrap());
    let mut command = Command::new(FILELOCK);
    command.args([&spec, "sh", "-c", "echo @@acquired; cat >/dev/null"]);
    let mut holder = common::spawn_command(command);
    holder.expect("acquired");
    // The marker is a protocol 2 lease record naming the CLI process.
    let record = std::fs::read_to_string(&path).unwrap();
    assert!(record.starts_with("filelock/2\n"), "{record:?}");
    for line in [
        format!("pid={}", holder.id()),
        "mode=lease".to_owned(),
        "duration=30.0".to_owned(),
    ] {
        assert!(record.lines().any(|l| l == line), "{line} in {record:?}");
    }

    // A lease of the same duration is excluded; one of another is refused at once.
    let same = tokio_filelock::SoftFileLease::builder(&path)
        .lease_duration(Duration::from_secs(30))
        .build();
    assert!(same.blocking_try_acquire().unwrap().is_none());
    let short = tokio_filelock::SoftFileLease::builder(&path)
        .lease_duration(Duration::from_secs(5))
        .build();
    assert!(matches!(
        short.blocking_try_acquire(),
        Err(tokio_filelock::Error::LeaseMismatch { .. })
    ));
    assert_eq!(run(FILELOCK, &["-n", &spec, "true"]).status.code(), Some(1));
    let out = run(FILELOCK, &["--who", &spec]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!("held by pid {}", holder.id())),
        "{stdout}"
    );

    assert!(holder.wait_success());
    assert!(!path.exists(), "the marker is removed on release");
    assert_eq!(run(FILELOCK, &["-n", &spec, "true"]).status.code(), Some(0));
    // A spec that can never work is refused before anything runs.
    let bad = format!("lease:{}?duration=0", path.to_str().unwrap());
    let out = run(FILELOCK, &[&bad, "sh", "-c", "echo ran"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ran"));
    assert!(!path.exists());
}

// ---- side by side with util-linux flock(1) ---------------------------------------------
//
// Each check below runs the same command line through `filelock` and through flock(1) on
// this machine, and asserts the same observable result (exit code, whether the lock is
// held, by whom, what is printed), or, where `filelock` deliberately differs (README,
// "Differences from flock(1)"), asserts each side's behaviour.

/// Both programs, `filelock` first.
const BOTH: [&str; 2] = [FILELOCK, "flock"];

/// How long a wrapper or command is given to say something or to end.
const BOUND: Duration = Duration::from_secs(20);

/// Whether some process holds a lock on `path` that excludes an exclusive one, as the
/// neutral observer flock(1) sees it: `flock -n` exits 1 when held, 0 when not.
fn is_locked(path: &Path) -> bool {
    let out = run("flock", &["-n", path.to_str().unwrap(), "true"]);
    match out.status.code() {
        Some(1) => true,
        Some(0) => false,
        other => panic!("flock -n {}: {other:?} {:?}", path.display(), out),
    }
}

/// The pids that `/proc/locks` shows holding (not awaiting) an `flock` lock on `path`.
fn lock_pids(path: &Path) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).unwrap();
    let (major, minor) = (libc::major(meta.dev()), libc::minor(meta.dev()));
    let file = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let mut pids: Vec<u32> = std::fs::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(1) == Some(&"FLOCK") && fields.get(5) == Some(&file.as_str()))
                .then(|| fields[4].parse().unwrap())
        })
        .collect();
    // /proc/locks is read in pages, not atomically: when other locks come and go between
    // two reads, an entry can be printed twice. One process holds one flock per file.
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// A wrapper (`filelock` or flock(1)) running a command, watched without closing its stdin
/// (the command's stdin too: the commands here end when it closes). Killed, with its
/// process group when it has one, and reaped on drop.
struct Wrapper {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
    own_group: bool,
}

impl Wrapper {
    fn start(program: &str, args: &[&str], own_group: bool) -> Wrapper {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        use std::process::Stdio;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if own_group {
            command.process_group(0);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Wrapper {
            child,
            stdin,
            lines,
            own_group,
        }
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line of output (the command's or the wrapper's), within [`BOUND`].
    fn line(&mut self) -> String {
        self.lines
            .recv_timeout(BOUND)
            .unwrap_or_else(|e| panic!("{} said nothing: {e:?}", self.id()))
    }

    /// Sends `signal` (`-TERM`, ...) to the wrapper, or with `group` to its process group.
    fn signal(&self, signal: &str, group: bool) {
        let target = if group {
            format!("-{}", self.id())
        } else {
            self.id().to_string()
        };
        let status = Command::new("kill")
            .args([signal, "--", &target])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {target}");
    }

    /// The wrapper's exit status if it ends within `wait`, its stdin left open.
    fn ended_within(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Closes stdin (the command ends) and waits, bounded, for the wrapper.
    fn finish(&mut self) -> std::process::ExitStatus {
        self.stdin = None;
        self.ended_within(BOUND)
            .unwrap_or_else(|| panic!("wrapper {} did not end", self.id()))
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        self.stdin = None;
        if self.own_group {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.id())])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits, bounded, until `path` is no longer locked (a command that just ended).
fn until_unlocked(path: &Path) {
    let deadline = Instant::now() + BOUND;
    while is_locked(path) {
        assert!(
            Instant::now() < deadline,
            "{} stayed locked",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A command that ignores SIGINT (as the issue's case: Ctrl-C to a group whose command
/// ignores it), says its pid, and runs until its stdin closes.
const STUBBORN: &str = r#"trap "" INT; echo "pid $$"; read line; echo done"#;

/// Item 1: a signal to the wrapper alone (SIGTERM, and SIGKILL which nothing can catch)
/// while the command runs. Without -o the command inherited the lock: it stays held until
/// the command ends, under both. With -o, flock(1) dies and the lock goes while the command
/// runs; `filelock` survives SIGTERM and keeps the lock until the command ends, then exits
/// with the command's code.
#[test]
fn a_signal_to_the_wrapper_leaves_the_lock_with_the_command() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    for program in BOTH {
        for signal in ["-TERM", "-KILL"] {
            let mut wrapper = Wrapper::start(program, &[p, "sh", "-c", STUBBORN], false);
            assert!(wrapper.line().starts_with("pid "));
            wrapper.signal(signal, false);
            let status = wrapper.ended_within(BOUND).expect("the wrapper dies");
            assert!(
                status.code().is_none(),
                "{program} {signal}: killed, {status:?}"
            );
            assert!(
                is_locked(&path),
                "{program} {signal}: the command keeps the lock"
            );
            drop(wrapper.stdin.take()); // the command ends
            until_unlocked(&path);
        }
    }
    for program in BOTH {
        let mut wrapper = Wrapper::start(program, &["-o", p, "sh", "-c", STUBBORN], false);
        assert!(wrapper.line().starts_with("pid "));
        wrapper.signal("-TERM", false);
        if program == FILELOCK {
            assert_eq!(wrapper.ended_within(Duration::from_millis(200)), None);
            assert!(is_locked(&path), "filelock -o outlives its command");
            drop(wrapper.stdin.take());
            assert_eq!(wrapper.line(), "done", "the command was not signalled");
            assert_eq!(wrapper.finish().code(), Some(0));
        } else {
            assert!(wrapper.ended_within(BOUND).unwrap().code().is_none());
            assert!(!is_locked(&path), "flock(1) -o: the lock went with flock");
        }
        drop(wrapper);
        until_unlocked(&path);
    }
}

/// Item 1: SIGINT to the whole process group (Ctrl-C) while a command that ignores it
/// runs. Without -o both wrappers die and the command keeps the lock; with -o flock(1)
/// dies and the lock goes, `filelock` stays and keeps it until the command ends.
#[test]
fn a_signal_to_the_process_group_leaves_the_lock_with_the_command() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    for program in BOTH {
        for close in [false, true] {
            let mut args = vec![p, "sh", "-c", STUBBORN];
            if close {
                args.insert(0, "-o");
            }
            let mut wrapper = Wrapper::start(program, &args, true);
            assert!(wrapper.line().starts_with("pid "));
            wrapper.signal("-INT", true);
            let stays = close && program == FILELOCK;
            if stays {
                assert_eq!(wrapper.ended_within(Duration::from_millis(200)), None);
            } else {
                let status = wrapper.ended_within(BOUND).expect("the wrapper dies");
                assert!(status.code().is_none(), "{program} -o={close}: {status:?}");
            }
            let held = is_locked(&path);
            assert_eq!(held, !close || stays, "{program} -o={close}: held");
            drop(wrapper.stdin.take());
            if stays {
                assert_eq!(wrapper.line(), "done");
                assert_eq!(wrapper.finish().code(), Some(0));
            }
            drop(wrapper);
            until_unlocked(&path);
        }
    }
}

/// Item 1: the command starts with the signal dispositions the wrapper was given, also
/// with -o (where `filelock` itself survives SIGINT, SIGTERM and SIGHUP): same masks of
/// ignored and caught signals as under flock(1).
#[test]
fn the_command_gets_the_callers_signal_dispositions() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    for flag in ["-x", "-o"] {
        let [ours, theirs] = BOTH.map(|program| {
            let out = run(program, &[flag, p, "grep", "^Sig[IC]", "/proc/self/status"]);
            assert_eq!(out.status.code(), Some(0), "{program} {flag}");
            String::from_utf8(out.stdout).unwrap()
        });
        assert_eq!(ours, theirs, "{flag}");
    }
}

/// Item 1: a background job left by the command keeps the lock (it inherited the
/// descriptor), and with -o it does not, under both.
#[test]
fn a_background_job_keeps_the_lock_unless_close() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    // The job's pid on stdout; the job itself writes nowhere, so the wrapper ends at once.
    let script = "sleep 60 </dev/null >/dev/null 2>&1 & echo $!";
    for program in BOTH {
        for close in [false, true] {
            let mut args = vec![p, "sh", "-c", script];
            if close {
                args.insert(0, "-o");
            }
            let out = run(program, &args);
            assert_eq!(out.status.code(), Some(0), "{program} -o={close}");
            let job = String::from_utf8(out.stdout).unwrap().trim().to_owned();
            let held = is_locked(&path);
            let _ = Command::new("kill").arg(&job).status(); // clean up the job
            assert_eq!(held, !close, "{program} -o={close}: held by the job");
            until_unlocked(&path);
        }
    }
}

/// Item 2: the descriptor form, `exec 9>>file; PROGRAM 9; ...; PROGRAM -u 9`, with its
/// exit codes: the same script prints the same under both.
#[test]
fn the_descriptor_form_locks_and_unlocks_the_callers_descriptor() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    let script = r#"
        P=$1; F=$2
        exec 9>>"$F"
        "$P" -n 9; echo "lock=$?"
        flock -n "$F" true; echo "other=$?"
        "$P" -n -E 7 9; echo "again=$?"
        "$P" -u 9; echo "unlock=$?"
        flock -n "$F" true; echo "other=$?"
        "$P" -s 9; echo "shared=$?"
        flock -n -s "$F" true; echo "other_shared=$?"
        flock -n "$F" true; echo "other=$?"
        exec 9>&-
        "$P" 9; echo "closed=$?"
        "$P" -u 9; echo "closed_unlock=$?"
        "$P" nine; echo "not_a_number=$?"
        exec 8>>"$F"
        flock -n 8
        "$P" -n 9 9<"$F"; echo "conflict=$?"
        "$P" -w 0.05 -E 9 9 9<"$F"; echo "timeout=$?"
    "#;
    let [ours, theirs] = BOTH.map(|program| {
        let out = run("sh", &["-c", script, "sh", program, p]);
        assert_eq!(out.status.code(), Some(0), "{program}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    });
    assert_eq!(ours, theirs);
    assert_eq!(
        ours,
        "lock=0\nother=1\nagain=0\nunlock=0\nother=0\nshared=0\nother_shared=0\nother=1\n\
         closed=65\nclosed_unlock=65\nnot_a_number=64\nconflict=1\ntimeout=9\n"
    );
}

/// Item 4: a directory is locked (exclusive and shared), and the two exclude each other on
/// it.
#[test]
fn a_directory_is_locked_as_flock_locks_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let script = r#"flock -n "$1" true; echo "other=$?"; flock -n -s "$1" true; echo "shared=$?""#;
    for program in BOTH {
        for (mode, expected) in [("-x", "other=1\nshared=1\n"), ("-s", "other=1\nshared=0\n")] {
            let out = run(program, &[mode, d, "sh", "-c", script, "sh", d]);
            assert_eq!(out.status.code(), Some(0), "{program} {mode}: {out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                expected,
                "{program} {mode}"
            );
        }
        let out = run(program, &[d, "sh", "-c", "exit 5"]);
        assert_eq!(out.status.code(), Some(5), "{program}");
    }
    for (holder, other) in [(FILELOCK, "flock"), ("flock", FILELOCK)] {
        let mut held = Wrapper::start(
            holder,
            &[d, "sh", "-c", "echo held; read line; exit 0"],
            false,
        );
        assert_eq!(held.line(), "held");
        assert_eq!(lock_pids(dir.path()), [held.id()], "{holder} holds it");
        assert_eq!(run(other, &["-n", d, "true"]).status.code(), Some(1));
        assert!(held.finish().success());
        assert_eq!(run(other, &["-n", d, "true"]).status.code(), Some(0));
    }
}

/// Item 3: a root-owned 0644 lock file in a directory `nobody` may enter but not write is
/// locked by `nobody`, exclusive and shared, under both. (Run by another user than root:
/// its own 0444 file.)
#[test]
fn a_file_the_user_may_not_write_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("system.lock");
    std::fs::write(&path, b"").unwrap();
    let root = runs_as_root(dir.path());
    let mode = if root { 0o644 } else { 0o444 };
    set_mode(&path, mode);
    set_mode(dir.path(), 0o755);
    let p = path.to_str().unwrap();
    let inside = r#"flock -n "$1" true; echo "other=$?"; flock -n -s "$1" true; echo "shared=$?""#;
    for program in BOTH {
        for (flag, expected) in [("-x", "other=1\nshared=1\n"), ("-s", "other=1\nshared=0\n")] {
            let args = [flag, p, "sh", "-c", inside, "sh", p];
            let out = if root {
                let mut all = vec!["-u", "nobody", "--", program];
                all.extend(args);
                run("runuser", &all)
            } else {
                run(program, &args)
            };
            assert_eq!(out.status.code(), Some(0), "{program} {flag}: {out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                expected,
                "{program} {flag}"
            );
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"", "untouched");
    use std::os::unix::fs::PermissionsExt;
    let bits = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(bits, mode, "not chmod-ed");
}

/// Whether this process runs as root (the owner of a file it creates is uid 0).
fn runs_as_root(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = dir.join("uid-probe");
    std::fs::write(&probe, b"").unwrap();
    let uid = std::fs::metadata(&probe).unwrap().uid();
    std::fs::remove_file(&probe).unwrap();
    uid == 0
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Item 5: silent on a conflict and on a timeout by default, and with --verbose both say
/// so; `filelock` also names the holder.
#[test]
fn quiet_by_default_and_verbose_on_request() {
    let (_dir, path) = lock_path();
    let p = path.to_str().unwrap();
    let child = holding("hold", &path);
    for program in BOTH {
        for wait in [["-n", "-n"], ["-w", "0.05"]] {
            let out = run(program, &[wait[0], wait[1], p, "true"]);
            assert_eq!(out.status.code(), Some(1), "{program} {wait:?}");
            assert!(out.stderr.is_empty(), "{program} {wait:?}: {out:?}");
            assert!(out.stdout.is_empty(), "{program} {wait:?}: {out:?}");
            let out = run(program, &["--verbose", wait[0], wait[1], p, "true"]);
            assert_eq!(out.status.code(), Some(1), "{program} --verbose {wait:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.is_empty(), "{program} --verbose {wait:?}");
            if program == FILELOCK {
                let named = format!("held by pid {} (", child.id());
                assert!(stderr.contains(&named), "{stderr}");
            }
        }
    }
    drop(child);
    // On success, --verbose says how long it took and what it runs, on stdout, as flock(1).
    let [ours, theirs] = BOTH.map(|program| {
        let out = run(program, &["--verbose", p, "true"]);
        assert_eq!(out.status.code(), Some(0));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let name = Path::new(program).file_name().unwrap().to_str().unwrap();
        // "<name>: getting lock took 0.000012 seconds": keep the shape, not the numbers.
        stdout
            .replace(name, "NAME")
            .chars()
            .map(|c| if c.is_ascii_digit() { '0' } else { c })
            .collect::<String>()
    });
    assert_eq!(ours, theirs);
}

/// Item 6: -F runs the command in place of the wrapper (same pid), which holds the lock;
/// -F with -o is a usage error; a missing parent directory is exit 66, and not created.
#[test]
fn no_fork_and_missing_parents_as_flock() {
    let (dir, path) = lock_path();
    let p = path.to_str().unwrap();
    for program in BOTH {
        let mut wrapper = Wrapper::start(
            program,
            &["-F", p, "sh", "-c", r#"echo "pid $$"; read line; exit 0"#],
            false,
        );
        assert_eq!(wrapper.line(), format!("pid {}", wrapper.id()), "{program}");
        assert_eq!(
            lock_pids(&path),
            [wrapper.id()],
            "{program}: the command holds it"
        );
        let who = run(FILELOCK, &["--who", p]);
        let expected = format!("held by pid {} (sh -c ", wrapper.id());
        assert!(
            String::from_utf8_lossy(&who.stdout).contains(&expected),
            "{who:?}"
        );
        assert!(wrapper.finish().success());
        assert!(!is_locked(&path));

        assert_eq!(
            run(program, &["-F", "-o", p, "true"]).status.code(),
            Some(64)
        );

        let nested = dir.path().join("missing").join("x.lock");
        let out = run(program, &[nested.to_str().unwrap(), "true"]);
        assert_eq!(out.status.code(), Some(66), "{program}");
        assert!(!dir.path().join("missing").exists(), "{program}");
    }
}

#[test]
fn a_softrw_spec_takes_python_compatible_read_and_write_locks() {
    let (_dir, path) = lock_path();
    let spec = format!("softrw:{}", path.display());
    // A shell holding a read lock through filelock: another reader gets in, a writer not.
    let mut reader = shell_holding(FILELOCK, "-s", Path::new(&spec));
    assert_eq!(
        run(FILELOCK, &["-s", "-n", &spec, "true"]).status.code(),
        Some(0)
    );
    assert_eq!(run(FILELOCK, &["-n", &spec, "true"]).status.code(), Some(1));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/py_soft_rw.py");
    let python = |mode: &str| {
        let out = run(
            common::tools::python().to_str().unwrap(),
            &[script, "try", path.to_str().unwrap(), mode],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(python("write").contains("@@busy"), "Python sees the reader");
    assert!(python("read").contains("@@got"));
    reader.close_stdin();
    assert!(reader.wait_success());
    assert_eq!(run(FILELOCK, &["-n", &spec, "true"]).status.code(), Some(0));
}
