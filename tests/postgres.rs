//! `PgLock` against a real PostgreSQL server started by the harness (tests/common/pg.rs).
#![cfg(unix)]

mod common;

use common::pg;

#[tokio::test]
async fn harness_server_answers() {
    let (server, _use) = pg::shared();
    let (client, conn) = tokio_postgres::connect(&server.conninfo(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client.query_one("SELECT 1::int4", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}
