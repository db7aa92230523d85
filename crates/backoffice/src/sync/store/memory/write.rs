//! Writing a checked batch, and furnishing a store for tests.

use super::{MemTarget, MemoryStore, State};
use crate::error::Result;
use crate::sync::core::Batch;
use crate::sync::store::{TargetRecord, conformance};
use regsync_protocol::sync::TargetState;

/// Writes a checked batch.
pub(super) fn write(state: &mut State, batch: &Batch) {
    let at = batch.at.unwrap_or_default();
    for job in &batch.jobs {
        state.jobs.insert(job.id, (job.clone(), None));
    }
    for t in &batch.targets {
        state.job_targets.entry(t.job_id).or_default().push(t.id);
        state.targets.insert(
            t.id,
            MemTarget {
                record: TargetRecord {
                    register_id: t.register_id,
                    job_id: t.job_id,
                    state: t.state,
                    revision: t.stamp.revision,
                    reason: t.stamp.reason.clone(),
                    deadline_ms: t.stamp.deadline_ms,
                    credited: t.state == TargetState::Synced,
                },
                register_name: t.register_name.clone(),
                wait_expires_at: t.stamp.wait_expires_at,
                updated_at: at,
            },
        );
    }
    for m in &batch.moves {
        if let Some(target) = state.targets.get_mut(&m.id) {
            let record = &mut target.record;
            record.state = m.to;
            record.revision = m.stamp.revision.or(record.revision);
            record.reason = m.stamp.reason.clone();
            record.deadline_ms = m.stamp.deadline_ms;
            record.credited |= m.to == TargetState::Synced;
            target.wait_expires_at = m.stamp.wait_expires_at;
            target.updated_at = at;
        }
    }
    for id in &batch.late_applied {
        if let Some(target) = state.targets.get_mut(id) {
            target.record.credited = true;
        }
    }
    for (id, change) in &batch.registers {
        let Some(register) = state.registers.get_mut(id) else {
            continue;
        };
        let record = &mut register.record;
        let base = change.set_revision.unwrap_or(record.applied_revision);
        record.applied_revision = change.raise_revision.map_or(base, |r| r.max(base));
        if let Some(seen) = change.seen_at {
            record.last_seen_at = Some(seen);
        }
        if let Some(synced) = &change.synced
            && record.last_synced_at.is_none_or(|last| last < synced.at)
        {
            record.last_synced_at = Some(synced.at);
            record.last_synced_source = Some(synced.source);
            record.last_synced_by = synced.by.as_deref().map(str::to_owned);
        }
    }
    for job_id in &batch.finished {
        if let Some((_, finished_at)) = state.jobs.get_mut(job_id) {
            *finished_at = Some(at);
        }
    }
}

impl conformance::Furnish for MemoryStore {
    async fn furnish(&self, site: &conformance::Furniture<'_>) -> Result<()> {
        let (company_id, site_id) = (site.company_id, site.site_id);
        self.add_site(company_id, site_id);
        for (id, name) in site.registers {
            self.add_register(site_id, *id, name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_passes_the_store_conformance_suite() {
        crate::sync::store::conformance::run_all(|| async { MemoryStore::default() }).await;
    }
}
