//! PostgreSQL benchmarks of `PgLock`, each against a baseline measured in the same run:
//! uncontended acquire + release against one `SELECT 1` round trip on the same connection
//! setup, and the cross-process hand-off against a raw session waiting in
//! `SELECT pg_advisory_lock($1)`. Prints Markdown (the PostgreSQL section of BENCHMARKS.md;
//! `scripts/bench.sh` writes the whole file).
//!
//! ```text
//! cargo run --release --features postgres --example bench_pg            # full run
//! cargo run --release --features postgres --example bench_pg -- --quick # a few samples
//! ```
//!
//! It starts its own server from the installed binaries (`$TOKIO_FILELOCK_PG_BIN`, else the
//! newest `/usr/lib/postgresql/*/bin`, else `initdb`/`pg_ctl` on `PATH`): `initdb` + `pg_ctl`
//! in a temp dir (as `nobody` through `runuser` when run as root, since `initdb` refuses
//! root), `fsync=off`, TCP on a free port of 127.0.0.1. The server is stopped and its dir
//! removed when the run ends: normally, on a panic (unwinding), and on SIGINT/SIGTERM. A run
//! that was SIGKILLed leaves its dir (named after its pid) behind; the next run stops that
//! server first. Without server binaries it prints a section saying so and exits 0.
//!
//! Linux is the target (CLOCK_MONOTONIC is shared by all processes, so a time taken in one
//! process can be compared with a time taken in another).

#[cfg(unix)]
fn main() {
    unix::main();
}

#[cfg(not(unix))]
fn main() {
    eprintln!("bench_pg runs on Unix only");
}

#[cfg(unix)]
mod unix {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::path::{Path, PathBuf};
    use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use tokio_filelock::postgres::PgLock;
    use tokio_postgres::{Client, NoTls, Statement};

    // ---------------------------------------------------------------- the server

    const DIR_PREFIX: &str = "tfl-bench-pg-";
    const USER: &str = "postgres";

    /// A running server; stopped (and its dir removed) when dropped.
    struct PgServer {
        bin: PathBuf,
        dir: PathBuf,
        port: u16,
        as_nobody: bool,
    }

    /// What the signal thread needs to stop the server.
    static RUNNING: OnceLock<(PathBuf, PathBuf, bool)> = OnceLock::new();

    impl PgServer {
        fn start(bin: PathBuf) -> Result<PgServer, String> {
            let as_nobody = is_root();
            let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            // From here on, a failure stops what was started and removes the dir (Drop).
            let mut server = PgServer {
                bin,
                dir,
                port: 0,
                as_nobody,
            };
            let _ = RUNNING.set((server.bin.clone(), server.dir.clone(), as_nobody));
            if as_nobody {
                run(Command::new("chown").arg("nobody").arg(&server.dir))?;
            }
            let data = server.data();
            run(&mut server.command(
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
            let mut last = String::new();
            for _ in 0..3 {
                server.port = free_port()?;
                let options = format!(
                    "-k {} -c listen_addresses=127.0.0.1 -p {} -c fsync=off -c max_connections=50",
                    server.dir.display(),
                    server.port
                );
                let log = server.dir.join("log").display().to_string();
                match server.pg_ctl(&["start", "-l", &log, "-o", &options]) {
                    Ok(()) => return Ok(server),
                    Err(e) => last = e,
                }
            }
            Err(format!("PostgreSQL did not start: {last}"))
        }

        fn conninfo(&self) -> String {
            format!(
                "host=127.0.0.1 port={} user={USER} dbname={USER} connect_timeout=5",
                self.port
            )
        }

        fn version(&self) -> String {
            let out = self
                .command("postgres", &["--version"])
                .stdin(Stdio::null())
                .output();
            match out {
                Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                Err(_) => "?".into(),
            }
        }

        fn data(&self) -> String {
            self.dir.join("data").display().to_string()
        }

        fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
            let data = self.data();
            let mut all = vec!["-D", &data, "-w", "-t", "30"];
            all.extend_from_slice(args);
            run(&mut self.command("pg_ctl", &all))
        }

        fn command(&self, program: &str, args: &[&str]) -> Command {
            command(&self.bin, self.as_nobody, program, args)
        }
    }

    impl Drop for PgServer {
        fn drop(&mut self) {
            stop_server(&self.bin, &self.dir, self.as_nobody);
        }
    }

    fn stop_server(bin: &Path, dir: &Path, as_nobody: bool) {
        if dir.join("data/postmaster.pid").exists() {
            let data = dir.join("data").display().to_string();
            let _ = run(&mut command(
                bin,
                as_nobody,
                "pg_ctl",
                &["-D", &data, "-w", "-t", "10", "stop", "-m", "immediate"],
            ));
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Servers of earlier runs that were killed before they could stop them.
    fn stop_leftovers(bin: &Path) {
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
            if !Path::new(&format!("/proc/{pid}")).exists() {
                stop_server(bin, &entry.path(), is_root());
            }
        }
    }

    /// SIGINT and SIGTERM go to a thread that stops the server and exits: blocked here,
    /// before any other thread exists, so every thread inherits the mask (children do not:
    /// `std::process::Command` resets it).
    fn stop_on_signals() {
        // SAFETY: an all-zero sigset_t is a valid value; sigemptyset/sigaddset initialise it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the mask change affects this thread only, and
        // no other thread exists yet.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        std::thread::spawn(move || {
            let mut signal: libc::c_int = 0;
            // SAFETY: `set` and `signal` are valid for the call.
            unsafe { libc::sigwait(&set, &mut signal) };
            if let Some((bin, dir, as_nobody)) = RUNNING.get() {
                stop_server(bin, dir, *as_nobody);
            }
            eprintln!("bench_pg: stopped by signal {signal}; server stopped");
            std::process::exit(128 + signal);
        });
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    fn free_port() -> Result<u16, String> {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
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

    /// Runs a command to its end; its output goes into the error.
    fn run(c: &mut Command) -> Result<(), String> {
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

    /// Where `initdb` and `pg_ctl` are.
    fn find_binaries() -> Option<PathBuf> {
        let has = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
        if let Some(dir) = std::env::var_os("TOKIO_FILELOCK_PG_BIN") {
            return Some(PathBuf::from(dir));
        }
        let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let version = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                has(&bin).then_some((version, bin))
            })
            .collect();
        debian.sort();
        if let Some((_, dir)) = debian.pop() {
            return Some(dir);
        }
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).find(|d| has(d))
    }

    // ---------------------------------------------------------------- helpers

    /// Nanoseconds of CLOCK_MONOTONIC: comparable between processes.
    fn mono_ns() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    /// A plain tokio-postgres client on the current runtime (the connection driven by a
    /// spawned task, as `PgLock` drives its sessions), with its statements prepared.
    struct Raw {
        client: Client,
        select1: Statement,
        lock: Statement,
        try_lock: Statement,
        unlock: Statement,
    }

    impl Raw {
        async fn connect(conninfo: &str) -> Raw {
            let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await.unwrap();
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Raw {
                select1: client.prepare("SELECT 1").await.unwrap(),
                lock: client.prepare("SELECT pg_advisory_lock($1)").await.unwrap(),
                try_lock: client
                    .prepare("SELECT pg_try_advisory_lock($1)")
                    .await
                    .unwrap(),
                unlock: client
                    .prepare("SELECT pg_advisory_unlock($1)")
                    .await
                    .unwrap(),
                client,
            }
        }

        async fn select1(&self) {
            let row = self.client.query_one(&self.select1, &[]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), 1);
        }

        async fn lock(&self, key: i64) {
            self.client.query_one(&self.lock, &[&key]).await.unwrap();
        }

        async fn try_lock(&self, key: i64) -> bool {
            let row = self
                .client
                .query_one(&self.try_lock, &[&key])
                .await
                .unwrap();
            row.get(0)
        }

        async fn unlock(&self, key: i64) {
            let row = self.client.query_one(&self.unlock, &[&key]).await.unwrap();
            assert!(row.get::<_, bool>(0), "unlock of a lock not held");
        }
    }

    struct Proc {
        child: Child,
        stdin: Option<ChildStdin>,
        stdout: BufReader<ChildStdout>,
    }

    impl Proc {
        fn rust(role: &str, args: &[&str]) -> Proc {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .arg("child")
                .arg(role)
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

        fn tell(&mut self, line: &str) {
            let stdin = self.stdin.as_mut().unwrap();
            writeln!(stdin, "{line}").unwrap();
            stdin.flush().unwrap();
        }

        fn hear(&mut self) -> String {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "child ended");
            line.trim_end().to_owned()
        }

        fn expect(&mut self, what: &str) {
            let got = self.hear();
            assert_eq!(got, what);
        }
    }

    impl Drop for Proc {
        fn drop(&mut self) {
            self.stdin = None; // the child ends at EOF
            let deadline = Instant::now() + Duration::from_secs(5);
            while let Ok(None) = self.child.try_wait() {
                if Instant::now() > deadline {
                    let _ = self.child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = self.child.wait();
        }
    }

    fn say(line: impl AsRef<str>) {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", line.as_ref()).unwrap();
        out.flush().unwrap();
    }

    fn hear() -> Option<String> {
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end().to_owned()),
        }
    }

    fn percentile(sorted: &[f64], p: f64) -> f64 {
        if sorted.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }

    fn sorted(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }

    fn fmt_us(us: f64) -> String {
        if us >= 10_000.0 {
            format!("{:.1} ms", us / 1000.0)
        } else if us >= 1000.0 {
            format!("{:.2} ms", us / 1000.0)
        } else {
            format!("{us:.1} µs")
        }
    }

    fn verdict(met: bool, how: String) -> String {
        if met {
            format!("**met** ({how})")
        } else {
            format!("**missed** ({how})")
        }
    }

    /// A small deterministic spread of hold times, so that a poller's phase varies.
    fn hold_time(i: usize) -> Duration {
        Duration::from_micros(5_000 + (i as u64 * 7_919) % 15_000)
    }

    // ---------------------------------------------------------------- children

    fn child(role: &str, args: &[String]) {
        let conninfo = &args[0];
        let name = &args[1];
        let key = PgLock::key(name);
        match role {
            // On each "go": say "waiting", acquire, say "t1 <ns>", release.
            "waiter-async" => {
                let rt = runtime();
                let lock = PgLock::new(conninfo, name).unwrap();
                while hear().is_some() {
                    say("waiting");
                    let guard = rt.block_on(lock.acquire()).unwrap();
                    say(format!("t1 {}", mono_ns()));
                    drop(guard);
                }
            }
            "waiter-sync" => {
                let lock = PgLock::new(conninfo, name).unwrap();
                while hear().is_some() {
                    say("waiting");
                    let guard = lock.blocking_acquire().unwrap();
                    say(format!("t1 {}", mono_ns()));
                    drop(guard);
                }
            }
            // A session waiting in `pg_advisory_lock`: what the server alone costs.
            "waiter-raw" => {
                let rt = runtime();
                rt.block_on(async {
                    let raw = Raw::connect(conninfo).await;
                    while hear().is_some() {
                        say("waiting");
                        raw.lock(key).await;
                        say(format!("t1 {}", mono_ns()));
                        raw.unlock(key).await;
                    }
                });
            }
            other => panic!("unknown role {other}"),
        }
    }

    // ---------------------------------------------------------------- uncontended

    /// The statements a `PgLock` sends for an uncontended exclusive acquire + release with
    /// fencing (copied from src/postgres/: keep them in step).
    const FENCE_SEQUENCE: &str = "CREATE SEQUENCE IF NOT EXISTS \
         tokio_filelock_fence_seq AS bigint MINVALUE 1 NO CYCLE CACHE 1";
    const FENCE_ACQUIRE: &str = "SELECT CASE WHEN pg_try_advisory_lock($1) \
         THEN nextval('tokio_filelock_fence_seq') END";
    const RELEASE: &str = "SELECT u, CASE WHEN w THEN pg_notify('tokio_filelock', $1::text) END \
         FROM (SELECT u, CASE WHEN pg_try_advisory_lock($2, $3) \
         THEN NOT pg_advisory_unlock($2, $3) ELSE true END AS w \
         FROM (SELECT pg_advisory_unlock($1) AS u OFFSET 0) a OFFSET 0) b";

    /// What one sample of a variant does (the async body runs in a spawned task).
    #[derive(Clone, Copy, PartialEq)]
    enum Cycle {
        Select1,
        RawLock,
        RawPg,
        RawPgParsed,
        PgNoFence,
        Pg,
    }

    async fn uncontended_samples(
        conninfo: String,
        rounds: usize,
        per_round: usize,
        warmup: usize,
    ) -> Vec<(Cycle, Vec<f64>)> {
        use tokio_postgres::types::{ToSql, Type};
        let raw = Raw::connect(&conninfo).await;
        raw.client.batch_execute(FENCE_SEQUENCE).await.unwrap();
        let fence = raw
            .client
            .prepare_typed(FENCE_ACQUIRE, &[Type::INT8])
            .await
            .unwrap();
        let release = raw
            .client
            .prepare_typed(RELEASE, &[Type::INT8, Type::INT4, Type::INT4])
            .await
            .unwrap();
        let pg = PgLock::new(&conninfo, "bench-uncontended").unwrap();
        let pg_nofence = PgLock::builder(&conninfo, "bench-uncontended-nofence")
            .fencing(false)
            .build()
            .unwrap();
        let raw_name = "bench-uncontended-raw";
        let raw_key = PgLock::key(raw_name);
        // The waiter mark: the two halves of the key.
        let (hi, lo) = (
            (raw_key as u64 >> 32) as u32 as i32,
            raw_key as u64 as u32 as i32,
        );
        let cycles = [
            Cycle::Select1,
            Cycle::RawLock,
            Cycle::RawPg,
            Cycle::RawPgParsed,
            Cycle::PgNoFence,
            Cycle::Pg,
        ];
        let mut out: Vec<(Cycle, Vec<f64>)> = cycles.iter().map(|c| (*c, Vec::new())).collect();
        // Rounds interleave the variants, so that a change of machine load touches all.
        for _ in 0..rounds {
            for (cycle, samples) in &mut out {
                for i in 0..warmup + per_round {
                    let t = Instant::now();
                    match cycle {
                        Cycle::Select1 => raw.select1().await,
                        Cycle::RawLock => {
                            assert!(raw.try_lock(raw_key).await);
                            raw.unlock(raw_key).await;
                        }
                        Cycle::RawPg => {
                            let row = raw.client.query_one(&fence, &[&raw_key]).await;
                            assert!(row.unwrap().get::<_, Option<i64>>(0).is_some());
                            let row = raw.client.query_one(&release, &[&raw_key, &hi, &lo]).await;
                            assert!(row.unwrap().get::<_, bool>(0));
                        }
                        Cycle::RawPgParsed => {
                            let rows = raw
                                .client
                                .query_typed(FENCE_ACQUIRE, &[(&raw_key, Type::INT8)])
                                .await;
                            assert!(rows.unwrap()[0].get::<_, Option<i64>>(0).is_some());
                            let params: [(&(dyn ToSql + Sync), Type); 3] =
                                [(&raw_key, Type::INT8), (&hi, Type::INT4), (&lo, Type::INT4)];
                            let rows = raw.client.query_typed(RELEASE, &params).await;
                            assert!(rows.unwrap()[0].get::<_, bool>(0));
                        }
                        // The release is sent when the guard drops; the next acquire of the
                        // same lock in this process waits for it to end, so in a loop each
                        // sample holds one whole acquire + release.
                        Cycle::PgNoFence => drop(pg_nofence.acquire().await.unwrap()),
                        Cycle::Pg => drop(pg.acquire().await.unwrap()),
                    }
                    if i >= warmup {
                        samples.push(t.elapsed().as_nanos() as f64 / 1000.0);
                    }
                }
            }
        }
        // The last release of each lock ends before the sessions go.
        drop(pg.acquire().await.unwrap());
        drop(pg_nofence.acquire().await.unwrap());
        out.into_iter().map(|(c, v)| (c, sorted(v))).collect()
    }

    fn uncontended(conninfo: &str, quick: bool) {
        let (rounds, per_round, warmup) = if quick { (2, 50, 20) } else { (20, 200, 50) };
        let rt = runtime();
        let results = rt
            .block_on(rt.spawn(uncontended_samples(
                conninfo.to_owned(),
                rounds,
                per_round,
                warmup,
            )))
            .unwrap();
        let p50 = |c: Cycle| percentile(&results.iter().find(|r| r.0 == c).unwrap().1, 50.0);
        let rtt = p50(Cycle::Select1);

        println!("## PostgreSQL: uncontended acquire + release\n");
        println!(
            "One acquire and one release of a `PgLock` with nobody else on the lock, in a \
             spawned task of a multi-thread runtime (2 workers), against the server this run \
             started on 127.0.0.1 (TCP). The baseline is one round trip on the same \
             connection setup: a tokio-postgres client whose connection is driven by a task \
             of the same runtime, running the prepared `SELECT 1`. A dropped `PgLock` guard's \
             unlock is sent by the next acquire of the same handle (or, when none comes \
             first, by a task), so a sample of the loop holds one whole acquire + release. \
             {rounds} rounds interleave the variants ({warmup} warm-up + {per_round} samples \
             each per round: {} samples per row).\n",
            rounds * per_round
        );
        println!("| benchmark | p50 | p99 | p50 in round trips |");
        println!("|---|---|---|---|");
        for (cycle, samples) in &results {
            let name = match cycle {
                Cycle::Select1 => "prepared `SELECT 1` (baseline: one round trip)",
                Cycle::RawLock => {
                    "prepared `pg_try_advisory_lock` + `pg_advisory_unlock` (any session lock: two round trips)"
                }
                Cycle::RawPg => {
                    "`PgLock`'s attempt (with `nextval`) + its release (with the waiter probe), prepared, sent one after the other by a plain client"
                }
                Cycle::RawPgParsed => "the same, parsed each time (`query_typed`)",
                Cycle::PgNoFence => "`PgLock` `acquire().await` + drop, `fencing(false)`",
                Cycle::Pg => "`PgLock` `acquire().await` + drop (default: fencing token)",
            };
            println!(
                "| {name} | {} | {} | {:.2} |",
                fmt_us(percentile(samples, 50.0)),
                fmt_us(percentile(samples, 99.0)),
                percentile(samples, 50.0) / rtt
            );
        }
        let ratio = p50(Cycle::Pg) / rtt;
        println!(
            "\nGoal: default acquire + release ≤ 3 round trips: {}\n",
            verdict(ratio <= 3.0, format!("{ratio:.2}"))
        );
        let rt = |us: f64| format!("{} ({:.2} round trips)", fmt_us(us), us / rtt);
        println!(
            "Where the time goes: any session lock needs an attempt and an unlock. A `PgLock` \
             sends the unlock when the guard drops, from a task; when the next acquire of \
             the same handle comes first, as in this loop, it takes the unlock over and sends \
             it with its attempt in one statement (unlock, probe, attempt), so a sample here \
             is one statement of one round trip plus the crate's own work. The attempt draws \
             the fencing token from a sequence in the same statement (`CASE WHEN \
             pg_try_advisory_lock($1) THEN nextval(...) END`: no row write, no commit of its \
             own); the release probes the waiter mark and sends `pg_notify` only when a \
             waiter announced itself (nobody does here). The third row sends the attempt and \
             the release as two statements, one after the other, from a plain client (what a \
             `PgLock` costs when the release is not taken over): `PgLock` in this loop takes \
             {:.2}x its time. Fencing costs {} over `fencing(false)`. Each statement is \
             prepared on the session's first use; parsing both every time would cost {} \
             more. A round trip on one machine is mostly process wake-ups (the client's \
             threads, the server backend): it is slower on an idle machine whose CPUs sleep \
             than on a busy one, so compare the ratios.\n",
            p50(Cycle::Pg) / p50(Cycle::RawPg),
            rt(p50(Cycle::Pg) - p50(Cycle::PgNoFence)),
            rt(p50(Cycle::RawPgParsed) - p50(Cycle::RawPg)),
        );
    }

    // ---------------------------------------------------------------- hand-off

    /// Hand-off latencies (µs): the holder (this process) starts its release at t0; the
    /// waiter (another process, waiting 5-20 ms already) returns from its acquire at t1.
    fn handoff_samples(
        rt: &tokio::runtime::Runtime,
        holder: &Holder<'_>,
        mut waiter: Proc,
        warmup: usize,
        samples: usize,
    ) -> Vec<f64> {
        let mut out = Vec::with_capacity(samples);
        for i in 0..warmup + samples {
            let guard = rt.block_on(holder.acquire());
            waiter.tell("go");
            waiter.expect("waiting");
            std::thread::sleep(hold_time(i));
            let t0 = mono_ns();
            rt.block_on(holder.release(guard));
            let line = waiter.hear();
            let t1: u64 = line.strip_prefix("t1 ").unwrap().parse().unwrap();
            if i >= warmup {
                out.push(t1.saturating_sub(t0) as f64 / 1000.0);
            }
        }
        sorted(out)
    }

    /// The holder's side of a hand-off.
    enum Holder<'a> {
        Raw(&'a Raw, i64),
        Pg(&'a PgLock),
    }

    impl Holder<'_> {
        async fn acquire(&self) -> Option<tokio_filelock::LockGuard> {
            match self {
                Holder::Raw(raw, key) => {
                    raw.lock(*key).await;
                    None
                }
                Holder::Pg(lock) => Some(lock.acquire().await.unwrap()),
            }
        }

        /// Starts the release: a `PgLock` guard sends its unlock when dropped; the raw
        /// session sends `pg_advisory_unlock` and waits for its reply.
        async fn release(&self, guard: Option<tokio_filelock::LockGuard>) {
            match self {
                Holder::Raw(raw, key) => raw.unlock(*key).await,
                Holder::Pg(_) => drop(guard),
            }
        }
    }

    fn handoff(conninfo: &str, quick: bool) {
        let (warmup, samples) = if quick { (5, 20) } else { (20, 200) };
        let rt = runtime();
        let name = "bench-handoff";
        let key = PgLock::key(name);
        let raw = rt.block_on(Raw::connect(conninfo));
        let lock = PgLock::new(conninfo, name).unwrap();
        let args = [conninfo, name];
        let base = handoff_samples(
            &rt,
            &Holder::Raw(&raw, key),
            Proc::rust("waiter-raw", &args),
            warmup,
            samples,
        );
        let ours = handoff_samples(
            &rt,
            &Holder::Pg(&lock),
            Proc::rust("waiter-async", &args),
            warmup,
            samples,
        );
        let sync = handoff_samples(
            &rt,
            &Holder::Pg(&lock),
            Proc::rust("waiter-sync", &args),
            warmup,
            samples,
        );
        // Baseline again at the end: a drift of the machine's load shows as two rows apart.
        let base2 = handoff_samples(
            &rt,
            &Holder::Raw(&raw, key),
            Proc::rust("waiter-raw", &args),
            warmup,
            samples,
        );

        println!("## PostgreSQL: cross-process hand-off latency\n");
        println!(
            "The holder (this process) starts its release at a recorded CLOCK_MONOTONIC \
             time (a `PgLock` guard is dropped; the raw session sends \
             `pg_advisory_unlock`); the waiter (another process, waiting 5-20 ms already) \
             records when its acquire returns. The baseline waiter is a raw session blocked \
             in `SELECT pg_advisory_lock($1)` (the server hands the lock over itself); it is \
             measured first and again last. `PgLock` waiters have the default settings \
             (fencing token, `LISTEN`, 200 ms poll cap). {warmup} warm-up + {samples} \
             hand-offs each.\n"
        );
        let mut both = base.clone();
        both.extend_from_slice(&base2);
        let both = sorted(both);
        let base_p50 = percentile(&both, 50.0);
        println!("| waiter | p50 | p99 | p50 vs raw |");
        println!("|---|---|---|---|");
        let row = |name: &str, v: &[f64]| {
            println!(
                "| {name} | {} | {} | {:.2}x |",
                fmt_us(percentile(v, 50.0)),
                fmt_us(percentile(v, 99.0)),
                percentile(v, 50.0) / base_p50
            );
        };
        row(
            "raw session waiting in `pg_advisory_lock` (baseline, first)",
            &base,
        );
        row("`PgLock` `acquire().await` in `block_on`", &ours);
        row("`PgLock` `blocking_acquire()`", &sync);
        row(
            "raw session waiting in `pg_advisory_lock` (baseline, last)",
            &base2,
        );
        let ratio = percentile(&ours, 50.0) / base_p50;
        println!(
            "\nThe ratios are against the p50 of both baseline runs together ({}).\n",
            fmt_us(base_p50)
        );
        println!(
            "Goal: `PgLock` hand-off p50 ≤ 2x the raw waiting session: {}\n",
            verdict(ratio <= 2.0, format!("{ratio:.2}x"))
        );
        println!(
            "Why the gap: the server hands the lock to a session waiting in \
             `pg_advisory_lock` itself (the unlocking backend wakes the waiting one, which \
             replies). A `PgLock` waiter never waits in a lock call (a cancelled or timed-out \
             wait would leave the server waiting, and later holding): the unlock's \
             `pg_notify` reaches the waiter's backend at commit, which sends the \
             notification, and the waiter then makes its attempt (with the fencing `nextval`): one \
             round trip and one statement more than the raw session. Both sides also wake \
             processes that slept through the hold (client and server backend): on a busy \
             machine each such wake-up waits for a CPU, which is why a hand-off costs more \
             than the round trips of the section above.\n"
        );
    }

    // ---------------------------------------------------------------- main

    pub(super) fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.first().map(String::as_str) == Some("child") {
            child(&args[1], &args[2..]);
            return;
        }
        let quick = args.iter().any(|a| a == "--quick");
        let Some(bin) = find_binaries() else {
            println!("## PostgreSQL\n");
            println!(
                "Not measured: no PostgreSQL server binaries (`initdb`, `pg_ctl`) were found \
                 (install them, or set TOKIO_FILELOCK_PG_BIN).\n"
            );
            return;
        };
        stop_on_signals();
        stop_leftovers(&bin);
        let server = PgServer::start(bin).unwrap_or_else(|e| panic!("{e}"));
        let conninfo = server.conninfo();
        eprintln!(
            "bench_pg: {} on 127.0.0.1:{}",
            server.version(),
            server.port
        );
        println!("## PostgreSQL\n");
        println!(
            "{}, started by the harness for this run (`initdb` + `pg_ctl`, `fsync=off`, TCP \
             on 127.0.0.1, same machine: a round trip is loopback plus two process \
             wake-ups). Command: `cargo run --release --features postgres --example \
             bench_pg`.\n",
            server.version()
        );
        uncontended(&conninfo, quick);
        handoff(&conninfo, quick);
        drop(server);
    }
}
