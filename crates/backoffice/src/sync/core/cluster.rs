//! Back Office as several nodes: what this node's core holds is the open targets of the
//! registers it holds. A register that connects here is claimed with its open targets; targets
//! other nodes add for registers held here are adopted; a register claimed by another node is
//! released.

use chrono::{DateTime, Utc};
use regsync_protocol::sync::TargetState;
use uuid::Uuid;

use super::{Claim, Core, Effect, OpenRow, ms};

impl Core {
    /// The register is this node's now: its open targets are the stored ones, whatever this
    /// node remembered of it from an earlier time it held it.
    pub(super) fn claimed(&mut self, register_id: Uuid, claim: Claim, now: DateTime<Utc>) {
        self.forget_register(register_id);
        self.adopt(claim.open, now);
    }

    /// Takes open targets this node did not know of. Deliveries to a register that is not
    /// connected here get the offline grace, as after a restart: it may come back and settle
    /// them, or they fail.
    pub(super) fn adopt(&mut self, rows: Vec<OpenRow>, now: DateTime<Utc>) {
        let grace = ms(now + self.timing.offline_grace);
        let mut registers = Vec::new();
        for row in rows {
            if self.open.contains(&row.id) {
                continue;
            }
            let linked = self.links.contains_key(&row.register_id);
            let in_flight = matches!(row.state, TargetState::Queued | TargetState::Delivered);
            let deadline = row.deadline_ms.unwrap_or(grace);
            let deadline = if in_flight && !linked {
                deadline.min(grace)
            } else {
                deadline
            };
            self.step.touched.targets.insert(row.id);
            registers.push(row.register_id);
            self.hold(row, deadline);
        }
        registers.sort_unstable();
        registers.dedup();
        for register_id in registers {
            let free = self.links.get(&register_id).is_some_and(|l| !l.in_sale);
            if free {
                self.free(register_id, now);
            }
            let states = [TargetState::Queued, TargetState::AwaitingReconnect];
            self.send_open(register_id, &states, now);
        }
    }

    /// Another node claimed the register at `epoch`: a connection here from before is closed,
    /// and its targets are that node's to write.
    pub(super) fn release(&mut self, register_id: Uuid, epoch: i64) {
        let Some(link) = self.links.get(&register_id) else {
            self.forget_register(register_id);
            return;
        };
        if link.epoch.is_some_and(|held| held >= epoch) {
            // Claimed here again since: the notice is old news.
            return;
        }
        let generation = link.generation;
        self.links.remove(&register_id);
        self.step.effects.push(Effect::Close {
            register_id,
            generation,
            reason: "connected to another Back Office node".into(),
        });
        self.forget_register(register_id);
    }

    /// Drops what this node holds of a register's open targets, without moving them.
    fn forget_register(&mut self, register_id: Uuid) {
        for target_id in self.open.of_register(register_id, &TargetState::OPEN) {
            if let Some(target) = self.open.remove(&target_id)
                && let Some(job) = self.jobs.get_mut(&target.job_id)
            {
                job.open = job.open.saturating_sub(1);
                if job.open == 0 {
                    self.jobs.remove(&target.job_id);
                }
            }
        }
    }
}
