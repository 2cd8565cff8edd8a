//! One outbound link: this server syncing one database with one peer, for as long as the
//! server runs. Each connection is an initiator session in the peer role on the local file,
//! driven by the same driver as clients and inbound connections, woken by the database's
//! commit notifier, and notifying it after each merge (so what a peer sends is relayed at
//! once). A connection that ends is retried after an exponential back-off with jitter, reset
//! only once a connection got caught up both ways: a peer that answers garbage is retried
//! ever more slowly, never in a loop.

use super::status::LinkState;
use super::url::PeerUrl;
use super::{backoff, lock, peer_token, refused_for_our_secret, OTHER_SECRET};
use crate::connection::on_event;
use crate::limits::PEER_BACKOFF_MAX;
use crate::names::DatabaseName;
use crate::state::ServerState;
use futures_util::{SinkExt, StreamExt};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;
use weft_core::sync::{Role, Session, SessionConfig};
use weft_core::Replica;
use weft_net::driver::{self, DriveError, Outcome, Wakeups};
use weft_net::{connect, DialError, SyncTarget};

/// How long opening the WebSocket (TCP, HTTP upgrade) may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps `database` in sync with the peer at `url` until the server stops.
pub(crate) async fn run(
    shared: Arc<ServerState>,
    url: PeerUrl,
    database: DatabaseName,
    state: Arc<Mutex<LinkState>>,
) {
    let span = tracing::info_span!("peer", peer = %url, database = %database);
    async move {
        let mut shutdown = shared.shutdown.clone();
        let mut delays = backoff();
        loop {
            if *shutdown.borrow() {
                return;
            }
            lock(&state).attempt();
            let ended = connect_and_sync(&shared, &url, &database, &state).await;
            if *shutdown.borrow() {
                return;
            }
            let caught_up = lock(&state).caught_up();
            if caught_up {
                delays = backoff();
            }
            let error = match ended {
                Ok(()) => "the peer closed the connection".to_owned(),
                Err(error) => error,
            };
            let repeated = lock(&state).last_error() == Some(error.as_str());
            lock(&state).disconnected(error.clone());
            let wait = delays.next().unwrap_or(PEER_BACKOFF_MAX);
            // Said once, not at every retry, while the reason stays the same.
            if repeated {
                tracing::debug!(retry_in = ?wait, "peer link down: {error}");
            } else {
                tracing::warn!(retry_in = ?wait, "peer link down: {error}");
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
    .instrument(span)
    .await
}

/// One connection, until it ends: `Ok` when the peer closed it (or the server stops), else
/// why it failed.
async fn connect_and_sync(
    shared: &Arc<ServerState>,
    url: &PeerUrl,
    name: &DatabaseName,
    state: &Arc<Mutex<LinkState>>,
) -> Result<(), String> {
    let database = shared
        .registry
        .open(name)
        .await
        .map_err(|e| e.to_string())?;
    let token = peer_token(&shared.auth).map_err(|e| e.to_string())?;
    let target = SyncTarget::new(url.sync_url(name.as_str()), token);
    let mut shutdown = shared.shutdown.clone();
    let mut socket = tokio::select! {
        connected = tokio::time::timeout(CONNECT_TIMEOUT, connect(&target)) => match connected {
            Ok(Ok(socket)) => socket,
            Ok(Err(DialError::Refused { status, reason })) if refused_for_our_secret(status, &reason) => {
                return Err(format!("the peer refused this server's token ({status}): {reason}: {OTHER_SECRET}"));
            }
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err(format!("no connection within {CONNECT_TIMEOUT:?}")),
        },
        _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
    };
    // Subscribe before reading the database, so no commit falls between the two.
    let commits = database.subscribe();
    let path = database.path().to_owned();
    let mut config = SessionConfig::new(Role::Peer, name.as_str());
    config.blobs = Some(database.blobs());
    let opened = tokio::task::spawn_blocking(move || {
        let replica = Replica::open(&path)?;
        let session = Session::initiator(&replica, config)?;
        Ok::<_, weft_core::Error>((replica, session))
    })
    .await
    .map_err(|e| e.to_string())?;
    let (replica, session) = opened.map_err(|e| format!("local replica: {e}"))?;
    let stopping = Box::pin(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    let frames = (&mut socket).take_until(stopping);
    let wakeups = Wakeups {
        commits: Some(commits),
        poll_every: None,
    };
    let driven = driver::drive(frames, replica, session, wakeups, |event, status| {
        on_event(&database, event);
        lock(state).on_event(event, status);
        ControlFlow::Continue(())
    })
    .await;
    if let Some(replica) = driven.replica {
        // Closing a SQLite connection may checkpoint the WAL: blocking work.
        let _ = tokio::task::spawn_blocking(move || drop(replica)).await;
    }
    // Tells the peer we are going (it may already be closed: then this fails).
    let _ = socket.close().await;
    match driven.result {
        Ok(Outcome::PeerClosed | Outcome::Stopped) => Ok(()),
        Ok(Outcome::SessionClosed { code, message }) => {
            Err(format!("sync failed ({code}): {message}"))
        }
        Err(DriveError::Transport(error)) => Err(format!("connection lost: {error}")),
        Err(error) => Err(error.to_string()),
    }
}
