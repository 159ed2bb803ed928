//! Bad input (DESIGN.md, semantics 6): each returns its typed error naming the path at
//! once, never by waiting, even with an infinite wait configured: through the async API
//! after exactly one attempt (none for a path rejected before any system call) and no
//! virtual time under paused time, and through the sync facade within 100 ms.
//!
//! Every check runs on a guard thread: an acquire that hangs (a FIFO opened without
//! `O_NONBLOCK`, say) fails the test instead of hanging it.
#![cfg(unix)] // FIFOs, sockets, devices, modes and users are Unix notions

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use common::capture::Capture;
use tokio_filelock::{Error, FileLock, FileLockBuilder, NodeKind, Op};

/// The bound the issue states for the sync facade's bad-input path (which never sleeps).
const PROMPT: Duration = Duration::from_millis(100);

/// How long a check may take before it counts as hanging.
const HANG: Duration = Duration::from_secs(20);

/// What the error must be.
type Expected = fn(&Error) -> bool;

/// Settings applied to the builder.
type Configure = fn(FileLockBuilder) -> FileLockBuilder;

/// Each check runs with the default settings and with a configured mode (which first tries
/// an `O_EXCL` create): both wait forever.
const CONFIGS: [(&str, Configure); 2] = [("default", |b| b), ("mode(0o600)", |b| b.mode(0o600))];

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // Runs the missing-permission checks as the (unprivileged) user it was started as.
        "no_permission" => {
            check_no_permission(Path::new(&args[0]));
            common::say("checked");
        }
        other => panic!("unknown role {other}"),
    }
}

/// Asserts that acquiring `path` fails with an error `expected` accepts, naming `path`, at
/// once, after `attempts` attempts: through `acquire`, `try_acquire` and `acquire_shared`
/// under paused time, and through their sync facades.
fn assert_rejected(path: &Path, attempts: usize, expected: Expected) {
    let path = path.to_path_buf();
    on_guard_thread(&format!("{}", path.display()), move || {
        for (config, configure) in CONFIGS {
            let lock = configure(FileLock::builder(&path)).build();
            let what = |call: &str| format!("{call} on {path:?} ({config})");
            check_async(&lock, attempts, expected, what);
            check_sync(&lock, attempts, expected, what);
        }
    });
}

fn check_async(
    lock: &FileLock,
    attempts: usize,
    expected: Expected,
    what: impl Fn(&str) -> String,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let capture = Capture::install();
    runtime.block_on(async {
        for call in ["acquire", "try_acquire", "acquire_shared"] {
            capture.clear();
            let start = tokio::time::Instant::now();
            let err = match call {
                "acquire" => lock.acquire().await.map(drop),
                "try_acquire" => lock.try_acquire().await.map(drop),
                _ => lock.acquire_shared().await.map(drop),
            }
            .expect_err(&what(call));
            assert_eq!(tokio::time::Instant::now(), start, "{}: waited", what(call));
            assert_refused(&err, lock, &capture, attempts, expected, &what(call));
        }
    });
}

fn check_sync(lock: &FileLock, attempts: usize, expected: Expected, what: impl Fn(&str) -> String) {
    let capture = Capture::install();
    for call in [
        "blocking_acquire",
        "blocking_try_acquire",
        "blocking_acquire_shared",
    ] {
        capture.clear();
        let start = std::time::Instant::now();
        let err = match call {
            "blocking_acquire" => lock.blocking_acquire().map(drop),
            "blocking_try_acquire" => lock.blocking_try_acquire().map(drop),
            _ => lock.blocking_acquire_shared().map(drop),
        }
        .expect_err(&what(call));
        let took = start.elapsed();
        assert!(took < PROMPT, "{}: took {took:?}", what(call));
        assert_refused(&err, lock, &capture, attempts, expected, &what(call));
    }
}

/// The error is the expected one and names the path; `attempts` attempts were made; the
/// lock is not held.
fn assert_refused(
    err: &Error,
    lock: &FileLock,
    capture: &Capture,
    attempts: usize,
    expected: Expected,
    what: &str,
) {
    assert!(expected(err), "{what}: unexpected error {err:?}");
    assert_eq!(err.path(), lock.path(), "{what}: the error names the path");
    let made = capture.named("attempt").len();
    assert_eq!(made, attempts, "{what}: attempts");
    assert!(!lock.is_locked(), "{what}");
}

/// Runs `check` on its own thread and fails if it does not finish within [`HANG`].
fn on_guard_thread(what: &str, check: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        check();
        let _ = done.send(());
    });
    match finished.recv_timeout(HANG) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(RecvTimeoutError::Timeout) => panic!("{what}: no answer within {HANG:?}: it hangs"),
    }
}

fn not_a_file(kind: NodeKind) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::NotAFile { kind: k, .. } if *k == kind)
}

fn io_kind(e: &Error, kind: ErrorKind) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == kind) && e.kind() == kind
}

// ---- symlinks -------------------------------------------------------------------------

#[test]
fn a_symlink_to_a_file_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("precious.txt");
    let content = b"precious\0data\nnot a lock file\n";
    fs::write(&target, content).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
    let before = fs::metadata(&target).unwrap();
    let path = dir.path().join("x.lock");
    symlink(&target, &path).unwrap();

    assert_rejected(&path, 1, |e| not_a_file(NodeKind::Symlink)(e));

    assert_eq!(fs::read(&target).unwrap(), content, "the target's bytes");
    let after = fs::metadata(&target).unwrap();
    assert_eq!(after.mode(), before.mode(), "the target's mode");
    assert_eq!(after.ino(), before.ino());
    assert_eq!(fs::read_link(&path).unwrap(), target, "the symlink stays");
}

#[test]
fn a_dangling_symlink_is_refused_and_no_target_created() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("nowhere.txt");
    let path = dir.path().join("x.lock");
    symlink(&target, &path).unwrap();

    assert_rejected(&path, 1, |e| not_a_file(NodeKind::Symlink)(e));

    assert!(
        fs::symlink_metadata(&target).is_err(),
        "the symlink's target must not be created"
    );
    assert_eq!(fs::read_link(&path).unwrap(), target, "the symlink stays");
}

// ---- other node types -----------------------------------------------------------------

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.lock");
    fs::create_dir(&path).unwrap();
    assert_rejected(&path, 1, |e| {
        not_a_file(NodeKind::Directory)(e) && e.kind() == ErrorKind::IsADirectory
    });
    assert!(fs::metadata(&path).unwrap().is_dir());
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.lock");
    let status = Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(status.success(), "mkfifo failed");
    assert_rejected(&path, 1, |e| not_a_file(NodeKind::Fifo)(e));
}

#[test]
fn a_unix_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.lock");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    assert_rejected(&path, 1, |e| not_a_file(NodeKind::Socket)(e));
}

#[test]
fn a_character_device_is_refused_and_left_alone() {
    let path = Path::new("/dev/null");
    let before = fs::metadata(path).unwrap();
    // Should a regression chmod it, put it back before failing: /dev/null is the machine's.
    struct Restore(u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = fs::set_permissions("/dev/null", fs::Permissions::from_mode(self.0));
        }
    }
    let _restore = Restore(before.mode() & 0o7777);

    assert_rejected(path, 1, |e| not_a_file(NodeKind::CharDevice)(e));

    let after = fs::metadata(path).unwrap();
    assert_eq!(after.mode(), before.mode(), "its mode");
    assert_eq!(
        (after.uid(), after.gid()),
        (before.uid(), before.gid()),
        "its owner"
    );
    assert_eq!(after.rdev(), before.rdev());
}

// ---- permissions and file systems -----------------------------------------------------

/// The unprivileged user the permission check runs as when the tests run as root (root
/// bypasses permission bits): `nobody` on most systems.
const NOBODY: u32 = 65534;

/// The effective user of this process: the owner of a file it creates.
fn effective_uid(dir: &Path) -> u32 {
    let probe = dir.join("uid-probe");
    fs::write(&probe, b"").unwrap();
    let uid = fs::metadata(&probe).unwrap().uid();
    fs::remove_file(&probe).unwrap();
    uid
}

/// In `dir`, where the current user may not write: a new lock file and a lock file whose
/// parent would have to be created are refused; an existing lock file it may read but not
/// write is locked (opened read-only: a lock needs no write access).
fn check_no_permission(dir: &Path) {
    let permission_denied: Expected = |e| io_kind(e, ErrorKind::PermissionDenied);
    assert_rejected(&dir.join("new.lock"), 1, permission_denied);
    assert_locks_read_only(&dir.join("existing.lock"));
    assert_rejected(&dir.join("sub").join("x.lock"), 1, |e| {
        matches!(
            e,
            Error::Io {
                op: Op::CreateParent,
                ..
            }
        ) && io_kind(e, ErrorKind::PermissionDenied)
    });
}

#[test]
fn missing_write_permission_refuses_creation_and_locks_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("existing.lock");
    fs::write(&existing, b"").unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o444)).unwrap();
    if effective_uid(dir.path()) != 0 {
        // An ordinary user: a directory it may not write is enough.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).unwrap();
        check_no_permission(dir.path());
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        return;
    }
    // Root ignores permission bits: run the check in a child process as `nobody`, in a
    // directory it may enter but not write.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let arg = dir.path().to_str().unwrap();
    let spawned = common::spawn_with("no_permission", &[arg], |command| {
        use std::os::unix::process::CommandExt;
        command.uid(NOBODY).gid(NOBODY);
    });
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            println!("SKIPPED: cannot start a child process as uid {NOBODY}: {e}");
            return;
        }
    };
    child.expect("checked");
    assert!(child.wait_success(), "the unprivileged child failed");
}

/// A tmpfs mounted read-only for the life of the value; unmounted on drop.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    /// Mounts a tmpfs at `at` holding an empty `existing.lock`, then makes it read-only.
    fn new(at: &Path) -> Result<Self, String> {
        fs::create_dir(at).unwrap();
        mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"], at)?;
        let mounted = ReadOnlyMount(at.to_path_buf());
        fs::write(at.join("existing.lock"), b"").unwrap();
        mount(&["-o", "remount,ro"], at)?;
        Ok(mounted)
    }
}

fn mount(args: &[&str], at: &Path) -> Result<(), String> {
    let output = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// An existing lock file that cannot be opened for writing is locked, exclusive (another
/// handle is then excluded) and shared, and left as it was.
fn assert_locks_read_only(path: &Path) {
    let before = fs::metadata(path).unwrap();
    let lock = FileLock::new(path);
    let guard = lock.blocking_acquire().unwrap();
    let other = FileLock::new(path);
    assert!(other.blocking_try_acquire().unwrap().is_none(), "excluded");
    guard.release().unwrap();
    let shared = lock.blocking_acquire_shared().unwrap();
    let also = other.blocking_acquire_shared().unwrap();
    drop((shared, also));
    let after = fs::metadata(path).unwrap();
    assert_eq!(after.len(), before.len(), "not written");
    assert_eq!(after.mode(), before.mode(), "not chmod-ed");
}

#[test]
fn a_read_only_file_system_refuses_creation_and_locks_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let mount = match ReadOnlyMount::new(&dir.path().join("ro")) {
        Ok(mount) => mount,
        Err(reason) => {
            println!("SKIPPED: cannot mount a read-only tmpfs here: {reason}");
            return;
        }
    };
    let read_only: Expected = |e| io_kind(e, ErrorKind::ReadOnlyFilesystem);
    assert_rejected(&mount.0.join("new.lock"), 1, read_only);
    assert_locks_read_only(&mount.0.join("existing.lock"));
    assert_rejected(&mount.0.join("sub").join("x.lock"), 1, |e| {
        matches!(
            e,
            Error::Io {
                op: Op::CreateParent,
                ..
            }
        ) && io_kind(e, ErrorKind::ReadOnlyFilesystem)
    });
    assert_eq!(
        fs::read(mount.0.join("existing.lock")).unwrap(),
        b"",
        "untouched"
    );
}

// ---- paths ----------------------------------------------------------------------------

fn invalid_path(e: &Error) -> bool {
    matches!(e, Error::InvalidPath { .. }) && e.kind() == ErrorKind::InvalidInput
}

fn assert_nothing_in(dir: &Path) {
    let entries: Vec<_> = fs::read_dir(dir).unwrap().collect();
    assert!(entries.is_empty(), "nothing may be created: {entries:?}");
}

/// Rejected before any system call: no attempt is made.
#[test]
fn an_empty_path_is_refused() {
    assert_rejected(Path::new(""), 0, invalid_path);
}

/// Rejected before any system call: no attempt is made.
#[test]
fn a_nul_byte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = dir.path().as_os_str().as_bytes().to_vec();
    bytes.extend_from_slice(b"/x\0y.lock");
    let path = PathBuf::from(OsStr::from_bytes(&bytes));
    assert_rejected(&path, 0, invalid_path);
    assert_nothing_in(dir.path());
}

#[test]
fn a_name_too_long_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(300);
    let name_too_long: Expected =
        |e| matches!(e, Error::Io { op: Op::Open, .. }) && io_kind(e, ErrorKind::InvalidFilename);
    // As the file's name, and as a directory's on the way to it.
    assert_rejected(&dir.path().join(&long), 1, name_too_long);
    assert_rejected(&dir.path().join(&long).join("x.lock"), 1, name_too_long);
    assert_nothing_in(dir.path());
}

#[test]
fn a_regular_file_as_parent_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"data").unwrap();
    let not_a_directory: Expected = |e| io_kind(e, ErrorKind::NotADirectory);
    assert_rejected(&file.join("x.lock"), 1, not_a_directory);
    assert_rejected(&file.join("sub").join("x.lock"), 1, not_a_directory);
    assert_eq!(fs::read(&file).unwrap(), b"data", "the file is untouched");
}
