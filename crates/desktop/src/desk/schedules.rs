//! A site's scheduled syncs, as the Schedules panel reads and changes them.

use regsync_protocol::schedule::{Day, Schedule, ScheduleRequest, SiteSchedules};
use uuid::Uuid;

use super::Desk;
use crate::words::Problem;

impl Desk {
    /// A site's schedules and time zone.
    pub async fn schedules(&self, site_id: Uuid) -> Result<SiteSchedules, Problem> {
        let client = self.reading_client().await?;
        client
            .schedules(site_id)
            .await
            .map_err(|e| Problem::from(&e))
    }

    /// Adds a schedule (`schedule_id` none) or changes one; answers the site's schedules as they
    /// are then.
    pub async fn save_schedule(
        &self,
        site_id: Uuid,
        schedule_id: Option<Uuid>,
        days: Vec<Day>,
        time: String,
    ) -> Result<SiteSchedules, Problem> {
        let client = self.acting_client().await?;
        let request = ScheduleRequest {
            days,
            time: time.trim().to_owned(),
        };
        let saved: Result<Schedule, _> = match schedule_id {
            Some(id) => client.change_schedule(id, &request).await,
            None => client.add_schedule(site_id, &request).await,
        };
        saved.map_err(|e| Problem::from(&e))?;
        self.schedules(site_id).await
    }

    pub async fn remove_schedule(
        &self,
        site_id: Uuid,
        schedule_id: Uuid,
    ) -> Result<SiteSchedules, Problem> {
        let client = self.acting_client().await?;
        client
            .remove_schedule(schedule_id)
            .await
            .map_err(|e| Problem::from(&e))?;
        self.schedules(site_id).await
    }

    pub async fn set_time_zone(
        &self,
        site_id: Uuid,
        time_zone: String,
    ) -> Result<SiteSchedules, Problem> {
        let client = self.acting_client().await?;
        client
            .set_time_zone(site_id, &time_zone)
            .await
            .map_err(|e| Problem::from(&e))
    }
}
