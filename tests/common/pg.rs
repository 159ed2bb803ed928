//! A real PostgreSQL server for the tests, started once per test binary from the installed
//! server binaries and stopped when the binary exits (also when tests fail).
//!
//! - Binaries: `$TOKIO_FILELOCK_PG_BIN`, else `initdb`/`pg_ctl` on `PATH`, else the newest
//!   `/usr/lib/postgresql/*/bin`, else the `pgserver` wheel's PostgreSQL 16 binaries in a
//!   venv under `target/` (made on first use with `python3 -m venv` + pip). With none of
//!   them the run fails with one line naming the fix.
//! - `initdb` refuses to run as root: as root, the server runs as `nobody` (`runuser -u
//!   nobody --`), in a temp dir it owns (data dir, Unix socket, log), `fsync=off`, on a free
//!   TCP port on 127.0.0.1.
//! - Stopped by an `atexit` handler (`pg_ctl stop -m immediate`, bounded) registered when
//!   it starts: libtest ends the process with `exit` whether tests passed or failed, so the
//!   server, its data dir and its socket go with it. A run that was SIGKILLed leaves its
//!   dir behind: the next run stops such servers (dir named after a dead pid) first.
//! - Tests that stop or restart the server take [`exclusive`]; the others [`shared`].

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The role and database the tests use (superuser, trust auth on 127.0.0.1).
pub const USER: &str = "postgres";
/// A role that must authenticate with a password (`right`), to see authentication refused.
pub const PASSWORD_USER: &str = "needs_password";
/// How long starting or stopping the server may take before the harness gives up.
const PG_CTL_WAIT_SECS: u32 = 30;
const DIR_PREFIX: &str = "tfl-pg-";

/// A running server.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    as_nobody: bool,
}

static SERVER: OnceLock<PgServer> = OnceLock::new();
static USE: RwLock<()> = RwLock::new(());

/// The server, started on first use.
pub fn server() -> &'static PgServer {
    SERVER.get_or_init(|| PgServer::start().unwrap_or_else(|e| panic!("{e}")))
}

/// For a test that only uses the server.
pub fn shared() -> (&'static PgServer, RwLockReadGuard<'static, ()>) {
    let s = server();
    (s, USE.read().unwrap_or_else(|e| e.into_inner()))
}

/// For a test that stops or restarts the server: no other test runs meanwhile.
pub fn exclusive() -> (&'static PgServer, RwLockWriteGuard<'static, ()>) {
    let s = server();
    (s, USE.write().unwrap_or_else(|e| e.into_inner()))
}

impl PgServer {
    /// `postgres://` URL of database `db` as the superuser, lock name `lock` (if any).
    pub fn url(&self, lock: Option<&str>) -> String {
        let mut url = format!("postgres://{USER}@127.0.0.1:{}/{USER}", self.port);
        if let Some(lock) = lock {
            url.push_str("?lock=");
            url.push_str(lock);
        }
        url
    }

    /// libpq key=value connection string of database `db`, over TCP to `port`.
    pub fn conninfo_at(&self, port: u16, db: &str) -> String {
        format!("host=127.0.0.1 port={port} user={USER} dbname={db} connect_timeout=5")
    }

    /// libpq key=value connection string of the test database.
    pub fn conninfo(&self) -> String {
        self.conninfo_at(self.port, USER)
    }

    /// Stops the server now (`-m fast`: sessions get FATAL 57P01).
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]).expect("pg_ctl stop");
    }

    /// Starts it again on the same port.
    pub fn start_again(&self) {
        self.pg_ctl(&["start", "-l", &self.log(), "-o", &self.options()])
            .expect("pg_ctl start");
    }

    fn log(&self) -> String {
        self.dir.join("log").display().to_string()
    }

    fn options(&self) -> String {
        format!(
            "-k {} -c listen_addresses=127.0.0.1 -p {} -c fsync=off -c max_connections=300",
            self.dir.display(),
            self.port
        )
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let wait = PG_CTL_WAIT_SECS.to_string();
        let data = self.data();
        let mut all = vec!["-D", &data, "-w", "-t", &wait];
        all.extend_from_slice(args);
        run(self.command("pg_ctl", &all))
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        command(&self.bin, self.as_nobody, program, args)
    }

    fn start() -> Result<PgServer, String> {
        stop_leftovers();
        let bin = find_binaries()?;
        let as_nobody = is_root();
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if as_nobody {
            run(plain("chown", &["nobody", &dir.display().to_string()]))?;
        }
        let mut server = PgServer {
            bin,
            dir,
            port: 0,
            as_nobody,
        };
        let data = server.data();
        run(server.command(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                USER,
                "--no-sync",
                "-E",
                "UTF8",
            ],
        ))?;
        // Trust for the tests' superuser; a password for one role (authentication refused).
        let hba = format!(
            "local all all trust\nhost all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n"
        );
        std::fs::write(Path::new(&data).join("pg_hba.conf"), hba).map_err(|e| e.to_string())?;
        // Register the stop before the start: a start that half-worked is stopped too.
        register_stop();
        let mut last = String::new();
        for _ in 0..3 {
            server.port = free_port();
            SERVER_DIR.get_or_init(|| (server.bin.clone(), server.dir.clone(), server.as_nobody));
            match server.pg_ctl(&["start", "-l", &server.log(), "-o", &server.options()]) {
                Ok(()) => {
                    server.admin_sql(&format!(
                        "CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD 'right'"
                    ))?;
                    return Ok(server);
                }
                Err(e) => last = e,
            }
        }
        Err(format!("PostgreSQL did not start: {last}"))
    }

    /// Runs one SQL statement as the superuser through the Unix socket (psql is beside the
    /// server binaries).
    fn admin_sql(&self, sql: &str) -> Result<(), String> {
        let port = self.port.to_string();
        let host = self.dir.display().to_string();
        run(self.command(
            "psql",
            &[
                "-X", "-q", "-h", &host, "-p", &port, "-U", USER, "-d", USER, "-c", sql,
            ],
        ))
    }
}

static SERVER_DIR: OnceLock<(PathBuf, PathBuf, bool)> = OnceLock::new();

extern "C" fn stop_at_exit() {
    if let Some((bin, dir, as_nobody)) = SERVER_DIR.get() {
        stop_server(bin, dir, *as_nobody);
    }
}

fn stop_server(bin: &Path, dir: &Path, as_nobody: bool) {
    let data = dir.join("data").display().to_string();
    let mut stop = command(
        bin,
        as_nobody,
        "pg_ctl",
        &["-D", &data, "-w", "-t", "10", "stop", "-m", "immediate"],
    );
    let _ = run(&mut stop);
    let _ = std::fs::remove_dir_all(dir);
}

fn register_stop() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // SAFETY: registers a plain `extern "C" fn` with no arguments; it only reads a
        // OnceLock and runs a bounded child process.
        unsafe { libc::atexit(stop_at_exit) };
    });
}

/// Servers of earlier runs that were killed before their exit handler ran.
fn stop_leftovers() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(DIR_PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(bin) = find_binaries() {
            stop_server(&bin, &entry.path(), is_root());
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn command(bin: &Path, as_nobody: bool, program: &str, args: &[&str]) -> Command {
    let exe = bin.join(program);
    let mut c = if as_nobody {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    c.args(args).current_dir("/");
    c
}

fn plain(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

/// Runs a command to its end; its output goes into the error.
fn run(mut c: impl std::borrow::BorrowMut<Command>) -> Result<(), String> {
    let c = c.borrow_mut();
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{c:?}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{c:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Where `initdb`, `pg_ctl` and `psql` are.
fn find_binaries() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND.get_or_init(find_binaries_once).clone()
}

fn find_binaries_once() -> Result<PathBuf, String> {
    let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("TOKIO_FILELOCK_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    // The Debian layout first (psql sits beside initdb there), then PATH.
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| has(d))
        .collect();
    debian.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(dir) = debian.pop() {
        return Ok(dir);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if has(&dir) && dir.join("psql").is_file() {
            return Ok(dir);
        }
    }
    pgserver_wheel().map_err(|e| {
        format!(
            "no PostgreSQL server binaries (initdb, pg_ctl, psql) found, and the pgserver \
             fallback failed ({e}): install them (`apt-get install postgresql`) or set \
             TOKIO_FILELOCK_PG_BIN to their directory"
        )
    })
}

/// The `pgserver` wheel's PostgreSQL 16 binaries, in a venv under `target/` (made once).
/// The venv must be traversable by `nobody` when running as root.
fn pgserver_wheel() -> Result<PathBuf, String> {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let venv = target.join("test-venv-pg");
    let find = || -> Option<PathBuf> {
        let lib = venv.join("lib");
        std::fs::read_dir(&lib).ok()?.flatten().find_map(|py| {
            let bin = py.path().join("site-packages/pgserver/pginstall/bin");
            bin.join("initdb").is_file().then_some(bin)
        })
    };
    if let Some(bin) = find() {
        return Ok(bin);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    run(plain(
        "python3",
        &["-m", "venv", &venv.display().to_string()],
    ))?;
    let pip = venv.join("bin/pip").display().to_string();
    run(plain(&pip, &["install", "--quiet", "pgserver"]))?;
    if Instant::now() > deadline {
        return Err("installing pgserver took too long".into());
    }
    let bin = find().ok_or("the pgserver wheel has no pginstall/bin")?;
    // nobody must reach the binaries: open up the path from target/ down.
    let _ = run(plain("chmod", &["-R", "a+rX", &venv.display().to_string()]));
    let _ = run(plain("chmod", &["a+x", &target.display().to_string()]));
    let _ = std::io::stderr().write_all(b"using the pgserver wheel's PostgreSQL\n");
    Ok(bin)
}
