//! `GET /v1/changes/{database}`: the change feed as Server-Sent Events.
//!
//! Each event's `id` is its db_version and its `data` one line of event JSON. A subscriber
//! resumes after the last id it saw (`Last-Event-ID`, or `?since=N`). Memory per subscriber
//! is bounded: events go through a queue of [`FEED_QUEUE_EVENTS`], and the reader waits when
//! it is full, so a slow subscriber only slows its own reader down.

use super::REGISTERS_PER_READ;
use crate::registry::Database;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use weft_core::events::EventReader;
use weft_core::Replica;

/// The path prefix of the feed.
pub const CHANGES_PATH: &str = "/v1/changes";

/// Events queued for one subscriber at most.
pub const FEED_QUEUE_EVENTS: usize = 64;

/// How often an idle feed sends a keepalive comment.
pub const FEED_KEEPALIVE: Duration = Duration::from_secs(15);

/// The feed of `database` after `since`, until the subscriber leaves or the server stops.
pub(crate) fn respond(
    database: Arc<Database>,
    since: u64,
    shutdown: watch::Receiver<bool>,
) -> Response {
    let (sender, receiver) = mpsc::channel(FEED_QUEUE_EVENTS);
    tokio::spawn(produce(database, since, sender, shutdown));
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(FEED_KEEPALIVE))
        .into_response()
}

/// Reads the database's events into `sender` while it is open.
async fn produce(
    database: Arc<Database>,
    since: u64,
    sender: mpsc::Sender<SseEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut commits = database.subscribe();
    let path = database.path().to_owned();
    let name = database.name().as_str().to_owned();
    let opened = tokio::task::spawn_blocking(move || Replica::open(path)).await;
    let mut state = match opened {
        Ok(Ok(replica)) => Some((replica, EventReader::new(name, since))),
        Ok(Err(error)) => {
            tracing::error!(database = %database.name(), %error, "feed cannot open the database");
            return;
        }
        Err(_) => return,
    };
    loop {
        commits.borrow_and_update();
        loop {
            let Some((replica, mut reader)) = state.take() else {
                return;
            };
            let step = tokio::task::spawn_blocking(move || {
                let batch = reader.read(&replica, REGISTERS_PER_READ);
                (replica, reader, batch)
            })
            .await;
            let Ok((replica, reader, batch)) = step else {
                return;
            };
            state = Some((replica, reader));
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(database = %database.name(), %error, "feed stops");
                    return;
                }
            };
            for event in batch.events {
                let mut sse = SseEvent::default().data(event.to_json_line());
                if !event.partial {
                    sse = sse.id(event.db_version.to_string());
                }
                tokio::select! {
                    sent = sender.send(sse) => if sent.is_err() { return },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
            if batch.caught_up {
                break;
            }
        }
        tokio::select! {
            changed = commits.changed() => if changed.is_err() { return },
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = sender.closed() => return,
        }
    }
}
