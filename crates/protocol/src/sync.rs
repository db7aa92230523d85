//! Sync jobs as managers see them: one request, one target per register, each following the
//! state machine of `docs/sync.md` to exactly one terminal state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{Register, Site, SyncSource};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Asked for; about to be sent to the register.
    Queued,
    /// Sent; the register's answer is awaited.
    Delivered,
    /// The register was in a sale; it will be sent again when the sale ends.
    Waiting,
    /// The register was offline and the job asked to queue it: sent when it reconnects, until
    /// `wait_expires_at`.
    AwaitingReconnect,
    /// Terminal: the register has the menu (`revision`).
    Synced,
    /// Terminal: the register was in a sale and the job did not ask to wait.
    SkippedBusy,
    /// Terminal: the register was offline when the sync was asked for.
    SkippedOffline,
    /// Terminal: the sale did not end, or the offline register did not reconnect, before the
    /// wait ran out.
    Expired,
    /// Terminal: see `reason`.
    Failed,
}

impl TargetState {
    pub const ALL: [TargetState; 9] = [
        TargetState::Queued,
        TargetState::Delivered,
        TargetState::Waiting,
        TargetState::AwaitingReconnect,
        TargetState::Synced,
        TargetState::SkippedBusy,
        TargetState::SkippedOffline,
        TargetState::Expired,
        TargetState::Failed,
    ];

    /// The states a target can still leave.
    pub const OPEN: [TargetState; 4] = [
        TargetState::Queued,
        TargetState::Delivered,
        TargetState::Waiting,
        TargetState::AwaitingReconnect,
    ];

    pub fn is_terminal(self) -> bool {
        !TargetState::OPEN.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Queued => "queued",
            TargetState::Delivered => "delivered",
            TargetState::Waiting => "waiting",
            TargetState::AwaitingReconnect => "awaiting_reconnect",
            TargetState::Synced => "synced",
            TargetState::SkippedBusy => "skipped_busy",
            TargetState::SkippedOffline => "skipped_offline",
            TargetState::Expired => "expired",
            TargetState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<TargetState> {
        TargetState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// What a job asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// "Sync" next to one register.
    Register,
    /// "Sync online registers" of a site (alone, or as its part of a group over all sites).
    SiteOnline,
}

/// What a register's own page shows: its recent syncs and when it went online and offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterActivity {
    /// Its latest syncs, newest first (at most 20).
    pub syncs: Vec<RegisterSync>,
    /// When it went online and offline over the last 30 days, newest first (at most 100).
    pub presence: Vec<PresenceChange>,
    /// What the menu gained and lost since the revision it holds; none when it is up to date.
    pub missing: Option<MissingMenu>,
}

/// What a register behind the latest menu does not have yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MissingMenu {
    /// The revision the register holds (0: it never took a menu).
    pub from_revision: i64,
    pub to_revision: i64,
    /// False when the revision it holds is no longer kept (older than 90 days, or from before
    /// Back Office kept them): `diff` is then against an empty menu, i.e. everything.
    pub known: bool,
    pub diff: crate::catalog::MenuDiff,
}

/// One sync of one register: the job's who and when, and how it ended for this register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterSync {
    pub job_id: Uuid,
    pub kind: JobKind,
    pub source: SyncSource,
    /// Who asked; none when staff started it at the register.
    pub requested_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub state: TargetState,
    pub revision: Option<i64>,
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// A register going online (`true`) or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceChange {
    pub online: bool,
    pub at: DateTime<Utc>,
}

/// One register's part in a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Target {
    pub id: Uuid,
    pub job_id: Uuid,
    pub register_id: Uuid,
    pub register_name: String,
    pub state: TargetState,
    /// The menu revision delivered, then the one the register reported having.
    pub revision: Option<i64>,
    /// Why it failed or was skipped, in words for the manager.
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// While waiting for a sale to end or for an offline register to reconnect: when the wait
    /// runs out.
    pub wait_expires_at: Option<DateTime<Utc>>,
}

/// How many targets are in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobCounts {
    pub queued: u32,
    pub delivered: u32,
    pub waiting: u32,
    /// Offline registers queued until they reconnect (absent from Back Offices before 0.2).
    #[serde(default)]
    pub awaiting_reconnect: u32,
    pub synced: u32,
    pub skipped_busy: u32,
    pub skipped_offline: u32,
    pub expired: u32,
    pub failed: u32,
}

/// The counts of some targets, from their states.
impl FromIterator<TargetState> for JobCounts {
    fn from_iter<I: IntoIterator<Item = TargetState>>(states: I) -> JobCounts {
        let mut counts = JobCounts::default();
        for state in states {
            counts.add(state);
        }
        counts
    }
}

impl JobCounts {
    pub fn add(&mut self, state: TargetState) {
        *self.slot(state) += 1;
    }

    /// Adds another job's counts to these.
    pub fn merge(&mut self, other: &JobCounts) {
        for state in TargetState::ALL {
            *self.slot(state) += other.get(state);
        }
    }

    fn slot(&mut self, state: TargetState) -> &mut u32 {
        match state {
            TargetState::Queued => &mut self.queued,
            TargetState::Delivered => &mut self.delivered,
            TargetState::Waiting => &mut self.waiting,
            TargetState::AwaitingReconnect => &mut self.awaiting_reconnect,
            TargetState::Synced => &mut self.synced,
            TargetState::SkippedBusy => &mut self.skipped_busy,
            TargetState::SkippedOffline => &mut self.skipped_offline,
            TargetState::Expired => &mut self.expired,
            TargetState::Failed => &mut self.failed,
        }
    }

    pub fn get(&self, state: TargetState) -> u32 {
        let mut copy = self.clone();
        *copy.slot(state)
    }

    pub fn total(&self) -> u32 {
        TargetState::ALL.into_iter().map(|s| self.get(s)).sum()
    }

    /// Targets not yet in a terminal state.
    pub fn open(&self) -> u32 {
        self.queued + self.delivered + self.waiting + self.awaiting_reconnect
    }
}

/// A job without its targets: what lists and live updates carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobSummary {
    pub id: Uuid,
    pub site_id: Uuid,
    pub kind: JobKind,
    pub source: SyncSource,
    /// Display name of the manager who asked; absent when staff asked on the register.
    pub requested_by: Option<String>,
    pub retry_when_free: bool,
    pub created_at: DateTime<Utc>,
    /// Set once every target is terminal.
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: JobCounts,
    /// Part of "Sync online registers at all my sites": the group, and how many jobs (sites)
    /// it has. Absent for a job of its own.
    #[serde(default)]
    pub group: Option<JobGroupRef>,
}

/// The group a job belongs to: one job per site of "Sync online registers at all my sites".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobGroupRef {
    pub id: Uuid,
    /// How many jobs (one per site) it has.
    pub jobs: u32,
}

/// "Sync online registers at all my sites": one job per site that has registers, started
/// together, seen as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncGroup {
    pub id: Uuid,
    pub requested_by: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Set once every site's job has finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Every site's targets together.
    pub counts: JobCounts,
    /// Each site's job: the per-site breakdown, by site name.
    pub jobs: Vec<JobSummary>,
}

impl SyncGroup {
    /// The group of these jobs (of one group), its totals worked out from them.
    pub fn of(id: Uuid, jobs: Vec<JobSummary>) -> SyncGroup {
        let mut counts = JobCounts::default();
        for job in &jobs {
            counts.merge(&job.counts);
        }
        let finished_at = if jobs.iter().all(|j| j.finished_at.is_some()) {
            jobs.iter().filter_map(|j| j.finished_at).max()
        } else {
            None
        };
        SyncGroup {
            id,
            requested_by: jobs.first().and_then(|j| j.requested_by.clone()),
            created_at: jobs.iter().map(|j| j.created_at).min().unwrap_or_default(),
            finished_at,
            counts,
            jobs,
        }
    }
}

/// A job with every target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Job {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub targets: Vec<Target>,
}

/// Options of a sync request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// When a register is in a sale, wait and sync it when the sale ends (default) instead of
    /// skipping it.
    #[serde(default = "default_true")]
    pub retry_when_free: bool,
    /// Registers offline now are queued and synced when they reconnect (never during a sale),
    /// instead of being skipped. Off by default: "Sync online registers" means online ones.
    #[serde(default)]
    pub queue_offline: bool,
    /// How long queued offline registers wait to reconnect, in minutes: 1 to
    /// [`MAX_QUEUE_MINUTES`], [`DEFAULT_QUEUE_MINUTES`] when absent. Only with `queue_offline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4320))]
    pub queue_minutes: Option<u32>,
}

/// How long offline registers stay queued unless asked otherwise: a day.
pub const DEFAULT_QUEUE_MINUTES: u32 = 24 * 60;
/// The longest they may: three days. A menu older than that should be asked for again.
pub const MAX_QUEUE_MINUTES: u32 = 3 * 24 * 60;

impl Default for SyncRequest {
    fn default() -> Self {
        Self {
            retry_when_free: true,
            queue_offline: false,
            queue_minutes: None,
        }
    }
}

impl SyncRequest {
    /// How long offline registers wait, if the request queues them; an error in words for a
    /// length out of range or given without `queue_offline`.
    pub fn queue_for(&self) -> Result<Option<u32>, String> {
        match (self.queue_offline, self.queue_minutes) {
            (false, None) => Ok(None),
            (false, Some(_)) => Err("queue_minutes needs queue_offline".into()),
            (true, None) => Ok(Some(DEFAULT_QUEUE_MINUTES)),
            (true, Some(m)) if (1..=MAX_QUEUE_MINUTES).contains(&m) => Ok(Some(m)),
            (true, Some(_)) => Err(format!(
                "queue_minutes must be between 1 and {MAX_QUEUE_MINUTES} (three days)"
            )),
        }
    }
}

fn default_true() -> bool {
    true
}

/// A change managers are told about, on the live event stream of `/v1/events`.
///
/// A stream always starts with a [`Event::Snapshot`]; later events carry the full new state of
/// what changed, so applying them in order to the snapshot gives the current state. After a
/// reconnect a new snapshot replaces everything: no change is missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Snapshot {
        sites: Vec<Site>,
        registers: Vec<Register>,
        /// Jobs not finished yet, and the most recent finished ones.
        jobs: Vec<JobSummary>,
    },
    /// A register changed: online, in a sale, revision, last synced.
    Register { register: Register },
    /// A site changed (its menu revision: registers' "up to date" follows from it).
    Site { site: Site },
    /// A job's counts or state changed.
    Job { job: JobSummary },
    /// One target changed state.
    Target { target: Target },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_know_which_are_terminal() {
        for state in TargetState::ALL {
            assert_eq!(TargetState::parse(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        let open: Vec<_> = TargetState::ALL
            .into_iter()
            .filter(|s| !s.is_terminal())
            .collect();
        assert_eq!(open, TargetState::OPEN);
    }

    #[test]
    fn counts_add_up() {
        let counts: JobCounts = [
            TargetState::Synced,
            TargetState::Synced,
            TargetState::Waiting,
        ]
        .into_iter()
        .collect();
        assert_eq!((counts.synced, counts.open(), counts.total()), (2, 1, 3));
    }

    #[test]
    fn sync_requests_wait_for_sales_by_default() {
        let request: SyncRequest = serde_json::from_str("{}").unwrap();
        assert!(request.retry_when_free);
        assert_eq!(request.queue_for(), Ok(None));
    }

    #[test]
    fn offline_registers_queue_for_a_day_unless_asked_and_never_past_three() {
        let ask = |json: &str| {
            serde_json::from_str::<SyncRequest>(json)
                .unwrap()
                .queue_for()
        };
        assert_eq!(ask(r#"{"queue_offline":true}"#), Ok(Some(1440)));
        assert_eq!(
            ask(r#"{"queue_offline":true,"queue_minutes":90}"#),
            Ok(Some(90))
        );
        assert_eq!(
            ask(r#"{"queue_offline":true,"queue_minutes":4320}"#),
            Ok(Some(4320))
        );
        assert!(ask(r#"{"queue_offline":true,"queue_minutes":4321}"#).is_err());
        assert!(ask(r#"{"queue_offline":true,"queue_minutes":0}"#).is_err());
        assert!(ask(r#"{"queue_minutes":60}"#).is_err());
    }
}
