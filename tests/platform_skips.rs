//! The test files that do not run on every platform, listed here as ignored tests so that
//! the run on those platforms shows each skipped file and why (`cargo test` prints every
//! ignored test with its reason). One entry per file whose top says `#![cfg(...)]`;
//! `scripts/ci-platforms.sh` fails when a file is missing here.
//!
//! Within files that do run, a test that cannot run on a platform is marked
//! `#[cfg_attr(<platform>, ignore = "<reason>")]` next to it; one that can only find out at
//! run time (wine) prints `SKIPPED: <test>: <reason>` (see `common::skipped`).

#[cfg(not(unix))]
#[test]
#[ignore = "tests/bad_input.rs is Unix only: FIFOs, sockets, devices, modes and users (Windows bad input: tests/windows.rs)"]
fn bad_input() {}

#[cfg(not(target_os = "linux"))]
#[test]
#[ignore = "tests/cancellation.rs is Linux only: it counts open descriptors in /proc/self/fd"]
fn cancellation() {}

#[cfg(not(target_os = "linux"))]
#[test]
#[ignore = "tests/kept.rs is Linux only: lock files are kept open between holds there only"]
fn kept() {}

#[cfg(not(target_os = "linux"))]
#[test]
#[ignore = "tests/cli.rs is Linux only: it runs against util-linux flock(1) and /proc/locks holders"]
fn cli() {}

#[cfg(not(target_os = "linux"))]
#[test]
#[ignore = "tests/holder.rs is Linux only: holders of an OS lock are looked up in /proc/locks"]
fn holder() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/interop.rs is Unix only: Python filelock and flock(1) are run as Unix processes"]
fn interop() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/lock_file.rs is Unix only: modes, and the file is never deleted (Windows: tests/windows.rs)"]
fn lock_file() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/reliability.rs is Unix only: its workload uses Unix positional I/O and a machine-wide monotonic clock (common::monotonic_ns)"]
fn reliability() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/soft.rs is Unix only: symlinks, FIFOs, modes, Python interop (Windows soft lock: tests/windows_soft.rs)"]
fn soft() {}

#[cfg(not(windows))]
#[test]
#[ignore = "tests/windows.rs is Windows only: delete on release, sharing violations, delete pending"]
fn windows() {}

#[cfg(not(windows))]
#[test]
#[ignore = "tests/windows_soft.rs is Windows only: the soft lock's Windows calls (tests/soft.rs covers Unix)"]
fn windows_soft() {}

#[cfg(not(debug_assertions))]
#[test]
#[ignore = "tests/blocking_facade.rs is for debug builds only: the check of a blocking_* wait on a runtime thread is a debug assertion"]
fn blocking_facade() {}

#[cfg(not(target_os = "linux"))]
#[test]
#[ignore = "tests/chaos.rs is Linux only: SIGSTOP/SIGKILL of workers, Python peers, a machine-wide monotonic clock"]
fn chaos() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/lease.rs is Unix only: SIGSTOP/SIGKILL of holders and Python interop"]
fn lease() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/soft_rw.rs is Unix only: SIGSTOP/SIGKILL of holders and Python interop"]
fn soft_rw() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/postgres.rs is Unix only: the harness starts PostgreSQL with initdb/pg_ctl as an unprivileged Unix user"]
fn postgres() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/replaced_lock_file.rs is Unix only: a held lock file cannot be renamed on Windows (no FILE_SHARE_DELETE)"]
fn replaced_lock_file() {}

#[cfg(not(target_os = "linux"))]
#[test]
#[ignore = "tests/soft_breakers.rs is Linux only: an LD_PRELOAD shim holds processes at renameat2"]
fn soft_breakers() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/untrusted_text.rs is Unix only: a hostile argv[0] and a marker from a foreign host"]
fn untrusted_text() {}

#[cfg(not(target_os = "linux"))]
#[test]
#[ignore = "tests/fairness.rs is Linux only: the cross-process line uses open-file-description locks"]
fn fairness() {}

#[cfg(not(target_os = "linux"))]
#[test]
#[ignore = "tests/poll_cancel.rs is Linux only: it counts descriptors and inotify watches in /proc/self"]
fn poll_cancel() {}

#[cfg(not(target_os = "linux"))]
#[test]
#[ignore = "tests/watcher.rs is Linux only: it reads the watcher thread's state in /proc/self/task"]
fn watcher() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/parity.rs is Unix only: symlinked directories, modes and users"]
fn parity() {}

#[cfg(not(unix))]
#[test]
#[ignore = "tests/strict.rs is Unix only: the strict lock is Unix only, and its tests use SIGKILL, FIFOs, symlinks and Python interop"]
fn strict() {}
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
#[test]
#[ignore = "tests/soft_options.rs needs an atomic exchange of names (Linux, macOS) to break markers"]
fn soft_options() {}
