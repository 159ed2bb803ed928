//! `filelock`: run a command under a file lock, compatible with the core of util-linux
//! `flock(1)`, and say who holds the lock while waiting.
//!
//! ```text
//! filelock [options] LOCKFILE COMMAND [ARGUMENT...]
//! filelock [options] LOCKFILE -c COMMAND
//! filelock --who LOCKFILE
//! ```
//!
//! Installed with `cargo install tokio-filelock --features cli`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Duration;

use tokio_filelock::{Error, FileLock, Holder, LockMode, SoftFileLock, WaitEvent};

// sysexits.h, as flock(1) uses them.
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_NOINPUT: u8 = 66;
const EX_UNAVAILABLE: u8 = 69;
const EX_SOFTWARE: u8 = 70;
const EX_OSERR: u8 = 71;
const EX_CANTCREAT: u8 = 73;

const USAGE: &str = "\
Usage:
 filelock [options] <file> <command> [<argument>...]
 filelock [options] <file> -c <command>
 filelock --who <file>

Run a command while holding a file lock (the flock(2) lock of flock(1), cargo,
Python filelock), and say who holds the lock while waiting for it.

Options:
 -s, --shared             get a shared lock
 -x, -e, --exclusive      get an exclusive lock (default)
 -n, --nonblock, --nb     fail rather than wait
 -w, --timeout <secs>     wait for a limited amount of time (0: one attempt)
 -E, --conflict-exit-code <number>
                          exit code after conflict or timeout (default 1)
 -o, --close              accepted for flock(1) compatibility: the command never
                          inherits the lock's descriptor
 -c, --command <command>  (after <file>) run a single command string through $SHELL
 -q, --quiet              print no waiting or timeout message
     --soft               use the marker-file lock instead of flock(2)
     --who                print who holds the lock on <file>, then exit
                          (0: held, 1: not held)
 -h, --help               display this help
 -V, --version            display version
";

/// What the command line asks for.
#[derive(Debug)]
struct Options {
    mode: LockMode,
    nonblock: bool,
    timeout: Option<Duration>,
    conflict_code: u8,
    quiet: bool,
    soft: bool,
    who: bool,
}

#[derive(Debug)]
enum Action {
    Help,
    Version,
    Who(PathBuf),
    Run {
        file: PathBuf,
        program: OsString,
        args: Vec<OsString>,
    },
}

/// A usage error: message, exit code 64.
struct Usage(String);

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let code = match parse(args) {
        Ok((options, action)) => run(&options, action),
        Err(Usage(message)) => {
            eprintln!("filelock: {message}\nTry 'filelock --help' for more information.");
            EX_USAGE
        }
    };
    ExitCode::from(code)
}

fn parse(args: Vec<OsString>) -> Result<(Options, Action), Usage> {
    let mut options = Options {
        mode: LockMode::Exclusive,
        nonblock: false,
        timeout: None,
        conflict_code: 1,
        quiet: false,
        soft: false,
        who: false,
    };
    let mut rest = args.into_iter().peekable();
    // Options come first; the first non-option ends them (as getopt's "+").
    while let Some(arg) = rest.next_if(|a| is_option(a)) {
        let arg = arg
            .into_string()
            .map_err(|a| Usage(format!("invalid option '{}'", a.to_string_lossy())))?;
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let mut value = || match inline.clone() {
                Some(v) => Ok(v),
                None => next_value(&mut rest, &arg),
            };
            match name {
                "shared" => options.mode = LockMode::Shared,
                "exclusive" => options.mode = LockMode::Exclusive,
                "nonblock" | "nonblocking" | "nb" => options.nonblock = true,
                "timeout" | "wait" => options.timeout = Some(parse_timeout(&value()?)?),
                "conflict-exit-code" => options.conflict_code = parse_code(&value()?)?,
                "close" => {}
                "quiet" => options.quiet = true,
                "soft" => options.soft = true,
                "who" => options.who = true,
                "help" => return Ok((options, Action::Help)),
                "version" => return Ok((options, Action::Version)),
                _ => return Err(Usage(format!("unrecognized option '{arg}'"))),
            }
            continue;
        }
        // A bundle of short options: "-sn", "-w5", "-w 5".
        let shorts = &arg[1..];
        for (at, flag) in shorts.char_indices() {
            let attached = &shorts[at + flag.len_utf8()..];
            let mut value = || match attached {
                "" => next_value(&mut rest, &format!("-{flag}")),
                v => Ok(v.to_owned()),
            };
            match flag {
                's' => options.mode = LockMode::Shared,
                'x' | 'e' => options.mode = LockMode::Exclusive,
                'n' => options.nonblock = true,
                'o' => {}
                'q' => options.quiet = true,
                'h' => return Ok((options, Action::Help)),
                'V' => return Ok((options, Action::Version)),
                'w' => {
                    options.timeout = Some(parse_timeout(&value()?)?);
                    break;
                }
                'E' => {
                    options.conflict_code = parse_code(&value()?)?;
                    break;
                }
                'c' => {
                    return Err(Usage(
                        "-c comes after the lock file: <file> -c <command>".into(),
                    ));
                }
                'u' | 'F' => {
                    return Err(Usage(format!(
                        "-{flag} is not supported (it needs flock(1)'s file-descriptor or no-fork forms)"
                    )));
                }
                _ => return Err(Usage(format!("invalid option -- '{flag}'"))),
            }
        }
    }
    let Some(file) = rest.next() else {
        return Err(Usage("not enough arguments".into()));
    };
    let file = PathBuf::from(file);
    if options.who {
        if let Some(extra) = rest.next() {
            return Err(Usage(format!(
                "--who takes only the lock file, not '{}'",
                extra.to_string_lossy()
            )));
        }
        return Ok((options, Action::Who(file)));
    }
    let Some(program) = rest.next() else {
        return Err(Usage(
            "a command is needed (flock(1)'s file-descriptor form is not supported)".into(),
        ));
    };
    let args: Vec<OsString> = rest.collect();
    if program == "-c" || program == "--command" {
        let [command] = <[OsString; 1]>::try_from(args).map_err(|_| {
            Usage(format!(
                "{} requires exactly one command argument",
                program.to_string_lossy()
            ))
        })?;
        let shell = std::env::var_os("SHELL")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".into());
        return Ok((
            options,
            Action::Run {
                file,
                program: shell,
                args: vec!["-c".into(), command],
            },
        ));
    }
    Ok((
        options,
        Action::Run {
            file,
            program,
            args,
        },
    ))
}

fn is_option(arg: &OsStr) -> bool {
    let bytes = arg.as_encoded_bytes();
    bytes.len() > 1 && bytes[0] == b'-'
}

fn next_value(rest: &mut impl Iterator<Item = OsString>, option: &str) -> Result<String, Usage> {
    rest.next()
        .and_then(|v| v.into_string().ok())
        .ok_or_else(|| Usage(format!("option '{option}' requires an argument")))
}

/// Seconds, fractions allowed (`0.2`), as flock(1).
fn parse_timeout(value: &str) -> Result<Duration, Usage> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| Usage(format!("invalid timeout value: '{value}'")))
}

fn parse_code(value: &str) -> Result<u8, Usage> {
    value.parse::<u8>().map_err(|_| {
        Usage(format!(
            "exit code out of range (expected 0 to 255): '{value}'"
        ))
    })
}

fn run(options: &Options, action: Action) -> u8 {
    match action {
        Action::Help => {
            print!("{USAGE}");
            0
        }
        Action::Version => {
            println!("filelock (tokio-filelock {})", env!("CARGO_PKG_VERSION"));
            0
        }
        Action::Who(file) => who(&lock(options, &file)),
        Action::Run {
            file,
            program,
            args,
        } => run_locked(options, &lock(options, &file), &program, &args),
    }
}

/// The lock the options ask for: the OS lock, or with `--soft` the marker-file lock.
fn lock(options: &Options, file: &std::path::Path) -> FileLock {
    macro_rules! configure {
        ($builder:expr) => {{
            let mut builder = $builder.blocking(!options.nonblock);
            if let Some(timeout) = options.timeout {
                builder = builder.timeout(timeout);
            }
            if !options.quiet {
                builder = builder.on_wait(print_waiting);
            }
            builder.build()
        }};
    }
    if options.soft {
        configure!(SoftFileLock::builder(file))
            .as_file_lock()
            .clone()
    } else {
        configure!(FileLock::builder(file))
    }
}

/// `--who`: prints the holder; 0 when held, 1 when not.
fn who(lock: &FileLock) -> u8 {
    let file = lock.path();
    match lock.blocking_holder() {
        Ok(Some(holder)) => {
            println!("{}: {}", file.display(), held_by(&holder));
            0
        }
        Ok(None) => {
            println!("{}: not locked", file.display());
            1
        }
        Err(err) => fail(&err),
    }
}

/// `exclusive lock held by pid 4242 (cargo build)`
fn held_by(holder: &Holder) -> String {
    let mode = match holder.mode {
        LockMode::Shared => "shared",
        _ => "exclusive",
    };
    format!("{mode} lock held by {holder}")
}

fn run_locked(options: &Options, lock: &FileLock, program: &OsStr, args: &[OsString]) -> u8 {
    let acquired = match options.mode {
        LockMode::Shared => lock.blocking_acquire_shared(),
        _ => lock.blocking_acquire(),
    };
    let guard = match acquired {
        Ok(guard) => guard,
        Err(err @ Error::Timeout { .. }) => {
            // As flock(1), `-n` (and `-w 0`) fail silently; after a wait, say why it ended.
            let waited = !options.nonblock && options.timeout.is_none_or(|t| !t.is_zero());
            if waited && !options.quiet {
                eprintln!("filelock: {err}");
            }
            return options.conflict_code;
        }
        Err(err) => return fail(&err),
    };
    let status = Command::new(program).args(args).status();
    if let Err(err) = guard.release() {
        eprintln!("filelock: {err}");
    }
    match status {
        Ok(status) => exit_code(status),
        Err(err) => {
            eprintln!(
                "filelock: failed to execute {}: {err}",
                program.to_string_lossy()
            );
            if err.kind() == io::ErrorKind::OutOfMemory {
                EX_OSERR
            } else {
                EX_UNAVAILABLE
            }
        }
    }
}

/// `Blocking: waiting for file lock on <path>, held by pid N (<command>)`: the holder through
/// its `Display`, which escapes what the holder process wrote.
fn print_waiting(event: &WaitEvent<'_>) {
    let holder = match event.holder() {
        Some(h) => format!(", held by {h}"),
        None => String::new(),
    };
    eprintln!(
        "Blocking: waiting for file lock on {}{holder}",
        event.path().display()
    );
}

/// The command's exit code; 128 + the signal that killed it, as flock(1).
fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return (code & 0xff) as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return (128 + signal) as u8;
        }
    }
    EX_OSERR
}

/// Prints a lock error; its exit code as flock(1) would choose it.
fn fail(err: &Error) -> u8 {
    eprintln!("filelock: {err}");
    match err {
        Error::Io { op, source, .. } => match source.kind() {
            io::ErrorKind::OutOfMemory => EX_OSERR,
            io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::StorageFull => EX_CANTCREAT,
            io::ErrorKind::Unsupported => EX_UNAVAILABLE,
            _ if *op == tokio_filelock::Op::Lock => EX_DATAERR,
            _ => EX_NOINPUT,
        },
        Error::InvalidPath { .. } | Error::NotAFile { .. } => EX_NOINPUT,
        _ => EX_SOFTWARE,
    }
}
