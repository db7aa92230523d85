//! Writing a batch on PostgreSQL: columns bound as arrays and unnested, so a fan-out to a
//! thousand registers is one statement; every move checked as a compare-and-set.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{PgStore, PgTx, state};
use crate::error::{Error, Result};
use crate::registers::source_str;
use crate::sync::core::{Batch, Move, Stamp};
use crate::sync::kind_str;
use crate::sync::store::{conformance, stale_move};

impl PgTx {
    /// Refuses the batch unless this node still holds every register whose targets or row it
    /// changes. The rows are locked until the batch commits, so a node claiming one of them
    /// meanwhile waits for this batch, then reads what it wrote.
    pub(super) async fn fence(&mut self, batch: &Batch) -> Result<()> {
        let mut registers: Vec<Uuid> = batch
            .moves
            .iter()
            .map(|m| m.register_id)
            .chain(batch.registers.keys().copied())
            .collect();
        if registers.is_empty() {
            return Ok(());
        }
        registers.sort_unstable();
        registers.dedup();
        let held: Vec<Uuid> = sqlx::query_scalar(
            "SELECT register_id FROM register_sessions
             WHERE register_id = ANY($1) AND node_id = $2
             ORDER BY register_id FOR SHARE",
        )
        .bind(&registers)
        .bind(self.node)
        .fetch_all(&mut *self.tx)
        .await?;
        if held.len() == registers.len() {
            return Ok(());
        }
        let lost = registers.iter().find(|r| !held.contains(r)).copied();
        Err(Error::Internal(format!(
            "register {} is held by another Back Office node now; the batch was not saved",
            lost.unwrap_or_default()
        )))
    }

    /// Who is connected and in a sale, for the other nodes' registers pages.
    pub(super) async fn update_presence(&mut self, batch: &Batch, at: DateTime<Utc>) -> Result<()> {
        let mut groups: BTreeMap<(bool, bool), Vec<Uuid>> = BTreeMap::new();
        for (register_id, state) in &batch.presence {
            groups.entry(*state).or_default().push(*register_id);
        }
        for ((online, in_sale), registers) in groups {
            sqlx::query(
                "UPDATE register_sessions SET online = $1, in_sale = $2, changed_at = $3
                 WHERE register_id = ANY($4) AND node_id = $5",
            )
            .bind(online)
            .bind(in_sale)
            .bind(at)
            .bind(&registers)
            .bind(self.node)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    pub(super) async fn insert_jobs(&mut self, batch: &Batch) -> Result<()> {
        for job in &batch.jobs {
            let (user_id, user_name) = job.requested_by.clone().unzip();
            sqlx::query(
                "INSERT INTO sync_jobs (id, company_id, site_id, kind, source, requested_by_user,
                    requested_by_name, retry_when_free, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(job.id)
            .bind(job.company_id)
            .bind(job.site_id)
            .bind(kind_str(job.kind))
            .bind(source_str(job.source))
            .bind(user_id)
            .bind(user_name)
            .bind(job.retry_when_free)
            .bind(job.created_at)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    pub(super) async fn insert_targets(&mut self, batch: &Batch, at: DateTime<Utc>) -> Result<()> {
        if batch.targets.is_empty() {
            return Ok(());
        }
        let targets = &batch.targets;
        let ids: Vec<Uuid> = targets.iter().map(|t| t.id).collect();
        let jobs: Vec<Uuid> = targets.iter().map(|t| t.job_id).collect();
        let registers: Vec<Uuid> = targets.iter().map(|t| t.register_id).collect();
        let states: Vec<&str> = targets.iter().map(|t| t.state.as_str()).collect();
        let stamps: Vec<&Stamp> = targets.iter().map(|t| &t.stamp).collect();
        let revisions: Vec<Option<i64>> = stamps.iter().map(|s| s.revision).collect();
        let reasons: Vec<Option<&str>> = stamps.iter().map(|s| s.reason.as_deref()).collect();
        let deadlines: Vec<Option<i64>> = stamps.iter().map(|s| s.deadline_ms).collect();
        let waits: Vec<Option<DateTime<Utc>>> = stamps.iter().map(|s| s.wait_expires_at).collect();
        sqlx::query(
            "INSERT INTO sync_targets (id, job_id, register_id, state, revision, reason,
                deadline_at, wait_expires_at, updated_at)
             SELECT id, job_id, register_id, state, revision, reason, deadline_at,
                    wait_expires_at, $9
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[],
                         $6::text[], $7::bigint[], $8::timestamptz[])
                  AS t(id, job_id, register_id, state, revision, reason, deadline_at,
                       wait_expires_at)",
        )
        .bind(ids)
        .bind(jobs)
        .bind(registers)
        .bind(states)
        .bind(revisions)
        .bind(reasons)
        .bind(deadlines)
        .bind(waits)
        .bind(at)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Moves that set the same values are one statement (a fan-out's answers are nearly always
    /// one).
    pub(super) async fn apply_moves(&mut self, moves: &[Move], at: DateTime<Utc>) -> Result<()> {
        type Key<'a> = (
            &'a str,
            &'a str,
            Option<i64>,
            Option<&'a str>,
            Option<i64>,
            Option<DateTime<Utc>>,
        );
        let mut groups: BTreeMap<Key<'_>, Vec<Uuid>> = BTreeMap::new();
        for m in moves {
            let key = (
                m.from.as_str(),
                m.to.as_str(),
                m.stamp.revision,
                m.stamp.reason.as_deref(),
                m.stamp.deadline_ms,
                m.stamp.wait_expires_at,
            );
            groups.entry(key).or_default().push(m.id);
        }
        for ((from, to, revision, reason, deadline_ms, wait_expires_at), ids) in groups {
            let moved = sqlx::query(
                "UPDATE sync_targets
                 SET state = $1, revision = COALESCE($2, revision), reason = $3,
                     deadline_at = $4, wait_expires_at = $5, updated_at = $6
                 WHERE id = ANY($7) AND state = $8",
            )
            .bind(to)
            .bind(revision)
            .bind(reason)
            .bind(deadline_ms)
            .bind(wait_expires_at)
            .bind(at)
            .bind(&ids)
            .bind(from)
            .execute(&mut *self.tx)
            .await?;
            if moved.rows_affected() != ids.len() as u64 {
                return Err(stale_move(ids[0], state(from)?));
            }
        }
        Ok(())
    }

    /// Registers' changes, one statement per kind of change (a fan-out's answers are one): the
    /// hello's revision is set as reported; an applied one only raises it; last synced only
    /// moves forward. Each register's own time rides beside its id, as two arrays.
    pub(super) async fn update_registers(&mut self, batch: &Batch) -> Result<()> {
        type Key<'a> = (
            Option<i64>,
            Option<i64>,
            Option<DateTime<Utc>>,
            Option<&'static str>,
            Option<&'a str>,
        );
        /// The registers of one kind of change, and when each was last synced.
        type Registers = (Vec<Uuid>, Vec<Option<DateTime<Utc>>>);
        let mut groups: BTreeMap<Key<'_>, Registers> = BTreeMap::new();
        for (id, c) in &batch.registers {
            let key = (
                c.set_revision,
                c.raise_revision,
                c.seen_at,
                c.synced.as_ref().map(|s| source_str(s.source)),
                c.synced.as_ref().and_then(|s| s.by.as_deref()),
            );
            let (ids, ats) = groups.entry(key).or_default();
            ids.push(*id);
            ats.push(c.synced.as_ref().map(|s| s.at));
        }
        let newer = "c.at IS NOT NULL AND (r.last_synced_at IS NULL OR r.last_synced_at < c.at)";
        let sql = format!(
            "UPDATE registers r SET
                applied_revision = GREATEST(COALESCE($1::bigint, r.applied_revision),
                                            COALESCE($2::bigint, $1::bigint, r.applied_revision)),
                last_seen_at = COALESCE($3::timestamptz, r.last_seen_at),
                last_synced_source = CASE WHEN {newer} THEN $4::text ELSE r.last_synced_source END,
                last_synced_by = CASE WHEN {newer} THEN $5::text ELSE r.last_synced_by END,
                last_synced_at = CASE WHEN {newer} THEN c.at ELSE r.last_synced_at END
             FROM UNNEST($6::uuid[], $7::timestamptz[]) AS c(id, at)
             WHERE r.id = c.id"
        );
        for ((set, raise, seen, source, by), (ids, ats)) in groups {
            sqlx::query(&sql)
                .bind(set)
                .bind(raise)
                .bind(seen)
                .bind(source)
                .bind(by)
                .bind(ids)
                .bind(ats)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }
}

impl conformance::Furnish for PgStore {
    async fn furnish(&self, site: &conformance::Furniture<'_>) -> Result<()> {
        let (company_id, site_id) = (site.company_id, site.site_id);
        let now = Utc::now();
        let mut tx = self.db.begin().await?;
        sqlx::query("INSERT INTO companies (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(company_id)
            .bind(company_id.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO users (id, company_id, email, display_name, password_hash, created_at)
             VALUES ($1, $2, $3, 'Manager', '-', $4)",
        )
        .bind(conformance::manager_of(company_id))
        .bind(company_id)
        .bind(format!("{company_id}@example.com"))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO sites (id, company_id, name, created_at) VALUES ($1, $2, 'Site', $3)",
        )
        .bind(site_id)
        .bind(company_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO catalogs (site_id, revision, content, updated_at) VALUES ($1, 1, '{}', $2)",
        )
        .bind(site_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (ids, names): (Vec<Uuid>, Vec<&str>) = site.registers.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO registers (id, site_id, name, credential_hash, created_at)
             SELECT id, $3, name, uuid_send(id), $4 FROM UNNEST($1::uuid[], $2::text[]) AS r(id, name)",
        )
        .bind(&ids)
        .bind(names)
        .bind(site_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // This node holds them, as if each had connected here.
        sqlx::query(
            "INSERT INTO register_sessions (register_id, node_id, epoch, online, in_sale,
                changed_at)
             SELECT id, $2, 1, true, false, $3 FROM UNNEST($1::uuid[]) AS r(id)",
        )
        .bind(&ids)
        .bind(self.node)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
