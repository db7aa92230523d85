//! Writing a batch: set-based statements, every move checked as a compare-and-set.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{SqliteStore, SqliteTx, state, text};
use crate::db::{IN_IDS, by_name, id_list};
use crate::error::{Error, Result};
use crate::registers::source_str;
use crate::sync::core::{Batch, Move};
use crate::sync::kind_str;
use crate::sync::store::{conformance, move_groups, stale_move};

impl SqliteTx {
    /// A site's registers by name, read as one row of JSON: sqlx hands each row of a result
    /// across threads, which for a thousand registers cost more than the query itself.
    pub(super) async fn site_registers(
        &mut self,
        site_id: Uuid,
        company_id: Uuid,
    ) -> Result<Vec<(Uuid, String)>> {
        let json: String = sqlx::query_scalar(
            "SELECT json_group_array(json_array(hex(r.id), r.name))
             FROM registers r JOIN sites s ON s.id = r.site_id
             WHERE r.site_id = ? AND s.company_id = ?",
        )
        .bind(site_id)
        .bind(company_id)
        .fetch_one(&mut *self.tx)
        .await?;
        let rows: Vec<(String, String)> = serde_json::from_str(&json)
            .map_err(|e| Error::Internal(format!("reading a site's registers: {e}")))?;
        let mut registers = rows
            .into_iter()
            .map(|(id, name)| {
                Uuid::parse_str(&id)
                    .map(|id| (id, name))
                    .map_err(|e| Error::Internal(format!("a stored register id: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        registers.sort_by(|(_, a), (_, b)| by_name(a, b));
        Ok(registers)
    }

    pub(super) async fn insert_jobs(&mut self, batch: &Batch) -> Result<()> {
        for job in &batch.jobs {
            let (user_id, user_name) = job.requested_by.clone().unzip();
            sqlx::query(
                "INSERT INTO sync_jobs (id, company_id, site_id, kind, source, requested_by_user,
                    requested_by_name, retry_when_free, created_at, group_id, group_size)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .bind(job.group.map(|g| g.id))
            .bind(job.group.map(|g| i64::from(g.jobs)))
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// Many rows per statement: a site of a thousand registers is a handful of inserts.
    pub(super) async fn insert_targets(&mut self, batch: &Batch, at: DateTime<Utc>) -> Result<()> {
        for chunk in batch.targets.chunks(100) {
            let sql = format!(
                "INSERT INTO sync_targets (id, job_id, register_id, state, revision, reason,
                    deadline_at, wait_expires_at, updated_at) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(&sql);
            for t in chunk {
                query = query
                    .bind(t.id)
                    .bind(t.job_id)
                    .bind(t.register_id)
                    .bind(t.state.as_str())
                    .bind(t.stamp.revision)
                    .bind(t.stamp.reason.as_deref())
                    .bind(t.stamp.deadline_ms)
                    .bind(t.stamp.wait_expires_at)
                    .bind(at);
            }
            query.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Moves that set the same values are one statement (a fan-out's answers are nearly always
    /// one); `id IN (…)` is a primary-key lookup per row whatever the table's size.
    pub(super) async fn apply_moves(&mut self, moves: &[Move], at: DateTime<Utc>) -> Result<()> {
        for ((from, to, revision, reason, deadline_ms, wait_expires_at), ids) in move_groups(moves)
        {
            let moved = sqlx::query(&format!(
                "UPDATE sync_targets
                 SET state = ?, revision = COALESCE(?, revision), reason = ?, deadline_at = ?,
                     wait_expires_at = ?, updated_at = ?
                 WHERE id IN {IN_IDS} AND state = ?"
            ))
            .bind(to)
            .bind(revision)
            .bind(reason)
            .bind(deadline_ms)
            .bind(wait_expires_at)
            .bind(at)
            .bind(id_list(&ids))
            .bind(from)
            .execute(&mut *self.tx)
            .await?;
            if moved.rows_affected() != ids.len() as u64 {
                let expected = state(from)?;
                return Err(stale_move(ids[0], expected));
            }
        }
        Ok(())
    }

    /// Registers' changes, one statement per kind of change (a fan-out's answers are one): the
    /// hello's revision is set as reported; an applied one only raises it; last synced only
    /// moves forward — the one place that rule is. Each register's own time rides with its id
    /// as `"<hex id>|<time>"`, which costs SQLite no JSON parsing per row.
    pub(super) async fn update_registers(&mut self, batch: &Batch) -> Result<()> {
        type Key = (
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<&'static str>,
            Option<String>,
        );
        let mut groups: BTreeMap<Key, Vec<String>> = BTreeMap::new();
        for (id, c) in &batch.registers {
            let key = (
                c.set_revision,
                c.raise_revision,
                c.seen_at.map(text),
                c.synced.as_ref().map(|s| source_str(s.source)),
                c.synced
                    .as_ref()
                    .and_then(|s| s.by.as_deref().map(str::to_owned)),
            );
            let at = c.synced.as_ref().map(|s| text(s.at)).unwrap_or_default();
            groups
                .entry(key)
                .or_default()
                .push(format!("{}|{at}", id.simple()));
        }
        let newer = "c.at IS NOT NULL
                     AND (registers.last_synced_at IS NULL OR registers.last_synced_at < c.at)";
        let sql = format!(
            "UPDATE registers SET
                applied_revision = MAX(COALESCE(?1, applied_revision),
                                       COALESCE(?2, ?1, applied_revision)),
                last_seen_at = COALESCE(?3, last_seen_at),
                last_synced_source = CASE WHEN {newer} THEN ?4 ELSE last_synced_source END,
                last_synced_by = CASE WHEN {newer} THEN ?5 ELSE last_synced_by END,
                last_synced_at = CASE WHEN {newer} THEN c.at ELSE last_synced_at END
             FROM (SELECT unhex(substr(value, 1, 32)) AS id,
                          nullif(substr(value, 34), '') AS at
                   FROM json_each(?6)) AS c
             WHERE registers.id = c.id"
        );
        for ((set, raise, seen, source, by), entries) in groups {
            let entries = serde_json::to_string(&entries)
                .map_err(|e| Error::Internal(format!("register changes: {e}")))?;
            sqlx::query(&sql)
                .bind(set)
                .bind(raise)
                .bind(seen)
                .bind(source)
                .bind(by)
                .bind(entries)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }
}

impl conformance::Furnish for SqliteStore {
    async fn furnish(&self, site: &conformance::Furniture<'_>) -> Result<()> {
        conformance::furnish_on(&crate::Db::Sqlite(self.db.clone()), None, site).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_passes_the_store_conformance_suite() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let n = std::sync::atomic::AtomicUsize::new(0);
        let dir = &dir;
        let n = &n;
        crate::sync::store::conformance::run_all(|| async move {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.path().join(format!("store-{i}.sqlite"));
            match crate::db::open(&path.display().to_string()).await {
                Ok(crate::Db::Sqlite(pool)) => SqliteStore::new(pool),
                other => panic!("a SQLite database: {other:?}"),
            }
        })
        .await;
    }
}
