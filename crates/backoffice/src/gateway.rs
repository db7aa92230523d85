//! The register gateway: one WebSocket per register, and who is online.
//!
//! Each connection is a task that reads the register's messages in order and forwards what
//! matters to the sync engine, and writes what the engine sends back. Heartbeats stay here: they
//! only move `last_seen` and keep the connection's deadline, so thousands of registers beating
//! cost the engine nothing. A register is offline at once when its connection closes, or when
//! nothing has arrived for `offline_after` (several missed beats, so one late beat never flaps).

use regsync_protocol::ErrorCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::Response;
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use regsync_protocol::register::{
    AppliedTarget, MAX_REGISTER_MESSAGE_BYTES, PROTOCOL_VERSION, RegisterMessage, ServerMessage,
    SyncOutcome,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::auth::token;
use crate::error::{Error, Result};
use crate::sync::driver::{Dropped, Request, SaleState, SyncAnswer};
use crate::sync::engine::Input;
use crate::{AppState, Db, db, on_db};

/// What Back Office knows of a register's connection right now. Read by the API and events;
/// written by the gateway and the engine.
#[derive(Debug, Default)]
pub struct PresenceEntry {
    online: AtomicBool,
    in_sale: AtomicBool,
    last_seen_ms: AtomicI64,
    /// Connected to this node: what other nodes say of it is old news.
    here: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub online: bool,
    pub in_sale: bool,
    pub last_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default)]
pub struct Presence {
    entries: RwLock<HashMap<Uuid, Arc<PresenceEntry>>>,
}

impl Presence {
    pub fn entry(&self, register_id: Uuid) -> Arc<PresenceEntry> {
        if let Some(entry) = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&register_id)
        {
            return entry.clone();
        }
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(register_id)
            .or_default()
            .clone()
    }

    pub fn get(&self, register_id: Uuid) -> Seen {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        match entries.get(&register_id) {
            Some(entry) => entry.seen(),
            None => Seen {
                online: false,
                in_sale: false,
                last_seen_at: None,
            },
        }
    }

    /// What another node says of a register it holds; ignored while it is connected here.
    pub fn set_elsewhere(&self, register_id: Uuid, online: bool, in_sale: bool) {
        let entry = self.entry(register_id);
        if !entry.here.load(Ordering::Relaxed) {
            entry.set_online(online);
            entry.set_in_sale(in_sale);
        }
    }

    /// Registers whose connection is on this node.
    pub fn connected_here_count(&self) -> usize {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .filter(|e| e.here.load(Ordering::Relaxed))
            .count()
    }

    pub fn online_count(&self) -> usize {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .filter(|e| e.online.load(Ordering::Relaxed))
            .count()
    }
}

impl PresenceEntry {
    pub fn seen(&self) -> Seen {
        let ms = self.last_seen_ms.load(Ordering::Relaxed);
        Seen {
            online: self.online.load(Ordering::Relaxed),
            in_sale: self.in_sale.load(Ordering::Relaxed),
            last_seen_at: (ms > 0)
                .then(|| DateTime::from_timestamp_millis(ms))
                .flatten(),
        }
    }

    pub fn touch(&self, at: DateTime<Utc>) {
        self.last_seen_ms
            .store(at.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    pub fn set_in_sale(&self, in_sale: bool) {
        self.in_sale.store(in_sale, Ordering::Relaxed);
    }

    /// Whether the register is connected to this node.
    pub fn set_here(&self, here: bool) {
        self.here.store(here, Ordering::Relaxed);
    }
}

/// A register as the gateway knows it once its credential checked out.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RegisterIdentity {
    pub id: Uuid,
    pub name: String,
    pub site_id: Uuid,
    pub company_id: Uuid,
    #[sqlx(default)]
    credential_hash: Vec<u8>,
}

/// What the engine asks a connection to do.
#[derive(Debug)]
pub enum Outbound {
    /// Send this (already serialized) message.
    Send(String),
    /// Close with this reason: the register connected again elsewhere.
    Close(String),
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

async fn authenticate(db: &Db, headers: &HeaderMap) -> Result<RegisterIdentity> {
    let unauthenticated = || Error::Unauthenticated {
        code: ErrorCode::InvalidDeviceCredential,
        message: "registers connect with their device credential: \
                  `Authorization: Bearer rsd_…`"
            .into(),
    };
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(unauthenticated)?;
    let digest = token::digest(presented);
    let register: Option<RegisterIdentity> = on_db!(db, |pool| sqlx::query_as(
        "SELECT r.id, r.name, r.site_id, s.company_id, r.credential_hash
         FROM registers r JOIN sites s ON s.id = r.site_id
         WHERE r.credential_hash = $1"
    )
    .bind(&digest)
    .fetch_optional(pool)
    .await)?;
    register
        .filter(|r| token::digests_match(&r.credential_hash, &digest))
        .ok_or_else(unauthenticated)
}

/// The register channel (a WebSocket). Registers authenticate with their device credential.
#[utoipa::path(
    get, path = "/v1/registers/connect", tag = "registers",
    security(("device" = [])),
    responses(
        (status = 101, description = "Switching to the register channel"),
        (status = 400, description = "Not a WebSocket request", body = regsync_protocol::api::ErrorBody),
        (status = 401, description = "Unknown device credential", body = regsync_protocol::api::ErrorBody),
    )
)]
pub async fn connect(
    State(app): State<AppState>,
    headers: HeaderMap,
    upgrade: std::result::Result<
        WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Result<Response> {
    let register = authenticate(&app.db, &headers).await?;
    let upgrade = upgrade
        .map_err(|rejection| Error::bad_request(ErrorCode::NotAWebsocket, rejection.body_text()))?;
    Ok(upgrade
        // Small buffers: 10,000 idle registers must fit in a few hundred megabytes.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        // Writes go out at once (no buffering), so this only bounds what piles up while writes
        // fail; a sync command carries the whole menu, which the API caps at `body_limit`.
        .max_write_buffer_size(2 * app.settings.body_limit + 64 * 1024)
        .max_message_size(MAX_REGISTER_MESSAGE_BYTES)
        .max_frame_size(MAX_REGISTER_MESSAGE_BYTES)
        .on_upgrade(move |socket| run_connection(app, register, socket)))
}

fn close(code: u16, reason: &str) -> Message {
    // A close reason may be at most 123 bytes.
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

/// Whether a read failed because the register sent more than the protocol allows.
fn too_big(error: axum::Error) -> bool {
    matches!(
        error.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// What one WebSocket frame from a register amounts to.
enum Frame {
    Message(RegisterMessage),
    /// Pings and pongs: they keep the socket open, nothing more.
    Control,
    /// The register closed the connection.
    Closed,
    /// Not part of the protocol; the reason says why.
    Invalid(String),
}

fn parse(message: Message) -> Frame {
    match message {
        Message::Text(text) => match serde_json::from_str(&text) {
            Ok(message) => Frame::Message(message),
            Err(e) => Frame::Invalid(format!("malformed message: {e}")),
        },
        Message::Binary(_) => Frame::Invalid("binary messages are not part of the protocol".into()),
        Message::Ping(_) | Message::Pong(_) => Frame::Control,
        Message::Close(_) => Frame::Closed,
    }
}

type Sink = futures::stream::SplitSink<WebSocket, Message>;
type Stream = futures::stream::SplitStream<WebSocket>;

/// Where a register said it stands, in its hello.
struct Hello {
    applied_revision: i64,
    in_sale: bool,
    recent: Vec<AppliedTarget>,
}

#[tracing::instrument(name = "register", skip_all, fields(register_id = %register.id, name = %register.name))]
async fn run_connection(app: AppState, register: RegisterIdentity, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let Some(hello) = handshake(&app, &register, &mut sink, &mut stream).await else {
        return;
    };
    let presence = app.presence.entry(register.id);
    presence.touch(Utc::now());
    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
    let (outbound, outbound_rx) = mpsc::unbounded_channel();
    tracing::info!(
        applied_revision = hello.applied_revision,
        in_sale = hello.in_sale,
        "register connected"
    );
    app.engine.send(Input::Connected {
        register: register.clone(),
        generation,
        outbound,
        applied_revision: hello.applied_revision,
        in_sale: hello.in_sale,
        // Kept to the microsecond, as the database keeps them.
        recent: hello
            .recent
            .into_iter()
            .map(|applied| AppliedTarget {
                applied_at: db::stored(applied.applied_at),
                ..applied
            })
            .collect(),
    });
    let mut connection = Connection {
        app: &app,
        register_id: register.id,
        generation,
        known_in_sale: hello.in_sale,
        presence: &presence,
    };
    let reason = connection.follow(&mut sink, &mut stream, outbound_rx).await;
    tracing::info!(%reason, "register disconnected");
    app.engine
        .send(Input::Register(Request::Disconnected(Dropped {
            register_id: register.id,
            generation,
            last_seen: presence.seen().last_seen_at.unwrap_or_else(Utc::now),
        })));
}

/// Waits for the register's hello and answers the welcome; `None` when the connection ends
/// there (closed, with the reason, when it was not a hello this Back Office speaks).
async fn handshake(
    app: &AppState,
    register: &RegisterIdentity,
    sink: &mut Sink,
    stream: &mut Stream,
) -> Option<Hello> {
    let settings = &app.settings;
    let Ok(Some(Ok(first))) = tokio::time::timeout(settings.offline_after, stream.next()).await
    else {
        return None;
    };
    let hello = match parse(first) {
        Frame::Message(RegisterMessage::Hello {
            protocol_version,
            applied_revision,
            in_sale,
            recent,
        }) if protocol_version == PROTOCOL_VERSION => Hello {
            applied_revision,
            in_sale,
            recent,
        },
        Frame::Message(RegisterMessage::Hello {
            protocol_version, ..
        }) => {
            let reason = format!(
                "protocol version {protocol_version} is not supported; this Back Office speaks {PROTOCOL_VERSION}"
            );
            tracing::warn!(%reason, "register refused");
            let _ = sink.send(close(close_code::PROTOCOL, &reason)).await;
            return None;
        }
        Frame::Closed => return None,
        Frame::Message(_) | Frame::Control => {
            let reason = "the first message must be a hello";
            let _ = sink.send(close(close_code::PROTOCOL, reason)).await;
            return None;
        }
        Frame::Invalid(reason) => {
            let _ = sink.send(close(close_code::INVALID, &reason)).await;
            return None;
        }
    };
    let welcome = ServerMessage::Welcome {
        protocol_version: PROTOCOL_VERSION,
        register_id: register.id,
        register_name: register.name.clone(),
        site_id: register.site_id,
        heartbeat_secs: settings.heartbeat_interval.as_secs().max(1),
    };
    let welcome = serde_json::to_string(&welcome).unwrap_or_default();
    sink.send(Message::Text(welcome.into())).await.ok()?;
    Some(hello)
}

/// One welcomed connection: what its register says goes to the engine in order; what the engine
/// says goes to the register.
struct Connection<'a> {
    app: &'a AppState,
    register_id: Uuid,
    generation: u64,
    known_in_sale: bool,
    presence: &'a PresenceEntry,
}

impl Connection<'_> {
    /// Runs until the connection ends; answers why.
    async fn follow(
        &mut self,
        sink: &mut Sink,
        stream: &mut Stream,
        mut outbound: mpsc::UnboundedReceiver<Outbound>,
    ) -> String {
        let offline_after = self.app.settings.offline_after;
        let mut deadline = tokio::time::Instant::now() + offline_after;
        loop {
            tokio::select! {
                incoming = tokio::time::timeout_at(deadline, stream.next()) => {
                    let message = match incoming {
                        Err(_) => {
                            let reason = format!("no heartbeat for {} s", offline_after.as_secs());
                            let _ = sink.send(close(close_code::AWAY, &reason)).await;
                            return reason;
                        }
                        Ok(None) => return "connection lost".to_owned(),
                        Ok(Some(Err(error))) => {
                            if !too_big(error) {
                                return "connection lost".to_owned();
                            }
                            let reason = format!(
                                "message too big: a register's messages are at most {} KiB",
                                MAX_REGISTER_MESSAGE_BYTES / 1024
                            );
                            tracing::warn!(%reason, "closing a register's connection");
                            let _ = sink.send(close(close_code::SIZE, &reason)).await;
                            return reason;
                        }
                        Ok(Some(Ok(message))) => message,
                    };
                    let message = match parse(message) {
                        Frame::Message(message) => message,
                        // Pings keep the socket alive, nothing more: a register whose app hangs
                        // while its socket library still answers would otherwise look healthy.
                        Frame::Control => continue,
                        Frame::Closed => return "closed by the register".to_owned(),
                        Frame::Invalid(reason) => {
                            tracing::warn!(%reason, "closing a register's connection");
                            let _ = sink.send(close(close_code::INVALID, &reason)).await;
                            return reason;
                        }
                    };
                    // Online means the register's own messages arrive (heartbeats carry its sale).
                    deadline = tokio::time::Instant::now() + offline_after;
                    self.presence.touch(Utc::now());
                    if let Err(reason) = self.forward(message) {
                        let _ = sink.send(close(close_code::PROTOCOL, reason)).await;
                        return reason.to_owned();
                    }
                }
                out = outbound.recv() => match out {
                    Some(Outbound::Send(text)) => {
                        if sink.send(Message::Text(text.into())).await.is_err() {
                            return "connection lost while sending".to_owned();
                        }
                    }
                    Some(Outbound::Close(reason)) => {
                        let _ = sink.send(close(close_code::NORMAL, &reason)).await;
                        return reason;
                    }
                    None => return "Back Office is shutting down".to_owned(),
                },
            }
        }
    }

    /// Hands one register message to the engine; a message out of place is refused.
    fn forward(&mut self, message: RegisterMessage) -> std::result::Result<(), &'static str> {
        let (register_id, generation) = (self.register_id, self.generation);
        let request = match message {
            // Heartbeats repeat the sale state; only a change is news to the engine.
            RegisterMessage::Heartbeat { in_sale } if in_sale == self.known_in_sale => {
                return Ok(());
            }
            RegisterMessage::Heartbeat { in_sale } => {
                self.known_in_sale = in_sale;
                Request::Sale(SaleState {
                    register_id,
                    generation,
                    in_sale,
                })
            }
            RegisterMessage::SaleStarted | RegisterMessage::SaleEnded => {
                let in_sale = matches!(message, RegisterMessage::SaleStarted);
                self.known_in_sale = in_sale;
                Request::Sale(SaleState {
                    register_id,
                    generation,
                    in_sale,
                })
            }
            RegisterMessage::SyncResult { target_id, outcome } => Request::Result(SyncAnswer {
                register_id,
                generation,
                target_id,
                outcome: match outcome {
                    SyncOutcome::Applied {
                        revision,
                        applied_at,
                    } => SyncOutcome::Applied {
                        revision,
                        applied_at: db::stored(applied_at),
                    },
                    other => other,
                },
            }),
            RegisterMessage::SyncRequested => Request::SyncRequested { register_id },
            RegisterMessage::Hello { .. } => return Err("hello may only be the first message"),
        };
        self.app.engine.send(Input::Register(request));
        Ok(())
    }
}
