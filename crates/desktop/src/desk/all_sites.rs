//! "Sync online registers at all my sites", from the overview page and the tray.

use regsync_protocol::sync::{SyncGroup, SyncRequest};

use super::Desk;
use crate::words::Problem;

impl Desk {
    /// One sync over every site with registers; with `queue_offline`, offline registers are
    /// synced when they reconnect (within a day). The page follows it on the live picture.
    pub async fn sync_all(&self, queue_offline: bool) -> Result<SyncGroup, Problem> {
        let client = self.acting_client().await?;
        let request = SyncRequest {
            queue_offline,
            ..SyncRequest::default()
        };
        client
            .sync_all(&request)
            .await
            .map_err(|e| Problem::from(&e))
    }
}
