//! The sync engine's store on SQLite: one transaction per batch (`BEGIN IMMEDIATE`, so the
//! engine never waits on a lock mid-batch), set-based statements so a fan-out to a thousand
//! registers is a handful of them, and every move a compare-and-set on the target's state.

use regsync_protocol::ErrorCode;
use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use regsync_protocol::sync::Job;
use sqlx::{Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::{
    CatalogAt, KnownRow, RegisterRecord, Scope, Store, StoreTx, TargetRecord, known_rows,
    stored_source as source, stored_state as state,
};
use crate::db::{IN_IDS, id_list};
use crate::error::{Error, Result};
use crate::registers::parse_source;
use crate::sync::core::{Batch, KnownTarget, OpenRow};

mod write;

const OPEN: &str = "('queued', 'delivered', 'waiting', 'awaiting_reconnect')";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    db: SqlitePool,
}

impl SqliteStore {
    pub fn new(db: SqlitePool) -> SqliteStore {
        SqliteStore { db }
    }
}

/// Times as sqlx stores them (RFC 3339, UTC, 0/3/6/9 fraction digits), so text order is time
/// order; for values passed inside JSON.
fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

impl Store for SqliteStore {
    type Tx = SqliteTx;

    async fn recover(&self, grace_ms: i64) -> Result<u64> {
        let resumed = sqlx::query(
            "UPDATE sync_targets SET deadline_at = MIN(COALESCE(deadline_at, ?1), ?1)
             WHERE state IN ('queued', 'delivered')",
        )
        .bind(grace_ms)
        .execute(&self.db)
        .await?;
        Ok(resumed.rows_affected())
    }

    async fn load_open(&self) -> Result<Vec<OpenRow>> {
        type Row = (
            Uuid,
            Uuid,
            Uuid,
            String,
            Option<i64>,
            String,
            Option<String>,
            bool,
        );
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT t.id, t.register_id, t.job_id, t.state, t.deadline_at,
                    j.source, j.requested_by_name, j.retry_when_free
             FROM sync_targets t JOIN sync_jobs j ON j.id = t.job_id
             WHERE t.state IN {OPEN}"
        ))
        .fetch_all(&self.db)
        .await?;
        rows.into_iter()
            .map(
                |(id, register_id, job_id, stored, deadline_ms, src, by, retry)| {
                    Ok(OpenRow {
                        id,
                        register_id,
                        job_id,
                        state: state(&stored)?,
                        deadline_ms,
                        source: source(&src),
                        requested_by: by,
                        retry_when_free: retry,
                    })
                },
            )
            .collect()
    }

    async fn begin(&self) -> Result<SqliteTx> {
        Ok(SqliteTx {
            tx: self.db.begin_with("BEGIN IMMEDIATE").await?,
        })
    }

    async fn job(&self, company_id: Uuid, job_id: Uuid) -> Result<Job> {
        crate::sync::get(&crate::Db::Sqlite(self.db.clone()), company_id, job_id).await
    }

    async fn register(&self, register_id: Uuid) -> Result<Option<RegisterRecord>> {
        type Row = (
            i64,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT applied_revision, last_seen_at, last_synced_at, last_synced_source,
                    last_synced_by
             FROM registers WHERE id = ?",
        )
        .bind(register_id)
        .fetch_optional(&self.db)
        .await?;
        Ok(
            row.map(|(applied_revision, seen, synced, src, by)| RegisterRecord {
                applied_revision,
                last_seen_at: seen,
                last_synced_at: synced,
                last_synced_source: src.as_deref().and_then(parse_source),
                last_synced_by: by,
            }),
        )
    }

    async fn target(&self, target_id: Uuid) -> Result<Option<TargetRecord>> {
        type Row = (
            Uuid,
            Uuid,
            String,
            Option<i64>,
            Option<String>,
            Option<i64>,
            bool,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT register_id, job_id, state, revision, reason, deadline_at,
                    state = 'synced' OR late_applied_at IS NOT NULL
             FROM sync_targets WHERE id = ?",
        )
        .bind(target_id)
        .fetch_optional(&self.db)
        .await?;
        row.map(
            |(register_id, job_id, stored, revision, reason, deadline_ms, credited)| {
                Ok(TargetRecord {
                    register_id,
                    job_id,
                    state: state(&stored)?,
                    revision,
                    reason,
                    deadline_ms,
                    credited,
                })
            },
        )
        .transpose()
    }
}

#[derive(Debug)]
pub struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
}

impl StoreTx for SqliteTx {
    async fn scope(
        &mut self,
        company_id: Uuid,
        scope: Scope,
    ) -> Result<(Uuid, Vec<(Uuid, String)>)> {
        match scope {
            Scope::Register(register_id) => {
                let row: Option<(Uuid, String)> = sqlx::query_as(
                    "SELECT r.site_id, r.name FROM registers r JOIN sites s ON s.id = r.site_id
                     WHERE r.id = ? AND s.company_id = ?",
                )
                .bind(register_id)
                .bind(company_id)
                .fetch_optional(&mut *self.tx)
                .await?;
                let (site_id, name) = row.ok_or(Error::NotFound("register"))?;
                Ok((site_id, vec![(register_id, name)]))
            }
            Scope::SiteOnline(site_id) => {
                let registers = self.site_registers(site_id, company_id).await?;
                if registers.is_empty() {
                    let exists: Option<i64> =
                        sqlx::query_scalar("SELECT 1 FROM sites WHERE id = ? AND company_id = ?")
                            .bind(site_id)
                            .bind(company_id)
                            .fetch_optional(&mut *self.tx)
                            .await?;
                    exists.ok_or(Error::NotFound("site"))?;
                    return Err(Error::Conflict {
                        code: ErrorCode::NoRegisters,
                        message: "this site has no registers to sync".into(),
                    });
                }
                Ok((site_id, registers))
            }
        }
    }

    async fn known(&mut self, target_ids: &[Uuid]) -> Result<HashMap<Uuid, KnownTarget>> {
        if target_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<KnownRow> = sqlx::query_as(&format!(
            "SELECT t.id, t.register_id, t.job_id, t.state,
                    t.state = 'synced' OR t.late_applied_at IS NOT NULL,
                    j.source, j.requested_by_name
             FROM sync_targets t JOIN sync_jobs j ON j.id = t.job_id
             WHERE t.id IN {IN_IDS}"
        ))
        .bind(id_list(target_ids))
        .fetch_all(&mut *self.tx)
        .await?;
        known_rows(rows)
    }

    async fn catalog(&mut self, site_id: Uuid, held: Option<i64>) -> Result<CatalogAt> {
        let (revision, content): (i64, Option<String>) = sqlx::query_as(
            "SELECT revision, CASE WHEN revision IS ? THEN NULL ELSE content END
             FROM catalogs WHERE site_id = ?",
        )
        .bind(held)
        .bind(site_id)
        .fetch_optional(&mut *self.tx)
        .await?
        .ok_or_else(|| Error::Internal(format!("site {site_id} has no catalog")))?;
        Ok(CatalogAt { revision, content })
    }

    async fn apply(&mut self, batch: &Batch) -> Result<Vec<Uuid>> {
        let at = batch.at.unwrap_or_default();
        self.insert_jobs(batch).await?;
        self.insert_targets(batch, at).await?;
        self.apply_moves(&batch.moves, at).await?;
        if !batch.late_applied.is_empty() {
            sqlx::query(&format!(
                "UPDATE sync_targets SET late_applied_at = ?
                 WHERE id IN {IN_IDS} AND late_applied_at IS NULL"
            ))
            .bind(at)
            .bind(id_list(&batch.late_applied))
            .execute(&mut *self.tx)
            .await?;
        }
        self.update_registers(batch).await?;
        if batch.finished.is_empty() {
            return Ok(Vec::new());
        }
        let finished = sqlx::query_scalar(&format!(
            "UPDATE sync_jobs SET finished_at = ?
             WHERE id IN {IN_IDS} AND finished_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM sync_targets
                               WHERE job_id = sync_jobs.id AND state IN {OPEN})
             RETURNING id"
        ))
        .bind(at)
        .bind(id_list(&batch.finished))
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(finished)
    }

    async fn commit(self) -> Result<()> {
        Ok(self.tx.commit().await?)
    }
}
