//! Text another process wrote (a soft-lock marker's host line, a holder's command line)
//! reaches no terminal and no log line unescaped: `Error`'s and `Holder`'s `Display`, the
//! waiting hook's holder, the `filelock` CLI and the `tracing` events show control
//! characters escaped, while `Holder` keeps the raw value. The lock behaves as before.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::capture::Capture;
#[cfg(target_os = "linux")]
use tokio_filelock::FileLock;
use tokio_filelock::{Error, Holder, SoftFileLock};

#[test]
fn child_entry() {
    common::child_entry(common::hold_role);
}

/// The host line of the hostile marker: clear screen, cursor up, BEL, DEL.
const HOSTILE_HOST: &str = "other\x1b[2J\x1b[1A\x07\x7fhost";

/// Fails naming the text if it holds a character that could steer a terminal or split a
/// log line: a control character (C0, DEL, C1), or a bidi or line-separator character.
fn assert_clean(what: &str, text: &str) {
    let bad = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    assert!(
        !text.chars().any(bad),
        "{what} carries a raw control character: {text:?}"
    );
}

/// Every line of a program's output is clean (the line ends themselves are the program's).
#[cfg(feature = "cli")]
fn assert_clean_lines(what: &str, bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|e| panic!("{what}: {e}: {bytes:?}"));
    for line in text.lines() {
        assert_clean(what, line);
    }
}

/// Every event recorded (message and fields) is clean; returns the `holder` fields seen.
fn assert_clean_logs(capture: &Capture) -> Vec<String> {
    let records = capture.records();
    assert!(!records.is_empty(), "nothing was logged");
    let mut holders = Vec::new();
    for record in records {
        assert_clean("a log message", &record.message);
        for (name, value) in &record.fields {
            assert_clean(&format!("log field `{name}`"), value);
        }
        if let Some(holder) = record.fields.get("holder") {
            holders.push(holder.clone());
        }
    }
    holders
}

/// A lock built with a waiting hook that records how it displays the holder it is told of.
fn hooked_soft(path: &Path) -> (SoftFileLock, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let lock = SoftFileLock::builder(path)
        .on_wait(move |event| {
            let shown = event.holder().map(Holder::to_string).unwrap_or_default();
            record.lock().unwrap().push(shown);
        })
        .build();
    (lock, seen)
}

/// The holder named by a timeout, and the timeout's message.
fn timeout_holder(err: &Error) -> (&Holder, String) {
    match err {
        Error::Timeout {
            holder: Some(holder),
            ..
        } => (holder, err.to_string()),
        other => panic!("expected a timeout naming the holder, got {other:?}"),
    }
}

#[test]
fn a_hostile_marker_host_is_shown_escaped_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.lock");
    // A foreign host: never stale, so never broken, whatever the pid.
    let marker = format!("4242\n{HOSTILE_HOST}\n");
    std::fs::write(&path, &marker).unwrap();

    let capture = Capture::install();
    let (lock, hooked) = hooked_soft(&path);
    let err = lock.blocking_acquire_timeout(Duration::ZERO).unwrap_err();
    let (holder, text) = timeout_holder(&err);
    assert_eq!(holder.pid, 4242);
    // Raw in the field, for programs that need it.
    assert_eq!(holder.host.as_deref(), Some(HOSTILE_HOST));
    // Escaped wherever it is shown.
    assert_clean("Error's Display", &text);
    assert!(
        text.contains(r"held by pid 4242 on other\x1b[2J\x1b[1A\x07\x7fhost"),
        "{text}"
    );
    assert_clean("Holder's Display", &holder.to_string());

    // A wait: the hook hears of the holder, the log names it, the timeout too.
    let err = lock
        .blocking_acquire_timeout(Duration::from_millis(30))
        .unwrap_err();
    let (_, text) = timeout_holder(&err);
    assert_clean("Error's Display after a wait", &text);
    let hooked = hooked.lock().unwrap().clone();
    assert_eq!(hooked.len(), 1, "{hooked:?}");
    assert_clean("the waiting hook's holder", &hooked[0]);
    assert!(hooked[0].contains(r"\x1b[2J"), "{hooked:?}");
    let logged = assert_clean_logs(&capture);
    assert!(
        logged.iter().any(|h| h.contains(r"other\x1b[2J")),
        "the holder lookup is logged, escaped: {logged:?}"
    );

    // The lock behaves as before: the foreign marker is neither broken nor changed.
    assert_eq!(std::fs::read(&path).unwrap(), marker.as_bytes());
}

#[tokio::test(start_paused = true)]
async fn a_hostile_marker_outlives_a_long_wait_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.lock");
    let marker = format!("4242\n{HOSTILE_HOST}\n");
    std::fs::write(&path, &marker).unwrap();
    // Longer than the 2 s after which a malformed marker would be replaced.
    let err = SoftFileLock::new(&path)
        .acquire_timeout(Duration::from_secs(10))
        .await
        .unwrap_err();
    let (_, text) = timeout_holder(&err);
    assert_clean("Error's Display", &text);
    assert_eq!(std::fs::read(&path).unwrap(), marker.as_bytes());
}

/// `filelock --soft` on the hostile marker: `--who` and the waiting and timeout lines.
#[cfg(feature = "cli")]
#[test]
fn the_cli_shows_a_hostile_marker_host_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.lock");
    let marker = format!("4242\n{HOSTILE_HOST}\n");
    std::fs::write(&path, &marker).unwrap();
    let p = path.to_str().unwrap();

    let who = cli(&["--soft", "--who", p]);
    assert_eq!(who.status.code(), Some(0));
    assert_clean_lines("--who", &who.stdout);
    assert!(String::from_utf8_lossy(&who.stdout).contains(r"\x1b[2J"));

    // Quiet by default, as flock(1): --verbose prints the waiting and timeout lines.
    let waited = cli(&["--soft", "--verbose", "-w", "0.05", p, "true"]);
    assert_eq!(waited.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert!(stderr.contains("Blocking: waiting"), "{stderr}");
    assert!(stderr.contains("could not be acquired"), "{stderr}");
    assert_clean_lines("the waiting and timeout lines", &waited.stderr);
    assert_eq!(std::fs::read(&path).unwrap(), marker.as_bytes());
}

#[cfg(feature = "cli")]
fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_filelock"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// `argv[0]` of a holder process: set the window title, clear the screen, BEL, a
/// right-to-left override, and a C1 CSI.
#[cfg(target_os = "linux")]
const HOSTILE_ARGV0: &str = "evil\x1b]0;pwned\x07\x1b[2J\u{202e}gnp.exe\u{9b}31m";

/// A child holding the OS lock on `path`, started with the hostile `argv[0]`.
#[cfg(target_os = "linux")]
fn hostile_holder(path: &Path) -> common::ChildProcess {
    use std::os::unix::process::CommandExt;
    let mut child = common::spawn_with("hold", &[path.to_str().unwrap()], |command| {
        command.arg0(HOSTILE_ARGV0);
    })
    .unwrap();
    child.expect("acquired");
    child
}

#[cfg(target_os = "linux")]
#[test]
fn a_holder_with_a_hostile_argv0_is_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("argv0.lock");
    let child = hostile_holder(&path);

    let capture = Capture::install();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let lock = FileLock::builder(&path)
        .on_wait(move |event| {
            let shown = event.holder().map(Holder::to_string).unwrap_or_default();
            record.lock().unwrap().push(shown);
        })
        .build();
    let err = lock
        .blocking_acquire_timeout(Duration::from_millis(30))
        .unwrap_err();
    let (holder, text) = timeout_holder(&err);
    assert_eq!(holder.pid, child.id());
    // Raw in the field.
    let command = holder
        .command
        .as_deref()
        .expect("the holder's command line");
    assert!(
        command.to_string_lossy().starts_with(HOSTILE_ARGV0),
        "{command:?}"
    );
    // Escaped wherever it is shown.
    assert_clean("Error's Display", &text);
    assert!(
        text.contains(r"(evil\x1b]0;pwned\x07\x1b[2J\u{202e}gnp.exe\x9b31m "),
        "{text}"
    );
    assert_clean("Holder's Display", &holder.to_string());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_clean("the waiting hook's holder", &seen[0]);
    let logged = assert_clean_logs(&capture);
    assert!(
        logged.iter().any(|h| h.contains(r"evil\x1b]0;pwned")),
        "the holder lookup is logged, escaped: {logged:?}"
    );
    // `holder()` asked directly gives the same raw value and the same clean display.
    let asked = lock.blocking_holder().unwrap().expect("held");
    assert_eq!(asked.command, holder.command);
    assert_clean("holder()'s Display", &asked.to_string());
}

#[cfg(all(target_os = "linux", feature = "cli"))]
#[test]
fn the_cli_shows_a_hostile_argv0_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("argv0.lock");
    let _child = hostile_holder(&path);
    let p = path.to_str().unwrap();

    let who = cli(&["--who", p]);
    assert_eq!(who.status.code(), Some(0));
    assert_clean_lines("--who", &who.stdout);
    assert!(String::from_utf8_lossy(&who.stdout).contains(r"evil\x1b]0;pwned"));

    let waited = cli(&["--verbose", "-w", "0.05", p, "true"]);
    assert_eq!(waited.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert!(stderr.contains(r"evil\x1b]0;pwned"), "{stderr}");
    assert_clean_lines("the waiting and timeout lines", &waited.stderr);
}
