//! The sync engine's PostgreSQL store against a real PostgreSQL server: the same conformance
//! suite the SQLite store passes, unchanged.

use std::time::Duration;

use regsync_backoffice::db;
use regsync_backoffice::sync::store::conformance;
use regsync_backoffice::sync::store::postgres::PgStore;
use regsync_testkit::Postgres;
use uuid::Uuid;

#[tokio::test]
async fn the_postgres_store_passes_the_store_conformance_suite() {
    let server = Postgres::start();
    conformance::run_all(|| async {
        let url = server.fresh_database().await;
        let pool = db::open_postgres(&url).await.unwrap();
        PgStore::new(pool, Uuid::now_v7(), Duration::from_secs(10))
    })
    .await;
}
