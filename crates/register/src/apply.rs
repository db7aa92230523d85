//! Applying one sync, under the register's lock: the decision a register makes on its own.

use chrono::Utc;
use regsync_protocol::Catalog;
use regsync_protocol::register::{RegisterMessage, SCHEDULED_BANNER, SyncOutcome, banner_text};
use uuid::Uuid;

use crate::state::{Store, Stored};

use crate::{AgentEvent, CrashPoint, Local, Shared};

pub(crate) struct Crashed;

/// Who started a sync, for the banner: a manager by name, a schedule, or nobody (staff, here).
pub(crate) struct Asker {
    pub requested_by: Option<String>,
    pub scheduled: bool,
}

/// Handles one sync command under the sale lock and queues its answer before releasing it.
pub(crate) fn apply(
    shared: &Shared,
    target_id: Uuid,
    revision: i64,
    asker: Asker,
    catalog: Catalog,
) -> Result<(), Crashed> {
    if shared.crash_at == Some(CrashPoint::BeforeApplying) {
        return Err(Crashed);
    }
    let mut local = shared.lock();
    let sync = SyncCommand {
        target_id,
        revision,
        requested_by: asker.requested_by,
        catalog,
    };
    let (outcome, event) = decide(&mut local, &shared.store, sync, Utc::now());
    let Some(event) = event else {
        local.send(&RegisterMessage::SyncResult { target_id, outcome });
        return Ok(());
    };
    if shared.crash_at == Some(CrashPoint::AfterApplying) {
        return Err(Crashed);
    }
    local.send(&RegisterMessage::SyncResult { target_id, outcome });
    shared.publish_locked(&local, &event);
    drop(local);
    if let AgentEvent::Applied { requested_by, .. } = &event {
        match requested_by {
            Some(name) => shared.hooks.banner(&banner_text(name)),
            None if asker.scheduled => shared.hooks.banner(SCHEDULED_BANNER),
            None => {}
        }
    }
    shared.hooks.event(&event);
    Ok(())
}

/// One sync command from Back Office.
struct SyncCommand {
    target_id: Uuid,
    revision: i64,
    requested_by: Option<String>,
    catalog: Catalog,
}

/// What the register does with a sync, under its lock: answer a repeated one as before, refuse
/// during a sale, keep a menu as new or newer, or apply and save the new one. No event when the
/// menu could not be saved (the answer says so).
fn decide(
    local: &mut Local,
    store: &Store,
    sync: SyncCommand,
    now: chrono::DateTime<Utc>,
) -> (SyncOutcome, Option<AgentEvent>) {
    let target_id = sync.target_id;
    if let Some(earlier) = local.stored.remembered(target_id) {
        // Sent again after a reconnect: answer as before, apply nothing.
        let outcome = SyncOutcome::Applied {
            revision: earlier.revision,
            applied_at: earlier.applied_at,
        };
        let revision = earlier.revision;
        return (
            outcome,
            Some(AgentEvent::AlreadyUpToDate {
                target_id,
                revision,
            }),
        );
    }
    if local.in_sale {
        return (
            SyncOutcome::Busy,
            Some(AgentEvent::RefusedInSale { target_id }),
        );
    }
    if sync.revision <= local.stored.applied_revision {
        let current = local.stored.applied_revision;
        local.stored.remember(target_id, current, now);
        let outcome = SyncOutcome::Applied {
            revision: current,
            applied_at: now,
        };
        let event = AgentEvent::AlreadyUpToDate {
            target_id,
            revision: current,
        };
        return (outcome, Some(event));
    }
    let mut next = Stored {
        applied_revision: sync.revision,
        catalog: sync.catalog,
        recent: local.stored.recent.clone(),
    };
    next.remember(target_id, sync.revision, now);
    if let Err(error) = store.save(&next) {
        tracing::error!(%error, "cannot save the new menu");
        let reason = format!("cannot save the menu: {error}");
        return (SyncOutcome::Failed { reason }, None);
    }
    local.stored = next;
    let outcome = SyncOutcome::Applied {
        revision: sync.revision,
        applied_at: now,
    };
    let event = AgentEvent::Applied {
        target_id,
        revision: sync.revision,
        requested_by: sync.requested_by,
    };
    (outcome, Some(event))
}
