//! The driver: batch → core → one transaction → commit → effects.
//!
//! It does the core's I/O and nothing else: looks up what the core needs of the store before a
//! batch (who a job covers, what is known of targets that are no longer open), feeds the core
//! the batch in arrival order, stamps deliveries with the site's current menu, persists the
//! core's changes in one transaction, and only after the commit hands back what to send — so a
//! state is always persisted before anyone hears of it. Time and ids come in from outside, so
//! the simulation runs this very code on a simulated clock.

mod prepare;
mod reply;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use regsync_protocol::api::SyncSource;
use regsync_protocol::register::AppliedTarget;
use regsync_protocol::sync::Job;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::core::{Core, RegisterRef, Step, Timing, Touched};
pub use super::core::{Dropped, SaleState, SyncAnswer};
use super::store::{Notice, Scope, Store, StoreTx};
use crate::error::{Error, Result};

/// Something that may move sync targets, as the driver takes it.
#[derive(Debug, Clone)]
pub enum Request {
    Connected {
        register: RegisterRef,
        generation: u64,
        applied_revision: i64,
        in_sale: bool,
        recent: Vec<AppliedTarget>,
    },
    Disconnected(Dropped),
    Sale(SaleState),
    Result(SyncAnswer),
    /// Staff pressed "Sync" on the register.
    SyncRequested {
        register_id: Uuid,
    },
    /// A manager's sync, already checked to be allowed; answered under `token`.
    CreateJob {
        token: u64,
        request: JobRequest,
    },
    /// Several nodes: other nodes claimed these registers (at these epochs); and (with `look`)
    /// look for open targets of registers held here that this node does not know of yet.
    Rescan {
        claimed: Vec<(Uuid, i64)>,
        look: bool,
    },
}

/// A sync asked for by a manager (already checked to be allowed) or by a register.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub company_id: Uuid,
    pub scope: Scope,
    pub source: SyncSource,
    /// The manager who asked: their id and the name shown on the register banner.
    pub requested_by: Option<(Uuid, String)>,
    pub retry_when_free: bool,
    /// Registers offline now wait this long to reconnect and be synced, instead of being
    /// skipped.
    pub queue_offline: Option<chrono::TimeDelta>,
    /// Its part in "Sync online registers at all my sites", if it is one.
    pub group: Option<regsync_protocol::sync::JobGroupRef>,
}

/// What to do now that a batch is committed (or, on failure, the errors to answer with).
#[derive(Debug, Default)]
pub struct Output {
    /// Serialized messages for a register's connection `generation`.
    pub sends: Vec<(Uuid, u64, String)>,
    pub closes: Vec<(Uuid, u64, String)>,
    /// (register, online, in sale)
    pub presence: Vec<(Uuid, bool, bool)>,
    pub replies: Vec<(u64, Result<Job>)>,
    pub finished: Vec<Uuid>,
    pub touched: Touched,
}

/// A site's menu as last sent, serialized once.
struct CachedCatalog {
    revision: i64,
    json: Arc<RawValue>,
}

pub struct Driver<S: Store> {
    store: S,
    core: Core,
    catalogs: HashMap<Uuid, CachedCatalog>,
    new_id: Box<dyn FnMut() -> Uuid + Send>,
}

impl<S: Store> std::fmt::Debug for Driver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Driver<S> {
    /// Starts on `store`: targets a previous run left open get `offline_grace` for their
    /// registers to reconnect and settle them; the rest end by their deadlines.
    pub async fn start(
        store: S,
        timing: Timing,
        now: DateTime<Utc>,
        new_id: Box<dyn FnMut() -> Uuid + Send>,
    ) -> Result<Driver<S>> {
        let grace = (now + timing.offline_grace).timestamp_millis();
        let resumed = store.recover(grace).await?;
        if resumed > 0 {
            tracing::info!(
                targets = resumed,
                "resuming syncs left open by the previous run; registers have {} to reconnect",
                super::core::human(timing.offline_grace)
            );
        }
        let mut core = Core::new(timing);
        core.restore(store.load_open().await?, now);
        Ok(Driver {
            store,
            core,
            catalogs: HashMap::new(),
            new_id,
        })
    }

    /// When the driver next needs [`Driver::timeout`].
    pub fn poll_timeout(&self) -> Option<DateTime<Utc>> {
        self.core.poll_timeout()
    }

    /// Handles requests in arrival order as one transaction.
    pub async fn process(&mut self, requests: Vec<Request>, now: DateTime<Utc>) -> Output {
        let tokens: Vec<u64> = requests
            .iter()
            .filter_map(|r| match r {
                Request::CreateJob { token, .. } => Some(*token),
                _ => None,
            })
            .collect();
        let mut out = Output::default();
        let result = self.run_batch(requests, now, &mut out).await;
        let mut out = self.finish(result, out, now).await;
        // Every asker hears back, whatever happened to the batch.
        for token in tokens {
            if !out.replies.iter().any(|(t, _)| *t == token) {
                let error = Error::Internal("the sync could not be saved".into());
                out.replies.push((token, Err(error)));
            }
        }
        out
    }

    /// Ends targets whose deadline passed by `now`.
    pub async fn timeout(&mut self, now: DateTime<Utc>) -> Output {
        let mut out = Output::default();
        self.core.handle_timeout(now);
        let step = self.core.take();
        let result = self.persist(step, &mut out).await;
        self.finish(result, out, now).await
    }

    async fn finish(&mut self, result: Result<()>, mut out: Output, now: DateTime<Utc>) -> Output {
        if let Err(error) = result {
            tracing::error!(%error, "a batch of sync changes could not be saved");
            // Nothing of the batch happened, but who is connected is not stored: keep that.
            out = Output {
                replies: std::mem::take(&mut out.replies),
                presence: std::mem::take(&mut out.presence),
                closes: std::mem::take(&mut out.closes),
                ..Output::default()
            };
            // Memory may be ahead of the store: read it back.
            match self.store.load_open().await {
                Ok(rows) => self.core.restore(rows, now),
                Err(error) => tracing::error!(%error, "cannot reload open sync targets"),
            }
        }
        out
    }

    async fn run_batch(
        &mut self,
        requests: Vec<Request>,
        now: DateTime<Utc>,
        out: &mut Output,
    ) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let (inputs, claimed) = self.resolve(&mut tx, requests, now, out).await?;
        for input in inputs {
            self.core.handle(input, now);
        }
        let mut step = self.core.take();
        step.claimed = claimed;
        match self.save(tx, &mut step).await {
            Ok(finished) => self.effects(step, &finished, out),
            Err(error) => {
                reply::connections(&step, out);
                Err(error)
            }
        }
    }

    async fn persist(&mut self, mut step: Step, out: &mut Output) -> Result<()> {
        if step.batch.is_empty() {
            return self.effects(step, &[], out);
        }
        let tx = self.store.begin().await?;
        let finished = self.save(tx, &mut step).await?;
        self.effects(step, &finished, out)
    }

    /// Saves a step in `tx`, telling the other nodes (if any) as it commits; answers the jobs it
    /// finished.
    async fn save(&mut self, mut tx: S::Tx, step: &mut Step) -> Result<Vec<Uuid>> {
        self.stamp(&mut tx, &mut step.batch).await?;
        let finished = if step.batch.is_empty() {
            Vec::new()
        } else {
            tx.apply(&step.batch).await?
        };
        let notice = notice(step, &finished);
        if !notice.is_empty() {
            tx.publish(&notice).await?;
        }
        tx.commit().await?;
        Ok(finished)
    }
}

/// What a step tells the other nodes as it commits.
fn notice(step: &Step, finished: &[Uuid]) -> Notice {
    let batch = &step.batch;
    let mut presence: Vec<(Uuid, bool, bool)> = batch
        .presence
        .iter()
        .map(|(id, (online, in_sale))| (*id, *online, *in_sale))
        .collect();
    presence.sort_unstable();
    Notice {
        at: batch.at,
        jobs: step.touched.jobs.clone(),
        finished: finished.iter().copied().collect(),
        registers: batch.registers.keys().copied().collect(),
        presence,
        wake: step.wake.clone(),
        claimed: step.claimed.clone(),
        ..Notice::default()
    }
}
