//! The sync engine's store on PostgreSQL, for Back Office as several nodes: the same contract as
//! the SQLite store (the conformance suite runs on both), in PostgreSQL's terms — id lists bound
//! as arrays (`= ANY($1)`), a fan-out inserted with one `UNNEST` statement, every move a
//! compare-and-set on the target's state — and one node's view: it loads and writes the targets
//! of the registers it holds (`register_sessions`), each batch checking it still holds them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use regsync_protocol::ErrorCode;
use regsync_protocol::sync::Job;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{
    CatalogAt, KnownRow, Notice, RegisterRecord, Scope, Store, StoreTx, TargetRecord, known_rows,
    stored_source as source, stored_state as state,
};
use crate::db::by_name;
use crate::error::{Error, Result};
use crate::registers::parse_source;
use crate::sync::core::{Batch, Claim, Elsewhere, KnownTarget, OpenRow};

mod write;

const OPEN: &str = "('queued', 'delivered', 'waiting', 'awaiting_reconnect')";

#[derive(Debug, Clone)]
pub struct PgStore {
    db: PgPool,
    node: Uuid,
    /// A node whose heartbeat is older than this is dead: its registers are not "elsewhere".
    grace_ms: i64,
}

impl PgStore {
    /// The store of node `node`, taking a node silent for `grace` for dead.
    pub fn new(db: PgPool, node: Uuid, grace: std::time::Duration) -> PgStore {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        PgStore { db, node, grace_ms }
    }
}

#[derive(sqlx::FromRow)]
struct OpenTargetRow {
    id: Uuid,
    register_id: Uuid,
    job_id: Uuid,
    state: String,
    deadline_at: Option<i64>,
    source: String,
    requested_by_name: Option<String>,
    retry_when_free: bool,
}

impl OpenTargetRow {
    fn open_row(self) -> Result<OpenRow> {
        Ok(OpenRow {
            id: self.id,
            register_id: self.register_id,
            job_id: self.job_id,
            state: state(&self.state)?,
            deadline_ms: self.deadline_at,
            source: source(&self.source),
            requested_by: self.requested_by_name,
            retry_when_free: self.retry_when_free,
        })
    }
}

/// Open targets with their jobs; a `WHERE` on `t` (the target) and `s` (its register's session)
/// follows.
const SELECT_OPEN: &str = "SELECT t.id, t.register_id, t.job_id, t.state, t.deadline_at,
            j.source, j.requested_by_name, j.retry_when_free
     FROM sync_targets t
     JOIN sync_jobs j ON j.id = t.job_id
     JOIN register_sessions s ON s.register_id = t.register_id
     WHERE t.state IN ('queued', 'delivered', 'waiting', 'awaiting_reconnect')";

async fn open_rows(
    conn: &mut sqlx::PgConnection,
    filter: &str,
    bind: Uuid,
) -> Result<Vec<OpenRow>> {
    let rows: Vec<OpenTargetRow> = sqlx::query_as(&format!("{SELECT_OPEN} AND {filter}"))
        .bind(bind)
        .fetch_all(conn)
        .await?;
    rows.into_iter().map(OpenTargetRow::open_row).collect()
}

impl Store for PgStore {
    type Tx = PgTx;

    /// The targets of the registers this node holds. A node starts holding none: what a previous
    /// run held comes back as its registers reconnect (claimed with their targets), or is taken
    /// over from the dead node and given the grace then.
    async fn recover(&self, grace_ms: i64) -> Result<u64> {
        let resumed = sqlx::query(
            "UPDATE sync_targets t SET deadline_at = LEAST(COALESCE(t.deadline_at, $1), $1)
             FROM register_sessions s
             WHERE s.register_id = t.register_id AND s.node_id = $2
               AND t.state IN ('queued', 'delivered')",
        )
        .bind(grace_ms)
        .bind(self.node)
        .execute(&self.db)
        .await?;
        Ok(resumed.rows_affected())
    }

    async fn load_open(&self) -> Result<Vec<OpenRow>> {
        let mut conn = self.db.acquire().await?;
        open_rows(&mut conn, "s.node_id = $1", self.node).await
    }

    async fn begin(&self) -> Result<PgTx> {
        Ok(PgTx {
            tx: self.db.begin().await?,
            node: self.node,
            grace_ms: self.grace_ms,
        })
    }

    async fn job(&self, company_id: Uuid, job_id: Uuid) -> Result<Job> {
        crate::sync::get(&crate::Db::Postgres(self.db.clone()), company_id, job_id).await
    }

    async fn register(&self, register_id: Uuid) -> Result<Option<RegisterRecord>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            applied_revision: i64,
            last_seen_at: Option<DateTime<Utc>>,
            last_synced_at: Option<DateTime<Utc>>,
            last_synced_source: Option<String>,
            last_synced_by: Option<String>,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT applied_revision, last_seen_at, last_synced_at, last_synced_source,
                    last_synced_by
             FROM registers WHERE id = $1",
        )
        .bind(register_id)
        .fetch_optional(&self.db)
        .await?;
        Ok(row.map(|row| RegisterRecord {
            applied_revision: row.applied_revision,
            last_seen_at: row.last_seen_at,
            last_synced_at: row.last_synced_at,
            last_synced_source: row.last_synced_source.as_deref().and_then(parse_source),
            last_synced_by: row.last_synced_by,
        }))
    }

    async fn target(&self, target_id: Uuid) -> Result<Option<TargetRecord>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            register_id: Uuid,
            job_id: Uuid,
            state: String,
            revision: Option<i64>,
            reason: Option<String>,
            deadline_at: Option<i64>,
            credited: bool,
        }
        let row: Option<Row> = sqlx::query_as(
            "SELECT register_id, job_id, state, revision, reason, deadline_at,
                    state = 'synced' OR late_applied_at IS NOT NULL AS credited
             FROM sync_targets WHERE id = $1",
        )
        .bind(target_id)
        .fetch_optional(&self.db)
        .await?;
        row.map(|row| {
            Ok(TargetRecord {
                register_id: row.register_id,
                job_id: row.job_id,
                state: state(&row.state)?,
                revision: row.revision,
                reason: row.reason,
                deadline_ms: row.deadline_at,
                credited: row.credited,
            })
        })
        .transpose()
    }
}

#[derive(Debug)]
pub struct PgTx {
    tx: Transaction<'static, Postgres>,
    node: Uuid,
    grace_ms: i64,
}

impl StoreTx for PgTx {
    async fn scope(
        &mut self,
        company_id: Uuid,
        scope: Scope,
    ) -> Result<(Uuid, Vec<(Uuid, String)>)> {
        match scope {
            Scope::Register(register_id) => {
                let row: Option<(Uuid, String)> = sqlx::query_as(
                    "SELECT r.site_id, r.name FROM registers r JOIN sites s ON s.id = r.site_id
                     WHERE r.id = $1 AND s.company_id = $2",
                )
                .bind(register_id)
                .bind(company_id)
                .fetch_optional(&mut *self.tx)
                .await?;
                let (site_id, name) = row.ok_or(Error::NotFound("register"))?;
                Ok((site_id, vec![(register_id, name)]))
            }
            Scope::SiteOnline(site_id) => {
                let exists: Option<i32> =
                    sqlx::query_scalar("SELECT 1 FROM sites WHERE id = $1 AND company_id = $2")
                        .bind(site_id)
                        .bind(company_id)
                        .fetch_optional(&mut *self.tx)
                        .await?;
                exists.ok_or(Error::NotFound("site"))?;
                let mut registers: Vec<(Uuid, String)> =
                    sqlx::query_as("SELECT id, name FROM registers WHERE site_id = $1")
                        .bind(site_id)
                        .fetch_all(&mut *self.tx)
                        .await?;
                if registers.is_empty() {
                    return Err(Error::Conflict {
                        code: ErrorCode::NoRegisters,
                        message: "this site has no registers to sync".into(),
                    });
                }
                registers.sort_by(|(_, a), (_, b)| by_name(a, b));
                Ok((site_id, registers))
            }
        }
    }

    async fn known(&mut self, target_ids: &[Uuid]) -> Result<HashMap<Uuid, KnownTarget>> {
        if target_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<KnownRow> = sqlx::query_as(
            "SELECT t.id, t.register_id, t.job_id, t.state,
                    t.state = 'synced' OR t.late_applied_at IS NOT NULL,
                    j.source, j.requested_by_name
             FROM sync_targets t JOIN sync_jobs j ON j.id = t.job_id
             WHERE t.id = ANY($1)",
        )
        .bind(target_ids)
        .fetch_all(&mut *self.tx)
        .await?;
        known_rows(rows)
    }

    async fn catalog(&mut self, site_id: Uuid, held: Option<i64>) -> Result<CatalogAt> {
        let (revision, content): (i64, Option<String>) = sqlx::query_as(
            "SELECT revision,
                    CASE WHEN revision IS NOT DISTINCT FROM $1::bigint THEN NULL ELSE content END
             FROM catalogs WHERE site_id = $2",
        )
        .bind(held)
        .bind(site_id)
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or_else(|| Error::Internal(format!("site {site_id} has no catalog")))?;
        Ok(CatalogAt { revision, content })
    }

    async fn held_open(&mut self) -> Result<Option<Vec<OpenRow>>> {
        open_rows(&mut self.tx, "s.node_id = $1", self.node)
            .await
            .map(Some)
    }

    async fn elsewhere(&mut self, registers: &[Uuid]) -> Result<HashMap<Uuid, Elsewhere>> {
        let rows: Vec<(Uuid, Uuid, bool)> = sqlx::query_as(
            "SELECT s.register_id, s.node_id, s.online FROM register_sessions s
             JOIN nodes n ON n.id = s.node_id
             WHERE s.register_id = ANY($1) AND s.node_id <> $2
               AND n.heartbeat_at > now() - make_interval(secs => $3::bigint / 1000.0)",
        )
        .bind(registers)
        .bind(self.node)
        .bind(self.grace_ms)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(register, node, online)| (register, Elsewhere { node, online }))
            .collect())
    }

    async fn claim(&mut self, register_id: Uuid) -> Result<Option<Claim>> {
        // The row stays locked until this batch commits: a node writing the register's targets
        // meanwhile waits, then finds the register no longer its own.
        let epoch: i64 = sqlx::query_scalar(
            "INSERT INTO register_sessions (register_id, node_id, epoch, online, in_sale,
                changed_at)
             VALUES ($1, $2, 1, true, false, now())
             ON CONFLICT (register_id) DO UPDATE
             SET node_id = $2, epoch = register_sessions.epoch + 1, online = true,
                 changed_at = now()
             RETURNING epoch",
        )
        .bind(register_id)
        .bind(self.node)
        .fetch_one(&mut *self.tx)
        .await?;
        let open = open_rows(&mut self.tx, "t.register_id = $1", register_id).await?;
        Ok(Some(Claim { epoch, open }))
    }

    async fn apply(&mut self, batch: &Batch) -> Result<Vec<Uuid>> {
        let at = batch.at.unwrap_or_default();
        // Jobs this batch may finish are locked first: two nodes ending a job's last targets
        // at once finish it in turn, the second seeing the first's ends.
        if !batch.finished.is_empty() {
            sqlx::query("SELECT id FROM sync_jobs WHERE id = ANY($1) ORDER BY id FOR UPDATE")
                .bind(&batch.finished)
                .execute(&mut *self.tx)
                .await?;
        }
        self.fence(batch).await?;
        self.insert_jobs(batch).await?;
        self.insert_targets(batch, at).await?;
        self.apply_moves(&batch.moves, at).await?;
        if !batch.late_applied.is_empty() {
            sqlx::query(
                "UPDATE sync_targets SET late_applied_at = $1
                 WHERE id = ANY($2) AND late_applied_at IS NULL",
            )
            .bind(at)
            .bind(&batch.late_applied)
            .execute(&mut *self.tx)
            .await?;
        }
        self.update_registers(batch).await?;
        self.update_presence(batch, at).await?;
        if batch.finished.is_empty() {
            return Ok(Vec::new());
        }
        let finished = sqlx::query_scalar(&format!(
            "UPDATE sync_jobs SET finished_at = $1
             WHERE id = ANY($2) AND finished_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM sync_targets
                               WHERE job_id = sync_jobs.id AND state IN {OPEN})
             RETURNING id"
        ))
        .bind(at)
        .bind(&batch.finished)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(finished)
    }

    async fn publish(&mut self, notice: &Notice) -> Result<()> {
        let notice = Notice {
            node: self.node,
            ..notice.clone()
        };
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::cluster::CHANNEL)
            .bind(notice.encode())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}
