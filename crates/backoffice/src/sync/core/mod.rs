//! The sync engine's core: every decision about sync targets, and nothing else.
//!
//! In the sans-IO style of quinn-proto, the core owns no database, socket or clock. The driver
//! hands it [`Input`]s with the time (`handle(input, now)`, `handle_timeout(now)`), asks when it
//! next needs waking ([`Core::poll_timeout`]), and takes a [`Step`]: a [`Batch`] of changes to
//! persist in one transaction, and the [`Effect`]s to carry out once that transaction commits.
//! So the same core runs behind SQLite, behind a simulated store with a simulated clock, and in
//! unit tests, and a seed replays exactly.
//!
//! The core mirrors the open targets (it is their only writer) and knows which registers are
//! connected; what it needs of ended targets or of the catalog, the driver looks up first
//! ([`KnownTarget`]) or stamps after ([`NewTarget::deliver_site`]).

mod batch;
mod cluster;
mod jobs;
mod machine;
mod open;
mod registers;
mod targets;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use regsync_protocol::api::SyncSource;
use regsync_protocol::register::{AppliedTarget, SyncOutcome};
use uuid::Uuid;

pub use batch::{
    Batch, KnownTarget, Move, Name, NewJob, NewTarget, OpenRow, RegisterChange, Stamp, Synced,
};
pub use machine::{Next, TargetEvent, next};
use open::{OpenTarget, OpenTargets};

/// How long things may take.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A delivered target's register has this long to answer.
    pub result_timeout: TimeDelta,
    /// A target waiting for a sale to end waits this long at most.
    pub wait_expiry: TimeDelta,
    /// A register that dropped mid-sync has this long to come back and settle it.
    pub offline_grace: TimeDelta,
}

/// A connected register, as the gateway vouched for it.
/// A register's connection `generation` closed; it was last heard from at `last_seen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub register_id: Uuid,
    pub generation: u64,
    pub last_seen: DateTime<Utc>,
}

/// Whether a register is in a sale, as it said on connection `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaleState {
    pub register_id: Uuid,
    pub generation: u64,
    pub in_sale: bool,
}

/// A register's answer to a sync, as it sent it on connection `generation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncAnswer {
    pub register_id: Uuid,
    pub generation: u64,
    pub target_id: Uuid,
    pub outcome: SyncOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterRef {
    pub id: Uuid,
    pub site_id: Uuid,
    pub company_id: Uuid,
}

#[derive(Debug, Clone, Copy)]
struct Link {
    register: RegisterRef,
    generation: u64,
    in_sale: bool,
    /// Several nodes: the epoch this node claimed the register at.
    epoch: Option<i64>,
}

/// A job being created: the driver resolved who it covers and made the ids.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub job: NewJob,
    /// Each register with its name and the id its target gets.
    pub registers: Vec<(Uuid, String, Uuid)>,
    /// Several nodes: the registers held by another node (the one they are connected to, or
    /// last were), with that node and whether they are online there. Their targets are saved
    /// for that node to deliver.
    pub elsewhere: HashMap<Uuid, Elsewhere>,
    /// Registers offline now wait until then to reconnect and be synced, instead of being
    /// skipped.
    pub queue_until: Option<DateTime<Utc>>,
}

/// Several nodes: a register held by another node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elsewhere {
    pub node: Uuid,
    /// Connected to it now.
    pub online: bool,
}

/// Several nodes: this node now holds a register, at `epoch`, with these open targets (which
/// replace whatever this node remembered of the register).
#[derive(Debug, Clone, Default)]
pub struct Claim {
    pub epoch: i64,
    pub open: Vec<OpenRow>,
}

#[derive(Debug, Clone)]
pub enum Input {
    Connected {
        register: RegisterRef,
        generation: u64,
        applied_revision: i64,
        in_sale: bool,
        /// What the register applied recently, with what the store knows of ended ones.
        recent: Vec<(AppliedTarget, Option<KnownTarget>)>,
        /// Several nodes: the register claimed for this node.
        claim: Option<Claim>,
    },
    /// Several nodes: open targets of registers this node holds that it did not know of (another
    /// node's job, or a dead node's registers).
    Adopt(Vec<OpenRow>),
    /// Several nodes: another node claimed the register at `epoch`; what this node held of it
    /// before is no longer its own.
    Release {
        register_id: Uuid,
        epoch: i64,
    },
    Disconnected(Dropped),
    Sale(SaleState),
    /// With what the store knows of the target, when it is not open.
    Result(SyncAnswer, Option<KnownTarget>),
    CreateJob {
        /// The driver's handle for the answer.
        token: u64,
        spec: JobSpec,
    },
}

/// What to do once the batch is committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send the target's sync command to the register's connection `generation`.
    Send {
        register_id: Uuid,
        generation: u64,
        target_id: Uuid,
        job_id: Uuid,
        requested_by: Option<Name>,
        /// A schedule started it: the register's banner says so.
        scheduled: bool,
    },
    /// Close an older connection of a register that connected again.
    Close {
        register_id: Uuid,
        generation: u64,
        reason: String,
    },
    Presence {
        register_id: Uuid,
        online: bool,
        in_sale: bool,
    },
    /// The job asked for with `token` is saved.
    Created {
        token: u64,
        job_id: Uuid,
    },
    Finished {
        job_id: Uuid,
    },
}

/// Ids whose state changed, for live events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Touched {
    pub registers: BTreeSet<Uuid>,
    pub jobs: BTreeSet<Uuid>,
    pub targets: BTreeSet<Uuid>,
}

/// One batch's outcome: persist `batch`, then carry out `effects`.
#[derive(Debug, Default)]
pub struct Step {
    pub batch: Batch,
    pub effects: Vec<Effect>,
    pub touched: Touched,
    /// Several nodes: nodes that hold registers this step gave queued targets.
    pub wake: BTreeSet<Uuid>,
    /// Several nodes: registers this step claimed, at their new epoch.
    pub claimed: Vec<(Uuid, i64)>,
}

#[derive(Debug, Clone)]
struct JobInfo {
    source: SyncSource,
    requested_by: Option<Name>,
    retry_when_free: bool,
    open: usize,
}

#[derive(Debug)]
pub struct Core {
    timing: Timing,
    links: HashMap<Uuid, Link>,
    open: OpenTargets,
    jobs: HashMap<Uuid, JobInfo>,
    /// Targets that ended in the current step, for answers later in the same batch (rare: a
    /// list, newest last, is cheaper to keep than a map).
    ended: Vec<(Uuid, KnownTarget)>,
    step: Step,
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

impl Core {
    pub fn new(timing: Timing) -> Core {
        Core {
            timing,
            links: HashMap::new(),
            open: OpenTargets::default(),
            jobs: HashMap::new(),
            ended: Vec::new(),
            step: Step::default(),
        }
    }

    /// Takes the open targets as stored (after a start, or after a batch that failed to commit).
    /// Connections stay as they are: they are not stored.
    pub fn restore(&mut self, rows: Vec<OpenRow>, now: DateTime<Utc>) {
        self.open.clear();
        self.jobs.clear();
        self.ended.clear();
        self.step = Step::default();
        let grace = ms(now + self.timing.offline_grace);
        for row in rows {
            let deadline_ms = row.deadline_ms.unwrap_or(grace);
            self.hold(row, deadline_ms);
        }
    }

    /// Holds a stored open target, with its job, until `deadline_ms`.
    fn hold(&mut self, row: OpenRow, deadline_ms: i64) {
        let job = self.jobs.entry(row.job_id).or_insert(JobInfo {
            source: row.source,
            requested_by: row.requested_by.map(Into::into),
            retry_when_free: row.retry_when_free,
            open: 0,
        });
        job.open += 1;
        let target = OpenTarget {
            register_id: row.register_id,
            job_id: row.job_id,
            state: row.state,
            deadline_ms,
        };
        self.open.insert(row.id, target);
    }

    fn ended(&self, target_id: &Uuid) -> Option<&KnownTarget> {
        self.ended
            .iter()
            .rev()
            .find(|(id, _)| id == target_id)
            .map(|(_, known)| known)
    }

    pub fn is_open(&self, target_id: &Uuid) -> bool {
        self.open.contains(target_id)
    }

    /// The connected register, if it is.
    pub fn connected(&self, register_id: &Uuid) -> Option<RegisterRef> {
        self.links.get(register_id).map(|link| link.register)
    }

    /// When the core next needs [`Core::handle_timeout`]: the earliest open deadline.
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        self.open
            .next_deadline()
            .and_then(DateTime::from_timestamp_millis)
    }

    /// What this batch decided so far; the core starts the next one empty.
    pub fn take(&mut self) -> Step {
        self.ended.clear();
        std::mem::take(&mut self.step)
    }

    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) {
        self.step.batch.at = Some(now);
        match input {
            Input::Connected {
                register,
                generation,
                applied_revision,
                in_sale,
                recent,
                claim,
            } => {
                let epoch = claim.as_ref().map(|claim| claim.epoch);
                if let Some(claim) = claim {
                    self.claimed(register.id, claim, now);
                }
                self.on_connected(register, generation, applied_revision, in_sale, recent, now);
                if let (Some(link), Some(_)) = (self.links.get_mut(&register.id), epoch) {
                    link.epoch = epoch;
                }
            }
            Input::Adopt(rows) => self.adopt(rows, now),
            Input::Release { register_id, epoch } => self.release(register_id, epoch),
            Input::Disconnected(Dropped {
                register_id,
                generation,
                last_seen,
            }) => self.on_disconnected(register_id, generation, last_seen, now),
            Input::Sale(SaleState {
                register_id,
                generation,
                in_sale,
            }) => self.on_sale(register_id, generation, in_sale, now),
            Input::Result(answer, known) => self.on_result(answer, known, now),
            Input::CreateJob { token, spec } => self.create_job(token, spec, now),
        }
    }
}

/// Durations as people say them, for reasons.
pub fn human(duration: TimeDelta) -> String {
    let secs = duration.num_seconds();
    if secs >= 3600 && secs % 3600 == 0 {
        let hours = secs / 3600;
        format!("{hours} hour{}", if hours == 1 { "" } else { "s" })
    } else if secs >= 60 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}
