//! What the core decided in one batch, as plain data for a store to persist in one transaction.
//!
//! A target moves at most once per batch as the store sees it: later moves of the same target
//! fold into the first, keeping its `from` (the state the store holds), so a store can check
//! every move as a compare-and-set. A register's changes fold the same way.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use regsync_protocol::api::SyncSource;
use regsync_protocol::sync::{JobGroupRef, JobKind, TargetState};
use uuid::Uuid;

/// A name shared by every change it appears in (who asked for a job), cheap to copy around.
pub type Name = std::sync::Arc<str>;

#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: Uuid,
    pub company_id: Uuid,
    pub site_id: Uuid,
    pub kind: JobKind,
    pub source: SyncSource,
    /// The manager who asked: their id, and the name on the register's banner.
    pub requested_by: Option<(Uuid, String)>,
    pub retry_when_free: bool,
    pub created_at: DateTime<Utc>,
    /// Its part in "Sync online registers at all my sites", if it is one.
    pub group: Option<JobGroupRef>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTarget {
    pub id: Uuid,
    pub job_id: Uuid,
    pub register_id: Uuid,
    pub register_name: String,
    pub state: TargetState,
    pub stamp: Stamp,
}

/// One target's change, checked against `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub id: Uuid,
    pub job_id: Uuid,
    pub register_id: Uuid,
    pub from: TargetState,
    pub to: TargetState,
    pub stamp: Stamp,
}

/// What a creation or a move writes on a target besides its state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stamp {
    /// The menu revision delivered or reported; on a move, `None` keeps the stored one.
    pub revision: Option<i64>,
    /// Why it failed or was skipped, in words for the manager.
    pub reason: Option<String>,
    /// When the core acts on it next if nothing else happens (milliseconds since the epoch).
    pub deadline_ms: Option<i64>,
    /// While waiting for a sale to end: when the wait runs out.
    pub wait_expires_at: Option<DateTime<Utc>>,
    /// Sent to its register in this batch: the driver stamps the site's current revision.
    pub deliver_site: Option<Uuid>,
}

impl Stamp {
    /// A later stamp of the same target in one batch: it wins, but keeps a known revision.
    fn fold(&mut self, later: Stamp) {
        let revision = later.revision.or(self.revision);
        *self = Stamp { revision, ..later };
    }
}

/// The sync a register is credited with: its "last synced".
#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    pub target_id: Uuid,
    /// When the register applied it (its own report, never later than Back Office's clock).
    pub at: DateTime<Utc>,
    pub source: SyncSource,
    pub by: Option<Name>,
}

/// What Back Office records of one register in a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegisterChange {
    /// The revision it reported in its hello: the truth about what it holds, even when lower.
    pub set_revision: Option<i64>,
    /// A revision it applied since: raises the revision, never lowers it.
    pub raise_revision: Option<i64>,
    /// A first settlement of a sync it applied. Last synced only moves forward.
    pub synced: Option<Synced>,
    pub seen_at: Option<DateTime<Utc>>,
}

/// A batch: everything one transaction writes.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub at: Option<DateTime<Utc>>,
    pub jobs: Vec<NewJob>,
    pub targets: Vec<NewTarget>,
    pub moves: Vec<Move>,
    /// Targets already ended when their register reported applying them (say, after their
    /// deadline): the register is credited once, and these record that it was.
    pub late_applied: Vec<Uuid>,
    pub registers: HashMap<Uuid, RegisterChange>,
    /// Jobs whose last open target this node held ended: each is finished if none is open.
    pub finished: Vec<Uuid>,
    /// Several nodes: who is connected here and in a sale, as it changed: (online, in a sale).
    pub presence: HashMap<Uuid, (bool, bool)>,
    new_index: HashMap<Uuid, usize>,
    move_index: HashMap<Uuid, usize>,
}

impl Batch {
    /// An empty batch of changes made at `at`.
    pub fn at(at: DateTime<Utc>) -> Batch {
        Batch {
            at: Some(at),
            ..Batch::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.targets.is_empty()
            && self.moves.is_empty()
            && self.late_applied.is_empty()
            && self.registers.is_empty()
            && self.finished.is_empty()
            && self.presence.is_empty()
    }

    pub fn add_target(&mut self, target: NewTarget) {
        self.new_index.insert(target.id, self.targets.len());
        self.targets.push(target);
    }

    /// Records a move, folding it into an earlier one of the same target in this batch (or into
    /// the target's creation).
    pub fn add_move(&mut self, change: Move) {
        if let Some(&i) = self.new_index.get(&change.id) {
            let target = &mut self.targets[i];
            target.state = change.to;
            target.stamp.fold(change.stamp);
        } else if let Some(&i) = self.move_index.get(&change.id) {
            let earlier = &mut self.moves[i];
            earlier.to = change.to;
            earlier.stamp.fold(change.stamp);
        } else {
            self.move_index.insert(change.id, self.moves.len());
            self.moves.push(change);
        }
    }

    pub fn register(&mut self, register_id: Uuid) -> &mut RegisterChange {
        self.registers.entry(register_id).or_default()
    }
}

impl RegisterChange {
    pub fn set_revision(&mut self, revision: i64) {
        self.set_revision = Some(revision);
        self.raise_revision = None;
    }

    pub fn raise_revision(&mut self, revision: i64) {
        self.raise_revision = Some(self.raise_revision.map_or(revision, |r| r.max(revision)));
    }

    pub fn credit(&mut self, synced: Synced) {
        if self.synced.as_ref().is_none_or(|s| s.at < synced.at) {
            self.synced = Some(synced);
        }
    }
}

/// What a store knows of a target that is no longer open, for answers that arrive late.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownTarget {
    pub register_id: Uuid,
    pub job_id: Uuid,
    pub state: TargetState,
    /// Its register was already credited for applying it.
    pub credited: bool,
    pub source: SyncSource,
    pub requested_by: Option<Name>,
}

/// An open target as stored, with what its job says, for recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRow {
    pub id: Uuid,
    pub register_id: Uuid,
    pub job_id: Uuid,
    pub state: TargetState,
    pub deadline_ms: Option<i64>,
    pub source: SyncSource,
    pub requested_by: Option<String>,
    pub retry_when_free: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(id: u128, from: TargetState, to: TargetState, revision: Option<i64>) -> Move {
        Move {
            id: Uuid::from_u128(id),
            job_id: Uuid::nil(),
            register_id: Uuid::nil(),
            from,
            to,
            stamp: Stamp {
                revision,
                deadline_ms: Some(1),
                ..Stamp::default()
            },
        }
    }

    #[test]
    fn moves_of_one_target_fold_into_one_compare_and_set() {
        use TargetState::*;
        let mut batch = Batch::default();
        batch.add_move(change(1, Delivered, Waiting, Some(3)));
        batch.add_move(change(1, Waiting, Queued, None));
        batch.add_move(change(1, Queued, Delivered, None));
        assert_eq!(batch.moves.len(), 1);
        let folded = &batch.moves[0];
        assert_eq!(
            (folded.from, folded.to, folded.stamp.revision),
            (Delivered, Delivered, Some(3))
        );
    }

    #[test]
    fn a_hello_resets_what_earlier_answers_raised() {
        let mut change = RegisterChange::default();
        change.raise_revision(5);
        change.set_revision(0);
        assert_eq!(
            (change.set_revision, change.raise_revision),
            (Some(0), None)
        );
        change.raise_revision(2);
        change.raise_revision(1);
        assert_eq!(change.raise_revision, Some(2));
    }
}
