//! One server session of a `PgLock`: connecting (keepalives, `application_name`, session
//! settings), the task that drives the connection (notifications, and the end of the
//! session for `lost()`), and closing it.

use std::future::poll_fn;
use std::path::Path;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Row, Statement};

use crate::{Error, ServerError};

/// The `LISTEN`/`NOTIFY` channel on which releases announce the key they freed.
pub(crate) const CHANNEL: &str = "tokio_filelock";

/// Typed parameters of a statement.
pub(crate) type Params<'a> = &'a [(&'a (dyn ToSql + Sync), Type)];

/// Client-side TCP keepalives of every lock session (the server side is set in the startup
/// options): a dead peer is noticed within about idle + interval x retries = 5 s.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(2);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_RETRIES: u32 = 3;
/// Connect timeout when the connection string sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `application_name` the server keeps (bytes).
const APPLICATION_NAME_MAX: usize = 63;

/// Session settings sent at connect (PostgreSQL 14+): an idle holder must never be timed
/// out, orphaned sessions leave fast, and the server's keepalives free the lock of a holder
/// whose network went silent in about 5 s instead of the kernel's default 2 h 11 min.
const SESSION_OPTIONS: &str = "-c idle_session_timeout=0 -c idle_in_transaction_session_timeout=0 \
     -c client_connection_check_interval=1000 -c tcp_keepalives_idle=2 \
     -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3";

/// An open session; closing it (drop) ends the server backend, and with it every lock it
/// held.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) client: Client,
    /// `Some(reason)` once the connection ended.
    pub(crate) ended: watch::Receiver<Option<String>>,
    /// Payloads of notifications on [`CHANNEL`] (keys released, as decimal text).
    pub(crate) notes: mpsc::UnboundedReceiver<String>,
    task: JoinHandle<()>,
    /// `LISTEN` was sent on this session.
    pub(crate) listening: bool,
    /// The session holds the waiter mark of the lock it waits for (see
    /// `statements::ANNOUNCE`): it must drop it before it is reused.
    pub(crate) announced: bool,
    /// The lock-path statements prepared on this session (see
    /// [`query_lock_path`](Session::query_lock_path)).
    prepared: Vec<(&'static str, Statement)>,
}

impl Session {
    /// Connects with the lock session's settings, driving the connection on the current
    /// runtime.
    pub(crate) async fn connect(
        config: &Config,
        application: &str,
        path: &Path,
    ) -> Result<Session, Error> {
        let mut config = config.clone();
        let options = match config.get_options() {
            Some(user) if !user.is_empty() => format!("{user} {SESSION_OPTIONS}"),
            _ => SESSION_OPTIONS.to_owned(),
        };
        config
            .options(&options)
            .application_name(application)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (client, mut connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| server_error(path, e, ServerError::Unreachable))?;
        let (ended_tx, ended) = watch::channel(None);
        let (notes_tx, notes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let reason = loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(note))) => {
                        if note.channel() == CHANNEL {
                            let _ = notes_tx.send(note.payload().to_owned());
                        }
                    }
                    Some(Ok(_)) => {} // notices
                    Some(Err(e)) => break e.to_string(),
                    None => break "the server closed the connection".to_owned(),
                }
            };
            let _ = ended_tx.send(Some(reason));
        });
        Ok(Session {
            client,
            ended,
            notes,
            task,
            listening: false,
            announced: false,
            prepared: Vec::new(),
        })
    }

    /// Runs a statement of the lock path (attempt, unlock): one round trip. The first
    /// run on this session sends it with its parameter types (`query_typed`: parse, bind
    /// and execute at once) and prepares it in the same round trip (the two requests are
    /// pipelined); later runs execute the prepared statement, which skips parsing it.
    pub(crate) async fn query_lock_path(
        &mut self,
        sql: &'static str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.query_lock_path_after(None, sql, params).await.1
    }

    /// Runs the lock-path statements `first` and `sql` (each as
    /// [`query_lock_path`](Self::query_lock_path)), pipelined: one round trip, and the
    /// server runs them in this order (each in a transaction of its own).
    pub(crate) async fn query_lock_path_after(
        &mut self,
        first: Option<(&'static str, Params<'_>)>,
        sql: &'static str,
        params: Params<'_>,
    ) -> (
        Option<Result<Vec<Row>, tokio_postgres::Error>>,
        Result<Vec<Row>, tokio_postgres::Error>,
    ) {
        let find = |sql: &str| {
            self.prepared
                .iter()
                .find(|(s, _)| *s == sql)
                .map(|(_, statement)| statement.clone())
        };
        let first_prepared = first.and_then(|(sql, _)| find(sql));
        let prepared = find(sql);
        let client = &self.client;
        // `join!` polls in order, and each query is sent at its first poll.
        let first = async {
            match first {
                Some((sql, params)) => Some((sql, run(client, first_prepared, sql, params).await)),
                None => None,
            }
        };
        let (first, (rows, new)) = tokio::join!(first, run(client, prepared, sql, params));
        let first = first.map(|(first_sql, (rows, new))| {
            if let Some(statement) = new {
                self.prepared.push((first_sql, statement));
            }
            rows
        });
        if let Some(statement) = new {
            self.prepared.push((sql, statement));
        }
        (first, rows)
    }

    /// `Some(reason)` when the session has ended.
    pub(crate) fn end_reason(&self) -> Option<String> {
        if let Some(reason) = self.ended.borrow().clone() {
            return Some(reason);
        }
        self.client
            .is_closed()
            .then(|| "the connection is closed".to_owned())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropping the client alone would wait for pending replies (a waiting query would
        // go on holding or taking the lock): stop driving the connection, which closes the
        // socket; the server ends the backend and frees its locks.
        self.task.abort();
    }
}

/// Runs `sql`: the prepared statement when there is one; else parsed, with the statement
/// prepared in the same round trip (returned, to be kept; a failed prepare only costs the
/// next run a parse).
async fn run(
    client: &Client,
    prepared: Option<Statement>,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> (Result<Vec<Row>, tokio_postgres::Error>, Option<Statement>) {
    if let Some(statement) = prepared {
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.0).collect();
        return (client.query(&statement, &values).await, None);
    }
    let types: Vec<Type> = params.iter().map(|p| p.1.clone()).collect();
    let (rows, prepared) = tokio::join!(
        client.query_typed(sql, params),
        client.prepare_typed(sql, &types)
    );
    (rows, prepared.ok())
}

/// Classifies a client error.
pub(crate) fn server_error(path: &Path, e: tokio_postgres::Error, default: ServerError) -> Error {
    let what = match e.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            ServerError::AuthenticationFailed
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => ServerError::DatabaseMissing,
        Some(code)
            if *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::IDLE_SESSION_TIMEOUT =>
        {
            ServerError::SessionLost
        }
        Some(_) => ServerError::Query,
        None if e.is_closed() => ServerError::SessionLost,
        None => default,
    };
    Error::Server {
        path: path.to_path_buf(),
        what,
        source: Box::new(e),
    }
}

/// `tfl h=<host> p=<pid> <command>`, cut to the 63 bytes the server keeps: what another
/// client sees of the holder (even without privileges on `pg_stat_activity`).
pub(crate) fn application_name(command: Option<&str>) -> String {
    let host = String::from_utf8_lossy(&crate::sys::soft_calls::hostname()).into_owned();
    let command = match command {
        Some(command) => command.to_owned(),
        None => {
            let mut args = std::env::args();
            let program = args
                .next()
                .map(|p| {
                    Path::new(&p)
                        .file_name()
                        .map_or(p.clone(), |n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_default();
            std::iter::once(program)
                .chain(args)
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let mut name = format!("tfl h={host} p={} {command}", std::process::id());
    name.retain(|c| !c.is_control());
    if name.len() > APPLICATION_NAME_MAX {
        let mut end = APPLICATION_NAME_MAX;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// Host, pid and command from an `application_name` written by [`application_name`].
pub(crate) fn parse_application_name(name: &str) -> Option<(String, u32, String)> {
    let rest = name.strip_prefix("tfl h=")?;
    let (host, rest) = rest.split_once(" p=")?;
    let (pid, command) = rest.split_once(' ').unwrap_or((rest, ""));
    Some((host.to_owned(), pid.parse().ok()?, command.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_names_fit_and_parse_back() {
        let name = application_name(Some(&"x".repeat(200)));
        assert!(name.len() <= APPLICATION_NAME_MAX);
        let (host, pid, command) = parse_application_name(&name).unwrap();
        assert_eq!(pid, std::process::id());
        assert!(!host.is_empty() && command.starts_with("xxx"));
        assert_eq!(parse_application_name("psql"), None);
    }
}
