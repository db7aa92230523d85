//! Which system notification a change deserves, and its words (docs/ui.md). One per job, never one
//! per register: a job over 500 registers is one notification. A register that waited for its
//! sale and then synced (or whose wait ran out) gets one of its own, as the manager was told it
//! would sync later.

use regsync_protocol::api::SyncSource;
use regsync_protocol::sync::{JobCounts, JobKind, JobSummary, Target, TargetState};

use crate::state::{Change, Picture, Waited};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Notification {
    pub title: String,
    pub body: String,
}

fn plural(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// "Bar 2", "Bar 2 and Kitchen", "Bar 2, Kitchen and 3 more".
fn names(mut names: Vec<&str>) -> String {
    names.sort_unstable();
    match names.as_slice() {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [a, b] => format!("{a} and {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} more", rest.len()),
    }
}

/// The notification a change deserves, if any.
pub fn for_change(change: &Change, picture: &Picture) -> Option<Notification> {
    match change {
        Change::Job {
            after,
            first_settled,
            ..
        } => (*first_settled && after.source != SyncSource::Register && after.group.is_none())
            .then(|| {
                let mut notification = job_settled(after, picture);
                if after.source == SyncSource::Schedule {
                    notification.title.push_str(" (scheduled)");
                }
                notification
            }),
        Change::Target { after, waited, .. } => {
            let from_manager = picture
                .jobs
                .get(&after.job_id)
                .is_some_and(|job| job.source != SyncSource::Register);
            let (Some(waited), true) = (waited, from_manager) else {
                return None;
            };
            let revision = after.revision.unwrap_or_default();
            match (after.state, waited) {
                (TargetState::Synced, Waited::Sale) => Some(Notification {
                    title: format!("{} synced", after.register_name),
                    body: format!("Its sale ended; it now has menu revision {revision}."),
                }),
                (TargetState::Synced, Waited::Reconnect) => Some(Notification {
                    title: format!("{} synced", after.register_name),
                    body: format!("It came back online; it now has menu revision {revision}."),
                }),
                (TargetState::Expired, Waited::Reconnect) => Some(Notification {
                    title: format!("{} was not synced", after.register_name),
                    body: "It did not come back online in time. Sync it again when it is online."
                        .to_owned(),
                }),
                (TargetState::Expired, Waited::Sale) => Some(Notification {
                    title: format!("{} was not synced", after.register_name),
                    body: format!(
                        "{}. Sync it again when it is free.",
                        capitalize(
                            &after
                                .reason
                                .as_deref()
                                .unwrap_or("the sale did not end in time")
                                .replacen("the sale", "its sale", 1)
                        )
                    ),
                }),
                _ => None,
            }
        }
        Change::Group { id } => Some(group_settled(*id, picture)),
        Change::Other => None,
    }
}

/// An all-sites sync, settled: one notification for every site, naming those that need a look.
fn group_settled(group_id: uuid::Uuid, picture: &Picture) -> Notification {
    let mut parts: Vec<&JobSummary> = picture
        .jobs
        .values()
        .filter(|j| j.group.map(|g| g.id) == Some(group_id))
        .collect();
    let name = |job: &JobSummary| {
        picture
            .sites
            .get(&job.site_id)
            .map_or("A site", |s| s.name.as_str())
            .to_owned()
    };
    parts.sort_by_key(|job| name(job));
    let mut total = JobCounts::default();
    for part in &parts {
        total.merge(&Settled::of(part, picture).counts);
    }
    let mut title = format!(
        "All sites: {} synced",
        plural(total.synced, "register", "registers")
    );
    if total.failed + total.expired > 0 {
        title.push_str(&format!(", {} failed", total.failed + total.expired));
    }
    let trouble: Vec<String> = parts
        .iter()
        .filter_map(|part| {
            let c = Settled::of(part, picture).counts;
            let mut said = Vec::new();
            if c.failed + c.expired > 0 {
                said.push(format!("{} failed", c.failed + c.expired));
            }
            if c.waiting > 0 {
                said.push(format!("{} waiting for a sale", c.waiting));
            }
            if c.awaiting_reconnect > 0 {
                said.push(format!("{} queued until online", c.awaiting_reconnect));
            }
            if c.skipped_offline + c.skipped_busy > 0 {
                said.push(format!("{} skipped", c.skipped_offline + c.skipped_busy));
            }
            (!said.is_empty()).then(|| format!("{}: {}", name(part), said.join(", ")))
        })
        .collect();
    let sites = plural(parts.len() as u32, "site", "sites");
    let body = if trouble.is_empty() {
        format!("Every online register at {sites} has the latest menu.")
    } else {
        format!("{sites}. {}.", trouble.join("; "))
    };
    Notification { title, body }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn job_settled(job: &JobSummary, picture: &Picture) -> Notification {
    let settled = Settled::of(job, picture);
    let c = &settled.counts;
    if c.failed + c.expired > 0 {
        return settled.failures();
    }
    // "Sync" next to one register: name the register, not the site.
    if job.kind == JobKind::Register
        && let Some(notification) = settled.one_register()
    {
        return notification;
    }
    if c.waiting > 0 {
        return settled.waiting();
    }
    settled.done()
}

/// A settled job as far as the picture knows it: its site's name, the targets seen, and counts.
struct Settled<'a> {
    site: &'a str,
    targets: Vec<&'a Target>,
    counts: JobCounts,
}

impl<'a> Settled<'a> {
    fn of(job: &'a JobSummary, picture: &'a Picture) -> Settled<'a> {
        let site = picture
            .sites
            .get(&job.site_id)
            .map_or("Registers", |s| s.name.as_str());
        let targets: Vec<&Target> = picture
            .targets
            .get(&job.id)
            .map(|t| t.values().collect())
            .unwrap_or_default();
        // The targets, when all are known, are at least as current as the summary.
        let counts = if targets.len() as u32 == job.counts.total() {
            targets.iter().map(|t| t.state).collect()
        } else {
            job.counts.clone()
        };
        Settled {
            site,
            targets,
            counts,
        }
    }

    /// The registers in `state` by name, or "3 registers" when their targets are not known.
    fn who(&self, state: TargetState, count: u32) -> String {
        let named: Vec<&str> = self
            .targets
            .iter()
            .filter(|t| t.state == state)
            .map(|t| t.register_name.as_str())
            .collect();
        if named.is_empty() {
            plural(count, "register", "registers")
        } else {
            names(named)
        }
    }

    fn failures(&self) -> Notification {
        let c = &self.counts;
        let failed: Vec<&Target> = self
            .targets
            .iter()
            .copied()
            .filter(|t| t.state == TargetState::Failed)
            .collect();
        let body = match failed.as_slice() {
            [one] => format!(
                "{} {}.",
                one.register_name,
                one.reason.as_deref().unwrap_or("failed")
            ),
            [] => "See the registers page for why.".to_owned(),
            many => format!(
                "{} could not be synced; see the registers page for why.",
                names(many.iter().map(|t| t.register_name.as_str()).collect())
            ),
        };
        Notification {
            title: format!(
                "{}: {} failed",
                self.site,
                plural(c.failed + c.expired, "sync", "syncs")
            ),
            body,
        }
    }

    fn one_register(&self) -> Option<Notification> {
        let [one] = self.targets.as_slice() else {
            return None;
        };
        match one.state {
            TargetState::Synced => Some(Notification {
                title: format!("{} synced", one.register_name),
                body: match one.revision {
                    Some(revision) => format!("It now has menu revision {revision}."),
                    None => "It is up to date.".to_owned(),
                },
            }),
            TargetState::Waiting => Some(Notification {
                title: format!("{} is waiting", one.register_name),
                body: "It is in a sale; it will sync when the sale ends.".to_owned(),
            }),
            TargetState::AwaitingReconnect => Some(Notification {
                title: format!("{} is offline", one.register_name),
                body: "It will sync when it reconnects.".to_owned(),
            }),
            _ => None,
        }
    }

    fn waiting(&self) -> Notification {
        let c = &self.counts;
        let who = self.who(TargetState::Waiting, c.waiting);
        let (verb, it) = if c.waiting == 1 {
            ("is", "it")
        } else {
            ("are", "they")
        };
        Notification {
            title: format!("{}: {} synced, {} waiting", self.site, c.synced, c.waiting),
            body: format!("{who} {verb} in a sale; {it} will sync when the sale ends."),
        }
    }

    fn done(&self) -> Notification {
        let c = &self.counts;
        let was = |count: u32| if count == 1 { "was" } else { "were" };
        let revision = self.targets.iter().filter_map(|t| t.revision).max();
        let mut body = match revision {
            Some(revision) if c.skipped_busy + c.skipped_offline == 0 => {
                format!("Every online register has menu revision {revision}. ")
            }
            _ => String::new(),
        };
        if c.skipped_busy > 0 {
            let who = self.who(TargetState::SkippedBusy, c.skipped_busy);
            body.push_str(&format!(
                "{who} {} in a sale and skipped. ",
                was(c.skipped_busy)
            ));
        }
        if c.skipped_offline > 0 {
            let who = self.who(TargetState::SkippedOffline, c.skipped_offline);
            body.push_str(&format!("{who} {} offline. ", was(c.skipped_offline)));
        }
        if c.awaiting_reconnect > 0 {
            let n = c.awaiting_reconnect;
            let who = self.who(TargetState::AwaitingReconnect, n);
            let (verb, it) = if n == 1 {
                ("is", "it")
            } else {
                ("are", "they")
            };
            body.push_str(&format!(
                "{who} {verb} offline; {it} will sync when {it} reconnect{}.",
                if n == 1 { "s" } else { "" }
            ));
        }
        Notification {
            title: format!(
                "{}: {} synced",
                self.site,
                plural(c.synced, "register", "registers")
            ),
            body: body.trim().to_owned(),
        }
    }
}
