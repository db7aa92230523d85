//! The sync engine's PostgreSQL store against a real PostgreSQL server: the same conformance
//! suite the SQLite store passes, unchanged.

use regsync_backoffice::db;
use regsync_backoffice::sync::store::conformance;
use regsync_backoffice::sync::store::postgres::PgStore;
use regsync_testkit::Postgres;

#[tokio::test]
async fn the_postgres_store_passes_the_store_conformance_suite() {
    let server = Postgres::start();
    conformance::run_all(|| async {
        let url = server.fresh_database().await;
        PgStore::new(db::open_postgres(&url).await.unwrap())
    })
    .await;
}
