//! One client's WebSocket, from the upgrade to the close: a responder session, the shared
//! driver moving frames between it and the socket, and for each step a replica borrowed from
//! the database's pool.

use crate::auth::{ChangeAuthorizer, ConnectionAuthorizer, Principal};
use crate::peers::incoming::{IncomingLinkHandle, IncomingLinks};
use crate::registry::Database;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures_util::{future, SinkExt, StreamExt};
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::Instrument;
use weft_core::sync::{Role, Session, SessionConfig, SessionEvent};
use weft_net::driver::{self, DriveError, Outcome, Wakeups};

/// What a connection needs besides its socket.
pub(crate) struct Connection {
    /// The database it syncs.
    pub(crate) database: Arc<Database>,
    /// Who is connected.
    pub(crate) principal: Principal,
    /// The app's per-change authorizer.
    pub(crate) authorizer: Arc<dyn ChangeAuthorizer>,
    /// The client's address, for the logs.
    pub(crate) peer: SocketAddr,
    /// Turns true when the server stops.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Whether a peer's hello is answered (a peer token, or auth off).
    pub(crate) accept_peer: bool,
    /// Where a peer's link is put on record while it is open.
    pub(crate) incoming: Arc<IncomingLinks>,
}

/// Runs the conversation on `socket` until either side ends it or the server stops.
pub(crate) async fn run(socket: WebSocket, connection: Connection) {
    let span = tracing::info_span!(
        "connection",
        database = %connection.database.name(),
        principal = %connection.principal.name,
        peer = %connection.peer,
    );
    converse(socket, connection).instrument(span).await
}

async fn converse(mut socket: WebSocket, connection: Connection) {
    let Connection {
        database,
        principal,
        authorizer,
        peer,
        mut shutdown,
        accept_peer,
        incoming,
    } = connection;
    let mut config = SessionConfig::new(Role::Server, database.name().as_str());
    config.accept_peer = accept_peer;
    config.blobs = Some(database.blobs());
    // A peer server's changes were authorised where they were written: asking the app's
    // authorizer again here could refuse what another server kept, and the two would never
    // converge.
    if principal.role != crate::token::TokenRole::Peer {
        config = config.with_authorizer(Arc::new(ConnectionAuthorizer::new(
            authorizer,
            principal,
            database.name().clone(),
        )));
    }
    // Subscribe before reading the database, so no commit falls between the two.
    let commits = database.subscribe();
    let replicas = database.replicas();
    let pool = replicas.clone();
    let turn = replicas.turn().await;
    let opened = tokio::task::spawn_blocking(move || {
        let replica = pool.take()?;
        let session = Session::responder(&replica, config);
        pool.give(replica);
        session
    })
    .await;
    drop(turn);
    let session = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => return fail(socket, &error.to_string()).await,
        Err(error) => return fail(socket, &error.to_string()).await,
    };
    tracing::info!("connected");

    let stopped = shutdown.clone();
    let stopping = Box::pin(async move {
        // A dropped sender means the server is gone: stop as well.
        let _ = shutdown.wait_for(|stop| *stop).await;
    });
    let texted = Arc::new(AtomicBool::new(false));
    let saw_text = texted.clone();
    // A client that closed the connection itself (a `--once` sync that is done) is not an
    // error, even when a frame this side was still sending then fails.
    let client_closed = Arc::new(AtomicBool::new(false));
    let saw_close = client_closed.clone();
    let frames = (&mut socket)
        .take_until(stopping)
        // A close (or text, which the protocol never sends) ends the conversation.
        .take_while(move |message| {
            if matches!(message, Ok(Message::Text(_))) {
                saw_text.store(true, Ordering::Relaxed);
            }
            if matches!(message, Ok(Message::Close(_))) {
                saw_close.store(true, Ordering::Relaxed);
            }
            future::ready(!matches!(message, Ok(Message::Close(_) | Message::Text(_))))
        })
        .filter_map(|message| {
            future::ready(match message {
                Ok(Message::Binary(bytes)) => Some(Ok(bytes.to_vec())),
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            })
        })
        .with(|frame: Vec<u8>| future::ready(Ok::<_, axum::Error>(Message::Binary(frame.into()))));
    let wakeups = Wakeups {
        commits: Some(commits),
        poll_every: None,
    };
    // A peer server's link is on record for `GET /v1/peers` while it is open.
    let mut peer_link: Option<IncomingLinkHandle> = None;
    let driven = driver::drive_pooled(frames, replicas, session, wakeups, |event, status| {
        on_event(&database, event);
        if let SessionEvent::Connected {
            role: Role::Peer,
            site,
            ..
        } = event
        {
            let name = database.name().as_str();
            peer_link = Some(incoming.opened(peer, name, site.to_hex()));
        }
        if let Some(link) = &peer_link {
            link.update(status);
        }
        ControlFlow::Continue(())
    })
    .await;
    let farewell = match &driven.result {
        Ok(Outcome::PeerClosed) if *stopped.borrow() => {
            tracing::info!("closing: the server is stopping");
            CloseFrame {
                code: close_code::AWAY,
                reason: "server shutting down".into(),
            }
        }
        Ok(Outcome::PeerClosed) if texted.load(Ordering::Relaxed) => {
            tracing::info!("closing: the client sent text; the protocol is binary");
            CloseFrame {
                code: close_code::UNSUPPORTED,
                reason: "binary frames only".into(),
            }
        }
        Ok(Outcome::PeerClosed) => {
            tracing::info!("disconnected");
            // Completes the closing handshake the client started (if it did).
            let _ = SinkExt::close(&mut socket).await;
            return;
        }
        Ok(Outcome::SessionClosed { code, message }) => {
            tracing::info!(%code, "session closed: {message}");
            CloseFrame {
                code: close_code::NORMAL,
                reason: "".into(),
            }
        }
        Ok(Outcome::Stopped) => {
            tracing::info!("stopped");
            CloseFrame {
                code: close_code::NORMAL,
                reason: "".into(),
            }
        }
        Err(DriveError::Transport(_)) if client_closed.load(Ordering::Relaxed) => {
            tracing::info!("disconnected");
            return;
        }
        Err(DriveError::Transport(error)) => {
            tracing::info!("connection lost: {error}");
            return;
        }
        Err(error) => {
            tracing::error!("sync failed: {error}");
            CloseFrame {
                code: close_code::ERROR,
                reason: "internal error".into(),
            }
        }
    };
    // The close may already be done (by the driver, or by the client): then this fails.
    let _ = socket.send(Message::Close(Some(farewell))).await;
}

/// Logs a session event, and tells the database's other connections about new commits.
pub(crate) fn on_event(database: &Database, event: &SessionEvent) {
    match event {
        SessionEvent::Connected {
            site,
            role,
            db_version,
            resume_from,
        } => tracing::info!(
            site = %site.to_hex(),
            ?role,
            peer_db_version = db_version,
            resume_from,
            "hello"
        ),
        SessionEvent::Applied {
            db_version,
            changes,
            ..
        } => {
            if let Some(db_version) = db_version {
                database.committed(*db_version);
            }
            tracing::debug!(changes, ?db_version, "applied a batch");
        }
        SessionEvent::Refused { count, reason } => {
            tracing::info!(count, "refused changes: {reason}")
        }
        SessionEvent::Reconciled {
            rows_to_send,
            rows_wanted,
            fallback,
        } => tracing::info!(
            rows_to_send,
            rows_wanted,
            fallback,
            "compared rows without cursors{}",
            if *fallback {
                ": too different in size, sending everything"
            } else {
                ""
            }
        ),
        SessionEvent::Closed {
            code,
            message,
            by_peer,
        } => tracing::debug!(%code, by_peer, "closed: {message}"),
        other => tracing::debug!(event = ?other, "sync event"),
    }
}

/// Ends a connection that could not start.
async fn fail(mut socket: WebSocket, error: &str) {
    tracing::error!("cannot start a sync session: {error}");
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::ERROR,
            reason: "internal error".into(),
        })))
        .await;
}
