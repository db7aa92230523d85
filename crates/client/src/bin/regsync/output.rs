//! What `regsync` prints: tables with colour for people on a terminal, JSON for scripts.

use std::io::{IsTerminal, Write};

use chrono::{DateTime, Local, Utc};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use regsync_client::Update;
use regsync_protocol::sync::{Event, Job, JobSummary, SyncGroup, Target, TargetState};
use serde::Serialize;

pub(crate) fn relative(at: Option<DateTime<Utc>>) -> String {
    let Some(at) = at else { return "never".into() };
    let ago = Utc::now() - at;
    if ago.num_seconds() < 60 {
        "just now".to_owned()
    } else if ago.num_minutes() < 60 {
        format!("{} min ago", ago.num_minutes())
    } else if ago.num_hours() < 24 {
        format!("{} h ago", ago.num_hours())
    } else {
        at.with_timezone(&Local)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }
}

/// Who started a job, in words.
pub(crate) fn who(job: &JobSummary) -> String {
    match (&job.requested_by, job.source) {
        (Some(name), _) => name.clone(),
        (None, regsync_protocol::api::SyncSource::Schedule) => "schedule".into(),
        (None, _) => "staff, at the register".into(),
    }
}

/// A time later today as "18:30", another day as "Sat 18:30", in local time.
pub(crate) fn until_words(at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&Local);
    if local.date_naive() == Local::now().date_naive() {
        local.format("%H:%M").to_string()
    } else {
        local.format("%a %H:%M").to_string()
    }
}

pub(crate) fn colour(text: &str, good: bool) -> String {
    if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        let code = if good { 32 } else { 33 };
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    table
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// A target's outcome in words.
pub(crate) fn target_words(target: &Target) -> String {
    state_words(
        target.state,
        target.reason.as_deref(),
        target.wait_expires_at,
    )
}

pub(crate) fn state_words(
    state: TargetState,
    reason: Option<&str>,
    until: Option<DateTime<Utc>>,
) -> String {
    match state {
        TargetState::AwaitingReconnect => match until {
            Some(until) => format!(
                "queued — offline, syncs when it reconnects, until {}",
                until_words(until)
            ),
            None => "queued — offline, syncs when it reconnects".into(),
        },
        TargetState::Queued | TargetState::Delivered => "syncing…".into(),
        TargetState::Waiting => "waiting — in a sale, will sync when it ends".into(),
        TargetState::Synced => "synced".into(),
        TargetState::SkippedBusy => "skipped — in a sale".into(),
        TargetState::SkippedOffline => "skipped — offline".into(),
        TargetState::Expired => match reason {
            Some(reason) => format!("expired — {reason}"),
            None => "expired — the sale did not end in time".into(),
        },
        TargetState::Failed => format!("failed — {}", reason.unwrap_or("unknown reason")),
    }
}

pub(crate) fn print_job(job: &Job, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(job);
    }
    let mut t = table(&["Register", "Outcome", "Menu revision"]);
    for target in &job.targets {
        let words = target_words(target);
        t.add_row(vec![
            target.register_name.clone(),
            colour(&words, target.state == TargetState::Synced),
            target.revision.map(|r| r.to_string()).unwrap_or_default(),
        ]);
    }
    println!("{t}");
    let c = &job.summary.counts;
    println!(
        "{} synced · {} waiting{} · {} skipped · {} failed or expired{}",
        c.synced,
        c.waiting + c.queued + c.delivered,
        if c.awaiting_reconnect > 0 {
            format!(" · {} queued until they reconnect", c.awaiting_reconnect)
        } else {
            String::new()
        },
        c.skipped_busy + c.skipped_offline,
        c.failed + c.expired,
        if job.summary.finished_at.is_some() {
            ""
        } else {
            " (still running)"
        }
    );
    Ok(())
}

/// An all-sites sync: a line per site, then the totals.
pub(crate) fn print_group(
    group: &SyncGroup,
    names: &std::collections::HashMap<uuid::Uuid, String>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        return print_json(group);
    }
    let mut t = table(&[
        "Site",
        "Synced",
        "Waiting",
        "Queued offline",
        "Skipped",
        "Failed",
    ]);
    for job in &group.jobs {
        let c = &job.counts;
        t.add_row(vec![
            names
                .get(&job.site_id)
                .cloned()
                .unwrap_or_else(|| job.site_id.to_string()),
            c.synced.to_string(),
            (c.queued + c.delivered + c.waiting).to_string(),
            c.awaiting_reconnect.to_string(),
            (c.skipped_busy + c.skipped_offline).to_string(),
            (c.failed + c.expired).to_string(),
        ]);
    }
    println!("{t}");
    let c = &group.counts;
    println!(
        "{} sites: {} synced · {} skipped · {} failed or expired{}",
        group.jobs.len(),
        c.synced,
        c.skipped_busy + c.skipped_offline,
        c.failed + c.expired,
        if group.finished_at.is_some() {
            ""
        } else {
            " (still running)"
        }
    );
    Ok(())
}

pub(crate) fn print_jobs(jobs: &[JobSummary], json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&jobs);
    }
    let mut t = table(&["When", "Who", "What", "Outcome"]);
    let mut shown_groups = std::collections::HashSet::new();
    for job in jobs {
        // An all-sites sync is one line, its sites' jobs summed.
        let grouped = job.group.map(|group| {
            let parts: Vec<&JobSummary> = jobs
                .iter()
                .filter(|j| j.group.map(|g| g.id) == Some(group.id))
                .collect();
            let mut counts = regsync_protocol::sync::JobCounts::default();
            for part in &parts {
                counts.merge(&part.counts);
            }
            let finished = parts.iter().all(|p| p.finished_at.is_some());
            (group.id, parts.len(), counts, finished)
        });
        if let Some((id, ..)) = grouped
            && !shown_groups.insert(id)
        {
            continue;
        }
        let (what, c, finished) = match &grouped {
            Some((_, sites, counts, finished)) => (
                format!("online registers at {sites} sites"),
                counts,
                *finished,
            ),
            None => (
                match job.kind {
                    regsync_protocol::sync::JobKind::Register => "one register".into(),
                    regsync_protocol::sync::JobKind::SiteOnline => "online registers".to_owned(),
                },
                &job.counts,
                job.finished_at.is_some(),
            ),
        };
        t.add_row(vec![
            relative(Some(job.created_at)),
            who(job),
            what,
            format!(
                "{} synced, {} skipped, {} failed{}",
                c.synced,
                c.skipped_busy + c.skipped_offline,
                c.failed + c.expired,
                if finished { "" } else { ", running" }
            ),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// One line of `regsync watch` for an update; `None` for what is not worth a line.
pub(crate) fn watch_line(update: Update) -> Option<String> {
    Some(match update {
        Update::Connected => "● live".to_owned(),
        Update::Disconnected { reason } => format!("◌ reconnecting… ({reason})"),
        Update::Event(Event::Snapshot { registers, .. }) => {
            let online = registers.iter().filter(|r| r.online).count();
            format!("{} registers, {online} online", registers.len())
        }
        Update::Event(Event::Register { register: r }) => format!(
            "{}: {}{}, {}",
            r.name,
            if r.online { "online" } else { "offline" },
            if r.in_sale { ", in a sale" } else { "" },
            if r.up_to_date {
                "up to date".to_owned()
            } else {
                format!("{} behind", r.revisions_behind)
            }
        ),
        Update::Event(Event::Site { site }) => {
            format!("{}: menu revision {}", site.name, site.catalog_revision)
        }
        Update::Event(Event::Target { target }) => {
            format!("{}: {}", target.register_name, target_words(&target))
        }
        Update::Event(Event::Job { job }) if job.finished_at.is_some() => format!(
            "sync by {} finished: {} synced",
            who(&job),
            job.counts.synced
        ),
        Update::Event(Event::Job { .. }) => return None,
    })
}
