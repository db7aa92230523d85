//! The sync engine: one task that owns every sync target's state transitions.
//!
//! Everything that moves a target — a job being asked for, a register's answer, its sale
//! ending, its connection coming or going, a deadline passing — arrives here as an [`Input`] and
//! is handled in arrival order, so a register's messages are handled in the order it sent them
//! (which is what closes the lost wake-up race of DESIGN section 4). Inputs that queue up are
//! handled together in one SQLite transaction (group commit): a fan-out to a thousand registers
//! is a handful of commits, not thousands.
//!
//! A batch's effects — messages to registers, answers to HTTP handlers, live events — happen only
//! after its commit, so a state is always persisted before anyone is told of it (invariant 2),
//! and a target is `delivered` in the database before its register can answer.
//!
//! Every transition is a compare-and-set on the target's state, and every open target has a
//! deadline; whichever of "the register answered" and "the deadline passed" comes first wins, and
//! the other changes nothing. So each target reaches exactly one terminal state, even across
//! disconnects and restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regsync_protocol::api::SyncSource;
use regsync_protocol::register::{AppliedTarget, SyncOutcome};
use regsync_protocol::sync::{Job, JobCounts, JobKind, JobSummary, Target, TargetState};
use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::SqliteConnection;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use crate::db::{IN_IDS, by_name, id_list};
use crate::error::{Error, Result};
use crate::events::{Changed, Hub};
use crate::gateway::{Outbound, Presence, PresenceEntry, RegisterIdentity};
use crate::{Db, Settings};

/// Something that may move sync targets.
#[derive(Debug)]
pub enum Input {
    Connected {
        register: RegisterIdentity,
        generation: u64,
        outbound: mpsc::UnboundedSender<Outbound>,
        applied_revision: i64,
        in_sale: bool,
        recent: Vec<AppliedTarget>,
    },
    Disconnected {
        register_id: Uuid,
        generation: u64,
        last_seen: DateTime<Utc>,
    },
    Sale {
        register_id: Uuid,
        generation: u64,
        in_sale: bool,
    },
    Result {
        register_id: Uuid,
        target_id: Uuid,
        outcome: SyncOutcome,
    },
    SyncRequested {
        register_id: Uuid,
    },
    CreateJob {
        request: JobRequest,
        reply: oneshot::Sender<Result<Job>>,
    },
}

/// A sync asked for by a manager (already checked to be allowed) or by a register.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub company_id: Uuid,
    pub target: JobTarget,
    pub source: SyncSource,
    /// The manager who asked: their id and the name shown on the register banner.
    pub requested_by: Option<(Uuid, String)>,
    pub retry_when_free: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum JobTarget {
    Register(Uuid),
    SiteOnline(Uuid),
}

/// The way in: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::UnboundedSender<Input>,
    finished: broadcast::Sender<Uuid>,
}

impl EngineHandle {
    pub fn send(&self, input: Input) {
        // Fails only once the engine has stopped, at shutdown.
        let _ = self.tx.send(input);
    }

    /// Ids of jobs as they finish (once saved), for answering "tell me when it is done".
    pub fn finished_jobs(&self) -> broadcast::Receiver<Uuid> {
        self.finished.subscribe()
    }

    /// Creates a job; answers once it is persisted.
    pub async fn create_job(&self, request: JobRequest) -> Result<Job> {
        let (reply, answer) = oneshot::channel();
        self.send(Input::CreateJob { request, reply });
        answer
            .await
            .map_err(|_| Error::Internal("the sync engine stopped".into()))?
    }
}

/// Starts the engine. Targets left open by a previous run get `offline_grace` for their registers
/// to reconnect and settle them; the rest end `failed` with a reason.
pub async fn start(
    db: Db,
    settings: Settings,
    presence: Arc<Presence>,
    hub: Hub,
) -> Result<EngineHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (finished, _) = broadcast::channel(1024);
    let finished_tx = finished.clone();
    let (ready, started) = oneshot::channel();
    let options = (*db.connect_options()).clone();
    // The engine is the one writer every sync waits on. On a runtime shared with thousands of
    // connection tasks it would queue behind all of them at every await; on its own thread it is
    // scheduled by the OS beside the runtime's workers, with its own database connection.
    std::thread::Builder::new()
        .name("sync-engine".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready.send(Err(Error::Internal(format!(
                        "sync engine runtime: {error}"
                    ))));
                    return;
                }
            };
            runtime.block_on(async move {
                let db = match sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await
                {
                    Ok(db) => db,
                    Err(error) => {
                        let _ = ready.send(Err(error.into()));
                        return;
                    }
                };
                let mut engine = Engine {
                    db,
                    settings,
                    presence,
                    hub,
                    finished: finished_tx,
                    connections: HashMap::new(),
                    catalogs: HashMap::new(),
                    open: OpenTargets::default(),
                    job_info: HashMap::new(),
                };
                if let Err(error) = engine.recover().await {
                    let _ = ready.send(Err(error));
                    return;
                }
                let _ = ready.send(Ok(()));
                engine.run(rx).await;
            });
        })
        .map_err(|e| Error::Internal(format!("starting the sync engine: {e}")))?;
    started
        .await
        .map_err(|_| Error::Internal("the sync engine did not start".into()))??;
    Ok(EngineHandle { tx, finished })
}

struct Connection {
    generation: u64,
    outbound: mpsc::UnboundedSender<Outbound>,
    in_sale: bool,
    identity: RegisterIdentity,
    presence: Arc<PresenceEntry>,
}

struct CachedCatalog {
    revision: i64,
    json: Arc<RawValue>,
}

struct Engine {
    db: Db,
    settings: Settings,
    presence: Arc<Presence>,
    hub: Hub,
    finished: broadcast::Sender<Uuid>,
    connections: HashMap<Uuid, Connection>,
    catalogs: HashMap<Uuid, CachedCatalog>,
    /// Every open target, by id, with its state and deadline: the engine is the only writer of
    /// targets, so this mirrors the database. Lookups by register and by deadline go here, which
    /// spares the database indexes that every state change would otherwise have to update.
    open: OpenTargets,
    /// Who asked, for jobs with open targets.
    job_info: HashMap<Uuid, JobInfo>,
}

/// The open targets, with how many each job has: a job can finish only when it has none left,
/// which is then known without asking the database.
#[derive(Default)]
struct OpenTargets {
    by_id: HashMap<Uuid, OpenTarget>,
    per_job: HashMap<Uuid, usize>,
}

impl OpenTargets {
    fn insert(&mut self, id: Uuid, target: OpenTarget) {
        let job_id = target.job_id;
        if let Some(old) = self.by_id.insert(id, target) {
            self.forget(old.job_id);
        }
        *self.per_job.entry(job_id).or_default() += 1;
    }

    fn remove(&mut self, id: &Uuid) -> Option<OpenTarget> {
        let target = self.by_id.remove(id)?;
        self.forget(target.job_id);
        Some(target)
    }

    fn forget(&mut self, job_id: Uuid) {
        if let Some(n) = self.per_job.get_mut(&job_id) {
            *n -= 1;
            if *n == 0 {
                self.per_job.remove(&job_id);
            }
        }
    }

    fn clear(&mut self) {
        self.by_id.clear();
        self.per_job.clear();
    }

    fn get(&self, id: &Uuid) -> Option<&OpenTarget> {
        self.by_id.get(id)
    }

    /// For changing a target's state or deadline; its job stays the same.
    fn get_mut(&mut self, id: &Uuid) -> Option<&mut OpenTarget> {
        self.by_id.get_mut(id)
    }

    fn contains_key(&self, id: &Uuid) -> bool {
        self.by_id.contains_key(id)
    }

    fn iter(&self) -> impl Iterator<Item = (&Uuid, &OpenTarget)> {
        self.by_id.iter()
    }

    fn job_has_open(&self, job_id: &Uuid) -> bool {
        self.per_job.contains_key(job_id)
    }
}

struct OpenTarget {
    register_id: Uuid,
    job_id: Uuid,
    state: TargetState,
    /// Unix milliseconds; every open target has one (see the module doc).
    deadline_ms: i64,
}

#[derive(Clone)]
struct JobInfo {
    source: String,
    requested_by: Option<String>,
}

/// A register's "applied" answer, settled with others of its batch.
struct Applied {
    register_id: Uuid,
    target_id: Uuid,
    revision: i64,
}

/// What a batch will do once committed.
#[derive(Default)]
struct Effects {
    sends: Vec<(mpsc::UnboundedSender<Outbound>, Outbound)>,
    replies: Vec<(oneshot::Sender<Result<Job>>, Result<Job>)>,
    changed: Changed,
    finished: Vec<Uuid>,
}

const OPEN: &str = "('queued', 'delivered', 'waiting')";
const MAX_BATCH: usize = 1024;

fn drain(rx: &mut mpsc::UnboundedReceiver<Input>, batch: &mut Vec<Input>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(input) => batch.push(input),
            Err(_) => break,
        }
    }
}

fn ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        let hours = secs / 3600;
        format!("{hours} hour{}", if hours == 1 { "" } else { "s" })
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// The sync command, with the catalog spliced in as already-serialized JSON: a fan-out to a
/// thousand registers serializes the menu once, not a thousand times.
#[derive(Serialize)]
#[serde(tag = "type", rename = "sync")]
struct SyncCommand<'a> {
    target_id: Uuid,
    revision: i64,
    requested_by: Option<&'a str>,
    catalog: &'a RawValue,
}

impl Engine {
    async fn recover(&mut self) -> Result<()> {
        let grace = ms(Utc::now() + self.settings.offline_grace);
        let resumed = sqlx::query(
            "UPDATE sync_targets SET deadline_at = MIN(COALESCE(deadline_at, ?1), ?1)
             WHERE state IN ('queued', 'delivered')",
        )
        .bind(grace)
        .execute(&self.db)
        .await?;
        if resumed.rows_affected() > 0 {
            tracing::info!(
                targets = resumed.rows_affected(),
                "resuming syncs left open by the previous run; registers have {} to reconnect",
                human(self.settings.offline_grace)
            );
        }
        self.load_open(grace).await
    }

    /// Loads the open targets (and their jobs' requesters) from the database into memory.
    async fn load_open(&mut self, default_deadline: i64) -> Result<()> {
        self.open.clear();
        #[derive(sqlx::FromRow)]
        struct Row {
            id: Uuid,
            register_id: Uuid,
            job_id: Uuid,
            state: String,
            deadline_at: Option<i64>,
            source: String,
            requested_by_name: Option<String>,
        }
        let open: Vec<Row> = sqlx::query_as(&format!(
            "SELECT t.id, t.register_id, t.job_id, t.state, t.deadline_at,
                    j.source, j.requested_by_name
             FROM sync_targets t JOIN sync_jobs j ON j.id = t.job_id
             WHERE t.state IN {OPEN}"
        ))
        .fetch_all(&self.db)
        .await?;
        for row in open {
            self.open.insert(
                row.id,
                OpenTarget {
                    register_id: row.register_id,
                    job_id: row.job_id,
                    state: TargetState::parse(&row.state).unwrap_or(TargetState::Queued),
                    deadline_ms: row.deadline_at.unwrap_or(default_deadline),
                },
            );
            self.job_info.insert(
                row.job_id,
                JobInfo {
                    source: row.source,
                    requested_by: row.requested_by_name,
                },
            );
        }
        Ok(())
    }

    /// Open targets of a register in one of `states`, oldest first (ids are time-ordered).
    fn open_of(&self, register_id: Uuid, states: &[TargetState]) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .open
            .iter()
            .filter(|(_, t)| t.register_id == register_id && states.contains(&t.state))
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        let mut sweep = tokio::time::interval(self.settings.sweep_interval);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                input = rx.recv() => {
                    let Some(first) = input else { break };
                    let mut batch = vec![first];
                    drain(&mut rx, &mut batch);
                    self.process(batch).await;
                }
                _ = sweep.tick() => self.sweep().await,
            }
        }
        tracing::debug!("sync engine stopped");
    }

    async fn process(&mut self, batch: Vec<Input>) {
        let started = std::time::Instant::now();
        let inputs = batch.len();
        let mut fx = Effects::default();
        let outcome = async {
            let mut tx = self.db.begin_with("BEGIN IMMEDIATE").await?;
            // "Applied" answers are settled together, a few statements for hundreds of them;
            // anything else first settles those before it, so each register's order holds.
            let mut applied = Vec::new();
            for input in batch {
                match input {
                    Input::Result {
                        register_id,
                        target_id,
                        outcome: SyncOutcome::Applied { revision, .. },
                    } => applied.push(Applied {
                        register_id,
                        target_id,
                        revision,
                    }),
                    other => {
                        self.settle_applied(&mut tx, std::mem::take(&mut applied), &mut fx)
                            .await?;
                        self.handle(&mut tx, other, &mut fx).await?;
                    }
                }
            }
            self.settle_applied(&mut tx, applied, &mut fx).await?;
            self.finish_jobs(&mut tx, &mut fx).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        }
        .await;
        tracing::debug!(
            inputs,
            elapsed_us = started.elapsed().as_micros() as u64,
            "engine batch"
        );
        let failed = outcome.is_err();
        self.apply(fx, outcome);
        if failed {
            self.resync_memory().await;
        }
    }

    /// After a batch that could not be saved, memory may be ahead of the database: read it back.
    async fn resync_memory(&mut self) {
        let soon = ms(Utc::now() + self.settings.offline_grace);
        if let Err(error) = self.load_open(soon).await {
            tracing::error!(%error, "cannot reload open sync targets; will retry after the next batch");
        }
    }

    /// Carries out a batch's effects, or on failure tells the callers and drops the messages
    /// (the targets' deadlines settle whatever was not persisted).
    fn apply(&self, fx: Effects, outcome: Result<()>) {
        match outcome {
            Ok(()) => {
                // The asker first: its task is then queued ahead of the connection tasks these
                // sends wake, so a manager's "accepted" does not wait behind a site's fan-out.
                for (reply, job) in fx.replies {
                    let _ = reply.send(job);
                }
                for (outbound, message) in fx.sends {
                    let _ = outbound.send(message);
                }
                for job_id in fx.finished {
                    // Nobody listening is fine.
                    let _ = self.finished.send(job_id);
                }
                self.hub.report(fx.changed);
            }
            Err(error) => {
                tracing::error!(%error, "a batch of sync changes could not be saved");
                for (reply, _) in fx.replies {
                    let _ = reply.send(Err(Error::Internal(format!(
                        "the sync could not be saved: {error}"
                    ))));
                }
            }
        }
    }

    async fn handle(
        &mut self,
        c: &mut SqliteConnection,
        input: Input,
        fx: &mut Effects,
    ) -> Result<()> {
        match input {
            Input::Connected {
                register,
                generation,
                outbound,
                applied_revision,
                in_sale,
                recent,
            } => {
                self.on_connected(
                    c,
                    register,
                    generation,
                    outbound,
                    applied_revision,
                    in_sale,
                    recent,
                    fx,
                )
                .await
            }
            Input::Disconnected {
                register_id,
                generation,
                last_seen,
            } => {
                self.on_disconnected(c, register_id, generation, last_seen, fx)
                    .await
            }
            Input::Sale {
                register_id,
                generation,
                in_sale,
            } => self.on_sale(c, register_id, generation, in_sale, fx).await,
            Input::Result {
                register_id,
                target_id,
                outcome,
            } => self.on_result(c, register_id, target_id, outcome, fx).await,
            Input::SyncRequested { register_id } => {
                let Some(connection) = self.connections.get(&register_id) else {
                    return Ok(());
                };
                let request = JobRequest {
                    company_id: connection.identity.company_id,
                    target: JobTarget::Register(register_id),
                    source: SyncSource::Register,
                    requested_by: None,
                    retry_when_free: false,
                };
                self.create_job(c, &request, fx).await.map(|_| ())
            }
            Input::CreateJob { request, reply } => {
                match self.create_job(c, &request, fx).await {
                    Ok(job) => fx.replies.push((reply, Ok(job))),
                    Err(error @ (Error::Database(_) | Error::Internal(_))) => return Err(error),
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn on_connected(
        &mut self,
        c: &mut SqliteConnection,
        register: RegisterIdentity,
        generation: u64,
        outbound: mpsc::UnboundedSender<Outbound>,
        applied_revision: i64,
        in_sale: bool,
        recent: Vec<AppliedTarget>,
        fx: &mut Effects,
    ) -> Result<()> {
        let id = register.id;
        if let Some(old) = self.connections.get(&id)
            && old.generation != generation
        {
            fx.sends.push((
                old.outbound.clone(),
                Outbound::Close("replaced by a newer connection from this register".into()),
            ));
        }
        let presence = self.presence.entry(id);
        presence.set_online(true);
        presence.set_in_sale(in_sale);
        self.connections.insert(
            id,
            Connection {
                generation,
                outbound,
                in_sale,
                identity: register,
                presence,
            },
        );
        let now = Utc::now();
        sqlx::query(
            "UPDATE registers SET applied_revision = MAX(applied_revision, ?), last_seen_at = ?
             WHERE id = ?",
        )
        .bind(applied_revision)
        .bind(now)
        .bind(id)
        .execute(&mut *c)
        .await?;
        fx.changed.registers.insert(id);

        // Results lost with the last connection (or a Back Office restart) are in `recent`.
        for applied in recent {
            self.settle_synced(
                c,
                id,
                applied.target_id,
                applied.revision,
                applied.applied_at.min(now),
                fx,
            )
            .await?;
        }
        // The hello is a "free" signal too: never rely on having seen the sale end.
        if !in_sale {
            self.wake_waiting(c, id, fx).await?;
        }
        self.deliver_open(c, id, &[TargetState::Queued, TargetState::Delivered], fx)
            .await
    }

    async fn on_disconnected(
        &mut self,
        c: &mut SqliteConnection,
        register_id: Uuid,
        generation: u64,
        last_seen: DateTime<Utc>,
        fx: &mut Effects,
    ) -> Result<()> {
        match self.connections.get(&register_id) {
            Some(connection) if connection.generation == generation => {}
            // An older connection, already replaced: the register is still online.
            _ => return Ok(()),
        }
        if let Some(connection) = self.connections.remove(&register_id) {
            connection.presence.set_online(false);
            connection.presence.set_in_sale(false);
        }
        sqlx::query("UPDATE registers SET last_seen_at = ? WHERE id = ?")
            .bind(last_seen)
            .bind(register_id)
            .execute(&mut *c)
            .await?;
        // Syncs in flight get a short grace to be settled by the register's next hello.
        let grace = ms(Utc::now() + self.settings.offline_grace);
        let in_flight: Vec<Uuid> = self
            .open_of(register_id, &[TargetState::Queued, TargetState::Delivered])
            .into_iter()
            .filter(|id| self.open.get(id).is_some_and(|t| t.deadline_ms > grace))
            .collect();
        for id in &in_flight {
            if let Some(target) = self.open.get_mut(id) {
                target.deadline_ms = grace;
            }
        }
        if !in_flight.is_empty() {
            sqlx::query(&format!(
                "UPDATE sync_targets SET deadline_at = ? WHERE id IN {IN_IDS}"
            ))
            .bind(grace)
            .bind(id_list(&in_flight))
            .execute(&mut *c)
            .await?;
        }
        fx.changed.registers.insert(register_id);
        Ok(())
    }

    async fn on_sale(
        &mut self,
        c: &mut SqliteConnection,
        register_id: Uuid,
        generation: u64,
        in_sale: bool,
        fx: &mut Effects,
    ) -> Result<()> {
        let Some(connection) = self.connections.get_mut(&register_id) else {
            return Ok(());
        };
        if connection.generation != generation {
            return Ok(());
        }
        connection.in_sale = in_sale;
        connection.presence.set_in_sale(in_sale);
        fx.changed.registers.insert(register_id);
        if !in_sale {
            self.wake_waiting(c, register_id, fx).await?;
            self.deliver_open(c, register_id, &[TargetState::Queued], fx)
                .await?;
        }
        Ok(())
    }

    async fn on_result(
        &mut self,
        c: &mut SqliteConnection,
        register_id: Uuid,
        target_id: Uuid,
        outcome: SyncOutcome,
        fx: &mut Effects,
    ) -> Result<()> {
        let row: Option<(String, Uuid, Uuid, bool)> = sqlx::query_as(
            "SELECT t.state, t.register_id, t.job_id, j.retry_when_free
             FROM sync_targets t JOIN sync_jobs j ON j.id = t.job_id WHERE t.id = ?",
        )
        .bind(target_id)
        .fetch_optional(&mut *c)
        .await?;
        let Some((state, owner, job_id, retry_when_free)) = row else {
            tracing::warn!(%register_id, %target_id, "a result for an unknown sync target; ignored");
            return Ok(());
        };
        if owner != register_id {
            tracing::warn!(%register_id, %target_id, "a register reported another register's sync; ignored");
            return Ok(());
        }
        let state = TargetState::parse(&state);
        let now = Utc::now();
        match outcome {
            SyncOutcome::Applied { revision, .. } => {
                if !self
                    .settle_synced(c, register_id, target_id, revision, now, fx)
                    .await?
                {
                    // Already terminal (say, its deadline passed first): the register did apply,
                    // so its revision and last synced still move.
                    self.record_applied(c, register_id, job_id, revision, now, fx)
                        .await?;
                }
            }
            SyncOutcome::Busy if state == Some(TargetState::Delivered) => {
                if retry_when_free {
                    let expires = now + self.settings.wait_expiry;
                    let waited = self
                        .transition(
                            c,
                            target_id,
                            &["delivered"],
                            TargetState::Waiting,
                            None,
                            None,
                            Some(ms(expires)),
                            Some(expires),
                            fx,
                        )
                        .await?;
                    // The sale may have ended already (its message handled before this one):
                    // check the register's latest state at once, never wait for another signal.
                    let free = self
                        .connections
                        .get(&register_id)
                        .is_some_and(|connection| !connection.in_sale);
                    if waited && free {
                        self.wake_waiting(c, register_id, fx).await?;
                        self.deliver_open(c, register_id, &[TargetState::Queued], fx)
                            .await?;
                    }
                } else {
                    self.transition(
                        c,
                        target_id,
                        &["delivered"],
                        TargetState::SkippedBusy,
                        None,
                        Some("in a sale"),
                        None,
                        None,
                        fx,
                    )
                    .await?;
                }
            }
            SyncOutcome::Busy => {
                tracing::debug!(%target_id, "a busy answer for a target not awaiting one; ignored");
            }
            SyncOutcome::Failed { reason } => {
                let reason = format!("could not apply the menu: {reason}");
                self.transition(
                    c,
                    target_id,
                    &["delivered"],
                    TargetState::Failed,
                    None,
                    Some(&reason),
                    None,
                    None,
                    fx,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Settles "applied" answers: their targets end `synced` (if still open) and their registers'
    /// revision and last synced move (even when the target had already ended, say by its
    /// deadline: the register did apply). Set-based, so a fan-out's answers cost a few statements.
    async fn settle_applied(
        &mut self,
        c: &mut SqliteConnection,
        applied: Vec<Applied>,
        fx: &mut Effects,
    ) -> Result<()> {
        let now = Utc::now();
        // Which targets these are, whose, and of which job: open ones are known in memory;
        // others (already ended, or unknown) are looked up.
        let missing: Vec<Uuid> = applied
            .iter()
            .filter(|a| !self.open.contains_key(&a.target_id))
            .map(|a| a.target_id)
            .collect();
        let mut ended: HashMap<Uuid, (Uuid, Uuid)> = HashMap::new();
        if !missing.is_empty() {
            let rows: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(&format!(
                "SELECT id, register_id, job_id FROM sync_targets WHERE id IN {IN_IDS}"
            ))
            .bind(id_list(&missing))
            .fetch_all(&mut *c)
            .await?;
            for (id, register, job) in rows {
                ended.insert(id, (register, job));
            }
        }
        let mut open = Vec::new();
        let mut by_register: HashMap<Uuid, (i64, Uuid)> = HashMap::new();
        for answer in &applied {
            let (owner, job_id, is_open) = match self.open.get(&answer.target_id) {
                Some(target) => (target.register_id, target.job_id, true),
                None => match ended.get(&answer.target_id) {
                    Some((owner, job_id)) => (*owner, *job_id, false),
                    None => {
                        tracing::warn!(register_id = %answer.register_id, target_id = %answer.target_id, "a result for an unknown sync target; ignored");
                        continue;
                    }
                },
            };
            if owner != answer.register_id {
                tracing::warn!(register_id = %answer.register_id, target_id = %answer.target_id, "a register reported another register's sync; ignored");
                continue;
            }
            if is_open {
                open.push(answer);
            }
            let entry = by_register
                .entry(answer.register_id)
                .or_insert((answer.revision, job_id));
            if answer.revision >= entry.0 {
                *entry = (answer.revision, job_id);
            }
            fx.changed.targets.insert(answer.target_id);
            fx.changed.jobs.insert(job_id);
        }
        if !open.is_empty() {
            // One statement per revision (nearly always one): `id IN (…)` is a primary-key
            // lookup per row whatever the table's size, where a join with a VALUES list was
            // planned as a scan that slowed as history grew.
            let mut by_revision: BTreeMap<i64, Vec<Uuid>> = BTreeMap::new();
            for answer in &open {
                by_revision
                    .entry(answer.revision)
                    .or_default()
                    .push(answer.target_id);
            }
            for (revision, ids) in &by_revision {
                sqlx::query(&format!(
                    "UPDATE sync_targets
                     SET state = 'synced', revision = ?, reason = NULL, deadline_at = NULL,
                         wait_expires_at = NULL, updated_at = ?
                     WHERE id IN {IN_IDS} AND state IN {OPEN}"
                ))
                .bind(revision)
                .bind(now)
                .bind(id_list(ids))
                .execute(&mut *c)
                .await?;
            }
            for answer in &open {
                self.open.remove(&answer.target_id);
            }
        }
        if by_register.is_empty() {
            return Ok(());
        }
        // Who asked, per job, for the register's "last synced by".
        let unknown_jobs: Vec<Uuid> = by_register
            .values()
            .map(|(_, job)| *job)
            .filter(|job| !self.job_info.contains_key(job))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut jobs: HashMap<Uuid, JobInfo> = HashMap::new();
        if !unknown_jobs.is_empty() {
            let rows: Vec<(Uuid, String, Option<String>)> = sqlx::query_as(&format!(
                "SELECT id, source, requested_by_name FROM sync_jobs WHERE id IN {IN_IDS}"
            ))
            .bind(id_list(&unknown_jobs))
            .fetch_all(&mut *c)
            .await?;
            for (id, source, requested_by) in rows {
                jobs.insert(
                    id,
                    JobInfo {
                        source,
                        requested_by,
                    },
                );
            }
        }
        // Revisions never go back; last synced only moves forward (invariants 3 and 4).
        // Timestamps are stored as RFC 3339 UTC text, which orders as time does. Registers
        // that took the same revision for the same asker are one statement.
        let mut groups: HashMap<(i64, String, Option<String>), Vec<Uuid>> = HashMap::new();
        for (register_id, (revision, job_id)) in &by_register {
            let info = self.job_info.get(job_id).or_else(|| jobs.get(job_id));
            let (source, by) = info
                .map(|info| (info.source.clone(), info.requested_by.clone()))
                .unwrap_or(("back_office".into(), None));
            groups
                .entry((*revision, source, by))
                .or_default()
                .push(*register_id);
            fx.changed.registers.insert(*register_id);
        }
        for ((revision, source, by), ids) in &groups {
            sqlx::query(&format!(
                "UPDATE registers
                 SET applied_revision = MAX(applied_revision, ?),
                     last_synced_source = CASE WHEN last_synced_at IS NULL OR last_synced_at < ?
                         THEN ? ELSE last_synced_source END,
                     last_synced_by = CASE WHEN last_synced_at IS NULL OR last_synced_at < ?
                         THEN ? ELSE last_synced_by END,
                     last_synced_at = CASE WHEN last_synced_at IS NULL OR last_synced_at < ?
                         THEN ? ELSE last_synced_at END
                 WHERE id IN {IN_IDS}"
            ))
            .bind(revision)
            .bind(now)
            .bind(source)
            .bind(now)
            .bind(by)
            .bind(now)
            .bind(now)
            .bind(id_list(ids))
            .execute(&mut *c)
            .await?;
        }
        Ok(())
    }

    /// Moves one target from one of `from` to `to`; false when it was not in `from` (someone
    /// else decided first).
    #[allow(clippy::too_many_arguments)]
    async fn transition(
        &mut self,
        c: &mut SqliteConnection,
        target_id: Uuid,
        from: &[&str],
        to: TargetState,
        revision: Option<i64>,
        reason: Option<&str>,
        deadline_ms: Option<i64>,
        wait_expires_at: Option<DateTime<Utc>>,
        fx: &mut Effects,
    ) -> Result<bool> {
        let from = from
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let job: Option<Uuid> = sqlx::query_scalar(&format!(
            "UPDATE sync_targets
             SET state = ?, revision = COALESCE(?, revision), reason = ?, deadline_at = ?,
                 wait_expires_at = ?, updated_at = ?
             WHERE id = ? AND state IN ({from})
             RETURNING job_id"
        ))
        .bind(to.as_str())
        .bind(revision)
        .bind(reason)
        .bind(deadline_ms)
        .bind(wait_expires_at)
        .bind(Utc::now())
        .bind(target_id)
        .fetch_optional(&mut *c)
        .await?;
        if let Some(job) = job {
            if to.is_terminal() {
                self.open.remove(&target_id);
            } else if let Some(target) = self.open.get_mut(&target_id) {
                target.state = to;
                target.deadline_ms = deadline_ms.unwrap_or(i64::MAX);
            }
            fx.changed.targets.insert(target_id);
            fx.changed.jobs.insert(job);
            tracing::debug!(%target_id, state = to.as_str(), "sync target moved");
        }
        Ok(job.is_some())
    }

    /// Settles an open target as synced and records the sync on the register.
    async fn settle_synced(
        &mut self,
        c: &mut SqliteConnection,
        register_id: Uuid,
        target_id: Uuid,
        revision: i64,
        at: DateTime<Utc>,
        fx: &mut Effects,
    ) -> Result<bool> {
        let job: Option<Uuid> = sqlx::query_scalar(&format!(
            "UPDATE sync_targets
             SET state = 'synced', revision = ?, reason = NULL, deadline_at = NULL,
                 wait_expires_at = NULL, updated_at = ?
             WHERE id = ? AND register_id = ? AND state IN {OPEN}
             RETURNING job_id"
        ))
        .bind(revision)
        .bind(Utc::now())
        .bind(target_id)
        .bind(register_id)
        .fetch_optional(&mut *c)
        .await?;
        let Some(job_id) = job else { return Ok(false) };
        self.open.remove(&target_id);
        fx.changed.targets.insert(target_id);
        fx.changed.jobs.insert(job_id);
        self.record_applied(c, register_id, job_id, revision, at, fx)
            .await?;
        Ok(true)
    }

    /// The register has `revision` since `at`, from the sync of `job_id`. Its revision never
    /// goes back, and last synced only moves forward (invariants 3 and 4).
    async fn record_applied(
        &self,
        c: &mut SqliteConnection,
        register_id: Uuid,
        job_id: Uuid,
        revision: i64,
        at: DateTime<Utc>,
        fx: &mut Effects,
    ) -> Result<()> {
        let (source, by, last): (String, Option<String>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT j.source, j.requested_by_name, r.last_synced_at
             FROM sync_jobs j, registers r WHERE j.id = ? AND r.id = ?",
        )
        .bind(job_id)
        .bind(register_id)
        .fetch_one(&mut *c)
        .await?;
        if last.is_some_and(|last| last >= at) {
            sqlx::query(
                "UPDATE registers SET applied_revision = MAX(applied_revision, ?) WHERE id = ?",
            )
            .bind(revision)
            .bind(register_id)
            .execute(&mut *c)
            .await?;
        } else {
            sqlx::query(
                "UPDATE registers SET applied_revision = MAX(applied_revision, ?),
                    last_synced_at = ?, last_synced_source = ?, last_synced_by = ?
                 WHERE id = ?",
            )
            .bind(revision)
            .bind(at)
            .bind(source)
            .bind(by)
            .bind(register_id)
            .execute(&mut *c)
            .await?;
        }
        fx.changed.registers.insert(register_id);
        Ok(())
    }

    /// Waiting targets of a free register go back to the queue.
    async fn wake_waiting(
        &mut self,
        c: &mut SqliteConnection,
        register_id: Uuid,
        fx: &mut Effects,
    ) -> Result<()> {
        let now = Utc::now();
        let deadline = ms(now + self.settings.result_timeout);
        for target_id in self.open_of(register_id, &[TargetState::Waiting]) {
            let job: Option<Uuid> = sqlx::query_scalar(
                "UPDATE sync_targets
                 SET state = 'queued', deadline_at = ?, wait_expires_at = NULL, updated_at = ?
                 WHERE id = ? AND state = 'waiting'
                 RETURNING job_id",
            )
            .bind(deadline)
            .bind(now)
            .bind(target_id)
            .fetch_optional(&mut *c)
            .await?;
            if let (Some(job), Some(target)) = (job, self.open.get_mut(&target_id)) {
                target.state = TargetState::Queued;
                target.deadline_ms = deadline;
                fx.changed.targets.insert(target_id);
                fx.changed.jobs.insert(job);
            }
        }
        Ok(())
    }

    /// The site's current menu, serialized; re-read only when its revision moved.
    async fn catalog(
        &mut self,
        c: &mut SqliteConnection,
        site_id: Uuid,
    ) -> Result<(i64, Arc<RawValue>)> {
        let revision: i64 = sqlx::query_scalar("SELECT revision FROM catalogs WHERE site_id = ?")
            .bind(site_id)
            .fetch_one(&mut *c)
            .await?;
        if let Some(cached) = self.catalogs.get(&site_id)
            && cached.revision == revision
        {
            return Ok((revision, cached.json.clone()));
        }
        let content: String = sqlx::query_scalar("SELECT content FROM catalogs WHERE site_id = ?")
            .bind(site_id)
            .fetch_one(&mut *c)
            .await?;
        let json: Arc<RawValue> = RawValue::from_string(content)
            .map_err(|e| Error::Internal(format!("stored catalog of site {site_id}: {e}")))?
            .into();
        self.catalogs.insert(
            site_id,
            CachedCatalog {
                revision,
                json: json.clone(),
            },
        );
        Ok((revision, json))
    }

    fn command(
        target_id: Uuid,
        revision: i64,
        requested_by: Option<&str>,
        catalog: &RawValue,
    ) -> Result<String> {
        serde_json::to_string(&SyncCommand {
            target_id,
            revision,
            requested_by,
            catalog,
        })
        .map_err(|e| Error::Internal(format!("serializing a sync command: {e}")))
    }

    /// Sends the register every open target in `states`, each with the menu as it is now (a
    /// target that waited gets the latest menu, not the one of when it was asked for).
    async fn deliver_open(
        &mut self,
        c: &mut SqliteConnection,
        register_id: Uuid,
        states: &[TargetState],
        fx: &mut Effects,
    ) -> Result<()> {
        let Some(connection) = self.connections.get(&register_id) else {
            return Ok(());
        };
        let outbound = connection.outbound.clone();
        let site_id = connection.identity.site_id;
        let targets = self.open_of(register_id, states);
        if targets.is_empty() {
            return Ok(());
        }
        let (revision, catalog) = self.catalog(c, site_id).await?;
        let now = Utc::now();
        let deadline = ms(now + self.settings.result_timeout);
        for target_id in targets {
            let Some(job_id) = self.open.get(&target_id).map(|t| t.job_id) else {
                continue;
            };
            sqlx::query(
                "UPDATE sync_targets SET state = 'delivered', revision = ?, deadline_at = ?, updated_at = ?
                 WHERE id = ?",
            )
            .bind(revision)
            .bind(deadline)
            .bind(now)
            .bind(target_id)
            .execute(&mut *c)
            .await?;
            if let Some(target) = self.open.get_mut(&target_id) {
                target.state = TargetState::Delivered;
                target.deadline_ms = deadline;
            }
            let requested_by = match self.job_info.get(&job_id) {
                Some(info) => info.requested_by.clone(),
                None => {
                    sqlx::query_scalar("SELECT requested_by_name FROM sync_jobs WHERE id = ?")
                        .bind(job_id)
                        .fetch_one(&mut *c)
                        .await?
                }
            };
            let command = Self::command(target_id, revision, requested_by.as_deref(), &catalog)?;
            fx.sends.push((outbound.clone(), Outbound::Send(command)));
            fx.changed.targets.insert(target_id);
            fx.changed.jobs.insert(job_id);
        }
        Ok(())
    }

    async fn create_job(
        &mut self,
        c: &mut SqliteConnection,
        request: &JobRequest,
        fx: &mut Effects,
    ) -> Result<Job> {
        let (site_id, registers): (Uuid, Vec<(Uuid, String)>) = match request.target {
            JobTarget::Register(register_id) => {
                let row: Option<(Uuid, String)> = sqlx::query_as(
                    "SELECT r.site_id, r.name FROM registers r JOIN sites s ON s.id = r.site_id
                     WHERE r.id = ? AND s.company_id = ?",
                )
                .bind(register_id)
                .bind(request.company_id)
                .fetch_optional(&mut *c)
                .await?;
                let (site_id, name) = row.ok_or(Error::NotFound("register"))?;
                (site_id, vec![(register_id, name)])
            }
            JobTarget::SiteOnline(site_id) => {
                let registers = site_registers(c, site_id, request.company_id).await?;
                if registers.is_empty() {
                    return Err(Error::Conflict {
                        code: "no_registers",
                        message: "this site has no registers to sync".into(),
                    });
                }
                (site_id, registers)
            }
        };
        let kind = match request.target {
            JobTarget::Register(_) => JobKind::Register,
            JobTarget::SiteOnline(_) => JobKind::SiteOnline,
        };
        let now = Utc::now();
        let job_id = Uuid::now_v7();
        let (user_id, user_name) = request.requested_by.clone().unzip();
        sqlx::query(
            "INSERT INTO sync_jobs (id, company_id, site_id, kind, source, requested_by_user,
                requested_by_name, retry_when_free, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(job_id)
        .bind(request.company_id)
        .bind(site_id)
        .bind(super::kind_str(kind))
        .bind(crate::registers::source_str(request.source))
        .bind(user_id)
        .bind(&user_name)
        .bind(request.retry_when_free)
        .bind(now)
        .execute(&mut *c)
        .await?;

        self.job_info.insert(
            job_id,
            JobInfo {
                source: crate::registers::source_str(request.source).to_owned(),
                requested_by: user_name.clone(),
            },
        );
        let any_online = registers
            .iter()
            .any(|(id, _)| self.connections.contains_key(id));
        let (revision, catalog) = if any_online {
            let (revision, catalog) = self.catalog(c, site_id).await?;
            (Some(revision), Some(catalog))
        } else {
            (None, None)
        };
        let deadline = ms(now + self.settings.result_timeout);
        let mut counts = JobCounts::default();
        let mut targets = Vec::with_capacity(registers.len());
        let mut rows = Vec::with_capacity(registers.len());
        for (register_id, register_name) in registers {
            let target_id = Uuid::now_v7();
            let online = self.connections.get(&register_id);
            let (state, reason) = match online {
                Some(_) => (TargetState::Delivered, None),
                None => (TargetState::SkippedOffline, Some("offline")),
            };
            let target_revision = online.and(revision);
            if online.is_some() {
                self.open.insert(
                    target_id,
                    OpenTarget {
                        register_id,
                        job_id,
                        state: TargetState::Delivered,
                        deadline_ms: deadline,
                    },
                );
            }
            rows.push((
                target_id,
                register_id,
                state,
                target_revision,
                reason,
                online.map(|_| deadline),
            ));
            if let (Some(connection), Some(revision), Some(catalog)) = (online, revision, &catalog)
            {
                let command = Self::command(target_id, revision, user_name.as_deref(), catalog)?;
                fx.sends
                    .push((connection.outbound.clone(), Outbound::Send(command)));
            }
            counts.add(state);
            fx.changed.targets.insert(target_id);
            targets.push(Target {
                id: target_id,
                job_id,
                register_id,
                register_name,
                state,
                revision: target_revision,
                reason: reason.map(str::to_owned),
                updated_at: now,
                wait_expires_at: None,
            });
        }
        // Many rows per statement: a site of a thousand registers is a handful of inserts.
        for chunk in rows.chunks(100) {
            let sql = format!(
                "INSERT INTO sync_targets (id, job_id, register_id, state, revision, reason,
                    deadline_at, updated_at) VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            );
            let mut query = sqlx::query(&sql);
            for (target_id, register_id, state, revision, reason, deadline) in chunk {
                query = query
                    .bind(target_id)
                    .bind(job_id)
                    .bind(register_id)
                    .bind(state.as_str())
                    .bind(revision)
                    .bind(reason)
                    .bind(deadline)
                    .bind(now);
            }
            query.execute(&mut *c).await?;
        }
        fx.changed.jobs.insert(job_id);
        tracing::info!(%job_id, %site_id, targets = targets.len(), online = counts.delivered, "sync job created");
        Ok(Job {
            summary: JobSummary {
                id: job_id,
                site_id,
                kind,
                source: request.source,
                requested_by: user_name,
                retry_when_free: request.retry_when_free,
                created_at: now,
                finished_at: (counts.open() == 0).then_some(now),
                counts,
            },
            targets,
        })
    }

    /// Marks the jobs touched in this batch finished when none of their targets is open.
    async fn finish_jobs(&mut self, c: &mut SqliteConnection, fx: &mut Effects) -> Result<()> {
        let now = Utc::now();
        // Memory mirrors the open targets; the statement below still checks the table.
        let candidates: Vec<Uuid> = fx
            .changed
            .jobs
            .iter()
            .filter(|job_id| !self.open.job_has_open(job_id))
            .copied()
            .collect();
        for job_id in &candidates {
            let finished = sqlx::query(&format!(
                "UPDATE sync_jobs SET finished_at = ?
                 WHERE id = ? AND finished_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM sync_targets WHERE job_id = ? AND state IN {OPEN})"
            ))
            .bind(now)
            .bind(job_id)
            .bind(job_id)
            .execute(&mut *c)
            .await?;
            if finished.rows_affected() > 0 {
                self.job_info.remove(job_id);
                fx.finished.push(*job_id);
                tracing::info!(%job_id, "sync job finished");
            }
        }
        Ok(())
    }

    /// Ends targets whose deadline passed: waits expire, unanswered deliveries fail.
    async fn sweep(&mut self) {
        let mut fx = Effects::default();
        let outcome = async {
            let now = Utc::now();
            let due: Vec<(Uuid, TargetState, Uuid)> = self
                .open
                .iter()
                .filter(|(_, t)| t.deadline_ms <= ms(now))
                .map(|(id, t)| (*id, t.state, t.register_id))
                .take(1000)
                .collect();
            if due.is_empty() {
                return Ok(());
            }
            let mut tx = self.db.begin_with("BEGIN IMMEDIATE").await?;
            for (target_id, state, register_id) in due {
                let (to, reason) = if state == TargetState::Waiting {
                    (
                        TargetState::Expired,
                        format!("the sale did not end within {}", human(self.settings.wait_expiry)),
                    )
                } else if self.connections.contains_key(&register_id) {
                    (
                        TargetState::Failed,
                        format!("no answer from the register within {}", human(self.settings.result_timeout)),
                    )
                } else {
                    (TargetState::Failed, "lost its connection during the sync".to_owned())
                };
                // Only if the deadline still stands: an answer may have moved it meanwhile.
                let moved: Option<Uuid> = sqlx::query_scalar(
                    "UPDATE sync_targets
                     SET state = ?, reason = ?, deadline_at = NULL, updated_at = ?
                     WHERE id = ? AND state = ? AND deadline_at <= ?
                     RETURNING job_id",
                )
                .bind(to.as_str())
                .bind(&reason)
                .bind(now)
                .bind(target_id)
                .bind(state.as_str())
                .bind(ms(now))
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(job_id) = moved {
                    self.open.remove(&target_id);
                    tracing::info!(%target_id, %register_id, state = to.as_str(), %reason, "sync target ended by its deadline");
                    fx.changed.targets.insert(target_id);
                    fx.changed.jobs.insert(job_id);
                }
            }
            self.finish_jobs(&mut tx, &mut fx).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        }
        .await;
        let failed = outcome.is_err();
        self.apply(fx, outcome);
        if failed {
            self.resync_memory().await;
        }
    }
}

/// A site's registers, ordered by name as people read them. Fetched as one row of JSON: sqlx
/// hands each row of a result across threads, which for a site of a thousand registers cost more
/// than the query itself.
async fn site_registers(
    c: &mut SqliteConnection,
    site_id: Uuid,
    company_id: Uuid,
) -> Result<Vec<(Uuid, String)>> {
    let json: String = sqlx::query_scalar(
        "SELECT json_group_array(json_array(hex(r.id), r.name))
         FROM registers r JOIN sites s ON s.id = r.site_id
         WHERE r.site_id = ? AND s.company_id = ?",
    )
    .bind(site_id)
    .bind(company_id)
    .fetch_one(&mut *c)
    .await?;
    let rows: Vec<(String, String)> = serde_json::from_str(&json)
        .map_err(|e| Error::Internal(format!("reading a site's registers: {e}")))?;
    let mut registers = rows
        .into_iter()
        .map(|(id, name)| {
            Uuid::parse_str(&id)
                .map(|id| (id, name))
                .map_err(|e| Error::Internal(format!("a stored register id: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    registers.sort_by(|(_, a), (_, b)| by_name(a, b));
    Ok(registers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regsync_protocol::register::ServerMessage;

    #[test]
    fn the_spliced_command_is_a_valid_sync_message() {
        let catalog = regsync_protocol::Catalog {
            settings: [("footer".to_owned(), "Hi \"there\"".to_owned())].into(),
            ..Default::default()
        };
        let raw = RawValue::from_string(serde_json::to_string(&catalog).unwrap()).unwrap();
        let text = Engine::command(Uuid::nil(), 7, Some("Alex"), &raw).unwrap();
        let parsed: ServerMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            ServerMessage::Sync {
                target_id: Uuid::nil(),
                revision: 7,
                requested_by: Some("Alex".into()),
                catalog,
            }
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_secs(7200)), "2 hours");
        assert_eq!(human(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human(Duration::from_secs(120)), "2 min");
        assert_eq!(human(Duration::from_secs(45)), "45 s");
    }
}
