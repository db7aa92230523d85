//! Where the sync engine keeps its targets: every statement it needs, behind one small trait.
//!
//! The engine needs little of a store: the open targets after a start ([`Store::recover`],
//! [`Store::load_open`]), and per batch one transaction ([`StoreTx`]) that answers a few reads
//! and persists the core's [`Batch`] atomically, every move a compare-and-set on the target's
//! state. What the engine relies on is written down as [`conformance`], a suite that any
//! implementation must pass unchanged: SQLite (one Back Office), PostgreSQL (several nodes), and
//! the simulation's store in memory.

pub mod conformance;
pub mod memory;
pub mod postgres;
pub mod sqlite;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use regsync_protocol::api::SyncSource;
use regsync_protocol::sync::{Job, TargetState};
use uuid::Uuid;

use super::core::{Batch, Claim, Elsewhere, KnownTarget, Move, OpenRow};
pub use crate::cluster::Notice;
use crate::error::Result;

/// Who a job covers, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Register(Uuid),
    SiteOnline(Uuid),
}

/// A site's menu as the store has it: its revision, and its content when it is not the
/// revision the caller already holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogAt {
    pub revision: i64,
    pub content: Option<String>,
}

/// A register's sync facts as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegisterRecord {
    pub applied_revision: i64,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_synced_source: Option<SyncSource>,
    pub last_synced_by: Option<String>,
}

/// A target as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRecord {
    pub register_id: Uuid,
    pub job_id: Uuid,
    pub state: TargetState,
    pub revision: Option<i64>,
    pub reason: Option<String>,
    pub deadline_ms: Option<i64>,
    pub credited: bool,
}

/// The store an engine runs on.
#[allow(async_fn_in_trait)] // The engine drives it from one thread; no `Send` bound is needed.
pub trait Store {
    type Tx: StoreTx;

    /// Gives every target a previous run left queued or delivered at most until `grace_ms`
    /// (unix milliseconds) to be settled; answers how many there were.
    async fn recover(&self, grace_ms: i64) -> Result<u64>;

    /// Every open target, with what its job says.
    async fn load_open(&self) -> Result<Vec<OpenRow>>;

    /// One transaction; nothing of it is visible to others before [`StoreTx::commit`].
    async fn begin(&self) -> Result<Self::Tx>;

    /// A job with its targets, if it belongs to `company_id` (`NotFound` otherwise).
    async fn job(&self, company_id: Uuid, job_id: Uuid) -> Result<Job>;

    async fn register(&self, register_id: Uuid) -> Result<Option<RegisterRecord>>;

    async fn target(&self, target_id: Uuid) -> Result<Option<TargetRecord>>;
}

#[allow(async_fn_in_trait)]
pub trait StoreTx {
    /// The site and registers (id, name; by name) a job covers, checked to be `company_id`'s:
    /// `NotFound` for a register or site that is not, `Conflict` for a site with none.
    async fn scope(
        &mut self,
        company_id: Uuid,
        scope: Scope,
    ) -> Result<(Uuid, Vec<(Uuid, String)>)>;

    /// What the store knows of these targets, for answers about ones that are not open.
    async fn known(&mut self, target_ids: &[Uuid]) -> Result<HashMap<Uuid, KnownTarget>>;

    /// The site's current menu; its content only when `held` is not its revision.
    async fn catalog(&mut self, site_id: Uuid, held: Option<i64>) -> Result<CatalogAt>;

    /// Back Office as several nodes: the open targets of the registers this node holds, which
    /// other nodes may have added (their jobs) or handed over (a node that died). `None` for a
    /// store with one Back Office, whose engine knows every open target already.
    async fn held_open(&mut self) -> Result<Option<Vec<OpenRow>>> {
        Ok(None)
    }

    /// Several nodes: of these registers, the ones held by another node that is alive (connected
    /// to it, or last connected to it), with that node. Empty for a store with one Back Office.
    async fn elsewhere(&mut self, _registers: &[Uuid]) -> Result<HashMap<Uuid, Elsewhere>> {
        Ok(HashMap::new())
    }

    /// Several nodes: this node now holds `register_id` (it connected here), and these are its
    /// open targets, which only this node writes from now on. `None` for a store with one Back
    /// Office.
    async fn claim(&mut self, _register_id: Uuid) -> Result<Option<Claim>> {
        Ok(None)
    }

    /// Persists a batch: all of it or, when any move's `from` is not the stored state (or, with
    /// several nodes, its register is no longer this node's), none of it (an error). Of the
    /// batch's `finished` jobs, finishes those with no open target left, and answers which.
    async fn apply(&mut self, batch: &Batch) -> Result<Vec<Uuid>>;

    /// Several nodes: tells the others, when this transaction commits, what it changed.
    async fn publish(&mut self, _notice: &Notice) -> Result<()> {
        Ok(())
    }

    async fn commit(self) -> Result<()>;
}

/// A move whose `from` did not match: someone else changed the target, so the batch is refused.
pub fn stale_move(target_id: Uuid, expected: TargetState) -> crate::error::Error {
    crate::error::Error::Internal(format!(
        "sync target {target_id} is no longer {}; the batch was not saved",
        expected.as_str()
    ))
}

/// A target state as stored, or an error naming what was found.
pub(crate) fn stored_state(stored: &str) -> Result<TargetState> {
    TargetState::parse(stored).ok_or_else(|| {
        crate::error::Error::Internal(format!("a stored sync target state `{stored}`"))
    })
}

pub(crate) fn stored_source(stored: &str) -> SyncSource {
    crate::registers::parse_source(stored).unwrap_or(SyncSource::BackOffice)
}

/// A row of what a store knows of a target that is not open: its id, register, job, state,
/// whether its register was credited with it, and its job's source and asker.
pub(crate) type KnownRow = (Uuid, Uuid, Uuid, String, bool, String, Option<String>);

pub(crate) fn known_rows(rows: Vec<KnownRow>) -> Result<HashMap<Uuid, KnownTarget>> {
    rows.into_iter()
        .map(|(id, register_id, job_id, stored, credited, src, by)| {
            let known = KnownTarget {
                register_id,
                job_id,
                state: stored_state(&stored)?,
                credited,
                source: stored_source(&src),
                requested_by: by.map(Into::into),
            };
            Ok((id, known))
        })
        .collect()
}

/// What a group of moves sets: from, to, revision, reason, deadline, wait expiry.
pub(crate) type MoveKey<'a> = (
    &'a str,
    &'a str,
    Option<i64>,
    Option<&'a str>,
    Option<i64>,
    Option<DateTime<Utc>>,
);

/// Moves that set the same values, together: one statement each (a fan-out's answers are
/// nearly always one group).
pub(crate) fn move_groups(moves: &[Move]) -> BTreeMap<MoveKey<'_>, Vec<Uuid>> {
    let mut groups: BTreeMap<MoveKey<'_>, Vec<Uuid>> = BTreeMap::new();
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
    groups
}
