//! Live events for managers: register, site, job and target changes as server-sent events.
//!
//! Whoever changes something (the sync engine, a menu edit) reports *what* changed — ids only —
//! to the publisher task, which loads the current state and broadcasts it. Events carry full
//! state, so a subscriber that applies them in order to its snapshot is current. A stream starts
//! with a snapshot taken *after* subscribing, so nothing falls between the two; a subscriber that
//! falls behind the broadcast buffer gets a fresh snapshot instead of a gap, and so does one that
//! reconnects. Every event is scoped to one company and sent only to its users with the Sites
//! permission.

use regsync_protocol::api::EVENTS_KEEP_ALIVE_SECS;
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use regsync_protocol::sync::Event;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::Result;
use crate::{AppState, Db, gateway::Presence, registers, sites, sync};

/// One event, serialized once for every subscriber, with the company and the site it belongs to
/// (none for a snapshot, which is made for one subscriber).
#[derive(Debug)]
pub struct Published {
    pub company_id: Uuid,
    pub site_id: Option<Uuid>,
    pub kind: &'static str,
    pub json: String,
}

/// Ids of things that changed; the publisher loads and sends their current state.
#[derive(Debug, Default)]
pub struct Changed {
    pub registers: BTreeSet<Uuid>,
    pub sites: BTreeSet<Uuid>,
    pub jobs: BTreeSet<Uuid>,
    pub targets: BTreeSet<Uuid>,
}

impl Changed {
    pub fn is_empty(&self) -> bool {
        self.registers.is_empty()
            && self.sites.is_empty()
            && self.jobs.is_empty()
            && self.targets.is_empty()
    }

    pub fn merge(&mut self, other: Changed) {
        self.registers.extend(other.registers);
        self.sites.extend(other.sites);
        self.jobs.extend(other.jobs);
        self.targets.extend(other.targets);
    }
}

/// The sending side, cheap to clone: report changes, or subscribe.
#[derive(Debug, Clone)]
pub struct Hub {
    changes: mpsc::UnboundedSender<Changed>,
    broadcast: broadcast::Sender<Arc<Published>>,
}

/// What woke an event stream's task.
enum Wake {
    Event(std::result::Result<Arc<Published>, broadcast::error::RecvError>),
    /// Look whether the sign-in still holds.
    Check,
    Nothing,
    End,
}

/// How often an open event stream checks that its sign-in still holds, for revocations made
/// outside this process; those made here end it at once.
const SIGN_IN_RECHECK: Duration = Duration::from_secs(5);

/// Events buffered per subscriber before it counts as lagging (and gets a fresh snapshot).
const BUFFER: usize = 16 * 1024;

impl Hub {
    pub fn start(db: Db, presence: Arc<Presence>) -> Hub {
        let (changes, rx) = mpsc::unbounded_channel();
        let (broadcast, _) = broadcast::channel(BUFFER);
        tokio::spawn(publish(db, presence, rx, broadcast.clone()));
        Hub { changes, broadcast }
    }

    pub fn report(&self, changed: Changed) {
        if !changed.is_empty() {
            // Fails only when the publisher has stopped, at shutdown.
            let _ = self.changes.send(changed);
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.broadcast.subscribe()
    }
}

async fn publish(
    db: Db,
    presence: Arc<Presence>,
    mut rx: mpsc::UnboundedReceiver<Changed>,
    broadcast: broadcast::Sender<Arc<Published>>,
) {
    while let Some(mut changed) = rx.recv().await {
        // Coalesce what queued up meanwhile: one load per thing, however often it changed.
        while let Ok(more) = rx.try_recv() {
            changed.merge(more);
        }
        if broadcast.receiver_count() == 0 {
            continue;
        }
        match load(&db, &presence, &changed).await {
            Ok(events) => {
                for event in events {
                    let _ = broadcast.send(Arc::new(event));
                }
            }
            Err(error) => tracing::warn!(%error, "loading changed state for live events failed"),
        }
    }
}

fn published(company_id: Uuid, site_id: Option<Uuid>, event: &Event) -> Result<Published> {
    let kind = match event {
        Event::Snapshot { .. } => "snapshot",
        Event::Register { .. } => "register",
        Event::Site { .. } => "site",
        Event::Job { .. } => "job",
        Event::Target { .. } => "target",
    };
    let json = serde_json::to_string(event)
        .map_err(|e| crate::Error::Internal(format!("serializing an event: {e}")))?;
    Ok(Published {
        company_id,
        site_id,
        kind,
        json,
    })
}

async fn load(db: &Db, presence: &Presence, changed: &Changed) -> Result<Vec<Published>> {
    let mut out = Vec::new();
    for (company_id, site) in sites::load_many(db, &changed.sites).await? {
        out.push(published(company_id, Some(site.id), &Event::Site { site })?);
    }
    for (company_id, register) in registers::load_many(db, presence, &changed.registers).await? {
        let site_id = Some(register.site_id);
        out.push(published(
            company_id,
            site_id,
            &Event::Register { register },
        )?);
    }
    for (company_id, site_id, target) in sync::load_targets(db, &changed.targets).await? {
        out.push(published(
            company_id,
            Some(site_id),
            &Event::Target { target },
        )?);
    }
    for (company_id, job) in sync::load_summaries(db, &changed.jobs).await? {
        out.push(published(
            company_id,
            Some(job.site_id),
            &Event::Job { job },
        )?);
    }
    Ok(out)
}

/// Everything of `caller`'s company they may see, now.
async fn snapshot(app: &AppState, caller: &Caller) -> Result<Published> {
    let company_id = caller.company_id;
    let mut sites = sites::for_company(&app.db, company_id).await?;
    sites.retain(|site| caller.sites.allows(site.id));
    let mut registers = registers::for_company(&app.db, &app.presence, company_id).await?;
    registers.retain(|register| caller.sites.allows(register.site_id));
    let mut jobs = sync::recent_and_open(&app.db, company_id).await?;
    jobs.retain(|job| caller.sites.allows(job.site_id));
    published(
        company_id,
        None,
        &Event::Snapshot {
            sites,
            registers,
            jobs,
        },
    )
}

fn to_sse(event: &Published, id: u64) -> SseEvent {
    SseEvent::default()
        .event(event.kind)
        .id(id.to_string())
        .data(&event.json)
}

/// Live changes to the caller's registers, sites and sync jobs, as server-sent events. The first
/// event is always a `snapshot`; then `register`, `site`, `job` and `target` events carry the new
/// state of whatever changed. A client that reconnects gets a new snapshot, so it misses nothing.
#[utoipa::path(
    get, path = "/v1/events", tag = "sync",
    security(("bearer" = ["sites"])),
    responses(
        (status = 200, description = "A text/event-stream of `Event`s", body = regsync_protocol::sync::Event, content_type = "text/event-stream"),
    )
)]
pub async fn events(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    caller.require_sites()?;
    let company_id = caller.company_id;
    let mut rx = app.events.subscribe();
    let mut revoked = app.revoked.subscribe();
    let first = snapshot(&app, &caller).await?;
    let stream = async_stream(move |tx| async move {
        let mut id = 0u64;
        if tx.send(to_sse(&first, id)).await.is_err() {
            return;
        }
        // The stream lives as long as its sign-in: it ends when the access token expires or is
        // revoked (the client reconnects with a fresh one, as after any drop).
        let expires = tokio::time::Instant::now()
            + (caller.expires_at - chrono::Utc::now())
                .to_std()
                .unwrap_or_default();
        let mut recheck = tokio::time::interval(SIGN_IN_RECHECK);
        recheck.tick().await;
        loop {
            let wake = tokio::select! {
                received = rx.recv() => Wake::Event(received),
                _ = tokio::time::sleep_until(expires) => Wake::End,
                ended = revoked.recv() => match ended {
                    Ok(ended) if caller.ended_by(ended) => Wake::End,
                    Ok(_) => Wake::Nothing,
                    Err(broadcast::error::RecvError::Lagged(_)) => Wake::Check,
                    Err(broadcast::error::RecvError::Closed) => Wake::End,
                },
                // Revoked elsewhere: another process, an admin command.
                _ = recheck.tick() => Wake::Check,
            };
            let received = match wake {
                Wake::Event(received) => received,
                Wake::Nothing => continue,
                Wake::Check if caller.still_valid(&app.db).await.unwrap_or(false) => continue,
                Wake::Check | Wake::End => return,
            };
            let event = match received {
                Ok(event)
                    if event.company_id == company_id
                        && event.site_id.is_none_or(|site| caller.sites.allows(site)) =>
                {
                    event
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(
                        missed,
                        "an event subscriber fell behind; sending a snapshot"
                    );
                    match snapshot(&app, &caller).await {
                        Ok(snapshot) => Arc::new(snapshot),
                        Err(error) => {
                            tracing::warn!(%error, "snapshot for a lagging subscriber failed");
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            id += 1;
            if tx.send(to_sse(&event, id)).await.is_err() {
                return;
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(EVENTS_KEEP_ALIVE_SECS))))
}

/// A stream fed by a task; the task ends when the client goes away.
fn async_stream<F, Fut>(produce: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(mpsc::Sender<SseEvent>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(produce(tx));
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    })
}
