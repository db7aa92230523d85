//! Opening the database: a SQLite file by default, created and migrated on start.

use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::error::{Error, Result};

pub type Db = SqlitePool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// `id IN {IN_IDS}` with [`id_list`] bound: a list of ids as one parameter, so one prepared
/// statement serves any count and no count runs into SQLite's limit on parameters.
pub const IN_IDS: &str = "(SELECT unhex(value) FROM json_each(?))";

/// Ids as one JSON array of hex strings, for [`IN_IDS`].
pub fn id_list(ids: &[uuid::Uuid]) -> String {
    let mut out = String::with_capacity(2 + ids.len() * 35);
    out.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(id.simple().encode_lower(&mut uuid::Uuid::encode_buffer()));
        out.push('"');
    }
    out.push(']');
    out
}

/// Orders names as people read them, like SQLite's NOCASE (ASCII letters fold, nothing else),
/// for rows read in bulk and sorted here.
pub fn by_name(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

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

/// Connects to PostgreSQL (`postgres://…`) and migrates the database. Several Back Office
/// nodes may start at once: the migrator takes an advisory lock, so one migrates and the others
/// wait for it.
pub async fn open_postgres(url: &str) -> Result<sqlx::PgPool> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    POSTGRES_MIGRATOR.run(&pool).await?;
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
