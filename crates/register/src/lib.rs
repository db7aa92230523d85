//! The register agent: what runs on a point-of-sale register to keep it in step with Back Office.
//!
//! It keeps one WebSocket to Back Office (reconnecting with backoff and jitter), beats, reports
//! sales, and applies the syncs it is sent — never while a sale is open. That rule is decided
//! here, on the register, atomically: the sale flag and the applied menu sit behind one lock, so
//! a sync is refused while a sale is open and a sale cannot start while a sync is being applied.
//! Every answer is queued to Back Office while that lock is held, so Back Office hears "busy" and
//! "sale ended" in the order they happened (`docs/sync.md`, the lost wake-up).
//!
//! Applying is idempotent by target id, and by revision: a repeated command answers what it
//! answered before, and an older menu never replaces a newer one.

pub mod simulate;
pub mod state;

mod apply;
mod connection;

use connection::run;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use regsync_protocol::Catalog;
use regsync_protocol::register::RegisterMessage;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::state::{Store, Stored};

/// How to reach Back Office and where to keep the register's state.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Back Office's base URL, `http://host:port` or `https://…`.
    pub back_office: String,
    /// The device credential printed when the register was created.
    pub credential: String,
    /// Where the menu and revision are kept; `None` keeps them in memory only.
    pub state_path: Option<std::path::PathBuf>,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Allow `ws://` to a Back Office on another computer: the device credential and the menu
    /// then cross the network unencrypted. Loopback needs no permission.
    pub allow_plain_http: bool,
    /// Whom to trust for `wss://`; `None`: the public and installed authorities and
    /// `REGSYNC_CA_CERT`. Share one among many agents: building it reads the system's store.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Fault injection for tests of crash recovery: at this point of a sync the agent dies as if
    /// the register lost power — the connection drops unanswered and it never reconnects.
    #[doc(hidden)]
    pub crash_at: Option<CrashPoint>,
}

impl AgentConfig {
    pub fn new(back_office: impl Into<String>, credential: impl Into<String>) -> Self {
        Self {
            back_office: back_office.into(),
            credential: credential.into(),
            state_path: None,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            allow_plain_http: false,
            tls: None,
            crash_at: None,
        }
    }
}

impl std::fmt::Debug for CrashPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CrashPoint::BeforeApplying => "BeforeApplying",
            CrashPoint::AfterApplying => "AfterApplying",
        })
    }
}

#[doc(hidden)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The command arrived; nothing was applied.
    BeforeApplying,
    /// The menu was applied and saved; the answer was never sent.
    AfterApplying,
}

/// What happened, for a screen or a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    Connected {
        register_name: String,
    },
    Disconnected {
        reason: String,
    },
    /// The agent stopped for good at an injected fault (tests of crash recovery).
    Crashed,
    /// A new menu was applied.
    Applied {
        target_id: Uuid,
        revision: i64,
        requested_by: Option<String>,
    },
    /// A sync was answered without applying: the register already had this menu or a newer one.
    AlreadyUpToDate {
        target_id: Uuid,
        revision: i64,
    },
    /// A sync arrived during a sale and was refused.
    RefusedInSale {
        target_id: Uuid,
    },
    SaleStarted,
    SaleEnded,
}

/// Callbacks into the register's UI. Called outside the sale lock.
pub trait AgentHooks: Send + Sync + 'static {
    /// The banner staff see, e.g. "Updated from Back Office by Alex Manager".
    fn banner(&self, _text: &str) {}
    fn event(&self, _event: &AgentEvent) {}
}

/// Hooks that do nothing.
#[derive(Debug, Default)]
pub struct NoHooks;
impl AgentHooks for NoHooks {}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SaleError {
    #[error("a sale is already open")]
    AlreadyInSale,
    #[error("no sale is open")]
    NotInSale,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not connected to Back Office")]
pub struct NotConnected;

/// The register's state behind the sale lock.
struct Local {
    stored: Stored,
    in_sale: bool,
    /// The open connection's outgoing queue, if any. Messages are queued under the lock so their
    /// order is the order of the decisions.
    link: Option<mpsc::UnboundedSender<String>>,
}

impl Local {
    fn send(&self, message: &RegisterMessage) {
        if let (Some(link), Ok(text)) = (&self.link, serde_json::to_string(message)) {
            let _ = link.send(text);
        }
    }
}

struct Shared {
    local: Mutex<Local>,
    store: Store,
    hooks: Arc<dyn AgentHooks>,
    events: broadcast::Sender<AgentEvent>,
    connected: AtomicBool,
    crash_at: Option<CrashPoint>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells subscribers and hooks. Sale and sync events are published to subscribers while the
    /// sale lock is held (see [`Agent::subscribe`]), so this only calls the hooks for them.
    fn emit(&self, event: AgentEvent) {
        let _ = self.events.send(event.clone());
        self.hooks.event(&event);
    }

    fn publish_locked(&self, _held: &Local, event: &AgentEvent) {
        let _ = self.events.send(event.clone());
    }
}

/// A running register agent. Dropping it stops the connection.
pub struct Agent {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("connected", &self.is_connected())
            .field("applied_revision", &self.applied_revision())
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// Loads the saved state and starts connecting.
    pub fn start(config: AgentConfig, hooks: Arc<dyn AgentHooks>) -> Agent {
        let store = Store::new(config.state_path.clone());
        let stored = store.load();
        let (events, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            local: Mutex::new(Local {
                stored,
                in_sale: false,
                link: None,
            }),
            store,
            hooks,
            events,
            connected: AtomicBool::new(false),
            crash_at: config.crash_at,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(config, shared.clone(), stopped));
        Agent {
            shared,
            stop,
            task: Some(task),
        }
    }

    /// Opens a sale. Waits (a few milliseconds) while a sync is being applied.
    pub fn start_sale(&self) -> Result<(), SaleError> {
        let mut local = self.shared.lock();
        if local.in_sale {
            return Err(SaleError::AlreadyInSale);
        }
        local.in_sale = true;
        local.send(&RegisterMessage::SaleStarted);
        self.shared.publish_locked(&local, &AgentEvent::SaleStarted);
        drop(local);
        self.shared.hooks.event(&AgentEvent::SaleStarted);
        Ok(())
    }

    pub fn end_sale(&self) -> Result<(), SaleError> {
        let mut local = self.shared.lock();
        if !local.in_sale {
            return Err(SaleError::NotInSale);
        }
        local.in_sale = false;
        local.send(&RegisterMessage::SaleEnded);
        self.shared.publish_locked(&local, &AgentEvent::SaleEnded);
        drop(local);
        self.shared.hooks.event(&AgentEvent::SaleEnded);
        Ok(())
    }

    pub fn in_sale(&self) -> bool {
        self.shared.lock().in_sale
    }

    /// Staff pressed "Sync" on the register: ask Back Office for the latest menu.
    pub fn request_sync(&self) -> Result<(), NotConnected> {
        let local = self.shared.lock();
        if local.link.is_none() {
            return Err(NotConnected);
        }
        local.send(&RegisterMessage::SyncRequested);
        Ok(())
    }

    pub fn applied_revision(&self) -> i64 {
        self.shared.lock().stored.applied_revision
    }

    pub fn catalog(&self) -> Catalog {
        self.shared.lock().stored.catalog.clone()
    }

    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Events in the exact order they happened: sale and sync events are published while the
    /// sale lock is held, so a sync applied during a sale would show between its `SaleStarted`
    /// and `SaleEnded` (tests check that it never does).
    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        self.shared.events.subscribe()
    }

    /// Closes the connection cleanly and stops.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops at once, as if the register lost power: no close handshake.
    pub fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
