//! The database: a SQLite file by default (one Back Office), or PostgreSQL (several nodes),
//! created or migrated on start.
//!
//! Statements are written once, with `$1`-style parameters both databases read, and run on
//! whichever the [`Db`] holds through [`on_db!`] and [`on_tx!`]: the statement is type-checked
//! for each database, so a column type one of them cannot read does not compile. The few that
//! must differ (a list of ids, JSON aggregates) match on [`Db`] themselves.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};

/// A pool of connections to Back Office's database.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either database.
#[derive(Debug)]
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// `on_db!(db, |pool| body)`: runs `body` with `pool` bound to the pool `db` holds.
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite($pool) => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// `on_tx!(tx, |conn| body)`: runs `body` with `conn` bound to the connection of transaction
/// `tx` (a `&mut Tx`).
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::db::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

impl Db {
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        on_db!(self, |pool| pool.close().await)
    }

    /// A read-only transaction whose reads all see one moment.
    pub async fn begin_snapshot(&self) -> Result<Tx> {
        Ok(match self {
            // A SQLite read transaction sees one snapshot of the WAL from its first read.
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .execute(&mut *tx)
                    .await?;
                Tx::Postgres(tx)
            }
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

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

/// A list of ids bound as one parameter, whatever its length: a JSON array for SQLite (read
/// with `json_each`), an array of `uuid` for PostgreSQL. [`Db::in_ids`] writes the condition.
#[derive(Debug, Clone, Copy)]
pub struct Ids<'a>(pub &'a [Uuid]);

impl sqlx::Type<Sqlite> for Ids<'_> {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<Sqlite>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, Sqlite> for Ids<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut Vec<sqlx::sqlite::SqliteArgumentValue<'q>>,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'q, Sqlite>>::encode(id_list(self.0), buf)
    }
}

impl sqlx::Type<Postgres> for Ids<'_> {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <Vec<Uuid> as sqlx::Type<Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, Postgres> for Ids<'_> {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&[Uuid] as sqlx::Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Db {
    /// `{column} IN` the ids bound as [`Ids`] at parameter `$n`.
    pub fn in_ids(&self, column: &str, n: usize) -> String {
        match self {
            Db::Sqlite(_) => format!("{column} IN (SELECT unhex(value) FROM json_each(${n}))"),
            Db::Postgres(_) => format!("{column} = ANY(${n})"),
        }
    }

    /// A query's rows as one JSON array of objects, read as one value: sqlx hands each result
    /// row across threads, which for thousands of rows cost more than the query. `fields` are
    /// (key, column) pairs; a key ending in `id` is a UUID column, written as its hex.
    pub fn json_rows(&self, fields: &[(&str, &str)], from: &str) -> String {
        let pairs = |uuid: fn(&str) -> String| {
            fields
                .iter()
                .map(|(key, column)| {
                    let value = if key.ends_with("id") {
                        uuid(column)
                    } else {
                        (*column).to_owned()
                    };
                    format!("'{key}', {value}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Db::Sqlite(_) => format!(
                "SELECT json_group_array(json_object({})) {from}",
                pairs(|c| format!("lower(hex({c}))"))
            ),
            Db::Postgres(_) => format!(
                "SELECT COALESCE(json_agg(json_build_object({})), '[]')::text {from}",
                pairs(|c| c.to_owned())
            ),
        }
    }
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

/// Now, to the microsecond: the precision both databases keep, so a time Back Office answers
/// with is the time it answers with later, whichever database it runs on.
pub fn now() -> DateTime<Utc> {
    stored(Utc::now())
}

/// A time as the database will give it back (to the microsecond).
pub fn stored(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Whether `url` names a PostgreSQL database (`postgres://…` or `postgresql://…`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Opens and migrates the database `url` names: PostgreSQL for `postgres://…`, otherwise a
/// SQLite file (created if missing).
pub async fn open(url: &str) -> Result<Db> {
    if is_postgres_url(url) {
        return Ok(Db::Postgres(open_postgres(url).await?));
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(connect_options(url)?)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(Db::Sqlite(pool))
}

/// Connects to PostgreSQL (`postgres://…`) and migrates the database. Several Back Office
/// nodes may start at once: the migrator takes an advisory lock, so one migrates and the others
/// wait for it.
pub async fn open_postgres(url: &str) -> Result<PgPool> {
    let pool = postgres_pool(url, 8).await?;
    POSTGRES_MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// A pool of at most `connections` to PostgreSQL, without migrating.
pub async fn postgres_pool(url: &str, connections: u32) -> Result<PgPool> {
    Ok(sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?)
}

/// Writes a consistent copy of the database to `to` (`VACUUM INTO`: one read transaction, so
/// writes going on meanwhile are either wholly in it or not at all), which must not exist.
pub async fn backup(db: &Db, to: &std::path::Path) -> Result<()> {
    let Db::Sqlite(pool) = db else {
        return Err(Error::Internal(
            "on PostgreSQL, back up with PostgreSQL's own tools (pg_dump, or a base backup)".into(),
        ));
    };
    if to.exists() {
        return Err(Error::invalid_field(
            "to",
            format!("{} exists already; give a new file", to.display()),
        ));
    }
    let path = to
        .to_str()
        .ok_or_else(|| Error::invalid_field("to", "the path is not valid UTF-8"))?;
    sqlx::query("VACUUM INTO ?")
        .bind(path)
        .execute(pool)
        .await?;
    Ok(())
}

/// Puts a backup in place of the SQLite database `url` names, after checking it is whole and
/// one of ours. Back Office must not be running on it.
pub async fn restore(from: &std::path::Path, url: &str) -> Result<()> {
    if is_postgres_url(url) {
        return Err(Error::Internal(
            "on PostgreSQL, restore with PostgreSQL's own tools (pg_restore)".into(),
        ));
    }
    let target = std::path::PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url));
    let check = SqliteConnectOptions::new().filename(from).read_only(true);
    let backup = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(check)
        .await
        .map_err(|e| Error::Internal(format!("{} is not a database: {e}", from.display())))?;
    let whole: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&backup)
        .await?;
    let ours: Option<i64> = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_optional(&backup)
        .await
        .ok()
        .flatten();
    backup.close().await;
    if whole != "ok" || ours.unwrap_or(0) == 0 {
        return Err(Error::Internal(format!(
            "{} is not a whole Back Office backup ({whole})",
            from.display()
        )));
    }
    // Beside the database, then renamed over it: a crash leaves the old one or the new one.
    let staged = target.with_extension("restoring");
    std::fs::copy(from, &staged)
        .map_err(|e| Error::Internal(format!("copying {}: {e}", from.display())))?;
    for stale in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{stale}", target.display()));
    }
    std::fs::rename(&staged, &target)
        .map_err(|e| Error::Internal(format!("putting the backup in place: {e}")))?;
    Ok(())
}

/// Copies the write-ahead log into the database file now and then, off the path of any request
/// or sync, so commits never wait for it. Runs until aborted.
pub async fn checkpoint(db: SqlitePool, every: Duration) {
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
