//! Writing a batch on PostgreSQL: columns bound as arrays and unnested, so a fan-out to a
//! thousand registers is one statement; every move checked as a compare-and-set.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use regsync_protocol::sync::TargetState;
use uuid::Uuid;

use super::{PgStore, PgTx, state};
use crate::error::{Error, Result};
use crate::registers::source_str;
use crate::sync::core::{Batch, Move, RegisterChange, Stamp};
use crate::sync::kind_str;
use crate::sync::store::{conformance, move_groups, stale_move};

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

    /// Every job of the batch in one statement, as its targets are.
    pub(super) async fn insert_jobs(&mut self, batch: &Batch) -> Result<()> {
        if batch.jobs.is_empty() {
            return Ok(());
        }
        let jobs = &batch.jobs;
        let askers: Vec<(Option<Uuid>, Option<&str>)> = jobs
            .iter()
            .map(|j| {
                j.requested_by
                    .as_ref()
                    .map(|(id, name)| (*id, name.as_str()))
            })
            .map(Option::unzip)
            .collect();
        sqlx::query(
            "INSERT INTO sync_jobs (id, company_id, site_id, kind, source, requested_by_user,
                requested_by_name, retry_when_free, created_at, group_id, group_size)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                  $6::uuid[], $7::text[], $8::boolean[], $9::timestamptz[],
                                  $10::uuid[], $11::integer[])",
        )
        .bind(jobs.iter().map(|j| j.id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.company_id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.site_id).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| kind_str(j.kind)).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| source_str(j.source))
                .collect::<Vec<_>>(),
        )
        .bind(askers.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(askers.iter().map(|(_, name)| *name).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.retry_when_free).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.created_at).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.group.map(|g| g.id))
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|j| j.group.map(|g| i32::try_from(g.jobs).unwrap_or(i32::MAX)))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *self.tx)
        .await?;
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
        // An offline register no node holds yet is this node's: it delivers the queued sync
        // when the register connects here, or ends it when the queue runs out (a register that
        // connects elsewhere is claimed with it).
        let unheld: Vec<Uuid> = targets
            .iter()
            .filter(|t| t.state == TargetState::AwaitingReconnect)
            .map(|t| t.register_id)
            .collect();
        if !unheld.is_empty() {
            sqlx::query(
                "INSERT INTO register_sessions (register_id, node_id, epoch, online, in_sale,
                    changed_at)
                 SELECT r, $2, 1, false, false, now() FROM UNNEST($1::uuid[]) AS r
                 ON CONFLICT (register_id) DO NOTHING",
            )
            .bind(&unheld)
            .bind(self.node)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// Moves that set the same values are one statement (a fan-out's answers are nearly always
    /// one).
    pub(super) async fn apply_moves(&mut self, moves: &[Move], at: DateTime<Utc>) -> Result<()> {
        for ((from, to, revision, reason, deadline_ms, wait_expires_at), ids) in move_groups(moves)
        {
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

    /// Registers' changes, every register in one statement, each with its own values: the
    /// hello's revision is set as reported; an applied one only raises it; last synced only
    /// moves forward.
    pub(super) async fn update_registers(&mut self, batch: &Batch) -> Result<()> {
        if batch.registers.is_empty() {
            return Ok(());
        }
        let changes: Vec<(&Uuid, &RegisterChange)> = batch.registers.iter().collect();
        let synced = |c: &RegisterChange| c.synced.clone();
        let newer = "c.at IS NOT NULL AND (r.last_synced_at IS NULL OR r.last_synced_at < c.at)";
        sqlx::query(&format!(
            "UPDATE registers r SET
                applied_revision = GREATEST(COALESCE(c.set_to, r.applied_revision),
                                            COALESCE(c.raise_to, c.set_to, r.applied_revision)),
                last_seen_at = COALESCE(c.seen, r.last_seen_at),
                last_synced_source = CASE WHEN {newer} THEN c.source ELSE r.last_synced_source END,
                last_synced_by = CASE WHEN {newer} THEN c.by ELSE r.last_synced_by END,
                last_synced_at = CASE WHEN {newer} THEN c.at ELSE r.last_synced_at END
             FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[], $5::text[],
                         $6::text[], $7::timestamptz[])
                  AS c(id, set_to, raise_to, seen, source, by, at)
             WHERE r.id = c.id"
        ))
        .bind(changes.iter().map(|(id, _)| **id).collect::<Vec<_>>())
        .bind(
            changes
                .iter()
                .map(|(_, c)| c.set_revision)
                .collect::<Vec<_>>(),
        )
        .bind(
            changes
                .iter()
                .map(|(_, c)| c.raise_revision)
                .collect::<Vec<_>>(),
        )
        .bind(changes.iter().map(|(_, c)| c.seen_at).collect::<Vec<_>>())
        .bind(
            changes
                .iter()
                .map(|(_, c)| synced(c).map(|s| source_str(s.source)))
                .collect::<Vec<_>>(),
        )
        .bind(
            changes
                .iter()
                .map(|(_, c)| synced(c).and_then(|s| s.by.as_deref().map(str::to_owned)))
                .collect::<Vec<_>>(),
        )
        .bind(
            changes
                .iter()
                .map(|(_, c)| synced(c).map(|s| s.at))
                .collect::<Vec<_>>(),
        )
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}

impl conformance::Furnish for PgStore {
    async fn furnish(&self, site: &conformance::Furniture<'_>) -> Result<()> {
        let db = crate::Db::Postgres(self.db.clone());
        conformance::furnish_on(&db, Some(self.node), site).await
    }
}
