//! Runs one [`Session`] over one connection: the thin async layer between frames on a socket
//! and the sans-I/O state machine. Used by the client and by the server alike.
//!
//! SQLite work is blocking, so each step (take in a frame, then take out every frame and
//! event) runs on tokio's blocking pool with the replica and the session moved there and back.
//! Meanwhile a reader beside it takes the next frames off the socket and decodes them
//! ([`FrameDecoder`]), so a large download decodes one batch while it applies the last. At
//! most [`DECODED_AHEAD_MAX`] decoded frames wait in the channel, plus one the reader holds
//! until there is room.

// The reader's decoding on the blocking pool is not counted against a pooled database's
// turns ([`ReplicaLender::turn`]): it holds no SQLite connection, and there is at most one per
// conversation at a time.

use crate::limits::DECODED_AHEAD_MAX;
use crate::limits::FRAMES_PER_STEP_MAX;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use weft_core::sync::{DecodedFrame, ErrorCode, FrameDecoder, Session, SessionEvent};
use weft_core::Replica;

/// How the driver learns of new local commits to push.
#[derive(Clone, Debug, Default)]
pub struct Wakeups {
    /// Bumped by whoever commits in this process (the server, after each merge).
    pub commits: Option<watch::Receiver<u64>>,
    /// Look for commits by other connections this often (a client whose app writes through
    /// its own connections). `None` relies on `commits` alone.
    pub poll_every: Option<Duration>,
}

/// How a conversation ended.
#[derive(Debug)]
pub enum Outcome {
    /// The other side closed the connection.
    PeerClosed,
    /// The session ended on a protocol error (sent or received); see the `Closed` event.
    SessionClosed {
        /// The error.
        code: ErrorCode,
        /// In words.
        message: String,
    },
    /// The event handler asked to stop.
    Stopped,
}

/// What went wrong below the protocol.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The socket failed.
    #[error("connection: {0}")]
    Transport(String),
    /// The local replica failed (disk, database).
    #[error("local replica: {0}")]
    Replica(#[from] weft_core::Error),
    /// A blocking step panicked or was cancelled.
    #[error("sync step failed: {0}")]
    Step(String),
}

/// The result of a drive, with the replica handed back for reuse.
pub struct Driven {
    /// The replica the session used (gone if a step panicked, and never there for a
    /// conversation that took its replica from a pool for each step).
    pub replica: Option<Replica>,
    /// How it ended.
    pub result: Result<Outcome, DriveError>,
}

/// Where a pooled conversation borrows a replica for each step (the server's pool of
/// SQLite connections to one database): [`drive_pooled`] waits for a turn, takes a replica
/// on the blocking pool, steps, gives it back and ends the turn.
///
/// Any replica of the file must serve any step: each transaction starts by learning what
/// other connections committed, and a session keeps no state in the replica between steps.
pub trait ReplicaLender: Send + Sync + 'static {
    /// Waits for a turn to use a replica; the turn lasts until the permit drops.
    fn turn(&self) -> impl std::future::Future<Output = OwnedSemaphorePermit> + Send;
    /// A replica to step with. Blocking; called on the blocking pool while holding a turn.
    fn take(&self) -> Result<Replica, weft_core::Error>;
    /// Hands a replica back after a step (it may be left inside a transaction by a failed
    /// step: the lender must not reuse it then). Blocking.
    fn give(&self, replica: Replica);
}

/// The lender of a conversation that owns its replica: it never lends.
enum NoLender {}

impl ReplicaLender for NoLender {
    async fn turn(&self) -> OwnedSemaphorePermit {
        match *self {}
    }
    fn take(&self) -> Result<Replica, weft_core::Error> {
        match *self {}
    }
    fn give(&self, _replica: Replica) {
        match *self {}
    }
}

/// Where the steps of a conversation get their replica.
enum Source<P> {
    /// One replica for the whole conversation, between steps here.
    Own(Option<Box<Replica>>),
    /// A replica from the lender for each step.
    Pool(Arc<P>),
}

struct Step {
    /// The replica, if the conversation owns it (a pooled one is back in its pool).
    replica: Option<Replica>,
    session: Session,
    frames: Vec<Vec<u8>>,
    events: Vec<SessionEvent>,
    timeout_ms: Option<u64>,
    closed: bool,
    error: Option<weft_core::Error>,
    more: bool,
}

/// Frames at least this large are decoded on the blocking pool, not on the reader's
/// runtime thread (a 1 MiB batch takes about a millisecond).
const DECODE_BLOCKING_BYTES: usize = 64 << 10;

/// What the reader hands the conversation: a decoded frame, or why the socket failed. Boxed:
/// the channel allocates its slots in blocks of 32, and 32 unboxed frames were 11 KiB more
/// for every idle connection of a server.
type Read = Result<Box<DecodedFrame>, String>;

/// Reads frames off `stream` and decodes them, until the stream ends or fails or the
/// conversation stops listening. Ending drops `frames`, which the conversation reads as
/// the peer closing.
async fn read_ahead<R, E>(mut stream: R, decoder: FrameDecoder, frames: mpsc::Sender<Read>)
where
    R: Stream<Item = Result<Vec<u8>, E>> + Unpin,
    E: std::fmt::Display,
{
    while let Some(frame) = stream.next().await {
        let read = match frame {
            Ok(bytes) if bytes.len() >= DECODE_BLOCKING_BYTES => {
                tokio::task::spawn_blocking(move || Box::new(decoder.decode(&bytes)))
                    .await
                    .map_err(|join| format!("decoding a frame failed: {join}"))
            }
            Ok(bytes) => Ok(Box::new(decoder.decode(&bytes))),
            Err(e) => Err(e.to_string()),
        };
        let failed = read.is_err();
        if frames.send(read).await.is_err() || failed {
            return;
        }
    }
}

/// Runs the conversation until the socket closes, the session ends, or `on_event` breaks.
pub async fn drive<S, E>(
    socket: S,
    replica: Replica,
    session: Session,
    wakeups: Wakeups,
    on_event: impl FnMut(&SessionEvent, &weft_core::sync::Status) -> ControlFlow<()> + Send,
) -> Driven
where
    S: Stream<Item = Result<Vec<u8>, E>> + Sink<Vec<u8>, Error = E> + Unpin + Send,
    E: std::fmt::Display + Send,
{
    drive_from::<_, _, NoLender>(
        socket,
        Source::Own(Some(Box::new(replica))),
        session,
        wakeups,
        on_event,
    )
    .await
}

/// As [`drive`], with each step's replica taken from `pool` and handed back after it.
pub async fn drive_pooled<S, E, P: ReplicaLender>(
    socket: S,
    pool: Arc<P>,
    session: Session,
    wakeups: Wakeups,
    on_event: impl FnMut(&SessionEvent, &weft_core::sync::Status) -> ControlFlow<()> + Send,
) -> Driven
where
    S: Stream<Item = Result<Vec<u8>, E>> + Sink<Vec<u8>, Error = E> + Unpin + Send,
    E: std::fmt::Display + Send,
{
    drive_from(socket, Source::Pool(pool), session, wakeups, on_event).await
}

async fn drive_from<S, E, P: ReplicaLender>(
    socket: S,
    source: Source<P>,
    session: Session,
    wakeups: Wakeups,
    on_event: impl FnMut(&SessionEvent, &weft_core::sync::Status) -> ControlFlow<()> + Send,
) -> Driven
where
    S: Stream<Item = Result<Vec<u8>, E>> + Sink<Vec<u8>, Error = E> + Unpin + Send,
    E: std::fmt::Display + Send,
{
    let (sink, stream) = socket.split();
    let (decoded, ahead) = mpsc::channel(DECODED_AHEAD_MAX);
    // The reader runs in this task beside the conversation (the socket may be borrowed, so
    // it cannot be spawned): it makes progress whenever the conversation waits, for a step or
    // for a frame, and decodes large frames on the blocking pool.
    let reader = read_ahead(stream, session.frame_decoder(), decoded);
    let conversation = converse(sink, ahead, source, session, wakeups, on_event);
    tokio::pin!(reader, conversation);
    let mut reading = true;
    loop {
        tokio::select! {
            driven = &mut conversation => return driven,
            () = &mut reader, if reading => reading = false,
        }
    }
}

/// The conversation itself: steps the session with each decoded frame, tick and commit, and
/// writes what it sends to `socket`.
async fn converse<K, E, P: ReplicaLender>(
    mut socket: K,
    mut ahead: mpsc::Receiver<Read>,
    mut source: Source<P>,
    session: Session,
    mut wakeups: Wakeups,
    mut on_event: impl FnMut(&SessionEvent, &weft_core::sync::Status) -> ControlFlow<()> + Send,
) -> Driven
where
    K: Sink<Vec<u8>, Error = E> + Unpin + Send,
    E: std::fmt::Display + Send,
{
    let started = Instant::now();
    let now_ms = move || started.elapsed().as_millis() as u64;
    let mut session = Some(session);
    let mut incoming: Option<Box<DecodedFrame>> = None;
    let mut timed_out = false;
    let owned = |source: &mut Source<P>| match source {
        Source::Own(replica) => replica.take().map(|r| *r),
        Source::Pool(_) => None,
    };
    loop {
        let taken = session.take().expect("the session is back after each step");
        let (lease, turn) = match &mut source {
            Source::Own(replica) => (
                Source::Own(Some(
                    replica.take().expect("the replica is back after each step"),
                )),
                None,
            ),
            Source::Pool(pool) => (Source::Pool(pool.clone()), Some(pool.turn().await)),
        };
        let frame = incoming.take();
        let tick = std::mem::take(&mut timed_out);
        let now = now_ms();
        let step = tokio::task::spawn_blocking(move || match lease {
            Source::Own(replica) => {
                let replica = replica.expect("taken above");
                Ok(step(*replica, taken, frame, tick, now))
            }
            Source::Pool(pool) => {
                let mut step = step(pool.take()?, taken, frame, tick, now);
                if let Some(replica) = step.replica.take() {
                    pool.give(replica);
                }
                Ok(step)
            }
        })
        .await;
        drop(turn);
        let step = match step {
            Ok(Ok(step)) => step,
            Ok(Err(error)) => {
                // No replica to be had (the pool could not open one): the session is gone
                // with the step.
                let _ = socket.close().await;
                return Driven {
                    replica: None,
                    result: Err(DriveError::Replica(error)),
                };
            }
            Err(join) => {
                // The replica went down with the step: nothing to hand back but the error.
                let _ = socket.close().await;
                return Driven {
                    replica: None,
                    result: Err(DriveError::Step(join.to_string())),
                };
            }
        };
        let Step {
            replica,
            session: stepped,
            frames,
            events,
            timeout_ms,
            closed,
            error,
            more,
        } = step;
        if let Source::Own(slot) = &mut source {
            *slot = replica.map(Box::new);
        }
        let status = stepped.status().clone();
        for frame in frames {
            if let Err(e) = socket.feed(frame).await {
                return Driven {
                    replica: owned(&mut source),
                    result: Err(DriveError::Transport(e.to_string())),
                };
            }
        }
        if let Err(e) = socket.flush().await {
            return Driven {
                replica: owned(&mut source),
                result: Err(DriveError::Transport(e.to_string())),
            };
        }
        let mut stop = false;
        let mut ended = None;
        for event in &events {
            if let SessionEvent::Closed { code, message, .. } = event {
                ended = Some((*code, message.clone()));
            }
            if on_event(event, &status).is_break() {
                stop = true;
            }
        }
        if let Some(error) = error {
            let _ = socket.close().await;
            return Driven {
                replica: owned(&mut source),
                result: Err(DriveError::Replica(error)),
            };
        }
        if closed || stop {
            let _ = socket.close().await;
            let result = match ended {
                Some((code, message)) => Outcome::SessionClosed { code, message },
                None => Outcome::Stopped,
            };
            return Driven {
                replica: owned(&mut source),
                result: Ok(result),
            };
        }
        session = Some(stepped);
        if more {
            // The step stopped at its frame bound: go on before waiting for anything.
            continue;
        }
        let sleep = match timeout_ms {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms())),
            None => Duration::from_secs(3600),
        };
        let poll = wakeups.poll_every.unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            frame = ahead.recv() => match frame {
                Some(Ok(frame)) => incoming = Some(frame),
                Some(Err(e)) => {
                    return Driven { replica: owned(&mut source), result: Err(DriveError::Transport(e)) };
                }
                None => {
                    return Driven { replica: owned(&mut source), result: Ok(Outcome::PeerClosed) };
                }
            },
            changed = wait_for_commit(&mut wakeups.commits) => {
                if changed.is_err() {
                    // The notifier is gone (the server is shutting down): stop listening to it.
                    wakeups.commits = None;
                }
            }
            _ = tokio::time::sleep(sleep) => timed_out = true,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

async fn wait_for_commit(
    commits: &mut Option<watch::Receiver<u64>>,
) -> Result<(), watch::error::RecvError> {
    match commits {
        Some(receiver) => receiver.changed().await,
        None => std::future::pending().await,
    }
}

fn step(
    replica: Replica,
    mut session: Session,
    frame: Option<Box<DecodedFrame>>,
    timed_out: bool,
    now_ms: u64,
) -> Step {
    let mut frames = Vec::new();
    let mut error = None;
    if timed_out {
        session.handle_timeout(now_ms);
    }
    if let Some(frame) = frame {
        if let Err(e) = session.handle_decoded(&replica, *frame, now_ms) {
            error = Some(e);
        }
    }
    while error.is_none() && frames.len() < FRAMES_PER_STEP_MAX {
        if let Some(frame) = session.poll_frame() {
            frames.push(frame);
            continue;
        }
        if let Err(e) = session.handle_tick(&replica, now_ms) {
            error = Some(e);
            break;
        }
        match session.poll_frame() {
            Some(frame) => frames.push(frame),
            None => break,
        }
    }
    let mut events = Vec::new();
    while let Some(event) = session.poll_event() {
        events.push(event);
    }
    Step {
        more: frames.len() >= FRAMES_PER_STEP_MAX,
        timeout_ms: session.poll_timeout(),
        closed: session.is_closed(),
        replica: Some(replica),
        session,
        frames,
        events,
        error,
    }
}
