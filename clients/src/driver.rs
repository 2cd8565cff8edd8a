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
// turns ([`ReplicaPool::turn`]): it holds no SQLite connection, and there is at most one per
// conversation at a time.

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::sync::watch;
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

/// Replicas of one database, lent to conversations for one step at a time: a server with many
/// connections to a database holds a few SQLite connections instead of one per client, and an
/// idle conversation holds none (a SQLite connection is a few hundred KiB of caches).
///
/// At most `open_max` steps run at once; the others wait their turn (first come, first
/// served), so a thousand clients woken by one commit do not open a thousand connections.
/// Any replica of the file serves any step: each transaction starts by learning what other
/// connections committed, and a session keeps no state in the replica between steps.
pub struct ReplicaPool {
    path: std::path::PathBuf,
    /// Replicas between steps, each with when it was handed back.
    spare: std::sync::Mutex<Vec<(Replica, Instant)>>,
    open_max: usize,
    turns: Arc<tokio::sync::Semaphore>,
}

impl ReplicaPool {
    /// A pool of at most `open_max` (at least 1) connections to the replica at `path`,
    /// starting with `first` if given.
    pub fn new(
        path: impl Into<std::path::PathBuf>,
        first: Option<Replica>,
        open_max: usize,
    ) -> Self {
        let open_max = open_max.max(1);
        ReplicaPool {
            path: path.into(),
            spare: std::sync::Mutex::new(first.into_iter().map(|r| (r, Instant::now())).collect()),
            open_max,
            turns: Arc::new(tokio::sync::Semaphore::new(open_max)),
        }
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<(Replica, Instant)>> {
        self.spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A replica: the spare used last, or a new connection. Blocking; call it while holding a
    /// turn.
    pub fn take(&self) -> Result<Replica, weft_core::Error> {
        let spare = self.spare().pop();
        match spare {
            Some((replica, _)) => Ok(replica),
            None => Replica::open(&self.path),
        }
    }

    /// Hands a replica back. One left inside a transaction (a refused COMMIT, a panic halfway)
    /// is closed instead, which rolls the transaction back: the next step must not write into
    /// it or wait behind its lock. Beyond `open_max` spares (a step cancelled mid-way gives
    /// back late), it is closed too. Blocking (closing may checkpoint).
    pub fn give(&self, replica: Replica) {
        if !replica.connection().is_autocommit() {
            tracing::warn!(path = %self.path.display(), "a step left a transaction open: closing its connection, which rolls it back");
            drop(replica);
            return;
        }
        let mut spare = self.spare();
        if spare.len() < self.open_max {
            spare.push((replica, Instant::now()));
            return;
        }
        drop(spare);
        drop(replica);
    }

    /// Takes out the spares unused for `idle_for` or longer, for the caller to close (closing
    /// is blocking). A database nobody syncs then holds no connection at all.
    pub fn take_idle(&self, idle_for: Duration) -> Vec<Replica> {
        let mut spare = self.spare();
        let (idle, busy): (Vec<_>, Vec<_>) = std::mem::take(&mut *spare)
            .into_iter()
            .partition(|(_, since)| since.elapsed() >= idle_for);
        *spare = busy;
        idle.into_iter().map(|(replica, _)| replica).collect()
    }

    /// Waits for a turn to use a replica.
    pub async fn turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.turns
            .clone()
            .acquire_owned()
            .await
            .expect("the pool never closes its semaphore")
    }
}

/// Where the steps of a conversation get their replica.
enum Source {
    /// One replica for the whole conversation, between steps here.
    Own(Option<Box<Replica>>),
    /// A replica from the pool for each step.
    Pool(Arc<ReplicaPool>),
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

/// Frames one step may send before the socket gets a turn: bounds the memory a step holds.
const FRAMES_PER_STEP_MAX: usize = 64;

/// Decoded frames waiting in the channel for the session (the reader holds one more until
/// there is room, and the session one it applies): bounds the memory reading ahead holds (a
/// batch is at most `changes_per_batch_max` changes).
pub const DECODED_AHEAD_MAX: usize = 1;

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
    drive_from(
        socket,
        Source::Own(Some(Box::new(replica))),
        session,
        wakeups,
        on_event,
    )
    .await
}

/// As [`drive`], with each step's replica taken from `pool` and handed back after it.
pub async fn drive_pooled<S, E>(
    socket: S,
    pool: Arc<ReplicaPool>,
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

async fn drive_from<S, E>(
    socket: S,
    source: Source,
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
async fn converse<K, E>(
    mut socket: K,
    mut ahead: mpsc::Receiver<Read>,
    mut source: Source,
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
    let owned = |source: &mut Source| match source {
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
