//! The sync engine's store on PostgreSQL, for Back Office as several nodes: the same contract as
//! the SQLite store (the conformance suite runs on both), in PostgreSQL's terms — id lists bound
//! as arrays (`= ANY($1)`), a fan-out inserted with one `UNNEST` statement, every move a
//! compare-and-set on the target's state.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use regsync_protocol::ErrorCode;
use regsync_protocol::api::SyncSource;
use regsync_protocol::sync::{Job, TargetState};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::{CatalogAt, RegisterRecord, Scope, Store, StoreTx, TargetRecord};
use crate::db::by_name;
use crate::error::{Error, Result};
use crate::registers::parse_source;
use crate::sync::core::{Batch, KnownTarget, OpenRow};

mod write;

const OPEN: &str = "('queued', 'delivered', 'waiting')";

#[derive(Debug, Clone)]
pub struct PgStore {
    db: PgPool,
}

impl PgStore {
    pub fn new(db: PgPool) -> PgStore {
        PgStore { db }
    }
}

fn state(stored: &str) -> Result<TargetState> {
    TargetState::parse(stored)
        .ok_or_else(|| Error::Internal(format!("a stored sync target state `{stored}`")))
}

fn source(stored: &str) -> SyncSource {
    parse_source(stored).unwrap_or(SyncSource::BackOffice)
}

impl Store for PgStore {
    type Tx = PgTx;

    async fn recover(&self, grace_ms: i64) -> Result<u64> {
        let resumed = sqlx::query(
            "UPDATE sync_targets SET deadline_at = LEAST(COALESCE(deadline_at, $1), $1)
             WHERE state IN ('queued', 'delivered')",
        )
        .bind(grace_ms)
        .execute(&self.db)
        .await?;
        Ok(resumed.rows_affected())
    }

    async fn load_open(&self) -> Result<Vec<OpenRow>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: Uuid,
            register_id: Uuid,
            job_id: Uuid,
            state: String,
            deadline_at: Option<i64>,
            source: String,
            requested_by_name: Option<String>,
            retry_when_free: bool,
        }
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT t.id, t.register_id, t.job_id, t.state, t.deadline_at,
                    j.source, j.requested_by_name, j.retry_when_free
             FROM sync_targets t JOIN sync_jobs j ON j.id = t.job_id
             WHERE t.state IN {OPEN}"
        ))
        .fetch_all(&self.db)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(OpenRow {
                    id: row.id,
                    register_id: row.register_id,
                    job_id: row.job_id,
                    state: state(&row.state)?,
                    deadline_ms: row.deadline_at,
                    source: source(&row.source),
                    requested_by: row.requested_by_name,
                    retry_when_free: row.retry_when_free,
                })
            })
            .collect()
    }

    async fn begin(&self) -> Result<PgTx> {
        Ok(PgTx {
            tx: self.db.begin().await?,
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
        type Row = (Uuid, Uuid, Uuid, String, bool, String, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT t.id, t.register_id, t.job_id, t.state,
                    t.state = 'synced' OR t.late_applied_at IS NOT NULL,
                    j.source, j.requested_by_name
             FROM sync_targets t JOIN sync_jobs j ON j.id = t.job_id
             WHERE t.id = ANY($1)",
        )
        .bind(target_ids)
        .fetch_all(&mut *self.tx)
        .await?;
        rows.into_iter()
            .map(|(id, register_id, job_id, stored, credited, src, by)| {
                let known = KnownTarget {
                    register_id,
                    job_id,
                    state: state(&stored)?,
                    credited,
                    source: source(&src),
                    requested_by: by.map(Into::into),
                };
                Ok((id, known))
            })
            .collect()
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

    async fn apply(&mut self, batch: &Batch) -> Result<()> {
        let at = batch.at.unwrap_or_default();
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
        if !batch.finished.is_empty() {
            let finished = sqlx::query(&format!(
                "UPDATE sync_jobs SET finished_at = $1
                 WHERE id = ANY($2) AND finished_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM sync_targets
                                   WHERE job_id = sync_jobs.id AND state IN {OPEN})"
            ))
            .bind(at)
            .bind(&batch.finished)
            .execute(&mut *self.tx)
            .await?;
            if finished.rows_affected() != batch.finished.len() as u64 {
                return Err(Error::Internal(
                    "a job to finish still has open targets, or is finished already".into(),
                ));
            }
        }
        Ok(())
    }

    async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}
