//! The Schedules panel's commands: a site's scheduled syncs and its time zone.

use std::sync::Arc;

use regsync_desktop::desk::Desk;
use regsync_protocol::schedule::{Day, SiteSchedules};
use tauri::State;
use uuid::Uuid;

use crate::shell::Answer;

#[tauri::command]
pub(crate) async fn schedules(desk: State<'_, Arc<Desk>>, site_id: Uuid) -> Answer<SiteSchedules> {
    Ok(desk.schedules(site_id).await?)
}

/// Adds a schedule, or changes `schedule_id`.
#[tauri::command]
pub(crate) async fn save_schedule(
    desk: State<'_, Arc<Desk>>,
    site_id: Uuid,
    schedule_id: Option<Uuid>,
    days: Vec<Day>,
    time: String,
) -> Answer<SiteSchedules> {
    Ok(desk.save_schedule(site_id, schedule_id, days, time).await?)
}

#[tauri::command]
pub(crate) async fn remove_schedule(
    desk: State<'_, Arc<Desk>>,
    site_id: Uuid,
    schedule_id: Uuid,
) -> Answer<SiteSchedules> {
    Ok(desk.remove_schedule(site_id, schedule_id).await?)
}

#[tauri::command]
pub(crate) async fn set_time_zone(
    desk: State<'_, Arc<Desk>>,
    site_id: Uuid,
    time_zone: String,
) -> Answer<SiteSchedules> {
    Ok(desk.set_time_zone(site_id, time_zone).await?)
}
