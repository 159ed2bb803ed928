//! `PgLock` against a real PostgreSQL server that the harness starts (tests/common/pg.rs):
//! exclusion across processes, loss (terminate, connection cut, SIGKILL, restart), fencing,
//! cancellation, holder naming, bad input, and the `Lock` trait over all three backends.
#![cfg(unix)]
// Each test holds the harness's server gate (a std RwLock guard) for its whole body, awaits
// included: every `#[tokio::test]` has a runtime and thread of its own, so nothing else
// waits for it on that thread.
#![allow(clippy::await_holding_lock)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::pg;
use tokio_filelock::postgres::PgLock;
use tokio_filelock::{Error, Lock, LockMode, Lost, ServerError};

/// Bound on `lost()` after a session dies (the documented promise).
const LOST_WITHIN: Duration = Duration::from_secs(2);
/// Bound on any acquire a test expects to succeed.
const ACQUIRE_WAIT: Duration = Duration::from_secs(30);

#[test]
fn child_entry() {
    common::child_entry(run_role);
}

fn run_role(role: &str, args: &[String]) {
    match role {
        // count <conninfo> <name> <counter file> <increments> <async|sync>
        "count" => {
            let lock = PgLock::new(&args[0], &args[1]).unwrap();
            let file = args[2].clone();
            let n: usize = args[3].parse().unwrap();
            common::ready_steady_go();
            if args[4] == "async" {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..2)
                        .map(|_| {
                            let lock = lock.clone();
                            let file = file.clone();
                            tokio::spawn(async move {
                                for _ in 0..n / 2 {
                                    let g = lock.acquire_timeout(ACQUIRE_WAIT).await.unwrap();
                                    increment(&file);
                                    g.release().unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
            } else {
                for _ in 0..n {
                    let g = lock.blocking_acquire_timeout(ACQUIRE_WAIT).unwrap();
                    increment(&file);
                    drop(g);
                }
            }
            common::say("done");
        }
        // hold <conninfo> <name>: acquire, say `held <token>`, hold until killed.
        "hold" => {
            let lock = PgLock::builder(&args[0], &args[1])
                .application_name("holder-role")
                .build()
                .unwrap();
            let g = lock.blocking_acquire().unwrap();
            common::say(format!("held {}", g.fencing_token().unwrap()));
            while common::hear().is_some() {}
            drop(g);
        }
        other => panic!("unknown role {other}"),
    }
}

/// A read-modify-write of a decimal counter file, with a pause in between: without the
/// lock, increments get lost.
fn increment(path: &str) {
    let mut text = String::new();
    std::fs::File::open(path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let n: u64 = text.trim().parse().unwrap_or(0);
    std::thread::sleep(Duration::from_micros(200));
    let mut f = std::fs::File::create(path).unwrap();
    write!(f, "{}", n + 1).unwrap();
}

fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An admin connection (not a lock session) for inspecting the server.
async fn admin(server: &pg::PgServer) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&server.conninfo(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Backend pids of the sessions holding `name`'s advisory lock.
async fn holders(admin: &tokio_postgres::Client, name: &str) -> Vec<i32> {
    advisory_pids(admin, name, 1).await
}

/// Backend pids of the sessions holding an advisory lock on `name`'s key: `objsubid` 1 for
/// the lock itself (one bigint key), 2 for the two-key lock of its halves.
async fn advisory_pids(admin: &tokio_postgres::Client, name: &str, objsubid: i16) -> Vec<i32> {
    let key = PgLock::key(name) as u64;
    admin
        .query(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND classid = $1 AND objid = $2 AND objsubid = $3",
            &[&((key >> 32) as u32), &(key as u32), &objsubid],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn the_key_is_the_documented_sql_expression() {
    let (server, _use) = pg::shared();
    let admin = admin(server).await;
    for name in [
        "nightly",
        "jobs/nightly",
        "é ünïcode",
        "'; DROP TABLE x; --",
    ] {
        let row = admin
            .query_one(
                "SELECT ('x' || left(encode(sha256(convert_to('tokio-filelock:' || $1, 'UTF8')), 'hex'), 16))::bit(64)::bigint",
                &[&name],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), PgLock::key(name), "{name}");
    }
}

#[tokio::test]
async fn two_tasks_sharing_one_lock_exclude_each_other() {
    let (server, _use) = pg::shared();
    let lock = PgLock::new(&server.conninfo(), &unique("share")).unwrap();
    let held = lock.acquire().await.unwrap();
    let other = lock.clone();
    let tried = tokio::spawn(async move { other.try_acquire().await.unwrap().is_none() });
    assert!(tried.await.unwrap(), "a second task entered a held PgLock");
    drop(held);
    // A dropped guard is a free lock on the next line (in this process).
    assert!(lock.try_acquire().await.unwrap().is_some());
}

#[tokio::test]
async fn the_same_owner_waiting_forever_is_a_deadlock() {
    let (server, _use) = pg::shared();
    let lock = PgLock::new(&server.conninfo(), &unique("dead")).unwrap();
    let _held = lock.acquire().await.unwrap();
    let err = tokio::time::timeout(ACQUIRE_WAIT, lock.acquire())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, Error::WouldDeadlock { .. }), "{err}");
}

#[test]
fn processes_async_and_sync_count_exactly() {
    let (server, _use) = pg::shared();
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("counter");
    std::fs::write(&counter, "0").unwrap();
    let name = unique("count");
    let conn = server.conninfo();
    let per = 40;
    let mut children: Vec<_> = ["async", "sync", "async", "sync"]
        .iter()
        .map(|flavor| {
            common::spawn(
                "count",
                &[
                    &conn,
                    &name,
                    counter.to_str().unwrap(),
                    &per.to_string(),
                    flavor,
                ],
            )
        })
        .collect();
    common::start_together(&mut children, |c| c);
    for c in &mut children {
        c.expect_within("done", Duration::from_secs(120));
    }
    let total: usize = std::fs::read_to_string(&counter).unwrap().parse().unwrap();
    assert_eq!(total, 4 * per);
}

#[tokio::test]
async fn a_killed_holder_frees_the_lock_at_once() {
    let (server, _use) = pg::shared();
    let name = unique("kill");
    let mut holder = common::spawn("hold", &[&server.conninfo(), &name]);
    let said = holder.next_message();
    assert!(said.starts_with("held "), "{said}");
    let lock = PgLock::new(&server.conninfo(), &name).unwrap();
    assert!(lock.try_acquire().await.unwrap().is_none());
    holder.kill();
    let g = lock.acquire_timeout(Duration::from_secs(1)).await;
    assert!(g.is_ok(), "not acquired within 1 s of the kill: {g:?}");
}

#[tokio::test]
async fn a_timeout_names_the_holders_host_pid_and_command() {
    let (server, _use) = pg::shared();
    let name = unique("who");
    let mut holder = common::spawn("hold", &[&server.conninfo(), &name]);
    assert!(holder.next_message().starts_with("held "));
    let lock = PgLock::new(&server.conninfo(), &name).unwrap();
    let err = lock
        .acquire_timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    let Error::Timeout {
        holder: Some(h), ..
    } = &err
    else {
        panic!("no holder named: {err}");
    };
    assert_eq!(h.pid, holder.id());
    assert_eq!(
        h.command.as_deref(),
        Some(std::ffi::OsStr::new("holder-role"))
    );
    let session = h.session.as_ref().expect("the session is named");
    assert!(h.host.is_some() && session.address.is_some() && session.since.is_some());
    assert_eq!(h.mode, LockMode::Exclusive);
    let text = err.to_string();
    assert!(text.contains(&format!("pid {}", holder.id())), "{text}");
    assert!(text.contains("holder-role"), "{text}");
    // holder() says the same.
    assert_eq!(lock.holder().await.unwrap().unwrap().pid, holder.id());
}

#[tokio::test]
async fn a_terminated_session_is_lost_and_the_next_token_is_higher() {
    let (server, _use) = pg::shared();
    let admin = admin(server).await;
    let name = unique("term");
    let lock = PgLock::new(&server.conninfo(), &name).unwrap();
    let g = lock.acquire().await.unwrap();
    let first = g.fencing_token().unwrap();
    assert!(!g.is_lost());
    let pids = holders(&admin, &name).await;
    assert_eq!(pids.len(), 1);
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&pids[0]])
        .await
        .unwrap();
    let lost = tokio::time::timeout(LOST_WITHIN, g.lost())
        .await
        .expect("lost() within 2 s");
    assert!(matches!(lost, Lost::SessionEnded { .. }), "{lost}");
    assert!(g.is_lost());
    let other = PgLock::new(&server.conninfo(), &name).unwrap();
    let next = other.acquire_timeout(ACQUIRE_WAIT).await.unwrap();
    assert!(next.fencing_token().unwrap() > first);
    drop(g); // releasing a lost hold is harmless
    assert_eq!(holders(&admin, &name).await.len(), 1);
}

/// A TCP proxy on 127.0.0.1 the test controls: `cut()` drops every connection it carries.
struct Proxy {
    port: u16,
    cut: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(to: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(tokio::sync::Notify::new());
        let cut2 = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let (mut inbound, _) = listener.accept().await.unwrap();
                let cut = cut2.clone();
                tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(("127.0.0.1", to))
                        .await
                        .unwrap();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.notified() => {} // both sockets dropped: the cut
                    }
                });
            }
        });
        Proxy { port, cut, task }
    }

    fn cut(&self) {
        self.cut.notify_waiters();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_cut_connection_is_lost_and_another_client_takes_over() {
    let (server, _use) = pg::shared();
    let proxy = Proxy::start(server.port).await;
    let name = unique("cut");
    let via_proxy = PgLock::new(&server.conninfo_at(proxy.port, pg::USER), &name).unwrap();
    let g = via_proxy.acquire().await.unwrap();
    let first = g.fencing_token().unwrap();
    proxy.cut();
    let lost = tokio::time::timeout(LOST_WITHIN, g.lost())
        .await
        .expect("lost() within 2 s of the cut");
    assert!(matches!(lost, Lost::SessionEnded { .. }));
    let direct = PgLock::new(&server.conninfo(), &name).unwrap();
    let next = direct.acquire_timeout(ACQUIRE_WAIT).await.unwrap();
    assert!(next.fencing_token().unwrap() > first);
}

#[tokio::test]
async fn thousands_of_cancellations_leave_nothing_on_the_server() {
    let (server, _use) = pg::shared();
    let admin = admin(server).await;
    let name = unique("cancel");
    let app = unique("cancel-app");
    let lock = PgLock::builder(&server.conninfo(), &name)
        .application_name(app.clone())
        .build()
        .unwrap();
    let toggler = PgLock::new(&server.conninfo(), &name).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    // A holder that takes and drops the lock, so acquires are cancelled while waiting,
    // while attempting, and just after winning.
    let churn = tokio::spawn(async move {
        while !stop2.load(Ordering::Relaxed) {
            if let Ok(Some(g)) = toggler.try_acquire().await {
                tokio::task::yield_now().await;
                drop(g);
            }
            tokio::task::yield_now().await;
        }
    });
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..2000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let micros = seed % 3000;
        match i % 3 {
            0 => {
                let _ = tokio::time::timeout(Duration::from_micros(micros), lock.acquire()).await;
            }
            1 => {
                tokio::select! {
                    g = lock.acquire_shared() => drop(g),
                    _ = tokio::time::sleep(Duration::from_micros(micros)) => {}
                }
            }
            _ => {
                let l = lock.clone();
                let t = tokio::spawn(async move { l.acquire().await.map(drop) });
                tokio::time::sleep(Duration::from_micros(micros)).await;
                t.abort();
                let _ = t.await;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.await.unwrap();
    // While the handle (and its idle sessions) lives, nobody holds the lock: no cancelled
    // attempt left a win behind in a session kept for reuse. (Closed sessions free their
    // locks as the server sees them go: bounded wait.)
    let mut held = usize::MAX;
    for _ in 0..100 {
        held = holders(&admin, &name).await.len();
        if held == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held, 0, "a cancelled acquire left the lock held");
    assert!(lock.try_acquire().await.unwrap().is_some());
    drop(lock);
    // Sessions close asynchronously: wait (bounded) for the server to see it.
    let mut left = (usize::MAX, usize::MAX);
    for _ in 0..100 {
        let locks = holders(&admin, &name).await.len();
        let sessions: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%' || $1",
                &[&app],
            )
            .await
            .unwrap()
            .get(0);
        left = (locks, sessions as usize);
        if left == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, (0, 0), "(advisory locks held, sessions left)");
    let any: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(any, 0, "some advisory lock is still held");
}

#[test]
fn a_server_that_stops_fails_the_waiter_and_loses_the_holder() {
    let (server, _use) = pg::exclusive();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = unique("restart");
    let holder = PgLock::new(&server.conninfo(), &name).unwrap();
    let (started_waiting, waits) = std::sync::mpsc::channel();
    let started_waiting = std::sync::Mutex::new(started_waiting);
    let waiter = PgLock::builder(&server.conninfo(), &name)
        .on_wait(move |_| {
            let _ = started_waiting.lock().unwrap().send(());
        })
        .build()
        .unwrap();
    let g = rt.block_on(holder.acquire()).unwrap();
    let waiting = rt.spawn({
        let waiter = waiter.clone();
        async move { waiter.acquire().await.map(drop) }
    });
    waits.recv_timeout(ACQUIRE_WAIT).expect("the waiter waits");
    server.stop();
    let result = rt
        .block_on(async { tokio::time::timeout(ACQUIRE_WAIT, waiting).await })
        .expect("the waiter does not hang")
        .unwrap();
    match result {
        Err(Error::Server {
            what: ServerError::SessionLost,
            ..
        }) => {}
        other => panic!("expected SessionLost, got {other:?}"),
    }
    rt.block_on(async { tokio::time::timeout(LOST_WITHIN, g.lost()).await })
        .expect("the holder learns of the loss");
    server.start_again();
    // Back: the lock is free (the server forgot it) and works again.
    let again = rt.block_on(waiter.acquire_timeout(ACQUIRE_WAIT));
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn bad_input_is_a_typed_error_at_once() {
    let (server, _use) = pg::shared();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let within = Duration::from_secs(5); // far below the 3600 s timeout below
    let check = |conn: String, want: ServerError| async move {
        let lock = PgLock::builder(&conn, "x")
            .timeout(Duration::from_secs(3600))
            .build()
            .unwrap();
        let err = tokio::time::timeout(within, lock.acquire())
            .await
            .expect("at once, not after the timeout")
            .unwrap_err();
        match &err {
            Error::Server { what, .. } => assert_eq!(*what, want, "{err}"),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("lock=x"), "{err}");
    };
    check(
        format!("host=127.0.0.1 port={closed_port} user=postgres"),
        ServerError::Unreachable,
    )
    .await;
    check(
        format!(
            "host=127.0.0.1 port={} user={} password=wrong dbname=postgres",
            server.port,
            pg::PASSWORD_USER
        ),
        ServerError::AuthenticationFailed,
    )
    .await;
    check(
        server.conninfo_at(server.port, "no_such_db"),
        ServerError::DatabaseMissing,
    )
    .await;
    assert!(matches!(
        PgLock::new(&server.conninfo(), ""),
        Err(Error::InvalidSpec { .. })
    ));
    assert!(matches!(
        PgLock::new("host=x port=notaport", "x"),
        Err(Error::InvalidSpec { .. })
    ));
    for spec in ["", "postgres://h/db", "postgres://h/db?lock=", "nope://x"] {
        assert!(
            matches!(tokio_filelock::open(spec), Err(Error::InvalidSpec { .. })),
            "{spec}"
        );
    }
}

#[tokio::test]
async fn an_injection_name_locks_that_literal_name_and_touches_nothing_else() {
    let (server, _use) = pg::shared();
    let admin = admin(server).await;
    admin
        .batch_execute("CREATE TABLE IF NOT EXISTS victim (x int)")
        .await
        .unwrap();
    let name = "x'); DROP TABLE victim; SELECT pg_advisory_unlock_all(); --";
    let lock = PgLock::new(&server.conninfo(), name).unwrap();
    let g = lock.acquire().await.unwrap();
    assert_eq!(holders(&admin, name).await.len(), 1);
    admin
        .execute("SELECT count(*) FROM victim", &[])
        .await
        .unwrap();
    assert!(g.fencing_token().is_some());
    drop(g);
}

#[tokio::test]
async fn shared_holders_coexist_and_exclude_exclusive() {
    let (server, _use) = pg::shared();
    let name = unique("shared");
    let a = PgLock::new(&server.conninfo(), &name).unwrap();
    let b = PgLock::new(&server.conninfo(), &name).unwrap();
    let r1 = a.acquire_shared().await.unwrap();
    let r2 = b
        .try_acquire_shared()
        .await
        .unwrap()
        .expect("shared coexist");
    assert_eq!(r1.fencing_token(), None);
    assert!(b.try_acquire().await.unwrap().is_none());
    drop((r1, r2));
    assert!(b.try_acquire().await.unwrap().is_some());
}

#[test]
fn the_sync_facade_needs_no_runtime() {
    let (server, _use) = pg::shared();
    let name = unique("sync");
    let lock = PgLock::new(&server.conninfo(), &name).unwrap();
    let g = lock.blocking_acquire().unwrap();
    assert!(g.fencing_token().is_some());
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    let err = lock
        .blocking_acquire_timeout(Duration::from_millis(100))
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    drop(g);
    assert!(lock.blocking_try_acquire().unwrap().is_some());
}

/// `on_acquired` on the PostgreSQL builder: called once per hold (not on a failed try),
/// with the lock's URL and no file; its error releases the hold on the server.
#[test]
fn the_on_acquired_hook_runs_per_hold_and_its_error_releases() {
    let (server, _use) = pg::shared();
    let name = unique("hook");
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lock = PgLock::builder(&server.conninfo(), &name)
        .on_acquired({
            let (calls, name) = (calls.clone(), name.clone());
            move |acquired| {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                assert!(acquired.file().is_none());
                assert!(acquired.path().to_string_lossy().contains(&name));
                Ok(())
            }
        })
        .build()
        .unwrap();
    let g = lock.blocking_acquire().unwrap();
    assert!(lock.blocking_try_acquire().unwrap().is_none());
    drop(g);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    let refusing = PgLock::builder(&server.conninfo(), &name)
        .on_acquired(|_| Err("refused by the test hook".into()))
        .build()
        .unwrap();
    let err = refusing.blocking_acquire().unwrap_err();
    assert!(
        matches!(err, tokio_filelock::Error::OnAcquired { .. }),
        "{err}"
    );
    // Nothing is left held: another handle takes it at once.
    let other = PgLock::new(&server.conninfo(), &name).unwrap();
    assert!(other.blocking_try_acquire().unwrap().is_some());
}

/// A cancel token ends a PgLock wait at once (it waits announced, with its waiter mark):
/// `Error::Cancelled`, and the mark is withdrawn, so nothing of the waiter stays on the
/// server.
#[tokio::test]
async fn a_cancelled_wait_ends_at_once_and_leaves_no_mark() {
    let (server, _use) = pg::shared();
    let admin = admin(server).await;
    let name = unique("cancel");
    let holder = PgLock::new(&server.conninfo(), &name).unwrap();
    let held = holder.acquire().await.unwrap();
    let token = tokio_filelock::CancelToken::new();
    let waiter = PgLock::builder(&server.conninfo(), &name)
        .poll_interval(Duration::from_secs(3600))
        .cancel_token(&token)
        .build()
        .unwrap();
    let waiting = tokio::spawn(async move { waiter.acquire().await.map(drop) });
    // Bounded: until the waiter has announced itself (holds its mark).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while marks(&admin, &name).await == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiter never announced itself"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    token.cancel();
    let result = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the wait ended at once (a one-hour poll would not)")
        .unwrap();
    assert!(
        matches!(result, Err(tokio_filelock::Error::Cancelled { .. })),
        "{result:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while marks(&admin, &name).await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the waiter's mark stayed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(held);
}

#[tokio::test]
async fn the_trait_runs_one_body_for_all_three_backends() {
    let (server, _use) = pg::shared();
    let dir = tempfile::tempdir().unwrap();
    let specs = [
        dir.path().join("os.lock").display().to_string(),
        format!("soft:{}", dir.path().join("soft.lock").display()),
        server.url(Some(&unique("trait"))),
    ];
    for spec in specs {
        let a: Box<dyn Lock> = tokio_filelock::open(&spec).unwrap();
        let b: Box<dyn Lock> = tokio_filelock::open(&spec).unwrap();
        assert_eq!(a.spec(), spec);
        let held = a.acquire().await.unwrap();
        assert!(!held.is_lost());
        let other = tokio::spawn(async move {
            let tried = b.try_acquire().await.unwrap().is_none();
            let err = b
                .acquire_timeout(Duration::from_millis(100))
                .await
                .unwrap_err();
            (tried, err.is_timeout(), b)
        });
        let (tried, timed_out, b) = other.await.unwrap();
        assert!(tried && timed_out, "{spec}");
        held.release().unwrap();
        let again = tokio::spawn(async move { b.try_acquire().await.unwrap().is_some() });
        assert!(again.await.unwrap(), "{spec}");
    }
}

#[cfg(feature = "cli")]
#[tokio::test]
async fn the_cli_takes_a_postgres_spec() {
    let (server, _use) = pg::shared();
    let name = unique("cli");
    let spec = server.url(Some(&name));
    let cli = env!("CARGO_BIN_EXE_filelock");
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(cli).args(args).output().unwrap()
        })
    };
    let free = run(vec![spec.clone(), "true".into()]).await.unwrap();
    assert!(free.status.success(), "{free:?}");
    let lock = PgLock::new(&server.conninfo(), &name).unwrap();
    let _held = lock.acquire().await.unwrap();
    let who = run(vec!["--who".into(), spec.clone()]).await.unwrap();
    let said = String::from_utf8_lossy(&who.stdout);
    assert!(
        said.contains(&format!("held by pid {}", std::process::id())),
        "{said}"
    );
    // Quiet by default, as flock(1): --verbose names the holder.
    let busy = run(vec![
        "--verbose".into(),
        "-w".into(),
        "0.2".into(),
        spec,
        "true".into(),
    ])
    .await
    .unwrap();
    assert_eq!(busy.status.code(), Some(1), "{busy:?}");
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
}

/// Issue 22: what another session reports of itself (`application_name`, read from
/// `pg_stat_activity`) reaches no terminal raw. A foreign session (not this crate) holds the
/// lock with control characters in its `application_name`; the timeout, the holder and the
/// waiting hook show none of them, and the foreign hold is left alone. (PostgreSQL itself
/// replaces what is not printable ASCII in `application_name` with `?`, so this pins the
/// whole path end to end; the crate's own escaping of raw values is unit-tested in
/// `display_text`.)
#[tokio::test]
async fn a_hostile_application_name_is_shown_escaped() {
    let (server, _use) = pg::shared();
    let name = unique("hostile");
    let foreign = admin(server).await;
    foreign
        .batch_execute("SET application_name = E'evil\\x1b[2J\\x1b[1A\\x07\\x7fname'")
        .await
        .unwrap();
    foreign
        .execute("SELECT pg_advisory_lock($1)", &[&PgLock::key(&name)])
        .await
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook_seen = seen.clone();
    let lock = PgLock::builder(&server.conninfo(), &name)
        .on_wait(move |event| {
            if let Some(holder) = event.holder() {
                hook_seen.lock().unwrap().push(holder.to_string());
            }
        })
        .build()
        .unwrap();
    let err = lock
        .acquire_timeout(Duration::from_millis(300))
        .await
        .unwrap_err();
    let Error::Timeout {
        holder: Some(holder),
        ..
    } = &err
    else {
        panic!("expected a timeout naming the holder: {err:?}");
    };
    let shown = [err.to_string(), holder.to_string()]
        .into_iter()
        .chain(seen.lock().unwrap().iter().cloned())
        .collect::<Vec<_>>();
    assert!(shown.len() >= 3, "the hook named the holder too: {shown:?}");
    for text in &shown {
        assert!(
            !text.chars().any(|c| c.is_control()),
            "a control character reached the display: {text:?}"
        );
        assert!(text.contains("evil"), "the holder is still named: {text:?}");
    }
    let raw = holder
        .command
        .as_ref()
        .expect("the holder's command")
        .to_string_lossy();
    assert!(
        raw.starts_with("evil?[2J"),
        "as the server keeps it: {raw:?}"
    );
    // The foreign hold is untouched.
    assert_eq!(holders(&foreign, &name).await.len(), 1);
}

/// Tokens of every exclusive acquisition, from two handles in this process and a holder
/// process, alternating: each is greater than the one before. Then the server crashes (a
/// backend SIGKILLed: the postmaster ends every session and replays the WAL, as after a
/// power cut with `fsync` on) and comes back: the next token is still greater (the token
/// sequence is WAL-logged ahead of the values it hands out).
#[test]
fn fencing_tokens_increase_across_clients_and_a_crash_restart() {
    let (server, _use) = pg::exclusive();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let name = unique("tokens");
    let a = PgLock::new(&server.conninfo(), &name).unwrap();
    let b = PgLock::new(&server.conninfo(), &name).unwrap();
    let mut last = 0u64;
    let mut next = |token: u64, who: &str| {
        assert!(token > last, "{who}: token {token} after {last}");
        last = token;
    };
    // More than the 32 values the server logs ahead at a time.
    for i in 0..40 {
        let lock = if i % 2 == 0 { &a } else { &b };
        let g = rt.block_on(lock.acquire_timeout(ACQUIRE_WAIT)).unwrap();
        next(g.fencing_token().unwrap(), "in-process handle");
        drop(g);
        if i % 10 == 9 {
            // A release in flight ends before the child's attempt: settle it here.
            drop(rt.block_on(a.acquire_timeout(ACQUIRE_WAIT)).unwrap());
            let mut child = common::spawn("hold", &[&server.conninfo(), &name]);
            let said = child.next_message();
            let token: u64 = said.strip_prefix("held ").unwrap().parse().unwrap();
            next(token, "holder process");
            child.close_stdin();
            assert!(child.wait_success());
        }
    }
    let before = last;
    // A hold of another lock, to see the crash end every session.
    let witness = PgLock::new(&server.conninfo(), &unique("witness")).unwrap();
    let witness = rt.block_on(witness.acquire()).unwrap();
    // Crash: SIGKILL one backend; the postmaster restarts the cluster through recovery.
    rt.block_on(async {
        let admin = admin(server).await;
        let pid: i32 = admin
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(ACQUIRE_WAIT, witness.lost())
            .await
            .expect("the crash ends every session");
    });
    // Back (bounded): a new session gets through.
    let mut back = None;
    for _ in 0..300 {
        let fresh = PgLock::new(&server.conninfo(), &name).unwrap();
        if let Ok(g) = rt.block_on(fresh.acquire_timeout(ACQUIRE_WAIT)) {
            back = Some(g);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let g = back.expect("the server came back after the crash");
    let after = g.fencing_token().unwrap();
    assert!(
        after > before,
        "token {after} after the crash, {before} before"
    );
}

/// A connection that collects the payloads of notifications on the crate's channel.
async fn listener(
    server: &pg::PgServer,
) -> (
    tokio_postgres::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let (client, mut conn) = tokio_postgres::connect(&server.conninfo(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
            if let tokio_postgres::AsyncMessage::Notification(note) = message {
                let _ = tx.send(note.payload().to_owned());
            }
        }
    });
    client.batch_execute("LISTEN tokio_filelock").await.unwrap();
    (client, rx)
}

/// Sessions holding `name`'s waiter mark (the two-key advisory lock of the key's halves).
async fn marks(admin: &tokio_postgres::Client, name: &str) -> usize {
    advisory_pids(admin, name, 2).await.len()
}

/// A release notifies other clients only when one waits: with nobody waiting (a plain
/// release, and a release taken over by the next acquire of the handle) no notification
/// reaches the channel; a waiter holds its mark while it waits, the release then
/// notifies, the waiter gets the lock and drops its mark.
#[tokio::test]
async fn a_release_notifies_only_when_a_waiter_waits() {
    let (server, _use) = pg::shared();
    let admin = admin(server).await;
    let (_listening, mut notes) = listener(server).await;
    let name = unique("notify");
    let key = PgLock::key(&name).to_string();
    let lock = PgLock::new(&server.conninfo(), &name).unwrap();
    let other = PgLock::new(&server.conninfo(), &name).unwrap();
    drop(lock.acquire().await.unwrap());
    drop(lock.acquire().await.unwrap()); // takes over the unlock of the first
    // Another handle's acquire waits for this process's unlocks in flight: after it, every
    // release above has committed, and so has any notification it sent.
    let held = other.acquire_timeout(ACQUIRE_WAIT).await.unwrap();
    admin
        .execute("SELECT pg_notify('tokio_filelock', 'barrier')", &[])
        .await
        .unwrap();
    let first = tokio::time::timeout(ACQUIRE_WAIT, notes.recv()).await;
    assert_eq!(first.unwrap().as_deref(), Some("barrier"));

    let (waits, mut waiting) = tokio::sync::mpsc::unbounded_channel();
    let waiter = PgLock::builder(&server.conninfo(), &name)
        .poll_interval(Duration::from_secs(3600))
        .on_wait(move |_| {
            let _ = waits.send(());
        })
        .build()
        .unwrap();
    let task = tokio::spawn(async move { waiter.acquire_timeout(ACQUIRE_WAIT).await });
    tokio::time::timeout(ACQUIRE_WAIT, waiting.recv())
        .await
        .unwrap();
    let mut marked = 0;
    for _ in 0..300 {
        marked = marks(&admin, &name).await;
        if marked == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(marked, 1, "the waiter holds its mark while it waits");
    drop(held);
    let note = tokio::time::timeout(ACQUIRE_WAIT, notes.recv()).await;
    assert_eq!(note.unwrap(), Some(key));
    let g = tokio::time::timeout(ACQUIRE_WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(marks(&admin, &name).await, 0, "the winner dropped its mark");
    drop(g);
}
