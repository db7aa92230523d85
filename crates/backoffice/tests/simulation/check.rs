//! The invariants, checked after every step against what the store committed and what the
//! registers really did:
//! 1. a register never applies during a sale (the register's own rule, asserted where it applies);
//! 2. every target reaches exactly one terminal state, and none is open past its deadline;
//! 3. a target id is applied at most once per install, and no revision ever goes back;
//! 4. `last_synced_at` moves only when a register really applied something new, never back;
//! 5. what Back Office shows of a register (revision, up to date) is what it last reported
//!    (checked when the world is healed and every register has said hello);
//! 6. an offline register queued by a job (`awaiting_reconnect`) is delivered only before the
//!    queue ends and ended only when it has, and (one Back Office) the register's hello delivers
//!    it in the same batch: it never waits while its register is connected.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use regsync_backoffice::sync::core::Batch;
use regsync_backoffice::sync::store::Store;
use regsync_backoffice::sync::store::memory::MemoryStore;
use regsync_protocol::sync::TargetState;
use uuid::Uuid;

use crate::register::SimRegister;

#[derive(Debug, Default)]
pub struct Checker {
    /// Every target the store holds: its state and deadline.
    targets: BTreeMap<Uuid, (TargetState, Option<i64>)>,
    /// Open targets by deadline, earliest first.
    deadlines: BTreeSet<(i64, Uuid)>,
    credited: BTreeSet<Uuid>,
    last_synced: BTreeMap<Uuid, DateTime<Utc>>,
    pub ended: BTreeMap<&'static str, u64>,
    pub batches: u64,
    /// Open targets past their deadline, since when (simulated time).
    overdue_since: BTreeMap<Uuid, i64>,
    /// Targets awaiting their register's reconnection: (register, the queue's end).
    awaiting: BTreeMap<Uuid, (Uuid, i64)>,
    /// Of those, how many were delivered on reconnection and how many ran out.
    pub reconnected: u64,
    pub queue_ran_out: u64,
    /// One Back Office: a register's hello must deliver its queued targets in the same batch.
    pub one_node: bool,
}

fn block<F: std::future::Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

impl Checker {
    pub fn new(one_node: bool) -> Checker {
        Checker {
            one_node,
            ..Checker::default()
        }
    }

    /// Reads the batches committed since the last step.
    pub fn absorb(&mut self, log: Vec<Batch>, registers: &[SimRegister]) -> Result<(), String> {
        for batch in log {
            self.batches += 1;
            for t in &batch.targets {
                if self
                    .targets
                    .insert(t.id, (t.state, t.stamp.deadline_ms))
                    .is_some()
                {
                    return Err(format!("target {} was created twice", t.id));
                }
                if let (false, Some(deadline)) = (t.state.is_terminal(), t.stamp.deadline_ms) {
                    self.deadlines.insert((deadline, t.id));
                }
                if t.state.is_terminal() {
                    *self.ended.entry(t.state.as_str()).or_default() += 1;
                } else if t.stamp.deadline_ms.is_none() {
                    return Err(format!("open target {} has no deadline", t.id));
                }
                if let (TargetState::AwaitingReconnect, Some(end)) = (t.state, t.stamp.deadline_ms)
                {
                    self.awaiting.insert(t.id, (t.register_id, end));
                }
            }
            for m in &batch.moves {
                let Some(entry) = self.targets.get_mut(&m.id) else {
                    return Err(format!("target {} moved before it existed", m.id));
                };
                if entry.0.is_terminal() {
                    return Err(format!(
                        "target {} left terminal state {} for {}",
                        m.id,
                        entry.0.as_str(),
                        m.to.as_str()
                    ));
                }
                if !m.to.is_terminal() && m.stamp.deadline_ms.is_none() {
                    return Err(format!("open target {} lost its deadline", m.id));
                }
                if let Some((_, end)) = self.awaiting.remove(&m.id) {
                    let at = batch.at.map_or(0, |at| at.timestamp_millis());
                    match m.to {
                        TargetState::Delivered if at < end => self.reconnected += 1,
                        TargetState::Expired if at >= end => self.queue_ran_out += 1,
                        to => {
                            return Err(format!(
                                "queued offline target {} went {} at {at}, its queue ending at {end}",
                                m.id,
                                to.as_str()
                            ));
                        }
                    }
                }
                if let Some(old) = entry.1 {
                    self.deadlines.remove(&(old, m.id));
                }
                if let (false, Some(deadline)) = (m.to.is_terminal(), m.stamp.deadline_ms) {
                    self.deadlines.insert((deadline, m.id));
                }
                *entry = (m.to, m.stamp.deadline_ms);
                if m.to.is_terminal() {
                    *self.ended.entry(m.to.as_str()).or_default() += 1;
                }
            }
            for (register_id, change) in &batch.registers {
                let hello = change.set_revision.is_some();
                if self.one_node && hello {
                    let waiting = self.awaiting.iter().find(|(_, (r, _))| r == register_id);
                    if let Some((id, _)) = waiting {
                        return Err(format!(
                            "register {register_id} said hello and its queued target {id} stayed awaiting"
                        ));
                    }
                }
                let Some(synced) = &change.synced else {
                    continue;
                };
                let register = registers.iter().find(|r| r.id == *register_id);
                let applied = register.and_then(|r| r.ever_applied.get(&synced.target_id));
                if applied.is_none() {
                    return Err(format!(
                        "register {register_id} credited with target {} it never applied",
                        synced.target_id
                    ));
                }
                if !self.credited.insert(synced.target_id) {
                    return Err(format!("target {} credited twice", synced.target_id));
                }
            }
        }
        Ok(())
    }

    /// After every step: no open target past its deadline (while Back Office runs to end it;
    /// with several nodes, for longer than `slack_ms` of simulated time: a dead node's targets
    /// wait for a live one to take its registers over), and each register's record within what
    /// it really did.
    pub fn step(
        &mut self,
        store: &MemoryStore,
        registers: &[SimRegister],
        (wall_ms, sim_ms): (i64, i64),
        slack_ms: i64,
        up: bool,
    ) -> Result<(), String> {
        if up {
            let overdue: Vec<Uuid> = self
                .deadlines
                .iter()
                .take_while(|(deadline, _)| *deadline <= wall_ms)
                .map(|(_, id)| *id)
                .collect();
            self.overdue_since.retain(|id, _| overdue.contains(id));
            for id in overdue {
                let since = *self.overdue_since.entry(id).or_insert(sim_ms);
                // One Back Office (no slack) ends what is due the moment it is due.
                if slack_ms == 0 || sim_ms - since > slack_ms {
                    let state = self.targets.get(&id).map_or("?", |(s, _)| s.as_str());
                    return Err(format!("target {id} is still {state} past its deadline"));
                }
            }
        } else {
            self.overdue_since.clear();
        }
        for register in registers {
            let record = block(store.register(register.id))
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            if record.applied_revision > register.max_revision {
                return Err(format!(
                    "Back Office shows register {} at revision {}, more than it ever held ({})",
                    register.id, record.applied_revision, register.max_revision
                ));
            }
            let before = self.last_synced.get(&register.id).copied();
            match (before, record.last_synced_at) {
                (Some(before), Some(now)) if now < before => {
                    return Err(format!("last synced of {} went back", register.id));
                }
                (Some(_), None) => return Err(format!("last synced of {} vanished", register.id)),
                _ => {}
            }
            if let Some(at) = record.last_synced_at {
                if register.last_applied_at.is_none_or(|last| last < at) {
                    return Err(format!(
                        "last synced of {} is {at}, later than anything it applied",
                        register.id
                    ));
                }
                self.last_synced.insert(register.id, at);
            }
        }
        Ok(())
    }

    /// Targets still open, as the store has them.
    pub fn open(&self) -> usize {
        self.deadlines.len()
    }

    pub fn targets(&self) -> usize {
        self.targets.len()
    }
}
