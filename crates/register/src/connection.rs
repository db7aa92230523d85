//! One connection to Back Office at a time, from handshake to loss: connect (URL rules, the
//! credential, TLS trust), greet (hello and welcome), follow (beats, answers, syncs), and the
//! reconnect loop around them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rand::Rng;
use regsync_protocol::register::{CONNECT_PATH, PROTOCOL_VERSION, RegisterMessage, ServerMessage};
use regsync_transport::{TransportError, Trust};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::apply::{Asker, apply};
use crate::{AgentConfig, AgentEvent, Shared};

/// The register channel's URL: `wss://` for `https://`, `ws://` for `http://`, which only a
/// loopback Back Office gets unless `allow_plain_http`.
pub(crate) fn connect_url(
    back_office: &str,
    allow_plain_http: bool,
) -> Result<String, TransportError> {
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

pub(crate) async fn run(
    mut config: AgentConfig,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    // Whom to trust is settled once, not on every reconnect: it reads the system's store.
    let wss = connect_url(&config.back_office, config.allow_plain_http)
        .is_ok_and(|url| url.starts_with("wss://"));
    if config.tls.is_none()
        && wss
        && let Ok(trust) = Trust::from_env()
    {
        config.tls = Some(trust.client_config());
    }
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
        // Only when the trust could not be settled at start: say why on each attempt.
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
                    Ok(ServerMessage::Sync { target_id, revision, requested_by, scheduled, catalog }) => {
                        let asker = Asker { requested_by, scheduled };
                        if apply(shared, target_id, revision, asker, catalog).is_err() {
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
