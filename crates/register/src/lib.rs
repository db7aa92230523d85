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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use futures::{SinkExt, StreamExt};
use rand::Rng;
use regsync_protocol::Catalog;
use regsync_protocol::register::{
    CONNECT_PATH, PROTOCOL_VERSION, RegisterMessage, ServerMessage, SyncOutcome, banner_text,
};
use regsync_transport::{TransportError, Trust};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
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

/// The register channel's URL: `wss://` for `https://`, `ws://` for `http://`, which only a
/// loopback Back Office gets unless `allow_plain_http`.
fn connect_url(back_office: &str, allow_plain_http: bool) -> Result<String, TransportError> {
    let base = regsync_transport::checked(back_office, allow_plain_http)?;
    let base = match base.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", base.trim_start_matches("http://")),
    };
    Ok(format!("{base}{CONNECT_PATH}"))
}

/// Small buffers: a register sends little, and a simulator runs thousands of these.
fn websocket_config() -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 8 * 1024;
    config.write_buffer_size = 0;
    config.max_message_size = Some(64 << 20);
    config
}

enum Ended {
    Stop,
    Crash,
    Lost(String),
}

async fn run(config: AgentConfig, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut backoff = config.reconnect_min;
    loop {
        if *stop.borrow() {
            return;
        }
        let (ended, was_welcomed) = session(&config, &shared, &mut stop).await;
        shared.connected.store(false, Ordering::Relaxed);
        shared.lock().link = None;
        match ended {
            Ended::Stop => return,
            Ended::Crash => {
                tracing::error!("the register crashed at an injected fault");
                shared.emit(AgentEvent::Crashed);
                return;
            }
            Ended::Lost(reason) => {
                tracing::info!(%reason, "disconnected from Back Office");
                shared.emit(AgentEvent::Disconnected { reason });
            }
        }
        if was_welcomed {
            backoff = config.reconnect_min;
        }
        // Full jitter: a site's registers reconnecting after an outage do not arrive at once.
        let wait = rand::rng().random_range(Duration::ZERO..=backoff);
        backoff = (backoff * 2).min(config.reconnect_max);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures::stream::SplitSink<Socket, Message>;
type Stream = futures::stream::SplitStream<Socket>;

/// How long connecting, and then waiting for the welcome, may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection, from handshake to loss. Answers whether Back Office welcomed us.
async fn session(
    config: &AgentConfig,
    shared: &Arc<Shared>,
    stop: &mut watch::Receiver<bool>,
) -> (Ended, bool) {
    let socket = match connect(config, stop).await {
        Ok(socket) => socket,
        Err(ended) => return (ended, false),
    };
    let (mut sink, mut stream) = socket.split();
    let (outgoing, heartbeat) = match greet(shared, &mut sink, &mut stream).await {
        Ok(welcomed) => welcomed,
        Err(ended) => return (ended, false),
    };
    let ended = follow(shared, &mut sink, &mut stream, outgoing, heartbeat, stop).await;
    (ended, true)
}

/// Opens the WebSocket to Back Office, with the device credential and the TLS trust configured.
async fn connect(config: &AgentConfig, stop: &mut watch::Receiver<bool>) -> Result<Socket, Ended> {
    let lost = |reason: String| Ended::Lost(reason);
    let url = connect_url(&config.back_office, config.allow_plain_http)
        .map_err(|error| lost(error.to_string()))?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|error| lost(format!("bad Back Office URL: {error}")))?;
    let authorization = format!("Bearer {}", config.credential)
        .parse()
        .map_err(|_| lost("the credential is not a valid header value".into()))?;
    request.headers_mut().insert("authorization", authorization);
    let tls = match (&config.tls, url.starts_with("wss://")) {
        (Some(tls), _) => Some(Connector::Rustls(tls.clone())),
        (None, true) => {
            let trust = Trust::from_env().map_err(|error| lost(error.to_string()))?;
            Some(Connector::Rustls(trust.client_config()))
        }
        (None, false) => None,
    };
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(websocket_config()),
        true,
        tls,
    );
    tokio::select! {
        result = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting) => match result {
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(response))) => Err(lost(format!(
                "Back Office refused the connection ({})",
                response.status()
            ))),
            Ok(Err(error)) => {
                let host = regsync_transport::host_of_url(&url);
                Err(lost(
                    regsync_transport::describe_certificate_error(&error, host)
                        .unwrap_or_else(|| format!("cannot connect: {error}")),
                ))
            }
            Err(_) => Err(lost("connecting timed out".into())),
        },
        _ = stop.changed() => Err(Ended::Stop),
    }
}

/// Says hello and waits for the welcome. Answers the channel the register's answers go out on,
/// and how often to beat.
async fn greet(
    shared: &Arc<Shared>,
    sink: &mut Sink,
    stream: &mut Stream,
) -> Result<(mpsc::UnboundedReceiver<String>, Duration), Ended> {
    // The hello and the link are set up under the lock: a sale that starts meanwhile is either
    // in the hello or sent after it, never lost between the two.
    let (link, outgoing) = mpsc::unbounded_channel::<String>();
    let hello = {
        let mut local = shared.lock();
        local.link = Some(link);
        RegisterMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            applied_revision: local.stored.applied_revision,
            in_sale: local.in_sale,
            recent: local.stored.recent.iter().cloned().collect(),
        }
    };
    let hello =
        serde_json::to_string(&hello).map_err(|_| Ended::Lost("cannot encode the hello".into()))?;
    sink.send(Message::Text(hello.into()))
        .await
        .map_err(|error| Ended::Lost(format!("sending hello: {error}")))?;
    let welcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.next()).await;
    let (register_name, heartbeat) = match welcome {
        Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::Welcome {
                register_name,
                heartbeat_secs,
                ..
            }) => (register_name, Duration::from_secs(heartbeat_secs.max(1))),
            _ => return Err(Ended::Lost("Back Office did not welcome us".into())),
        },
        Ok(Some(Ok(Message::Close(frame)))) => {
            let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
            return Err(Ended::Lost(format!(
                "Back Office closed the connection: {reason}"
            )));
        }
        _ => return Err(Ended::Lost("no welcome from Back Office".into())),
    };
    shared.connected.store(true, Ordering::Relaxed);
    tracing::info!(%register_name, "connected to Back Office");
    shared.emit(AgentEvent::Connected { register_name });
    Ok((outgoing, heartbeat))
}

/// Beats, sends the register's answers, and applies the syncs Back Office sends, until the
/// connection ends.
async fn follow(
    shared: &Arc<Shared>,
    sink: &mut Sink,
    stream: &mut Stream,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    heartbeat: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    // Start beating at a random point of the interval, so thousands of registers spread out.
    let first_beat = rand::rng().random_range(Duration::ZERO..=heartbeat);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + first_beat, heartbeat);
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let in_sale = shared.lock().in_sale;
                let text = serde_json::to_string(&RegisterMessage::Heartbeat { in_sale }).unwrap_or_default();
                if let Err(error) = sink.send(Message::Text(text.into())).await {
                    return Ended::Lost(format!("sending a heartbeat: {error}"));
                }
            }
            Some(text) = outgoing.recv() => {
                if let Err(error) = sink.send(Message::Text(text.into())).await {
                    return Ended::Lost(format!("sending: {error}"));
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(ServerMessage::Sync { target_id, revision, requested_by, catalog }) => {
                        if apply(shared, target_id, revision, requested_by, catalog).is_err() {
                            // Dropped without a close handshake, as a power cut would.
                            return Ended::Crash;
                        }
                    }
                    Ok(other) => tracing::debug!(?other, "ignoring an unexpected message"),
                    Err(error) => tracing::warn!(%error, "ignoring a message that cannot be read"),
                },
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    return Ended::Lost(format!("Back Office closed the connection: {reason}"));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Ended::Lost(format!("connection error: {error}")),
                None => return Ended::Lost("connection closed".into()),
            },
            _ = stop.changed() => {
                let _ = sink.send(Message::Close(None)).await;
                return Ended::Stop;
            }
        }
    }
}

struct Crashed;

/// Handles one sync command under the sale lock and queues its answer before releasing it.
fn apply(
    shared: &Shared,
    target_id: Uuid,
    revision: i64,
    requested_by: Option<String>,
    catalog: Catalog,
) -> Result<(), Crashed> {
    if shared.crash_at == Some(CrashPoint::BeforeApplying) {
        return Err(Crashed);
    }
    let mut local = shared.lock();
    let sync = SyncCommand {
        target_id,
        revision,
        requested_by,
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
    if let AgentEvent::Applied {
        requested_by: Some(name),
        ..
    } = &event
    {
        shared.hooks.banner(&banner_text(name));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent with no connection task, whose answers land in the returned queue.
    fn offline_agent(path: Option<std::path::PathBuf>) -> (Agent, mpsc::UnboundedReceiver<String>) {
        let store = Store::new(path);
        let (link, answers) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            local: Mutex::new(Local {
                stored: store.load(),
                in_sale: false,
                link: Some(link),
            }),
            store,
            hooks: Arc::new(NoHooks),
            events,
            connected: AtomicBool::new(true),
            crash_at: None,
        });
        let (stop, _) = watch::channel(false);
        (
            Agent {
                shared,
                stop,
                task: None,
            },
            answers,
        )
    }

    fn answers(rx: &mut mpsc::UnboundedReceiver<String>) -> Vec<RegisterMessage> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|text| serde_json::from_str(&text).unwrap())
            .collect()
    }

    fn menu(footer: &str) -> Catalog {
        Catalog {
            settings: [("footer".to_owned(), footer.to_owned())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_repeated_target_is_applied_once_and_answered_the_same() {
        let (agent, mut rx) = offline_agent(None);
        let target = Uuid::now_v7();
        let _ = apply(&agent.shared, target, 2, None, menu("two"));
        let mut events = agent.subscribe();
        let _ = apply(&agent.shared, target, 2, None, menu("two"));
        let sent = answers(&mut rx);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], sent[1], "the same answer both times");
        assert_eq!(
            events.try_recv().unwrap(),
            AgentEvent::AlreadyUpToDate {
                target_id: target,
                revision: 2
            }
        );
    }

    #[test]
    fn an_older_menu_never_replaces_a_newer_one() {
        let (agent, mut rx) = offline_agent(None);
        let _ = apply(&agent.shared, Uuid::now_v7(), 5, None, menu("five"));
        let _ = apply(&agent.shared, Uuid::now_v7(), 3, None, menu("three"));
        assert_eq!(agent.applied_revision(), 5);
        assert_eq!(agent.catalog(), menu("five"));
        let sent = answers(&mut rx);
        assert!(matches!(
            &sent[1],
            RegisterMessage::SyncResult {
                outcome: SyncOutcome::Applied { revision: 5, .. },
                ..
            }
        ));
    }

    #[test]
    fn a_sync_during_a_sale_is_refused_and_answers_keep_the_order_of_events() {
        let (agent, mut rx) = offline_agent(None);
        agent.start_sale().unwrap();
        let target = Uuid::now_v7();
        let _ = apply(&agent.shared, target, 2, None, menu("two"));
        assert_eq!(
            agent.applied_revision(),
            0,
            "nothing applied during the sale"
        );
        agent.end_sale().unwrap();
        let sent = answers(&mut rx);
        assert_eq!(sent[0], RegisterMessage::SaleStarted);
        assert_eq!(
            sent[1],
            RegisterMessage::SyncResult {
                target_id: target,
                outcome: SyncOutcome::Busy
            }
        );
        assert_eq!(sent[2], RegisterMessage::SaleEnded);
        assert_eq!(agent.start_sale(), Ok(()));
        assert_eq!(agent.start_sale(), Err(SaleError::AlreadyInSale));
    }

    #[test]
    fn an_applied_menu_survives_a_restart_with_its_recent_targets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("register.json");
        let target = Uuid::now_v7();
        let (agent, _rx) = offline_agent(Some(path.clone()));
        let _ = apply(&agent.shared, target, 4, Some("Alex".into()), menu("four"));
        drop(agent);
        let (agent, _rx) = offline_agent(Some(path));
        assert_eq!(agent.applied_revision(), 4);
        assert_eq!(agent.catalog(), menu("four"));
        assert!(agent.shared.lock().stored.remembered(target).is_some());
    }

    #[test]
    fn connect_urls_follow_the_scheme() {
        assert_eq!(
            connect_url("http://127.0.0.1:8080/", false).unwrap(),
            "ws://127.0.0.1:8080/v1/registers/connect"
        );
        assert_eq!(
            connect_url("bo.example:8443", false).unwrap(),
            "wss://bo.example:8443/v1/registers/connect"
        );
        assert!(matches!(
            connect_url("http://bo.example", false),
            Err(TransportError::Unencrypted { .. })
        ));
        assert_eq!(
            connect_url("http://bo.example", true).unwrap(),
            "ws://bo.example/v1/registers/connect"
        );
        assert_eq!(
            connect_url("https://bo.example", false).unwrap(),
            "wss://bo.example/v1/registers/connect"
        );
    }
}
