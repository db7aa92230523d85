//! What the app knows: sites, registers and recent jobs, kept current from the live event stream,
//! and whether it is live. Events carry full state, so applying them in order to a snapshot gives
//! the current picture; a new snapshot (after any reconnect) replaces everything.

use crate::words::{Problem, ProblemCode};
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use regsync_client::Update;
use regsync_protocol::api::{Register, Site};
use regsync_protocol::sync::{Event, JobSummary, Target, TargetState};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How current the picture is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Connection {
    /// Not connected yet, nothing known.
    Connecting,
    /// Following Back Office live.
    Live,
    /// The stream broke; reconnecting. `as_of` is when the picture was last known current.
    Reconnecting { as_of: Option<DateTime<Utc>> },
    /// Shown from the cache: Back Office could not be reached.
    Offline { as_of: DateTime<Utc> },
}

/// Finished jobs kept per site, with their targets: the history the page shows and some more.
/// Without a bound, a day of syncing a large site would make every repaint (and the offline
/// cache) carry thousands of old targets.
pub const HISTORY_PER_SITE: usize = 20;

/// Finished jobs per site whose targets are kept: the page shows the latest results per register
/// and for the site; older jobs are history, a line each.
pub const RESULTS_PER_SITE: usize = 3;

/// The app's picture of the company, as the registers page and the tray show it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Picture {
    pub sites: BTreeMap<Uuid, Site>,
    pub registers: BTreeMap<Uuid, Register>,
    pub jobs: BTreeMap<Uuid, JobSummary>,
    /// Targets seen live, by job (only jobs followed since the app started).
    pub targets: BTreeMap<Uuid, BTreeMap<Uuid, Target>>,
    /// When the picture was last known to match Back Office.
    pub as_of: Option<DateTime<Utc>>,
    /// Targets seen waiting for a sale to end or for their register to reconnect, and not
    /// finished yet: what they waited for first.
    #[serde(default, skip)]
    pub waited: BTreeMap<Uuid, Waited>,
    /// Jobs already seen settled.
    #[serde(default, skip)]
    pub settled: std::collections::BTreeSet<Uuid>,
    /// All-sites syncs already announced as settled.
    #[serde(default, skip)]
    pub settled_groups: std::collections::BTreeSet<Uuid>,
}

/// What changed by applying an update, for notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `first_settled`: with this change the job has settled (nothing left being delivered or
    /// answered) for the first time, as far as its targets seen so far show; a waiting register
    /// syncing later does not settle it "again".
    Job {
        before: Option<JobSummary>,
        after: JobSummary,
        first_settled: bool,
    },
    /// Every site's job of an all-sites sync has settled, for the first time: it is announced
    /// once, as one.
    Group {
        id: Uuid,
    },
    /// `waited`: what the target has been waiting for, if it has: the manager was told it
    /// would sync later, and hears when it did.
    Target {
        before: Option<Target>,
        after: Target,
        waited: Option<Waited>,
    },
    Other,
}

/// What a target waited for before it could be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// Its register was in a sale.
    Sale,
    /// Its register was offline, and the job queued it until it reconnected.
    Reconnect,
}

impl Picture {
    /// Keeps every open job and the newest [`HISTORY_PER_SITE`] finished ones of each site, and
    /// the targets of open jobs and of the [`RESULTS_PER_SITE`] that finished last (a job that
    /// waited long for a sale may finish after newer ones, and is told of with its targets).
    fn forget_old_jobs(&mut self) {
        let finished = |by: fn(&JobSummary) -> (DateTime<Utc>, Uuid), keep: usize| {
            let mut newest_first: Vec<&JobSummary> = self
                .jobs
                .values()
                .filter(|j| j.finished_at.is_some())
                .collect();
            newest_first.sort_by_key(|j| std::cmp::Reverse(by(j)));
            let mut seen: BTreeMap<Uuid, usize> = BTreeMap::new();
            newest_first
                .into_iter()
                .filter(|j| {
                    let n = seen.entry(j.site_id).or_default();
                    *n += 1;
                    *n > keep
                })
                .map(|j| j.id)
                .collect::<Vec<Uuid>>()
        };
        let old = finished(|j| (j.created_at, j.id), HISTORY_PER_SITE);
        let summary_only = finished(
            |j| (j.finished_at.unwrap_or(j.created_at), j.id),
            RESULTS_PER_SITE,
        );
        for id in old {
            self.jobs.remove(&id);
            self.targets.remove(&id);
        }
        for id in summary_only {
            self.targets.remove(&id);
        }
    }

    /// Applies one event; answers what changed.
    pub fn apply(&mut self, event: Event, now: DateTime<Utc>) -> Change {
        self.as_of = Some(now);
        match event {
            Event::Snapshot {
                sites,
                registers,
                jobs,
            } => {
                self.sites = sites.into_iter().map(|s| (s.id, s)).collect();
                self.registers = registers.into_iter().map(|r| (r.id, r)).collect();
                self.jobs = jobs.into_iter().map(|j| (j.id, j)).collect();
                self.targets.retain(|job, _| self.jobs.contains_key(job));
                self.forget_old_jobs();
                Change::Other
            }
            Event::Register { register } => {
                self.registers.insert(register.id, register);
                Change::Other
            }
            Event::Site { site } => {
                let revision = site.catalog_revision;
                for register in self.registers.values_mut().filter(|r| r.site_id == site.id) {
                    register.site_revision = revision;
                    register.revisions_behind = (revision - register.applied_revision).max(0);
                    register.up_to_date = register.revisions_behind == 0;
                }
                self.sites.insert(site.id, site);
                Change::Other
            }
            Event::Job { job } => {
                let id = job.id;
                let before = self.jobs.insert(id, job.clone());
                let first_settled = self.first_settle(id);
                let group = first_settled.then(|| self.group_settled(id)).flatten();
                self.forget_old_jobs();
                if let Some(id) = group {
                    return Change::Group { id };
                }
                Change::Job {
                    before,
                    after: job,
                    first_settled,
                }
            }
            Event::Target { target } => {
                let waits = match target.state {
                    TargetState::Waiting => Some(Waited::Sale),
                    TargetState::AwaitingReconnect => Some(Waited::Reconnect),
                    _ => None,
                };
                let waited = self.waited.get(&target.id).copied().or(waits);
                if target.state.is_terminal() {
                    self.waited.remove(&target.id);
                } else if let Some(waits) = waits {
                    self.waited.entry(target.id).or_insert(waits);
                }
                let before = self
                    .targets
                    .entry(target.job_id)
                    .or_default()
                    .insert(target.id, target.clone());
                let first = self.first_settle(target.job_id);
                if first && let Some(group) = self.group_settled(target.job_id) {
                    return Change::Group { id: group };
                }
                if first && let Some(job) = self.jobs.get(&target.job_id) {
                    return Change::Job {
                        before: Some(job.clone()),
                        after: job.clone(),
                        first_settled: true,
                    };
                }
                Change::Target {
                    before,
                    after: target,
                    waited,
                }
            }
        }
    }

    /// True the first time a job is settled: its summary says so, or every one of its targets
    /// has been seen and none is still being delivered. (Events carry current state, so a job's
    /// summary can run ahead of its targets' own events, and the other way round.)
    fn first_settle(&mut self, job_id: Uuid) -> bool {
        let Some(job) = self.jobs.get(&job_id) else {
            return false;
        };
        let targets = self.targets.get(&job_id);
        let all_seen = targets.is_some_and(|t| t.len() as u32 == job.counts.total());
        let targets_settled = all_seen
            && targets.is_some_and(|t| {
                t.values()
                    .all(|t| !matches!(t.state, TargetState::Queued | TargetState::Delivered))
            });
        // With the targets seen, they decide; otherwise (a job joined midway) the summary does.
        let now_settled = if all_seen {
            targets_settled
        } else {
            settled(job)
        };
        now_settled && self.settled.insert(job_id)
    }

    /// The all-sites sync `job_id` is part of, if every one of its sites' jobs is known and
    /// settled now and the group was not announced yet.
    fn group_settled(&mut self, job_id: Uuid) -> Option<Uuid> {
        let group = self.jobs.get(&job_id)?.group?;
        let parts: Vec<Uuid> = self
            .jobs
            .values()
            .filter(|j| j.group.map(|g| g.id) == Some(group.id))
            .map(|j| j.id)
            .collect();
        let all =
            parts.len() as u32 >= group.jobs && parts.iter().all(|id| self.settled.contains(id));
        (all && self.settled_groups.insert(group.id)).then_some(group.id)
    }

    /// The site the tray speaks of and syncs: the one on screen (`chosen`), else the first by
    /// name, as the page shows first.
    pub fn current_site(&self, chosen: Option<Uuid>) -> Option<Uuid> {
        chosen.or_else(|| {
            self.sites
                .values()
                .min_by(|a, b| a.name.cmp(&b.name))
                .map(|s| s.id)
        })
    }

    pub fn registers_of(&self, site_id: Uuid) -> impl Iterator<Item = &Register> {
        self.registers
            .values()
            .filter(move |r| r.site_id == site_id)
    }

    /// Jobs still running (some target not terminal), newest first.
    pub fn running_jobs(&self) -> Vec<&JobSummary> {
        let mut jobs: Vec<&JobSummary> = self
            .jobs
            .values()
            .filter(|j| j.finished_at.is_none())
            .collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.created_at));
        jobs
    }
}

/// A job has settled once nothing is being delivered or answered: every target is terminal or
/// waiting for its register's sale to end.
pub fn settled(job: &JobSummary) -> bool {
    job.counts.queued + job.counts.delivered == 0
}

/// The picture plus the connection state, fed by the client's [`Update`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub picture: Picture,
    pub connection: Connection,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            picture: Picture::default(),
            connection: Connection::Connecting,
        }
    }
}

impl Live {
    /// Starts from a cached picture, shown as offline until Back Office answers.
    pub fn from_cache(picture: Picture) -> Live {
        let connection = match picture.as_of {
            Some(as_of) => Connection::Offline { as_of },
            None => Connection::Connecting,
        };
        Live {
            picture,
            connection,
        }
    }

    pub fn apply(&mut self, update: Update, now: DateTime<Utc>) -> Change {
        match update {
            Update::Connected => Change::Other,
            Update::Event(event) => {
                if matches!(event, Event::Snapshot { .. }) {
                    self.connection = Connection::Live;
                }
                self.picture.apply(event, now)
            }
            Update::Disconnected { .. } => {
                self.connection = Connection::Reconnecting {
                    as_of: self.picture.as_of,
                };
                Change::Other
            }
        }
    }

    /// Actions that need Back Office are possible only while live.
    pub fn can_act(&self) -> Result<(), Problem> {
        match &self.connection {
            Connection::Live => Ok(()),
            Connection::Connecting => Err(Problem::new(
                ProblemCode::Unreachable,
                "Connecting to Back Office…",
            )),
            Connection::Reconnecting { .. } | Connection::Offline { .. } => Err(Problem::new(
                ProblemCode::Unreachable,
                "Back Office can't be reached right now; this will work again once it reconnects.",
            )),
        }
    }
}
