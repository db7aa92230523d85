//! The sync engine's runner: the one thread that owns every sync target's state transitions.
//!
//! Everything that may move a target arrives here as an [`Input`] and is handled in arrival
//! order, so a register's messages are handled in the order it sent them (which closes the lost
//! wake-up race: a sale that ends is never missed). Inputs that queue up are handled together by the
//! [`Driver`] as one transaction (group commit): a fan-out to a thousand registers is a handful
//! of commits, not thousands. The runner owns what the driver must not: the channels to each
//! register's connection, the askers waiting for their job, the clock, and the timer, which
//! sleeps until the core's next deadline (no periodic scan).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use regsync_protocol::register::AppliedTarget;
use regsync_protocol::sync::Job;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use super::core::{RegisterRef, Timing};
use super::driver::{Driver, Dropped, Output, Request};
use super::store::Store;
use super::store::postgres::PgStore;
use super::store::sqlite::SqliteStore;
use crate::error::{Error, Result};
use crate::events::{Changed, Hub};
use crate::gateway::{Outbound, Presence, RegisterIdentity};
use crate::{Db, Settings, db};

pub use super::driver::JobRequest;
pub use super::store::Scope as JobTarget;

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
    CreateJob {
        request: JobRequest,
        reply: oneshot::Sender<Result<Job>>,
    },
    /// Anything else a register says, as the driver takes it: nothing in it stays here.
    Register(Request),
    /// Several nodes: let go of the registers other nodes claimed (at these epochs), and (with
    /// `look`) look for work other nodes left this one.
    Rescan {
        claimed: Vec<(Uuid, i64)>,
        look: bool,
    },
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

    /// Ids of jobs as they change and as they finish (once saved), for answering "tell me when
    /// it is done".
    pub fn job_changes(&self) -> broadcast::Receiver<Uuid> {
        self.finished.subscribe()
    }

    /// A job finished on another node: its askers here hear of it as of one finished here.
    pub fn announce_finished(&self, job_id: Uuid) {
        let _ = self.finished.send(job_id);
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

pub fn timing(settings: &Settings) -> Timing {
    let delta = |d| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    Timing {
        result_timeout: delta(settings.result_timeout),
        wait_expiry: delta(settings.wait_expiry),
        offline_grace: delta(settings.offline_grace),
    }
}

/// Starts the engine on its own thread, after resuming what a previous run left open.
/// `node` is this node's, when Back Office runs as several on PostgreSQL.
pub async fn start(
    db: Db,
    settings: Settings,
    presence: Arc<Presence>,
    hub: Hub,
    node: Option<Uuid>,
) -> Result<EngineHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (finished, _) = broadcast::channel(1024);
    let finished_tx = finished.clone();
    let (ready, started) = oneshot::channel();
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
                let parts = Parts {
                    max_sleep: settings.sweep_interval,
                    timing: timing(&settings),
                    log: db.clone(),
                    presence,
                    hub,
                    finished: finished_tx,
                };
                match db {
                    Db::Sqlite(pool) => {
                        let options = (*pool.connect_options()).clone();
                        let own = sqlx::sqlite::SqlitePoolOptions::new()
                            .max_connections(1)
                            .connect_with(options)
                            .await;
                        let store = own.map(SqliteStore::new).map_err(Error::from);
                        parts.run(store, ready, rx).await
                    }
                    Db::Postgres(pool) => {
                        let options = (*pool.connect_options()).clone();
                        let own = sqlx::postgres::PgPoolOptions::new()
                            .max_connections(1)
                            .connect_with(options)
                            .await;
                        let node = node.unwrap_or_else(Uuid::now_v7);
                        let grace = settings.node_grace;
                        let store = own
                            .map(|own| PgStore::new(own, node, grace))
                            .map_err(Error::from);
                        parts.run(store, ready, rx).await
                    }
                }
            });
        })
        .map_err(|e| Error::Internal(format!("starting the sync engine: {e}")))?;
    started
        .await
        .map_err(|_| Error::Internal("the sync engine did not start".into()))??;
    Ok(EngineHandle { tx, finished })
}

/// What the runner is made of, besides its store.
struct Parts {
    max_sleep: std::time::Duration,
    timing: Timing,
    /// The shared pool: where registers' online and offline times are noted.
    log: Db,
    presence: Arc<Presence>,
    hub: Hub,
    finished: broadcast::Sender<Uuid>,
}

impl Parts {
    /// Resumes what a previous run left open on `store`, says whether that worked, and runs
    /// until every handle is gone.
    async fn run<S: Store>(
        self,
        store: Result<S>,
        ready: oneshot::Sender<Result<()>>,
        rx: mpsc::UnboundedReceiver<Input>,
    ) {
        let started = match store {
            Ok(store) => Driver::start(store, self.timing, db::now(), Box::new(Uuid::now_v7)).await,
            Err(error) => Err(error),
        };
        let driver = match started {
            Ok(driver) => driver,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let runner = Runner {
            driver,
            log: self.log,
            max_sleep: self.max_sleep,
            presence: self.presence,
            hub: self.hub,
            finished: self.finished,
            connections: HashMap::new(),
            askers: HashMap::new(),
            next_token: 1,
        };
        runner.run(rx).await;
    }
}

struct Runner<S: Store> {
    driver: Driver<S>,
    log: Db,
    /// The longest the timer sleeps, so a jump of the wall clock is noticed soon.
    max_sleep: std::time::Duration,
    presence: Arc<Presence>,
    hub: Hub,
    finished: broadcast::Sender<Uuid>,
    connections: HashMap<(Uuid, u64), mpsc::UnboundedSender<Outbound>>,
    askers: HashMap<u64, oneshot::Sender<Result<Job>>>,
    next_token: u64,
}

const MAX_BATCH: usize = 1024;

impl<S: Store> Runner<S> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        loop {
            let sleep = self
                .driver
                .poll_timeout()
                .map(|at| (at - Utc::now()).to_std().unwrap_or_default())
                .unwrap_or(self.max_sleep)
                .min(self.max_sleep);
            tokio::select! {
                input = rx.recv() => {
                    let Some(first) = input else { break };
                    let mut batch = vec![self.request(first)];
                    while batch.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(input) => batch.push(self.request(input)),
                            Err(_) => break,
                        }
                    }
                    let started = std::time::Instant::now();
                    let inputs = batch.len();
                    let output = self.driver.process(batch, db::now()).await;
                    tracing::debug!(inputs, elapsed_us = started.elapsed().as_micros() as u64, "engine batch");
                    self.carry_out(output);
                }
                _ = tokio::time::sleep(sleep) => {
                    if self.driver.poll_timeout().is_some_and(|at| at <= Utc::now()) {
                        let output = self.driver.timeout(db::now()).await;
                        self.carry_out(output);
                    }
                }
            }
        }
        tracing::debug!("sync engine stopped");
    }

    /// Keeps what the driver must not hold (channels), and hands it the rest.
    fn request(&mut self, input: Input) -> Request {
        match input {
            Input::Connected {
                register,
                generation,
                outbound,
                applied_revision,
                in_sale,
                recent,
            } => {
                self.connections.insert((register.id, generation), outbound);
                Request::Connected {
                    register: RegisterRef {
                        id: register.id,
                        site_id: register.site_id,
                        company_id: register.company_id,
                    },
                    generation,
                    applied_revision,
                    in_sale,
                    recent,
                }
            }
            Input::Register(request) => {
                if let Request::Disconnected(Dropped {
                    register_id,
                    generation,
                    ..
                }) = request
                {
                    self.connections.remove(&(register_id, generation));
                }
                request
            }
            Input::CreateJob { request, reply } => {
                let token = self.next_token;
                self.next_token += 1;
                self.askers.insert(token, reply);
                Request::CreateJob { token, request }
            }
            Input::Rescan { claimed, look } => Request::Rescan { claimed, look },
        }
    }

    fn carry_out(&mut self, output: Output) {
        // The asker first: its task is then queued ahead of the connection tasks these sends
        // wake, so a manager's "accepted" does not wait behind a site's fan-out.
        for (token, job) in output.replies {
            if let Some(reply) = self.askers.remove(&token) {
                let _ = reply.send(job);
            }
        }
        let mut went = vec![];
        for (register_id, online, in_sale) in output.presence {
            let entry = self.presence.entry(register_id);
            if entry.seen().online != online {
                went.push((register_id, online));
            }
            entry.set_here(online);
            entry.set_online(online);
            entry.set_in_sale(in_sale);
        }
        if !went.is_empty() {
            tokio::spawn(crate::registers::log_presence(
                self.log.clone(),
                went,
                db::now(),
            ));
        }
        for (register_id, generation, text) in output.sends {
            if let Some(outbound) = self.connections.get(&(register_id, generation)) {
                let _ = outbound.send(Outbound::Send(text));
            }
        }
        for (register_id, generation, reason) in output.closes {
            // A register that went to another node: what that node says of it counts now.
            self.presence.entry(register_id).set_here(false);
            if let Some(outbound) = self.connections.remove(&(register_id, generation)) {
                let _ = outbound.send(Outbound::Close(reason));
            }
        }
        let touched = output.touched;
        // Jobs that finished, and those that changed (one left with only registers queued until
        // they reconnect is settled for now). Nobody listening is fine.
        for job_id in output
            .finished
            .into_iter()
            .chain(touched.jobs.iter().copied())
        {
            let _ = self.finished.send(job_id);
        }
        self.hub.report(Changed {
            registers: touched.registers,
            sites: Default::default(),
            jobs: touched.jobs,
            targets: touched.targets,
        });
    }
}
