//! The outside programs the tests need, in one place: each is found (or provisioned) on first
//! need, or the test fails with one line naming what is missing and the command that fixes
//! it. No test passes silently or skips for want of a tool.
//!
//! - [`python`]: the interpreter of the test venv, `target/test-venv/`, with the pinned
//!   [`REQUIREMENTS`] (Python `filelock` for the interop tests). Created from `python3` on
//!   the first need (network access to PyPI, or `PIP_INDEX_URL`/`PIP_FIND_LINKS` pointing at
//!   a mirror, then), once per checkout, under this crate's own lock
//!   (`target/test-venv.lock`) so test binaries starting together create it once; reused
//!   with no network access while it holds the pinned versions. What pip and venv printed is
//!   in `target/test-venv.log`. `cargo clean` (or removing the directory) starts over.
//! - [`flock`]: util-linux `flock(1)`.
//!
//! The venv is made readable and traversable by every user (`chmod -R a+rX`), whatever the
//! umask, so that a harness may run programs installed into it as an unprivileged user;
//! the directories above `target/` are the user's and are left as they are.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_filelock::FileLock;

/// What the test venv holds: pinned `name==version` lines, installed with pip. Add a
/// package here when a test needs one; an existing venv gets it on the next run.
pub const REQUIREMENTS: &[&str] = &["filelock==4.3.1"];

/// The interpreter the test venv is created from, looked up on `PATH`.
pub const BASE_PYTHON: &str = "python3";

/// Bound of `python3 -m venv`.
const CREATE_LIMIT: Duration = Duration::from_secs(120);
/// Bound of one `pip install` (a slow or unreachable index fails here, not never).
const INSTALL_LIMIT: Duration = Duration::from_secs(300);
/// Bound of waiting for another process that is provisioning the same venv.
const LOCK_WAIT: Duration = Duration::from_secs(600);

/// Checks a venv's interpreter: exit 0 when every `name==version` argument is installed at
/// that version, 1 (listing the differences) when one is not, 2 when pip is missing (an
/// unfinished venv).
const CHECK: &str = r#"
import importlib.metadata as md, importlib.util, sys
if importlib.util.find_spec("pip") is None:
    print("pip is missing"); sys.exit(2)
bad = []
for req in sys.argv[1:]:
    name, _, want = req.partition("==")
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = "missing"
    if have != want:
        bad.append(f"{name} {have} (pinned {want})")
print("; ".join(bad)); sys.exit(1 if bad else 0)
"#;

/// The directory cargo builds into (`target/`, or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// The test venv: `target/test-venv`.
pub fn venv_dir() -> PathBuf {
    target_dir().join("test-venv")
}

/// The interpreter of the venv at `dir`.
pub fn venv_python(dir: &Path) -> PathBuf {
    dir.join("bin").join("python")
}

/// The test venv's interpreter, with [`REQUIREMENTS`] installed: provisioned on the first
/// call in this process (see the module doc); panics with one line saying what is missing
/// and how to fix it.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let provisioned = PYTHON.get_or_init(|| {
        let dir = venv_dir();
        provision(OsStr::new(BASE_PYTHON), &dir, REQUIREMENTS).map(|_| venv_python(&dir))
    });
    match provisioned {
        Ok(python) => python,
        Err(message) => panic!("{message}"),
    }
}

/// util-linux `flock(1)`, checked once: its program name for `Command::new`. Panics with one
/// line naming the fix when it cannot run.
pub fn flock() -> &'static str {
    static FLOCK: OnceLock<Result<(), String>> = OnceLock::new();
    let found = FLOCK.get_or_init(|| {
        let fix = "fix: `apt-get install -y util-linux`";
        match Command::new("flock")
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!(
                "this test needs util-linux `flock(1)`, but `flock --version` failed ({status}); {fix}"
            )),
            Err(e) => Err(format!(
                "this test needs util-linux `flock(1)`, but `flock` cannot run ({e}); {fix}"
            )),
        }
    });
    match found {
        Ok(()) => "flock",
        Err(message) => panic!("{message}"),
    }
}

/// What [`provision`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioned {
    /// The venv was there with the pinned versions: nothing ran but the check.
    Reused,
    /// The venv was there; pip installed what was missing or at another version.
    Installed,
    /// The venv was created (from `base`) and the requirements installed.
    Created,
}

impl Provisioned {
    pub fn as_str(self) -> &'static str {
        match self {
            Provisioned::Reused => "reused",
            Provisioned::Installed => "installed",
            Provisioned::Created => "created",
        }
    }
}

/// Makes sure the venv at `dir` exists and holds `requirements` (`name==version` each),
/// creating it from the interpreter `base` if needed. Safe when several processes call it
/// at once: the work is done under a [`FileLock`] on `<dir>.lock`, and a venv found
/// complete is used without taking the lock or touching the network. The error is one line
/// naming what is missing and the command that fixes it.
pub fn provision(base: &OsStr, dir: &Path, requirements: &[&str]) -> Result<Provisioned, String> {
    for requirement in requirements {
        assert!(
            requirement.contains("=="),
            "requirement {requirement:?} is not pinned as name==version"
        );
    }
    if check(dir, requirements) == Check::Complete {
        return Ok(Provisioned::Reused);
    }
    let lock_path = dir.with_extension("lock");
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| format!("test venv: cannot create {}: {e}", parent.display()))?;
    }
    let lock = FileLock::builder(&lock_path).timeout(LOCK_WAIT).build();
    let _guard = lock.blocking_acquire().map_err(|e| {
        format!(
            "test venv: cannot lock {} to provision {}: {e}",
            lock_path.display(),
            dir.display()
        )
    })?;
    // Another process may have finished while this one waited.
    let found = check(dir, requirements);
    if found == Check::Complete {
        return Ok(Provisioned::Reused);
    }
    let log = log_path(dir);
    fs::write(&log, "").map_err(|e| format!("test venv: cannot write {}: {e}", log.display()))?;
    let outcome = if found == Check::Broken {
        create(base, dir)?;
        Provisioned::Created
    } else {
        Provisioned::Installed
    };
    if !requirements.is_empty() {
        install(dir, requirements)?;
    }
    readable_by_all(dir)
        .map_err(|e| format!("test venv: cannot make {} readable: {e}", dir.display()))?;
    match check(dir, requirements) {
        Check::Complete => Ok(outcome),
        Check::Missing(what) => Err(format!(
            "test venv {}: after `pip install` still {what}; see {}",
            dir.display(),
            log_path(dir).display()
        )),
        Check::Broken => Err(format!(
            "test venv {}: its interpreter does not run after provisioning; remove the directory and rerun; see {}",
            dir.display(),
            log_path(dir).display()
        )),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Check {
    /// Runs and holds every requirement.
    Complete,
    /// Runs, but lacks these (or has other versions).
    Missing(String),
    /// Absent, or does not run, or has no pip: to be created anew.
    Broken,
}

fn check(dir: &Path, requirements: &[&str]) -> Check {
    let python = venv_python(dir);
    if !python.exists() {
        return Check::Broken;
    }
    let output = Command::new(&python)
        .args(["-I", "-c", CHECK])
        .args(requirements)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match output {
        Ok(out) if out.status.success() => Check::Complete,
        Ok(out) if out.status.code() == Some(1) => {
            Check::Missing(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        _ => Check::Broken,
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.with_extension("log")
}

fn create(base: &OsStr, dir: &Path) -> Result<(), String> {
    if dir.exists() {
        fs::remove_dir_all(dir)
            .map_err(|e| format!("test venv: cannot remove the broken {}: {e}", dir.display()))?;
    }
    let base_name = base.to_string_lossy();
    let mut command = Command::new(base);
    command.arg("-m").arg("venv").arg(dir);
    match run_step(command, dir, CREATE_LIMIT) {
        Ok(()) => Ok(()),
        Err(Step::CannotStart(e)) => Err(format!(
            "the tests need `{base_name}` to create their Python venv {}, but it cannot run ({e}); fix: `apt-get install -y python3 python3-venv`",
            dir.display()
        )),
        Err(Step::Failed(why)) => Err(format!(
            "`{base_name} -m venv {}` failed ({why}); fix: `apt-get install -y python3-venv`; see {}",
            dir.display(),
            log_path(dir).display()
        )),
    }
}

fn install(dir: &Path, requirements: &[&str]) -> Result<(), String> {
    let python = venv_python(dir);
    let mut command = Command::new(&python);
    command
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(requirements);
    let wanted = requirements.join(" ");
    match run_step(command, dir, INSTALL_LIMIT) {
        Ok(()) => Ok(()),
        Err(Step::CannotStart(e)) => Err(format!(
            "test venv: cannot run {} ({e}); remove {} and rerun",
            python.display(),
            dir.display()
        )),
        Err(Step::Failed(why)) => Err(format!(
            "`pip install {wanted}` into the test venv {} failed ({why}): the first run needs network access to PyPI (or PIP_INDEX_URL/PIP_FIND_LINKS naming a mirror); fix: connect and rerun, or `{} -m pip install {wanted}`; see {}",
            dir.display(),
            python.display(),
            log_path(dir).display()
        )),
    }
}

enum Step {
    CannotStart(std::io::Error),
    /// Failed or overran its bound: why, in a few words (the last line it printed).
    Failed(String),
}

/// Runs `command` with its output appended to the venv's log, killing it after `limit`.
fn run_step(mut command: Command, dir: &Path, limit: Duration) -> Result<(), Step> {
    let log_path = log_path(dir);
    let log_error = |e: std::io::Error| {
        Step::Failed(format!("cannot write the log {}: {e}", log_path.display()))
    };
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&log_path)
        .map_err(log_error)?;
    writeln!(log, "$ {command:?}").map_err(log_error)?;
    let start = log.seek(SeekFrom::End(0)).map_err(log_error)?;
    let stdout = log.try_clone().map_err(log_error)?;
    let stderr = log.try_clone().map_err(log_error)?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(Step::CannotStart)?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Step::Failed(format!(
                    "did not finish within {}s and was killed",
                    limit.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Step::Failed(format!("cannot wait for it: {e}")));
            }
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut printed = String::new();
    let _ = log.seek(SeekFrom::Start(start));
    let _ = log.read_to_string(&mut printed);
    let last = printed
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or("no output");
    Err(Step::Failed(format!("{status}: {last}")))
}

/// `chmod -R a+rX dir`: every user may read the tree and run what its owner may run.
/// Symbolic links are left alone (their mode means nothing).
fn readable_by_all(dir: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    let wanted = if meta.is_dir() || mode & 0o100 != 0 {
        mode | 0o555
    } else {
        mode | 0o444
    };
    if wanted != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(wanted))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(dir)? {
            readable_by_all(&entry?.path())?;
        }
    }
    Ok(())
}
