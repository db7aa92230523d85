//! Opening the database: a SQLite file by default, created and migrated on start.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{Error, Result};

pub type Db = SqlitePool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Accepts `sqlite://path`, `sqlite:path` or a plain file path.
pub fn connect_options(url: &str) -> Result<SqliteConnectOptions> {
    let url = if url.starts_with("sqlite:") {
        url.to_owned()
    } else {
        format!("sqlite://{url}")
    };
    let options = SqliteConnectOptions::from_str(&url)
        .map_err(|e| Error::Internal(format!("database URL `{url}`: {e}")))?
        .create_if_missing(true)
        // WAL lets readers (the API, an operator's admin command) run beside the writer.
        .journal_mode(SqliteJournalMode::Wal)
        // Durable at every checkpoint, and fast; a crash loses at most the last commits, never
        // corrupts the file.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        // No connection checkpoints on commit (which would fsync in the middle of a sync);
        // `checkpoint` does it in the background instead.
        .pragma("wal_autocheckpoint", "0");
    Ok(options)
}

/// Opens (creating if needed) and migrates the database.
pub async fn open(url: &str) -> Result<Db> {
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(connect_options(url)?)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Copies the write-ahead log into the database file now and then, off the path of any request
/// or sync, so commits never wait for it. Runs until aborted.
pub async fn checkpoint(db: Db, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&db)
            .await
        {
            tracing::warn!(%error, "checkpointing the database failed; will try again");
        }
    }
}
