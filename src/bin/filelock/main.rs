//! `filelock`: run a command under a file lock, a drop-in for util-linux `flock(1)` that
//! can say who holds the lock while it waits.
//!
//! ```text
//! filelock [options] FILE|DIRECTORY COMMAND [ARGUMENT...]
//! filelock [options] FILE|DIRECTORY -c COMMAND
//! filelock [options] NUMBER
//! filelock --who FILE
//! ```
//!
//! Installed with `cargo install tokio-filelock --features cli`.

#[cfg(unix)]
mod sys;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use tokio_filelock::{Error, FileLock, Holder, LockGuard, LockMode, SoftFileLock, WaitEvent};

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
 filelock [options] <file>|<directory> <command> [<argument>...]
 filelock [options] <file>|<directory> -c <command>
 filelock [options] <number>
 filelock --who <file>

Run a command while holding a file lock (the flock(2) lock of flock(1), cargo,
Python filelock), as util-linux flock(1) does; --verbose also says who holds it.

The command inherits the locked descriptor: the lock lasts as long as the command
and any process it leaves running with it, even if filelock itself is killed.
Signals are not forwarded: a signal sent to filelock alone does not reach the
command (as with flock(1)); signal the process group. With -o (or --soft) the lock
stays in filelock only, so filelock ignores SIGINT, SIGTERM and SIGHUP until the
command ends; the command gets them as usual.

<number> locks (or with -u unlocks) that open descriptor of the caller, as in
  exec 9>>app.lock; filelock -n 9 || exit 1; ...; filelock -u 9
A missing lock file is created, but not a missing directory above it (as with
flock(1): exit 66). A file the user may read but not write is locked read-only.

Options:
 -s, --shared             get a shared lock
 -x, -e, --exclusive      get an exclusive lock (default)
 -u, --unlock             remove a lock (descriptor form only)
 -n, --nonblock, --nb     fail rather than wait
 -w, --timeout <secs>     wait for a limited amount of time (0: one attempt)
 -E, --conflict-exit-code <number>
                          exit code after conflict or timeout (default 1)
 -o, --close              the command does not inherit the lock's descriptor: a
                          process it leaves behind does not keep the lock
 -F, --no-fork            execute the command in place of filelock (no child
                          process; the command holds the lock); not with -o
 -c, --command <command>  (after <file>) run a single command string through $SHELL
     --verbose            say when it has to wait and who holds the lock, why it
                          failed, how long getting the lock took
 -q, --quiet              print no waiting, conflict or timeout message
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
    unlock: bool,
    nonblock: bool,
    timeout: Option<Duration>,
    conflict_code: u8,
    close: bool,
    no_fork: bool,
    verbose: bool,
    quiet: bool,
    soft: bool,
    who: bool,
}

impl Options {
    /// Whether conflict, timeout and waiting messages are printed.
    fn chatty(&self) -> bool {
        self.verbose && !self.quiet
    }

    /// Whether a conflict is reported at once, without waiting.
    #[cfg(unix)]
    fn no_wait(&self) -> bool {
        self.nonblock || self.timeout.is_some_and(|t| t.is_zero())
    }
}

#[derive(Debug)]
enum Action {
    Help,
    Version,
    Who(PathBuf),
    /// Lock (or unlock) an open descriptor of the caller; no command.
    Descriptor(i32),
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
        unlock: false,
        nonblock: false,
        timeout: None,
        conflict_code: 1,
        close: false,
        no_fork: false,
        verbose: false,
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
                "unlock" => options.unlock = true,
                "nonblock" | "nonblocking" | "nb" => options.nonblock = true,
                "timeout" | "wait" => options.timeout = Some(parse_timeout(&value()?)?),
                "conflict-exit-code" => options.conflict_code = parse_code(&value()?)?,
                "close" => options.close = true,
                "no-fork" => options.no_fork = true,
                "verbose" => options.verbose = true,
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
                'u' => options.unlock = true,
                'n' => options.nonblock = true,
                'o' => options.close = true,
                'F' => options.no_fork = true,
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
                _ => return Err(Usage(format!("invalid option -- '{flag}'"))),
            }
        }
    }
    if options.no_fork && options.close {
        return Err(Usage(
            "the --no-fork and --close options are incompatible".into(),
        ));
    }
    if options.no_fork && options.soft {
        return Err(Usage(
            "--no-fork cannot keep a --soft lock (its marker is removed by filelock after \
             the command)"
                .into(),
        ));
    }
    let Some(file) = rest.next() else {
        return Err(Usage("not enough arguments".into()));
    };
    if options.who {
        if let Some(extra) = rest.next() {
            return Err(Usage(format!(
                "--who takes only the lock file, not '{}'",
                extra.to_string_lossy()
            )));
        }
        return Ok((options, Action::Who(PathBuf::from(file))));
    }
    let Some(program) = rest.next() else {
        // The descriptor form, as flock(1): a lone argument is a descriptor number.
        let fd = file
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
            .filter(|fd| *fd >= 0)
            .ok_or_else(|| Usage(format!("bad file descriptor: '{}'", file.to_string_lossy())))?;
        if options.soft {
            return Err(Usage("--soft needs a lock file, not a descriptor".into()));
        }
        return Ok((options, Action::Descriptor(fd)));
    };
    if options.unlock {
        return Err(Usage(
            "-u applies to a descriptor: filelock -u <number>".into(),
        ));
    }
    let file = PathBuf::from(file);
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
        Action::Who(file) => match lock(options, &file) {
            Ok(lock) => who(&lock),
            Err(err) => fail(&err),
        },
        Action::Descriptor(fd) => descriptor(options, fd),
        Action::Run {
            file,
            program,
            args,
        } => match take(options, &file) {
            Ok(held) => run_command(options, held, &program, &args),
            Err(code) => code,
        },
    }
}

/// The lock a `<file>` argument names: a file lock (the OS lock, or the marker-file lock),
/// or a PostgreSQL lock for a `postgres://` spec.
enum CliLock {
    File(FileLock),
    Lease(tokio_filelock::SoftFileLease),
    SoftRw(tokio_filelock::SoftReadWriteLock),
    Soft(SoftFileLock),
    Strict(tokio_filelock::StrictSoftFileLock),
    #[cfg(feature = "postgres")]
    Pg(tokio_filelock::postgres::PgLock),
}

impl CliLock {
    fn path(&self) -> &Path {
        match self {
            CliLock::File(lock) => lock.path(),
            CliLock::Lease(lock) => lock.path(),
            CliLock::SoftRw(lock) => lock.path(),
            CliLock::Soft(lock) => lock.path(),
            CliLock::Strict(lock) => lock.path(),
            #[cfg(feature = "postgres")]
            CliLock::Pg(lock) => lock.path(),
        }
    }

    fn blocking_holder(&self) -> Result<Option<Holder>, Error> {
        match self {
            CliLock::File(lock) => lock.blocking_holder(),
            CliLock::Lease(lock) => lock.blocking_holder(),
            CliLock::SoftRw(lock) => lock.blocking_holder(),
            CliLock::Soft(lock) => lock.blocking_holder(),
            CliLock::Strict(lock) => lock.blocking_holder(),
            #[cfg(feature = "postgres")]
            CliLock::Pg(lock) => lock.blocking_holder(),
        }
    }

    fn blocking_acquire(&self, mode: LockMode) -> Result<LockGuard, Error> {
        match (self, mode) {
            (CliLock::File(lock), LockMode::Shared) => lock.blocking_acquire_shared(),
            (CliLock::File(lock), _) => lock.blocking_acquire(),
            (CliLock::Lease(lock), LockMode::Shared) => Err(Error::Unsupported {
                path: lock.path().to_path_buf(),
                reason: "a lease is exclusive only",
                source: None,
            }),
            (CliLock::Lease(lock), _) => lock.blocking_acquire(),
            (CliLock::SoftRw(lock), LockMode::Shared) => lock.blocking_acquire_shared(),
            (CliLock::SoftRw(lock), _) => lock.blocking_acquire(),
            (CliLock::Soft(lock), LockMode::Shared) => Err(Error::Unsupported {
                path: lock.path().to_path_buf(),
                reason: "a soft lock is exclusive only; shared locks need the OS lock",
                source: None,
            }),
            (CliLock::Soft(lock), _) => lock.blocking_acquire(),
            (CliLock::Strict(lock), LockMode::Shared) => Err(Error::Unsupported {
                path: lock.path().to_path_buf(),
                reason: "a strict soft lock is exclusive only; shared locks need the OS lock",
                source: None,
            }),
            (CliLock::Strict(lock), _) => lock.blocking_acquire(),
            #[cfg(feature = "postgres")]
            (CliLock::Pg(lock), LockMode::Shared) => lock.blocking_acquire_shared(),
            #[cfg(feature = "postgres")]
            (CliLock::Pg(lock), _) => lock.blocking_acquire(),
        }
    }
}

/// The lock the options ask for: the OS lock, with `--soft` (or `soft:PATH`) the
/// marker-file lock, for `strict:PATH` the strict (claim) lock, for `postgres://...?lock=NAME` a PostgreSQL lock.
fn lock(options: &Options, file: &Path) -> Result<CliLock, Error> {
    macro_rules! configure {
        ($builder:expr) => {{
            let mut builder = $builder.blocking(!options.nonblock);
            if let Some(timeout) = options.timeout {
                builder = builder.timeout(timeout);
            }
            if options.chatty() {
                builder = builder.on_wait(print_waiting);
            }
            builder.build()
        }};
    }
    let spec = file.to_str().unwrap_or("");
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return Ok(CliLock::Pg(configure!(
            tokio_filelock::postgres::PgLock::builder_from_url(spec)?
        )?));
        #[cfg(not(feature = "postgres"))]
        return Err(Error::InvalidSpec {
            path: file.to_path_buf(),
            reason: "this filelock was built without the `postgres` feature".into(),
        });
    }
    if spec.starts_with("lease:") {
        return Ok(CliLock::Lease(configure!(
            tokio_filelock::SoftFileLease::builder_from_spec(spec)?
        )));
    }
    if spec.starts_with("softrw:") {
        return Ok(CliLock::SoftRw(configure!(
            tokio_filelock::SoftReadWriteLock::builder_from_spec(spec)?
        )));
    }
    if let Some(path) = spec.strip_prefix("soft:") {
        return Ok(CliLock::Soft(configure!(SoftFileLock::builder(path))));
    }
    if let Some(path) = spec.strip_prefix("strict:") {
        return Ok(CliLock::Strict(configure!(
            tokio_filelock::StrictSoftFileLock::builder(path)
        )));
    }
    Ok(if options.soft {
        CliLock::Soft(configure!(SoftFileLock::builder(file)))
    } else {
        CliLock::File(configure!(FileLock::builder(file)))
    })
}

/// Whether `file` names something other than a lock file: a `soft:`, `strict:`, `lease:` or
/// `postgres://` spec.
fn is_spec(file: &Path) -> bool {
    file.to_str().is_some_and(|s| {
        s.starts_with("soft:")
            || s.starts_with("strict:")
            || s.starts_with("lease:")
            || s.starts_with("softrw:")
            || s.starts_with("postgres://")
            || s.starts_with("postgresql://")
    })
}

/// `--who`: prints the holder; 0 when held, 1 when not.
fn who(lock: &CliLock) -> u8 {
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

/// A lock this process holds for its command.
enum Held {
    /// A lock file, through the library.
    Guard(LockGuard),
    /// A directory, locked through a descriptor of our own (the library locks files only).
    #[cfg(unix)]
    Directory(fs::File),
}

impl Held {
    /// The descriptor that holds the OS lock (none for a soft lock).
    #[cfg(unix)]
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        match self {
            Held::Guard(guard) => guard.raw_fd(),
            Held::Directory(dir) => Some(dir.as_raw_fd()),
        }
    }

    /// Lets go after the command ended. When the command inherited the descriptor, the
    /// lock is not unlocked (that would unlock it for a process the command left running
    /// with it): only this process's descriptor closes, when it exits.
    fn finish(self, inherited: bool) {
        match self {
            Held::Guard(guard) if inherited => std::mem::forget(guard),
            Held::Guard(guard) => {
                if let Err(err) = guard.release() {
                    eprintln!("filelock: {err}");
                }
            }
            #[cfg(unix)]
            Held::Directory(dir) => drop(dir), // closing never unlocks another copy
        }
    }
}

/// Takes the lock on `file` (a lock file, or a directory as flock(1) locks one). `Err` is
/// the exit code, after the message (if any) is printed.
fn take(options: &Options, file: &Path) -> Result<Held, u8> {
    // As flock(1), missing parent directories are an error, not created: a drop-in must
    // not turn a mistyped path into a directory tree.
    if !is_spec(file)
        && let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty())
        && let Err(err) = fs::metadata(parent)
    {
        eprintln!("filelock: cannot open lock file {}: {err}", file.display());
        return Err(open_error_code(&err));
    }
    #[cfg(unix)]
    if !options.soft && fs::metadata(file).is_ok_and(|m| m.is_dir()) {
        return take_directory(options, file).map(Held::Directory);
    }
    let lock = lock(options, file).map_err(|err| fail(&err))?;
    let start = Instant::now();
    let acquired = lock.blocking_acquire(options.mode);
    match acquired {
        Ok(guard) => {
            took(options, start);
            Ok(Held::Guard(guard))
        }
        Err(mut err @ Error::Timeout { .. }) => {
            if options.chatty() {
                // A single attempt (`-n`, `-w 0`) does not look the holder up (that costs a
                // read of /proc/locks); --verbose asks for it.
                if let Error::Timeout { holder, .. } = &mut err
                    && holder.is_none()
                {
                    *holder = lock.blocking_holder().ok().flatten().map(Box::new);
                }
                eprintln!("filelock: {err}");
            }
            Err(options.conflict_code)
        }
        Err(err) => Err(fail(&err)),
    }
}

/// A directory: opened read-only and locked as flock(1) does.
#[cfg(unix)]
fn take_directory(options: &Options, dir: &Path) -> Result<fs::File, u8> {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(dir).map_err(|err| {
        eprintln!("filelock: cannot open lock file {}: {err}", dir.display());
        open_error_code(&err)
    })?;
    let operation = match options.mode {
        LockMode::Shared => sys::Operation::Shared,
        _ => sys::Operation::Exclusive,
    };
    lock_descriptor(options, file.as_raw_fd(), operation, &dir.display())?;
    Ok(file)
}

/// The exit code flock(1) gives when it cannot open the lock file.
fn open_error_code(err: &io::Error) -> u8 {
    match err.kind() {
        io::ErrorKind::OutOfMemory => EX_OSERR,
        io::ErrorKind::ReadOnlyFilesystem | io::ErrorKind::StorageFull => EX_CANTCREAT,
        _ => match err.raw_os_error() {
            #[cfg(unix)]
            Some(libc::EMFILE) | Some(libc::ENFILE) => EX_OSERR,
            _ => EX_NOINPUT,
        },
    }
}

/// The descriptor form: locks or unlocks descriptor `fd` of the caller.
#[cfg(unix)]
fn descriptor(options: &Options, fd: i32) -> u8 {
    let operation = match (options.unlock, options.mode) {
        (true, _) => sys::Operation::Unlock,
        (false, LockMode::Shared) => sys::Operation::Shared,
        (false, _) => sys::Operation::Exclusive,
    };
    let start = Instant::now();
    match lock_descriptor(options, fd, operation, &fd) {
        Ok(()) => {
            took(options, start);
            0
        }
        Err(code) => code,
    }
}

#[cfg(not(unix))]
fn descriptor(_options: &Options, _fd: i32) -> u8 {
    eprintln!("filelock: the descriptor form is available on Unix only");
    EX_USAGE
}

/// First attempt, then (unless told not to wait) a blocking `flock(2)` as flock(1) makes
/// it, or with `-w`, attempts until the deadline: 1 ms apart, doubling up to 50 ms, the last
/// sleep clamped to the deadline and one final attempt there. Polling here cannot leave the
/// caller's descriptor locked after a timeout, as a blocking call left behind in a thread
/// could. `what` names the target in messages.
#[cfg(unix)]
fn lock_descriptor(
    options: &Options,
    fd: i32,
    operation: sys::Operation,
    what: &dyn std::fmt::Display,
) -> Result<(), u8> {
    const FIRST_PAUSE: Duration = Duration::from_millis(1);
    const MAX_PAUSE: Duration = Duration::from_millis(50);
    let failed = |err: io::Error| {
        eprintln!("filelock: {what}: {err}");
        match err.raw_os_error() {
            Some(libc::ENOLCK) | Some(libc::ENOMEM) => EX_OSERR,
            _ => EX_DATAERR,
        }
    };
    if sys::flock(fd, operation, true).map_err(failed)? {
        return Ok(());
    }
    if options.no_wait() {
        if options.chatty() {
            eprintln!("filelock: failed to get lock on {what}");
        }
        return Err(options.conflict_code);
    }
    if options.chatty() {
        eprintln!("Blocking: waiting for file lock on {what}");
    }
    let Some(timeout) = options.timeout else {
        return sys::flock(fd, operation, false).map(drop).map_err(failed);
    };
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_PAUSE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if options.chatty() {
                eprintln!("filelock: timeout while waiting to get lock on {what}");
            }
            return Err(options.conflict_code);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(MAX_PAUSE);
        if sys::flock(fd, operation, true).map_err(failed)? {
            return Ok(());
        }
    }
}

/// `--verbose`: how long getting the lock took (stdout, as flock(1)).
fn took(options: &Options, start: Instant) {
    if options.chatty() {
        println!(
            "filelock: getting lock took {:.6} seconds",
            start.elapsed().as_secs_f64()
        );
    }
}

/// Runs the command while `held`; its exit code.
fn run_command(options: &Options, held: Held, program: &OsStr, args: &[OsString]) -> u8 {
    let mut command = Command::new(program);
    command.args(args);
    if options.chatty() {
        println!("filelock: executing {}", program.to_string_lossy());
    }
    // The command inherits the locked descriptor, unless -o (or a soft lock, or Windows).
    #[cfg(unix)]
    let inherited = match held.fd() {
        Some(fd) if !options.close => {
            if options.no_fork {
                return exec(held, fd, command, program);
            }
            sys::inherit(&mut command, fd);
            true
        }
        _ => false,
    };
    #[cfg(not(unix))]
    let inherited = {
        if options.no_fork {
            eprintln!("filelock: --no-fork is available on Unix only");
            return EX_USAGE;
        }
        false
    };
    // Only this process holds the lock: it has to outlive the command.
    #[cfg(unix)]
    if !inherited && let Err(err) = sys::outlive_signals() {
        eprintln!("filelock: cannot set signal dispositions: {err}");
        held.finish(false);
        return EX_OSERR;
    }
    let status = command.status();
    held.finish(inherited && status.is_ok());
    match status {
        Ok(status) => exit_code(status),
        Err(err) => cannot_execute(program, &err),
    }
}

/// `-F`: the command replaces this process and keeps the descriptor.
#[cfg(unix)]
fn exec(held: Held, fd: std::os::fd::RawFd, mut command: Command, program: &OsStr) -> u8 {
    use std::os::unix::process::CommandExt;
    if let Err(err) = sys::clear_cloexec(fd) {
        eprintln!("filelock: cannot hand the lock to the command: {err}");
        held.finish(false);
        return EX_OSERR;
    }
    let err = command.exec(); // returns only on failure
    held.finish(false);
    cannot_execute(program, &err)
}

fn cannot_execute(program: &OsStr, err: &io::Error) -> u8 {
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

/// `--verbose`: `Blocking: waiting for file lock on <path> (held by pid N (<command>))`
fn print_waiting(event: &WaitEvent<'_>) {
    let path = event.path().display();
    match event.holder() {
        Some(holder) => eprintln!("Blocking: waiting for file lock on {path} (held by {holder})"),
        None => eprintln!("Blocking: waiting for file lock on {path}"),
    }
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
        Error::InvalidSpec { .. } => EX_USAGE,
        Error::Server { .. } => EX_UNAVAILABLE,
        _ => EX_SOFTWARE,
    }
}
