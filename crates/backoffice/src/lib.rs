//! Back Office: the service managers and registers talk to.
//!
//! It owns the source of truth — companies, sites, users, registers and each site's catalog (the
//! menu) with its revision — in SQLite (one file, WAL), and serves it over a JSON HTTP API under
//! `/v1`, documented at `/v1/openapi.json`. The client library, the `regsync` CLI and the desktop
//! app sit above it; registers connect to it. Operators set up a venue with the admin subcommands
//! of the `regsync-backoffice` binary, which call [`admin`].

pub mod admin;
pub mod auth;
pub mod catalog;
pub mod cluster;
pub mod db;
pub mod error;
pub mod events;
pub mod gateway;
pub mod housekeeping;
pub mod http;
pub mod metrics;
pub mod registers;
pub mod schedules;
pub mod sites;
pub mod sync;
pub mod tls;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use db::Db;
pub use error::{Error, Result};

/// Tunables of a running server; [`Settings::default`] is what production uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an access token works; clients refresh before it runs out.
    pub access_ttl: Duration,
    /// How long a sign-in lasts without being refreshed.
    pub refresh_ttl: Duration,
    /// Failed sign-ins allowed per account within `login_failure_window`.
    pub login_failures_per_account: usize,
    /// Failed sign-ins allowed per client address within `login_failure_window`.
    pub login_failures_per_address: usize,
    pub login_failure_window: Duration,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    pub request_timeout: Duration,
    /// How long a client may take to send a request's headers, and how long an idle kept-alive
    /// connection stays open: a client trickling headers, or a crowd of idle connections,
    /// cannot hold Back Office's sockets for ever.
    pub header_read_timeout: Duration,
    /// How often registers beat.
    pub heartbeat_interval: Duration,
    /// A register with no message for this long is offline (several beats: one late beat must
    /// not make it flap).
    pub offline_after: Duration,
    /// How long a sync waits for a sale to end before it expires.
    pub wait_expiry: Duration,
    /// How long a register has to answer a sync it was sent.
    pub result_timeout: Duration,
    /// How long a register that dropped mid-sync (or every register, after a Back Office restart)
    /// has to reconnect and report the result before the sync counts as failed.
    pub offline_grace: Duration,
    /// The longest the sync engine sleeps before looking at the clock again. It wakes at the
    /// next deadline anyway; this bounds how late a jump of the wall clock is noticed.
    pub sweep_interval: Duration,
    /// On PostgreSQL, as several nodes: how long a node may miss its heartbeat before the
    /// others take it for dead and take over its registers.
    pub node_grace: Duration,
    /// The longest the schedule runner sleeps before looking again (it wakes at the next run,
    /// and when a schedule here changes, anyway): how late another node's change is seen.
    pub schedule_poll: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            login_failures_per_account: 10,
            login_failures_per_address: 100,
            login_failure_window: Duration::from_secs(15 * 60),
            body_limit: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            offline_after: Duration::from_secs(30),
            wait_expiry: Duration::from_secs(2 * 3600),
            result_timeout: Duration::from_secs(60),
            offline_grace: Duration::from_secs(30),
            sweep_interval: Duration::from_millis(500),
            node_grace: Duration::from_secs(10),
            schedule_poll: Duration::from_secs(30),
        }
    }
}

/// Everything a request handler needs, shared by all of them.
#[derive(Debug)]
pub struct App {
    pub db: Db,
    pub settings: Settings,
    pub presence: Arc<gateway::Presence>,
    pub engine: sync::engine::EngineHandle,
    pub events: events::Hub,
    /// Sign-ins ended in this process, for the streams opened under them.
    pub revoked: tokio::sync::broadcast::Sender<auth::Revoked>,
    /// On PostgreSQL: this process's node id among Back Office's nodes.
    pub node: Option<uuid::Uuid>,
    /// API request latencies, for `/metrics`.
    pub requests: metrics::Requests,
    /// A schedule was added, changed or removed here: the runner looks again.
    pub schedules_changed: tokio::sync::Notify,
    pub(crate) account_failures: auth::limiter::FailureLimiter,
    pub(crate) address_failures: auth::limiter::FailureLimiter,
}

pub type AppState = Arc<App>;

impl App {
    /// Starts the sync engine and the event publisher (which live as long as the returned state),
    /// resuming whatever syncs a previous run left open.
    pub async fn start(db: Db, settings: Settings) -> Result<AppState> {
        let presence = Arc::new(gateway::Presence::default());
        let events = events::Hub::start(db.clone(), presence.clone());
        // On PostgreSQL this process is one node of several (perhaps the only one).
        let node = match &db {
            Db::Postgres(pool) => Some((pool.clone(), cluster::Node::join(pool).await?)),
            Db::Sqlite(_) => None,
        };
        let engine = sync::engine::start(
            db.clone(),
            settings.clone(),
            presence.clone(),
            events.clone(),
            node.as_ref().map(|(_, node)| node.id),
        )
        .await?;
        let node_id = node.as_ref().map(|(_, node)| node.id);
        if let Some((pool, node)) = node {
            tracing::info!(node = %node.id, "joined Back Office's nodes on PostgreSQL");
            tokio::spawn(cluster::heartbeat(pool.clone(), node));
            let member = cluster::Member {
                pool,
                node,
                grace: settings.node_grace,
                engine: engine.clone(),
                hub: events.clone(),
                presence: presence.clone(),
            };
            tokio::spawn(member.run());
        }
        Ok(Arc::new(App {
            node: node_id,
            requests: metrics::Requests::default(),
            schedules_changed: tokio::sync::Notify::new(),
            revoked: tokio::sync::broadcast::channel(256).0,
            presence,
            engine,
            events,
            account_failures: auth::limiter::FailureLimiter::new(
                settings.login_failures_per_account,
                settings.login_failure_window,
            ),
            address_failures: auth::limiter::FailureLimiter::new(
                settings.login_failures_per_address,
                settings.login_failure_window,
            ),
            db,
            settings,
        }))
    }
}

/// Raises this process's open-file limit to the hard limit: every connected register is a socket.
pub fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) if soft < hard => {
                if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                    tracing::warn!(%error, soft, "cannot raise the open-file limit");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot read the open-file limit"),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, None).await
}

/// [`serve`], over TLS when `tls` is given (then every answer also says
/// `Strict-Transport-Security`).
///
/// Our own accept loop over hyper (what `axum::serve` does, plus a timer and TLS): headers must
/// arrive within `header_read_timeout`, and a kept-alive connection idle that long is closed; a
/// TLS handshake gets as long.
pub async fn serve_with(
    listener: TcpListener,
    app: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    let housekeeping = tokio::spawn(housekeeping::sweep(app.clone()));
    let schedules = tokio::spawn(schedules::run(app.clone(), app.settings.schedule_poll));
    // SQLite's write-ahead log is copied into the file off the path of any request.
    let checkpoints = match &app.db {
        Db::Sqlite(pool) => tokio::spawn(db::checkpoint(pool.clone(), CHECKPOINT_INTERVAL)),
        Db::Postgres(_) => tokio::spawn(std::future::pending()),
    };
    let builder = connection_builder(&app.settings);
    let handshake_timeout = app.settings.header_read_timeout;
    let mut router = http::router(app);
    if tls.is_some() {
        router = router.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static(HSTS),
        ));
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Sync commands and results are small and latency-bound: send them at once.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            tower::ServiceExt::oneshot(router.clone(), request.map(axum::body::Body::new))
        });
        let connection = Accepted {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            tls: tls.clone(),
            handshake_timeout,
        };
        tokio::spawn(connection.serve(tcp, peer, service));
    }
    drop(listener);
    graceful.shutdown().await;
    housekeeping.abort();
    schedules.abort();
    checkpoints.abort();
    Ok(())
}

/// How often the SQLite write-ahead log is folded back into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// How long to wait after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// Over TLS, browsers are told to use HTTPS only, for a year.
const HSTS: &str = "max-age=31536000";

/// HTTP/1.1 with a header read timeout (a client that trickles headers is cut off), and HTTP/2
/// with the extended CONNECT that WebSockets over HTTP/2 need.
fn connection_builder(
    settings: &Settings,
) -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    builder.http2().enable_connect_protocol();
    builder
}

/// One accepted connection, with what serving it needs.
struct Accepted {
    builder: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    tls: Option<tokio_rustls::TlsAcceptor>,
    handshake_timeout: Duration,
}

impl Accepted {
    /// Serves the connection until it ends (or Back Office shuts down), after the TLS handshake
    /// when serving TLS; a handshake that fails or dawdles just ends it.
    async fn serve<S, B>(self, tcp: tokio::net::TcpStream, peer: std::net::SocketAddr, service: S)
    where
        S: hyper::service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = hyper::Response<B>,
            > + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let served = match self.tls {
            None => {
                let io = hyper_util::rt::TokioIo::new(tcp);
                let connection = self.builder.serve_connection_with_upgrades(io, service);
                self.watcher.watch(connection.into_owned()).await
            }
            Some(acceptor) => {
                let handshake = tokio::time::timeout(self.handshake_timeout, acceptor.accept(tcp));
                let stream = match handshake.await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "a TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "a TLS handshake took too long");
                        return;
                    }
                };
                let io = hyper_util::rt::TokioIo::new(stream);
                let connection = self.builder.serve_connection_with_upgrades(io, service);
                self.watcher.watch(connection.into_owned()).await
            }
        };
        if let Err(error) = served {
            tracing::debug!(%error, "a connection ended with an error");
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed before this returns, so a signal
/// that arrives while the server is still starting is not lost.
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static>
{
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("shutting down");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            tracing::info!("shutting down");
        })
    }
}
