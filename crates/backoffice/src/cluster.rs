//! Back Office as several nodes on one PostgreSQL database (docs/cluster.md).
//!
//! Every node is the same binary with the same flags. A register is held by the node its
//! connection is on (`register_sessions`): that node alone writes the register's open sync
//! targets, and every write checks it still holds the register, so a node that lost it (the
//! register reconnected elsewhere, or the node was taken for dead) writes nothing more. Other
//! nodes only add queued targets (a manager's sync asked on them) and wake the holder.
//!
//! `NOTIFY` is only a wake-up: the tables are the truth. Each committed batch sends one
//! [`Notice`] (what it changed, whom to wake); a node that missed some (its listening connection
//! dropped) rescans after reconnecting and every few seconds anyway, so a lost notice costs a few
//! seconds, never a sync. Nodes renew a heartbeat; the registers of a node that stops beating are
//! taken over by a live node, whose engine ends their syncs unless they come back within the
//! grace.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use uuid::Uuid;

use crate::error::Result;
use crate::events::{Changed, Hub};
use crate::gateway::Presence;
use crate::sync::engine::{EngineHandle, Input};

/// The channel every node listens on.
pub const CHANNEL: &str = "regsync";

/// PostgreSQL refuses a payload of 8,000 bytes or more.
const MAX_NOTICE_BYTES: usize = 7_900;

/// How often a node renews its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// How often a node rescans for work and presence, whatever it heard.
pub const RESCAN: Duration = Duration::from_secs(3);

/// What one committed batch changed, for the other nodes: their managers' live events, their
/// askers waiting for a job, their view of who is online, and their engines' work.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// The node that committed it.
    #[serde(rename = "n")]
    pub node: Uuid,
    /// When: the time every row the batch wrote carries.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// Jobs whose targets changed.
    #[serde(rename = "j", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub jobs: BTreeSet<Uuid>,
    /// Jobs that finished.
    #[serde(rename = "f", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub finished: BTreeSet<Uuid>,
    /// Sites whose menu changed (with every register of them: their "up to date").
    #[serde(rename = "s", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub sites: BTreeSet<Uuid>,
    /// Registers whose row changed (revision, last synced).
    #[serde(rename = "r", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub registers: BTreeSet<Uuid>,
    /// (register, online, in a sale) as this node sees them now.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub presence: Vec<(Uuid, bool, bool)>,
    /// Nodes with new work: queued targets of registers they hold, or registers taken from them.
    #[serde(rename = "w", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub wake: BTreeSet<Uuid>,
    /// Registers this node claimed, at their new epoch: whoever held them before closes its
    /// connection.
    #[serde(rename = "c", default, skip_serializing_if = "Vec::is_empty")]
    pub claimed: Vec<(Uuid, i64)>,
    /// Too much to say in one notice: every node rescans what it shows.
    #[serde(rename = "o", default, skip_serializing_if = "std::ops::Not::not")]
    pub overflow: bool,
}

impl Notice {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
            && self.sites.is_empty()
            && self.finished.is_empty()
            && self.registers.is_empty()
            && self.presence.is_empty()
            && self.wake.is_empty()
            && self.claimed.is_empty()
            && !self.overflow
    }

    /// The payload, under PostgreSQL's limit: what does not fit is left out and `overflow` says
    /// so (the receivers rescan instead). Who to wake, what was claimed and which jobs finished
    /// are kept longest: they are what a node cannot see by rescanning its own view.
    pub fn encode(&self) -> String {
        let text = |notice: &Notice| serde_json::to_string(notice).unwrap_or_default();
        let full = text(self);
        if full.len() <= MAX_NOTICE_BYTES {
            return full;
        }
        let mut short = Notice {
            node: self.node,
            at: self.at,
            jobs: self.jobs.clone(),
            sites: self.sites.clone(),
            finished: self.finished.clone(),
            wake: self.wake.clone(),
            claimed: self.claimed.clone(),
            overflow: true,
            ..Notice::default()
        };
        if text(&short).len() > MAX_NOTICE_BYTES {
            short.jobs.clear();
        }
        if text(&short).len() > MAX_NOTICE_BYTES {
            // Even the essentials do not fit: every node rescans everything.
            short.finished.clear();
            short.claimed.clear();
            short.wake.clear();
        }
        text(&short)
    }
}

/// Sends a notice outside a batch (a menu change), when it commits.
pub async fn publish(pool: &PgPool, notice: &Notice) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(notice.encode())
        .execute(pool)
        .await?;
    Ok(())
}

/// This process, as one node of Back Office.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub id: Uuid,
}

impl Node {
    /// Joins the cluster: a new node id, its heartbeat row written.
    pub async fn join(pool: &PgPool) -> Result<Node> {
        let node = Node { id: Uuid::now_v7() };
        sqlx::query("INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ($1, now(), now())")
            .bind(node.id)
            .execute(pool)
            .await?;
        Ok(node)
    }
}

/// Renews this node's heartbeat until aborted. A node that cannot reach the database for longer
/// than the grace is taken for dead by the others, which is what it then is to its registers.
pub async fn heartbeat(pool: PgPool, node: Node) {
    let mut interval = tokio::time::interval(HEARTBEAT);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let beat = sqlx::query("UPDATE nodes SET heartbeat_at = now() WHERE id = $1")
            .bind(node.id)
            .execute(&pool)
            .await;
        if let Err(error) = beat {
            tracing::warn!(%error, "cannot renew this node's heartbeat; will try again");
        }
    }
}

/// What a node runs to take part: it listens for the others' notices and acts on them, rescans
/// now and then, and takes over the registers of dead nodes.
#[derive(Debug, Clone)]
pub struct Member {
    pub pool: PgPool,
    pub node: Node,
    pub grace: Duration,
    pub engine: EngineHandle,
    pub hub: Hub,
    pub presence: Arc<Presence>,
}

impl Member {
    /// Runs until aborted.
    pub async fn run(self) {
        loop {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut listener) => {
                    if let Err(error) = listener.listen(CHANNEL).await {
                        tracing::warn!(%error, "cannot listen for other nodes; will try again");
                    } else {
                        self.follow(&mut listener).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot connect to listen for other nodes");
                }
            }
            tokio::time::sleep(RESCAN).await;
        }
    }

    /// Acts on notices until the listening connection fails for good; rescans after every
    /// reconnect (notices sent meanwhile are lost) and every [`RESCAN`].
    async fn follow(&self, listener: &mut PgListener) {
        self.rescan().await;
        let mut interval = tokio::time::interval(RESCAN);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) => {
                        match serde_json::from_str::<Notice>(notification.payload()) {
                            Ok(notice) => self.heard(notice).await,
                            Err(error) => tracing::warn!(%error, "an unreadable notice"),
                        }
                    }
                    // The connection dropped and sqlx reconnected: what was said meanwhile is lost.
                    Ok(None) => {
                        tracing::info!("listening again after a lost connection; rescanning");
                        self.rescan().await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "lost the connection listening for other nodes");
                        return;
                    }
                },
                _ = interval.tick() => self.rescan().await,
            }
        }
    }

    async fn heard(&self, notice: Notice) {
        if notice.node == self.node.id {
            return;
        }
        let woken = notice.wake.contains(&self.node.id);
        if woken || !notice.claimed.is_empty() {
            self.engine.send(Input::Rescan {
                claimed: notice.claimed.clone(),
                look: woken,
            });
        }
        for (register_id, online, in_sale) in &notice.presence {
            self.presence.set_elsewhere(*register_id, *online, *in_sale);
        }
        if notice.overflow {
            self.refresh_presence().await;
        }
        for job_id in &notice.finished {
            self.engine.announce_finished(*job_id);
        }
        let mut changed = Changed {
            registers: notice.registers.clone(),
            jobs: notice.jobs.clone(),
            sites: notice.sites.clone(),
            ..Changed::default()
        };
        if !notice.sites.is_empty() {
            let sites: Vec<Uuid> = notice.sites.iter().copied().collect();
            let registers: std::result::Result<Vec<Uuid>, _> =
                sqlx::query_scalar("SELECT id FROM registers WHERE site_id = ANY($1)")
                    .bind(&sites)
                    .fetch_all(&self.pool)
                    .await;
            match registers {
                Ok(registers) => changed.registers.extend(registers),
                Err(error) => tracing::warn!(%error, "cannot read a changed site's registers"),
            }
        }
        changed
            .registers
            .extend(notice.presence.iter().map(|(id, _, _)| *id));
        changed.jobs.extend(notice.finished.iter().copied());
        if let (Some(at), false) = (notice.at, notice.jobs.is_empty()) {
            // The targets the batch wrote carry its time.
            let jobs: Vec<Uuid> = notice.jobs.iter().copied().collect();
            let targets: std::result::Result<Vec<(Uuid, Uuid)>, _> = sqlx::query_as(
                "SELECT id, register_id FROM sync_targets WHERE job_id = ANY($1) AND updated_at = $2",
            )
            .bind(&jobs)
            .bind(at)
            .fetch_all(&self.pool)
            .await;
            match targets {
                Ok(targets) => {
                    for (target_id, register_id) in targets {
                        changed.targets.insert(target_id);
                        changed.registers.insert(register_id);
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot read what another node changed"),
            }
        }
        self.hub.report(changed);
    }

    /// What a lost notice would have said: work for this engine, dead nodes' registers, who is
    /// online.
    async fn rescan(&self) {
        if let Err(error) = self.take_over_dead().await {
            tracing::warn!(%error, "cannot look for dead nodes");
        }
        self.engine.send(Input::Rescan {
            claimed: Vec::new(),
            look: true,
        });
        self.refresh_presence().await;
    }

    /// Registers held by a node whose heartbeat stopped more than the grace ago become this
    /// node's: its engine ends their open syncs unless they come back in time.
    async fn take_over_dead(&self) -> Result<()> {
        let grace_ms = i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX);
        let taken: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE register_sessions s
             SET node_id = $1, epoch = s.epoch + 1, online = false, in_sale = false,
                 changed_at = now()
             FROM nodes n
             WHERE n.id = s.node_id AND n.id <> $1
               AND n.heartbeat_at < now() - make_interval(secs => $2::bigint / 1000.0)
             RETURNING s.register_id",
        )
        .bind(self.node.id)
        .bind(grace_ms)
        .fetch_all(&self.pool)
        .await?;
        if !taken.is_empty() {
            tracing::warn!(
                registers = taken.len(),
                "took over the registers of a node that stopped; their open syncs end unless they reconnect"
            );
            for register_id in &taken {
                self.presence.set_elsewhere(*register_id, false, false);
            }
        }
        Ok(())
    }

    /// Who is online on the other nodes, read afresh.
    async fn refresh_presence(&self) {
        let rows: std::result::Result<Vec<(Uuid, bool, bool)>, _> = sqlx::query_as(
            "SELECT s.register_id, s.online AND n.heartbeat_at > now() - make_interval(secs => $2::bigint / 1000.0),
                    s.in_sale
             FROM register_sessions s JOIN nodes n ON n.id = s.node_id
             WHERE s.node_id <> $1",
        )
        .bind(self.node.id)
        .bind(i64::try_from(self.grace.as_millis()).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await;
        match rows {
            Ok(rows) => {
                for (register_id, online, in_sale) in rows {
                    self.presence
                        .set_elsewhere(register_id, online, online && in_sale);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read who is online on other nodes"),
        }
    }
}
