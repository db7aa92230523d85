//! What the tray shows: an icon and a status line that answer "is everything synced?" at a glance.

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::state::{Connection, Live};

/// The tray icon's variants (docs/ui.md: all good, needs attention, syncing, unreachable/signed out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrayIcon {
    AllGood,
    Attention,
    Syncing,
    Unreachable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraySummary {
    pub icon: TrayIcon,
    /// The first, disabled item of the menu (and the tooltip where the OS shows one).
    pub status: String,
    /// "Sync online registers — Main Bar", when there is a current site and it can be done.
    pub sync_item: Option<String>,
    /// "Sync online registers at all 5 sites", with more than one site, when it can be done.
    pub sync_all_item: Option<String>,
    /// "Updated 14:02": when the picture was last known current.
    pub updated: Option<String>,
    /// "Version 0.2.0 is ready — restart to update", when an update is waiting (the desk adds it).
    pub update_item: Option<String>,
}

pub fn clock(at: DateTime<Utc>, zone: &FixedOffset) -> String {
    at.with_timezone(zone).format("%H:%M").to_string()
}

/// The tray for the app's state. `zone` is the local time zone, passed in so this stays pure.
pub fn summarize(
    signed_in: bool,
    live: &Live,
    current_site: Option<Uuid>,
    zone: &FixedOffset,
) -> TraySummary {
    let picture = &live.picture;
    let updated = picture
        .as_of
        .map(|at| format!("Updated {}", clock(at, zone)));
    if !signed_in {
        return TraySummary {
            icon: TrayIcon::Unreachable,
            status: "Signed out".into(),
            sync_item: None,
            sync_all_item: None,
            updated: None,
            update_item: None,
        };
    }
    let site_name = current_site
        .and_then(|id| picture.sites.get(&id))
        .map(|s| s.name.clone());
    let sync_item = site_name
        .as_ref()
        .map(|name| format!("Sync online registers — {name}"));
    let sites = picture.sites.len();
    let sync_all_item = (sites > 1).then(|| format!("Sync online registers at all {sites} sites"));
    match &live.connection {
        Connection::Reconnecting { as_of } => {
            return unreachable_summary(as_of.as_ref(), zone, updated);
        }
        Connection::Offline { as_of } => return unreachable_summary(Some(as_of), zone, updated),
        Connection::Connecting if picture.registers.is_empty() => {
            return TraySummary {
                icon: TrayIcon::Syncing,
                status: "Connecting to Back Office…".into(),
                sync_item: None,
                sync_all_item: None,
                updated,
                update_item: None,
            };
        }
        _ => {}
    }
    if let Some(job) = picture
        .running_jobs()
        .into_iter()
        .find(|j| j.counts.queued + j.counts.delivered > 0)
    {
        let site = picture
            .sites
            .get(&job.site_id)
            .map_or("registers", |s| s.name.as_str());
        return TraySummary {
            icon: TrayIcon::Syncing,
            status: format!("Syncing {site}…"),
            sync_item,
            sync_all_item,
            updated,
            update_item: None,
        };
    }
    let (icon, status) = registers_status(picture);
    TraySummary {
        icon,
        status,
        sync_item,
        sync_all_item,
        updated,
        update_item: None,
    }
}

/// "All 9 registers up to date", or what needs attention: "2 offline · 1 out of date"; with
/// several sites, it says over how many, and where: "… — at 2 of 5 sites".
fn registers_status(picture: &crate::state::Picture) -> (TrayIcon, String) {
    let total = picture.registers.len();
    let offline = picture.registers.values().filter(|r| !r.online).count();
    let behind = picture.registers.values().filter(|r| !r.up_to_date).count();
    let sites = picture.sites.len();
    if offline == 0 && behind == 0 {
        let status = match total {
            0 => "No registers yet".to_owned(),
            1 => "The register is up to date".to_owned(),
            n if sites > 1 => format!("All {n} registers up to date, at {sites} sites"),
            n => format!("All {n} registers up to date"),
        };
        return (TrayIcon::AllGood, status);
    }
    let mut parts = Vec::new();
    if offline > 0 {
        parts.push(format!("{offline} offline"));
    }
    if behind > 0 {
        parts.push(format!("{behind} out of date"));
    }
    let mut status = parts.join(" · ");
    if sites > 1 {
        let troubled = picture
            .sites
            .keys()
            .filter(|site| {
                picture
                    .registers_of(**site)
                    .any(|r| !r.online || !r.up_to_date)
            })
            .count();
        status.push_str(&format!(" — at {troubled} of {sites} sites"));
    }
    (TrayIcon::Attention, status)
}

fn unreachable_summary(
    as_of: Option<&DateTime<Utc>>,
    zone: &FixedOffset,
    updated: Option<String>,
) -> TraySummary {
    TraySummary {
        icon: TrayIcon::Unreachable,
        status: match as_of {
            Some(at) => format!("Back Office unreachable — as of {}", clock(*at, zone)),
            None => "Back Office unreachable".into(),
        },
        sync_item: None,
        sync_all_item: None,
        updated,
        update_item: None,
    }
}
