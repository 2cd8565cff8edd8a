//! Starting, running and stopping a server.

use crate::auth::ChangeAuthorizer;
use crate::blobs::{staging_root, BlobBackend};
use crate::config::{AuthMode, ServerConfig};
use crate::error::ServerError;
use crate::events::nats::NatsSink;
use crate::events::sinks::{self, Cursors, Sink};
use crate::events::webhook::{WebhookSink, WebhookUrl};
use crate::http::{self, RouteState};
use crate::limits::IDLE_CONNECTION_MAX;
use crate::limits::WEBHOOKS_MAX;
use crate::names::databases_dir;
use crate::peers::Peers;
use crate::registry::Registry;
use crate::secret::create_private_dir;
use crate::state::ServerState;
use axum::serve::ListenerExt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Idle time before the first TCP keepalive probe on a sync connection.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// Time between keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Unanswered probes after which the kernel drops the connection.
const KEEPALIVE_PROBES: u32 = 4;

/// A server bound to its address, not yet serving.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<ServerState>,
    peers: Arc<Peers>,
    stop: watch::Sender<bool>,
    shutdown_grace: Duration,
    sinks: Vec<(Sink, Arc<Cursors>)>,
}

impl Server {
    /// Creates the data directory (and its `dbs/`) if missing and binds the listening
    /// address. `authorizer` decides per change (see [`crate::DefaultChangeAuthorizer`]).
    pub async fn bind(
        config: ServerConfig,
        authorizer: Arc<dyn ChangeAuthorizer>,
    ) -> Result<Server, ServerError> {
        let dbs = databases_dir(&config.data_dir);
        create_private_dir(&dbs).map_err(|source| ServerError::DataDir {
            path: dbs.clone(),
            source,
        })?;
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen.clone(),
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
        let sinks = event_sinks(&config)?;
        let blobs = blob_backend(&config)?;
        if matches!(config.auth, AuthMode::Disabled) {
            tracing::warn!(
                "auth is off: anyone who can reach {local_addr} may read and write every database"
            );
        }
        let (stop, shutdown) = watch::channel(false);
        let (connections, _) = watch::channel(0usize);
        Ok(Server {
            listener,
            local_addr,
            shared: Arc::new(ServerState {
                auth: config.auth,
                authorizer,
                registry: Registry::new(config.data_dir, blobs),
                shutdown,
                connections: Arc::new(connections),
                incoming: Arc::default(),
            }),
            peers: Arc::new(Peers::new(&config.peers)),
            stop,
            shutdown_grace: config.shutdown_grace,
            sinks,
        })
    }

    /// The address it listens on (with the actual port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes; then stops accepting, tells every open
    /// connection to close, and waits for them up to the configured grace.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Server {
            listener,
            local_addr: _,
            shared,
            peers,
            stop,
            shutdown_grace,
            sinks,
        } = self;
        let mut open = shared.connections.subscribe();
        let trimmer = tokio::spawn(close_idle_connections(shared.clone()));
        let mut dialers = peers.start(&shared);
        let mut deliveries = sinks::start(&shared, sinks);
        let routes = RouteState {
            server: shared,
            peers,
        };
        let app =
            http::router(Arc::new(routes)).into_make_service_with_connect_info::<SocketAddr>();
        // Frames are small and latency matters: no Nagle delay on sync connections.
        // A client that vanished without closing (a phone losing its network) leaves a
        // half-open connection: TCP keepalive probes find it after about two minutes idle, so
        // its connection and replica are released.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::warn!(%error, "could not set TCP_NODELAY");
            }
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(KEEPALIVE_IDLE)
                .with_interval(KEEPALIVE_INTERVAL)
                .with_retries(KEEPALIVE_PROBES);
            if let Err(error) = socket2::SockRef::from(&*tcp).set_tcp_keepalive(&keepalive) {
                tracing::warn!(%error, "could not set TCP keepalive");
            }
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down");
                let _ = stop.send(true);
            })
            .await
            .map_err(ServerError::Serve)?;
        let all_closed = async {
            let _ = open.wait_for(|open| *open == 0).await;
            while dialers.join_next().await.is_some() {}
            while deliveries.join_next().await.is_some() {}
        };
        let closed = tokio::time::timeout(shutdown_grace, all_closed)
            .await
            .is_ok();
        trimmer.abort();
        if closed {
            tracing::info!("stopped");
        } else {
            tracing::warn!(
                open = *open.borrow(),
                "stopped with connections still open after {shutdown_grace:?}"
            );
        }
        Ok(())
    }
}

/// How often the server looks for SQLite connections no conversation needs any more.
const IDLE_CONNECTIONS_EVERY: Duration = Duration::from_secs(30);

/// Closes the spare connections of databases nobody has synced for a while (a server that
/// served many databases once must not keep a connection, three descriptors and the WAL file
/// of each open for ever). Runs until aborted.
async fn close_idle_connections(shared: Arc<ServerState>) {
    let mut every = tokio::time::interval(IDLE_CONNECTIONS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let shared = shared.clone();
        let closed = tokio::task::spawn_blocking(move || {
            shared.registry.close_idle_connections(IDLE_CONNECTION_MAX)
        })
        .await
        .unwrap_or(0);
        if closed > 0 {
            tracing::debug!(closed, "closed idle database connections");
        }
    }
}

/// The blob store of `config` (checked now, so that a bad URL stops the start), and
/// `DATA/staging` for the blobs on their way in.
fn blob_backend(config: &ServerConfig) -> Result<BlobBackend, ServerError> {
    let staging = staging_root(&config.data_dir);
    create_private_dir(&staging).map_err(|source| ServerError::DataDir {
        path: staging,
        source,
    })?;
    let url = config.blobs_url();
    let backend = BlobBackend::open(&url, &config.data_dir, tokio::runtime::Handle::current())
        .map_err(|e| ServerError::Config(e.to_string()))?;
    tracing::info!(blobs = %url, "blob bytes are stored in {url}");
    Ok(backend)
}

/// The webhooks and NATS subject of `config`, each with its cursors from
/// `DATA/events/SINK.json` (the directory made if missing).
fn event_sinks(config: &ServerConfig) -> Result<Vec<(Sink, Arc<Cursors>)>, ServerError> {
    if config.webhooks.len() > WEBHOOKS_MAX {
        return Err(ServerError::Config(format!(
            "more than {WEBHOOKS_MAX} webhooks"
        )));
    }
    let mut sinks = Vec::new();
    for webhook in &config.webhooks {
        let url =
            WebhookUrl::parse(&webhook.url).map_err(|e| ServerError::Config(e.to_string()))?;
        let secret = match (&webhook.secret, &config.auth) {
            (Some(secret), _) => Some(secret.clone()),
            (None, AuthMode::Token(secret)) => Some(secret.as_bytes().to_vec()),
            (None, AuthMode::Disabled) => {
                tracing::warn!(url = %webhook.url, "webhook without a secret: its requests are not signed");
                None
            }
        };
        sinks.push(Sink::Webhook(WebhookSink::new(url, secret)));
    }
    if let Some(nats) = &config.nats {
        nats.check().map_err(ServerError::Config)?;
        sinks.push(Sink::Nats(NatsSink::new(nats.clone())));
    }
    if sinks.is_empty() {
        return Ok(Vec::new());
    }
    let dir = config.data_dir.join("events");
    create_private_dir(&dir).map_err(|source| ServerError::DataDir {
        path: dir.clone(),
        source,
    })?;
    sinks
        .into_iter()
        .map(|sink| {
            let path = dir.join(format!("{}.json", sink.id()));
            let cursors = Cursors::load(path.clone())
                .map_err(|source| ServerError::DataDir { path, source })?;
            Ok((sink, Arc::new(cursors)))
        })
        .collect()
}

/// Runs a server until SIGINT or SIGTERM. Logs `listening on ADDR` once bound.
pub async fn serve(
    config: ServerConfig,
    authorizer: Arc<dyn ChangeAuthorizer>,
) -> Result<(), ServerError> {
    let server = Server::bind(config, authorizer).await?;
    tracing::info!("listening on {}", server.local_addr());
    server.run_until(shutdown_signal()).await
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM. If a signal cannot be watched, only
/// the other one stops the server.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
