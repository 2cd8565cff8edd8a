//! One side of one conversation: the protocol's state machine.
//!
//! The driver feeds it frames ([`Session::handle_frame`], or [`Session::handle_decoded`] for a
//! frame decoded on another thread), the time ([`Session::handle_timeout`]) and ticks
//! ([`Session::handle_tick`]: read the local changes, blob bytes and digest there are to
//! send), and takes frames to send ([`Session::poll_frame`]) and events
//! ([`Session::poll_event`]). Only the `handle_*` steps read or write the replica they are
//! handed, each reading what it needs once; the `poll_*` calls take no lock and never wait.
//! The session never touches a socket or a clock.
//!
//! In order, per turn of the driver: `handle_timeout` when [`Session::poll_timeout`] is due,
//! `handle_frame` for each frame received, `handle_tick` (after a local commit too), then
//! `poll_frame` until `None` and `poll_event` until `None`.

use super::authorizer::Authorizer;
use super::blobs::{BlobExchange, BlobFetch, BlobStatus};
use super::decoded::{DecodedFrame, FrameDecoder};
use super::event::SessionEvent;
use super::limits::{
    BATCH_BYTES_TARGET, DIGEST_RETRY_MS, DIGEST_TRIES_MAX, ECHO_READS_MAX, EVENTS_QUEUED_MAX,
    FRAME_BYTES_MAX, HELLO_TIMEOUT_MS, OUTBOX_FRAMES_MAX, OUTBOX_FRAMES_TICK_MAX,
    REJECT_SAMPLE_MAX, RESEND_AFTER_MS, RESUME_CURSORS_MAX, TEXT_BYTES_MAX, WINDOW_BATCHES,
};
use super::message::{
    cut_text, encode_frame, Ack, Changes, DigestMessage, ErrorCode, ErrorMessage, FrameError,
    Hello, Message, Reconcile, Reject, Resume, Role,
};
use super::reconcile::{Outcome, ReconcileStats, Reconciler, RoundError, RoundReply};
use super::rows::encode_rows;
use super::step_error::StepError;
use super::PROTOCOL_VERSION;
use crate::blobs::BlobStore;
use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::rules::change::PeerCursor;
use crate::rules::change::{Change, Cursor, CursorMove};
use crate::rules::digest::Digest;
use crate::rules::site::{Incarnation, SiteId};
use std::collections::VecDeque;
use std::sync::Arc;

/// How a session is set up.
#[derive(Clone)]
pub struct SessionConfig {
    /// This side's role.
    pub role: Role,
    /// The database the conversation syncs (checked against the other side's hello).
    pub database: String,
    /// Decides which received changes may be applied; `None` applies all.
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// Changes per batch to start with; the session adapts it to `BATCH_BYTES_TARGET` (1 MiB).
    pub batch_changes_initial: usize,
    /// On a transport that may lose frames: send a hello or batches again when unanswered
    /// this long (see [`RESEND_AFTER_MS`]). `None` (the default) for a reliable, ordered
    /// transport such as a WebSocket, where a slow peer must not be flooded with resends.
    pub resend_after_ms: Option<u64>,
    /// For a [`Role::Server`] responder: also answer a [`Role::Peer`] hello, and then speak
    /// as a peer. A server sets it when the connection's credentials are a peer's.
    pub accept_peer: bool,
    /// Where this side keeps blob bytes. With a store, the session sends the blobs the other
    /// side wants and fetches those its listing names and its store lacks (eagerly, except
    /// for lazy buckets on a client); without one it answers every want with "missing".
    pub blobs: Option<Arc<dyn BlobStore>>,
    /// Which blobs this side fetches: by default every bucket's on a server or peer, the
    /// eager buckets' on a client.
    pub blob_fetch: BlobFetch,
}

impl SessionConfig {
    /// A configuration with the defaults.
    pub fn new(role: Role, database: impl Into<String>) -> SessionConfig {
        SessionConfig {
            role,
            database: database.into(),
            authorizer: None,
            batch_changes_initial: 1_000,
            resend_after_ms: None,
            accept_peer: false,
            blobs: None,
            blob_fetch: match role {
                Role::Client => BlobFetch::Eager,
                Role::Server | Role::Peer => BlobFetch::All,
            },
        }
    }

    /// The same, with an authorizer for received changes.
    pub fn with_authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> SessionConfig {
        self.authorizer = Some(authorizer);
        self
    }
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("role", &self.role)
            .field("database", &self.database)
            .field("authorizer", &self.authorizer.is_some())
            .field("resend_after_ms", &self.resend_after_ms)
            .field("accept_peer", &self.accept_peer)
            .field("blobs", &self.blobs.as_ref().map(|b| b.describe()))
            .finish()
    }
}

/// Where the conversation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the other side's hello.
    AwaitHello,
    /// Exchanging changes.
    Running,
    /// Over; frames still queued may be sent.
    Closed,
}

/// The other side, as its hello named it.
#[derive(Clone, Copy, Debug)]
struct Peer {
    site: SiteId,
    incarnation: Incarnation,
}

/// A batch sent and not yet acknowledged.
#[derive(Clone, Debug)]
struct InFlight {
    from: Cursor,
    to: Cursor,
    changes: usize,
    sent_ms: u64,
}

/// The last digest this side offered: for which state, how often, when to offer it again.
#[derive(Clone, Debug)]
struct DigestSent {
    /// db_version, receive cursor, and whether this side still fetched blobs.
    at: (u64, Cursor, bool),
    tries: u32,
    retry_ms: u64,
}

/// A summary of where a session stands, for status displays and tests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// The other side's site, once it said hello.
    pub peer: Option<SiteId>,
    /// The other side's db_version as of its hello.
    pub peer_db_version: u64,
    /// How far into the other side's changes this side has applied.
    pub received_through: u64,
    /// Whether this side has received everything the other side held when it last looked.
    pub pulled_all: bool,
    /// Whether the other side has acknowledged everything this side holds.
    pub pushed_all: bool,
    /// Changes received and applied in this session.
    pub changes_received: u64,
    /// Changes sent and acknowledged in this session.
    pub changes_acknowledged: u64,
    /// Whether the last digest exchange found equal states.
    pub in_sync: bool,
    /// Frame bytes taken in.
    pub bytes_received: u64,
    /// Frame bytes handed out to send.
    pub bytes_sent: u64,
    /// Whether the sides are reconciling by ranges (no changes flow from this side meanwhile).
    pub reconciling: bool,
    /// What range-based reconciliation did, if this conversation used it.
    pub reconciled: Option<ReconcileStats>,
    /// Where blob transfer stands.
    pub blobs: BlobStatus,
}

/// One side of a sync conversation. See the [module](super) documentation.
pub struct Session {
    config: SessionConfig,
    site: SiteId,
    incarnation: Incarnation,
    initiator: bool,
    phase: Phase,
    started_ms: Option<u64>,
    hello_sent_ms: u64,
    hello_frame: Option<Vec<u8>>,
    peer: Option<Peer>,
    // Sending.
    send_cursor: Cursor,
    in_flight: VecDeque<InFlight>,
    /// Whether the last batch sent reached the end (false before the first).
    last_sent_done: bool,
    read_all_through: Option<u64>,
    batch_changes: usize,
    /// The most changes a batch from the other side may hold (the replica's limit).
    changes_max: usize,
    last_resend: Option<(Cursor, u64)>,
    /// Set by range-based reconciliation: which changes at or below its snapshot to send.
    send_filter: Option<Outcome>,
    // Receiving.
    recv_cursor: Cursor,
    /// How the next applied batch moves the stored cursor: forward from it when this session
    /// resumed from it (or has applied a batch), a start-over otherwise.
    recv_move: CursorMove,
    // Reconciliation, when cursors were unknown.
    reconciler: Option<Reconciler>,
    /// Whether this side's hello asked for reconciliation (a responder repeats it).
    reconcile_asked: bool,
    /// The cursor a responder's hello names for the initiator (repeated with the hello).
    resume_reply: Cursor,
    // Digests.
    digest_sent: Option<DigestSent>,
    // Blob bytes.
    blobs: BlobExchange,
    // Output.
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    status: Status,
}

impl Session {
    /// The side that opens the conversation (a client, or a server dialling a peer). It
    /// sends its hello at once, with the cursors it holds.
    pub fn initiator(replica: &Replica, config: SessionConfig) -> Result<Session> {
        let mut session = Session::new(replica, config, true)?;
        let resume = replica
            .recent_peer_cursors(RESUME_CURSORS_MAX)?
            .into_iter()
            .map(|p| Resume {
                site: p.site,
                incarnation: p.incarnation,
                cursor: p.cursor,
            })
            .collect();
        session.send_hello(replica, resume)?;
        Ok(session)
    }

    /// The side that answers (a server). It waits for the initiator's hello.
    pub fn responder(replica: &Replica, config: SessionConfig) -> Result<Session> {
        Session::new(replica, config, false)
    }

    fn new(replica: &Replica, config: SessionConfig, initiator: bool) -> Result<Session> {
        let changes_max = replica.limits().changes_per_batch_max;
        let batch_changes = config.batch_changes_initial.clamp(1, changes_max);
        Ok(Session {
            changes_max,
            site: replica.site_id(),
            incarnation: replica.incarnation()?,
            initiator,
            phase: Phase::AwaitHello,
            started_ms: None,
            hello_sent_ms: 0,
            hello_frame: None,
            peer: None,
            send_cursor: Cursor::since(0),
            in_flight: VecDeque::new(),
            last_sent_done: false,
            read_all_through: None,
            batch_changes,
            last_resend: None,
            send_filter: None,
            recv_cursor: Cursor::since(0),
            recv_move: CursorMove::StartOver,
            reconciler: None,
            reconcile_asked: false,
            resume_reply: Cursor::since(0),
            digest_sent: None,
            blobs: BlobExchange::new(
                config.blobs.clone(),
                config.blob_fetch.clone(),
                config.resend_after_ms,
            ),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            status: Status::default(),
            config,
        })
    }

    /// Whether the conversation is over (after the queued frames are sent).
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The role this side speaks in: the configured one, or [`Role::Peer`] once a server
    /// that accepts peers has answered a peer's hello.
    pub fn role(&self) -> Role {
        self.config.role
    }

    /// Where the session stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front().or_else(|| self.blobs.poll_event())
    }

    /// When [`Session::handle_timeout`] should next be called, in the driver's milliseconds.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.phase {
            Phase::AwaitHello if self.initiator && self.config.resend_after_ms.is_some() => Some(
                (self.hello_sent_ms.max(self.started_ms.unwrap_or(0))
                    + self.config.resend_after_ms.unwrap_or(0))
                .min(self.started_ms.unwrap_or(0) + HELLO_TIMEOUT_MS),
            ),
            Phase::AwaitHello => Some(self.started_ms.unwrap_or(0) + HELLO_TIMEOUT_MS),
            Phase::Running => {
                let resend = self
                    .config
                    .resend_after_ms
                    .and_then(|after| self.in_flight.front().map(|f| f.sent_ms + after));
                let digest = self
                    .digest_sent
                    .as_ref()
                    .filter(|d| !self.status.in_sync && d.tries < DIGEST_TRIES_MAX)
                    .map(|d| d.retry_ms);
                let round = self.config.resend_after_ms.and_then(|after| {
                    self.reconciler
                        .as_ref()
                        .and_then(Reconciler::awaiting)
                        .map(|(sent_ms, _)| sent_ms + after)
                });
                [resend, digest, round, self.blobs.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
            }
            Phase::Closed => None,
        }
    }

    /// Lets time pass: a hello that never came closes the session; on a lossy transport
    /// (`resend_after_ms`), an unanswered hello and batches unacknowledged for too long are
    /// sent again from the last acknowledged cursor.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        let started = *self.started_ms.get_or_insert(now_ms);
        match self.phase {
            Phase::AwaitHello if now_ms >= started + HELLO_TIMEOUT_MS => {
                self.fail(FrameError::new(ErrorCode::Timeout, "no hello in time"));
            }
            Phase::AwaitHello
                if self.initiator
                    && self
                        .config
                        .resend_after_ms
                        .is_some_and(|after| now_ms >= self.hello_sent_ms.max(started) + after) =>
            {
                // The hello or its answer may have been lost on an unreliable transport.
                self.hello_sent_ms = now_ms;
                if let Some(hello) = self.hello_frame.clone() {
                    self.outbox.push_back(hello);
                }
            }
            Phase::Running => {
                self.blobs.handle_timeout(now_ms);
                let after = self.config.resend_after_ms;
                if let (Some(reconciler), Some(after)) = (self.reconciler.as_mut(), after) {
                    // A round or its answer may have been lost: send the round again.
                    let resend = reconciler
                        .awaiting()
                        .filter(|(sent_ms, _)| now_ms >= sent_ms + after)
                        .map(|(_, frame)| frame.to_vec());
                    if let Some(frame) = resend {
                        reconciler.resent(now_ms);
                        self.outbox.push_back(frame);
                    }
                }
                if let (Some(oldest), Some(after)) = (self.in_flight.front(), after) {
                    if now_ms >= oldest.sent_ms + after {
                        let from = oldest.from.clone();
                        // A cursor this side made itself: no need to check it.
                        self.go_back(from, now_ms, u64::MAX);
                    }
                }
            }
            _ => {}
        }
        self.status.blobs = self.blobs.status().clone();
    }

    /// Takes in one frame from the other side. Protocol errors close the session with an
    /// `Error` frame queued and a [`SessionEvent::Closed`]; `Err` is a local failure (the replica).
    pub fn handle_frame(&mut self, replica: &Replica, frame: &[u8], now_ms: u64) -> Result<()> {
        let decoded = self.frame_decoder().decode(frame);
        self.handle_decoded(replica, decoded, now_ms)
    }

    /// A decoder of this session's frames that needs no replica, to decode the next frame on
    /// another thread while this session handles the last ([`Session::handle_decoded`]).
    pub fn frame_decoder(&self) -> FrameDecoder {
        FrameDecoder::new(self.changes_max)
    }

    /// As [`Session::handle_frame`], for a frame its [`FrameDecoder`] has decoded.
    pub fn handle_decoded(
        &mut self,
        replica: &Replica,
        frame: DecodedFrame,
        now_ms: u64,
    ) -> Result<()> {
        self.started_ms.get_or_insert(now_ms);
        if self.phase == Phase::Closed {
            return Ok(());
        }
        self.check_queues()?;
        self.status.bytes_received += frame.bytes as u64;
        let outcome = match frame.message {
            Ok(message) => self.on_message(replica, message, frame.rows, now_ms),
            Err(error) => Err(StepError::Protocol(error)),
        };
        self.status.blobs = self.blobs.status().clone();
        self.end_step(outcome)
    }

    fn on_message(
        &mut self,
        replica: &Replica,
        message: Message,
        rows: Option<Result<Vec<Change>, FrameError>>,
        now_ms: u64,
    ) -> Result<(), StepError> {
        match (self.phase, message) {
            (_, Message::Error(error)) => {
                self.phase = Phase::Closed;
                self.events.push_back(SessionEvent::Closed {
                    code: error.code,
                    message: error.message,
                    by_peer: true,
                });
                Ok(())
            }
            (Phase::AwaitHello, Message::Hello(hello)) => self.on_hello(replica, hello, now_ms),
            // On a transport that may reorder or repeat frames, a batch can overtake the hello,
            // and a hello can come twice: the sender sends such frames again when they go
            // unacknowledged, so dropping them here loses nothing.
            (Phase::AwaitHello, _) => Ok(()),
            (Phase::Running, Message::Hello(hello)) => self.on_repeated_hello(replica, hello),
            (Phase::Running, Message::Changes(changes)) => match rows {
                Some(rows) => self.on_changes(replica, changes, rows),
                // A frame decoder always decodes a batch's rows: a bug of this side.
                None => Err(StepError::Local(Error::Io(std::io::Error::other(
                    "a batch reached the session undecoded",
                )))),
            },
            (Phase::Running, Message::Ack(ack)) => self.on_ack(replica, ack, now_ms),
            (Phase::Running, Message::Digest(digest)) => self.on_digest(replica, digest),
            (Phase::Running, Message::Reconcile(round)) => {
                self.on_reconcile(replica, round, now_ms)
            }
            (Phase::Running, Message::BlobWant(want)) => self.blobs.on_want(replica, want),
            (Phase::Running, Message::BlobData(data)) => self.blobs.on_data(replica, data, now_ms),
            (Phase::Running, Message::BlobHave(blob)) => Ok(self.blobs.on_have(blob)?),
            (Phase::Running, Message::BlobMissing(blob)) => {
                Ok(self.blobs.on_missing(blob, now_ms)?)
            }
            (Phase::Running, Message::Reject(reject)) => {
                self.events.push_back(SessionEvent::Rejected {
                    count: reject.count,
                    reason: reject.reason,
                });
                Ok(())
            }
            (phase, message) => Err(StepError::Protocol(FrameError::new(
                ErrorCode::UnexpectedMessage,
                format!("{} while {phase:?}", message.type_name()),
            ))),
        }
    }

    /// Ends a step: a protocol error closes the session (the other side is told why); a local
    /// failure closes it too, and is returned, typed, to the driver.
    fn end_step(&mut self, outcome: Result<(), StepError>) -> Result<()> {
        match outcome {
            Ok(()) => Ok(()),
            Err(StepError::Protocol(error)) => {
                self.fail(error);
                Ok(())
            }
            Err(StepError::Local(error)) => {
                self.fail_locally(&error);
                Err(error)
            }
        }
    }

    /// Refuses a step while the driver leaves the queues full (it feeds frames and takes no
    /// frames or events): the session closes, and the breach is returned as a typed error.
    fn check_queues(&mut self) -> Result<()> {
        let events = self.events.len() + self.blobs.events_queued();
        let breach = if self.outbox.len() >= OUTBOX_FRAMES_MAX {
            Some((
                "session_outbox_frames_max",
                OUTBOX_FRAMES_MAX,
                self.outbox.len(),
            ))
        } else if events >= EVENTS_QUEUED_MAX {
            Some(("session_events_queued_max", EVENTS_QUEUED_MAX, events))
        } else {
            None
        };
        let Some((limit, max, actual)) = breach else {
            return Ok(());
        };
        let error = Error::LimitExceeded {
            limit,
            max: max as u64,
            actual: actual as u64,
        };
        self.fail_locally(&error);
        Err(error)
    }

    /// The next frame to send, if any: replies to frames received first, then what the last
    /// [`Session::handle_tick`] read (batches of local changes the other side lacks, blob
    /// bytes, a digest once caught up). Takes no lock: it only hands out queued frames.
    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        let frame = self.outbox.pop_front()?;
        self.status.bytes_sent += frame.len() as u64;
        Some(frame)
    }

    /// Reads what there is to send and queues it for [`Session::poll_frame`]: blob wants,
    /// batches of local changes the other side lacks (while the window has room), blob bytes
    /// the other side wants, then a digest once caught up. Call it after each received frame
    /// and after local commits. It reads the replica's db_version once, and stops while the
    /// driver has `OUTBOX_FRAMES_TICK_MAX` (64) frames or a full event queue still to take
    /// (back-pressure: what stays unread waits in the replica). `Err` is a local failure.
    pub fn handle_tick(&mut self, replica: &Replica, now_ms: u64) -> Result<()> {
        self.started_ms.get_or_insert(now_ms);
        if self.phase != Phase::Running {
            return Ok(());
        }
        let local_version = replica.db_version()?;
        while self.phase == Phase::Running
            && self.outbox.len() < OUTBOX_FRAMES_TICK_MAX
            && self.events.len() + self.blobs.events_queued() < EVENTS_QUEUED_MAX
        {
            if !self.queue_next(replica, local_version, now_ms)? {
                break;
            }
        }
        self.status.blobs = self.blobs.status().clone();
        Ok(())
    }

    /// Queues the next frame there is to send; `false` when there is none.
    fn queue_next(&mut self, replica: &Replica, local_version: u64, now_ms: u64) -> Result<bool> {
        self.blobs.want_more(replica, now_ms)?;
        self.blobs.check_unserved(replica, now_ms)?;
        if let Some(message) = self.blobs.next_control() {
            self.queue(message);
            return Ok(true);
        }
        if self.reconciler.as_ref().is_some_and(|r| !r.is_finished()) {
            // What to send is not known until reconciliation ends.
            return Ok(false);
        }
        if self.in_flight.len() < WINDOW_BATCHES
            && self.queue_next_batch(replica, local_version, now_ms)?
        {
            return Ok(true);
        }
        if let Some(message) = self.blobs.next_chunk(replica)? {
            self.queue(message);
            return Ok(true);
        }
        let queued = self.outbox.len();
        self.maybe_send_digest(replica, local_version, now_ms)?;
        Ok(self.outbox.len() > queued)
    }

    fn send_hello(&mut self, replica: &Replica, resume: Vec<Resume>) -> Result<()> {
        let reconcile = self.reconcile_asked;
        let hello = Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            site: self.site,
            incarnation: self.incarnation,
            role: self.config.role,
            database: self.config.database.clone(),
            db_version: replica.db_version()?,
            resume,
            reconcile,
        });
        let frame = encode_frame(&hello);
        self.hello_frame = Some(frame.clone());
        self.outbox.push_back(frame);
        Ok(())
    }

    fn on_hello(&mut self, replica: &Replica, hello: Hello, now_ms: u64) -> Result<(), StepError> {
        if hello.protocol != PROTOCOL_VERSION {
            return Err(StepError::Protocol(FrameError::new(
                ErrorCode::UnsupportedProtocol,
                format!(
                    "this side speaks protocol {PROTOCOL_VERSION}, the other side {}",
                    hello.protocol
                ),
            )));
        }
        if hello.database != self.config.database {
            return Err(StepError::Protocol(FrameError::new(
                ErrorCode::WrongDatabase,
                format!(
                    "connected to database {:?}, the hello names {:?}",
                    self.config.database, hello.database
                ),
            )));
        }
        if self.config.role == Role::Server
            && hello.role == Role::Peer
            && self.config.accept_peer
            && !self.initiator
        {
            // A server answering a peer: from now on it is a peer too (its hello says so).
            self.config.role = Role::Peer;
        }
        let roles_fit = matches!(
            (self.config.role, hello.role),
            (Role::Client, Role::Server) | (Role::Server, Role::Client) | (Role::Peer, Role::Peer)
        );
        if !roles_fit {
            return Err(StepError::Protocol(FrameError::new(
                ErrorCode::WrongRole,
                format!(
                    "a {:?} cannot sync with a {:?}",
                    self.config.role, hello.role
                ),
            )));
        }
        if hello.site == self.site {
            return Err(StepError::Protocol(FrameError::new(
                ErrorCode::SameSite,
                format!(
                    "both sides have site id {}: a replica file was copied; give the copy a new site",
                    self.site
                ),
            )));
        }
        let peer = Peer {
            site: hello.site,
            incarnation: hello.incarnation,
        };
        let stored = replica.peer_cursor(&peer.site)?;
        let mut recv_known = true;
        // A cursor of this life of the other side past its db_version: it is an older copy of
        // itself. A responder tells it so by answering with that cursor.
        let stale = stored
            .as_ref()
            .filter(|p| p.incarnation == peer.incarnation && p.cursor.since > hello.db_version)
            .map(|p| p.cursor.clone());
        self.recv_cursor = match stored {
            // A cursor past the other side's db_version means it went back in time (a copy
            // restored without a new incarnation): take everything again.
            Some(p) if p.incarnation == peer.incarnation && p.cursor.since <= hello.db_version => {
                self.recv_move = CursorMove::Forward;
                p.cursor
            }
            Some(_) => {
                // A new life of the other side, which may have lost what it once sent here:
                // stop assuming it holds those changes (see `Replica::changes_for`).
                replica.forget_merged_from(&peer.site)?;
                recv_known = false;
                Cursor::since(0)
            }
            None => {
                recv_known = false;
                Cursor::since(0)
            }
        };
        let local_version = replica.db_version()?;
        let mine = hello
            .resume
            .iter()
            .find(|r| r.site == self.site && r.incarnation == self.incarnation)
            .map(|r| r.cursor.clone());
        // Only a server's word counts (a client's cursor claim could be made up to force
        // every replica into reconciling with this one).
        let trusted = matches!(hello.role, Role::Server | Role::Peer);
        if trusted && mine.as_ref().is_some_and(|c| c.since > local_version) {
            // The other side holds more of this life of this replica than it has: this is an
            // older copy (restored from a backup, or a crash lost its last commits). Its next
            // commits would reuse db_versions that others already hold under this
            // incarnation, and they would skip them: start a new life at once.
            let renewed = replica.renew_incarnation()?;
            tracing::warn!(
                site = %self.site,
                db_version = local_version,
                "a peer holds changes of this replica past its db_version: it is an older copy; \
                 renewed its incarnation"
            );
            if !self.initiator {
                self.incarnation = renewed;
            }
        }
        // A cursor past what this replica holds belongs to a copy of it: trust nothing.
        let resumed = mine.filter(|c| c.since <= local_version);
        let send_known = resumed.is_some();
        self.send_cursor = resumed.unwrap_or_else(|| Cursor::since(0));
        // Without a cursor either way while both sides hold data, compare before sending:
        // the responder decides and says so in its hello.
        let reconcile = if self.initiator {
            hello.reconcile
        } else {
            (!send_known || !recv_known) && hello.db_version > 0 && local_version > 0
        };
        if reconcile {
            self.recv_cursor = Cursor::since(0);
            self.recv_move = CursorMove::StartOver;
            self.send_cursor = Cursor::since(0);
            self.reconcile_asked = !self.initiator;
            let (reconciler, first) = Reconciler::start(replica, self.initiator)?;
            self.reconciler = Some(reconciler);
            self.status.reconciling = true;
            if let Some(first) = first {
                self.send_round(first, now_ms);
            }
        }
        self.resume_reply = stale.unwrap_or_else(|| self.recv_cursor.clone());
        if !self.initiator {
            let resume = vec![Resume {
                site: peer.site,
                incarnation: peer.incarnation,
                cursor: self.resume_reply.clone(),
            }];
            self.send_hello(replica, resume)?;
        }
        self.peer = Some(peer);
        self.phase = Phase::Running;
        self.status.peer = Some(peer.site);
        self.status.peer_db_version = hello.db_version;
        self.status.received_through = self.recv_cursor.since;
        self.events.push_back(SessionEvent::Connected {
            site: peer.site,
            role: hello.role,
            db_version: hello.db_version,
            resume_from: self.recv_cursor.since,
        });
        Ok(())
    }

    /// A hello again from the same side (a duplicate, or a resend because the answer was
    /// lost): the responder answers again; anything else is ignored.
    fn on_repeated_hello(&mut self, replica: &Replica, hello: Hello) -> Result<(), StepError> {
        let same = self
            .peer
            .is_some_and(|p| p.site == hello.site && p.incarnation == hello.incarnation);
        if same && !self.initiator {
            let resume = vec![Resume {
                site: hello.site,
                incarnation: hello.incarnation,
                cursor: self.resume_reply.clone(),
            }];
            self.send_hello(replica, resume)?;
        }
        Ok(())
    }

    /// A batch, with its rows as the frame decoder left them (checksum and count checked).
    fn on_changes(
        &mut self,
        replica: &Replica,
        batch: Changes,
        rows: Result<Vec<Change>, FrameError>,
    ) -> Result<(), StepError> {
        let peer = self.peer.expect("running sessions know their peer");
        let changes = rows?;
        if batch.from != self.recv_cursor {
            // A duplicate of a batch already applied, or one that overtook a lost one: tell
            // the sender where this side stands.
            let resend = batch.to != self.recv_cursor;
            self.queue(Message::Ack(Ack {
                to: self.recv_cursor.clone(),
                resend,
            }));
            return Ok(());
        }
        if batch.to.since < batch.from.since {
            return Err(StepError::Protocol(FrameError::new(
                ErrorCode::OutOfRange,
                "a batch ends before it starts",
            )));
        }
        let (accepted, refused) = self.authorize(changes);
        let received = PeerCursor {
            site: peer.site,
            incarnation: peer.incarnation,
            cursor: batch.to.clone(),
        };
        let report = match replica.apply_changes_from(&accepted, &received, self.recv_move) {
            Ok(report) => {
                self.blobs.on_applied(replica, &accepted);
                report
            }
            Err(error) if refused_by_schema(&error) => {
                // Not a local failure: the other side's batch breaks this side's schema, and
                // the constraint it breaks is what the other side needs to know.
                return Err(StepError::Protocol(FrameError::new(
                    ErrorCode::ApplyFailed,
                    truncate(format!("could not apply a batch: {error}")),
                )));
            }
            Err(error) => return Err(StepError::Local(error)),
        };
        if let Some((count, reason, sample)) = refused {
            self.events.push_back(SessionEvent::Refused {
                count,
                reason: reason.clone(),
            });
            self.queue(Message::Reject(Reject {
                from: batch.from.clone(),
                to: batch.to.clone(),
                count,
                reason,
                sample,
            }));
        }
        self.recv_cursor = batch.to.clone();
        self.recv_move = CursorMove::Forward;
        self.status.received_through = self.recv_cursor.since.max(
            self.recv_cursor
                .position
                .as_ref()
                .map_or(0, |p| p.db_version.saturating_sub(1)),
        );
        self.status.changes_received += batch.count as u64;
        self.queue(Message::Ack(Ack {
            to: batch.to,
            resend: false,
        }));
        self.events.push_back(SessionEvent::Applied {
            db_version: report.db_version,
            changes: batch.count as usize,
            received_through: self.status.received_through,
        });
        if batch.count > 0 {
            self.status.in_sync = false;
        }
        if batch.done {
            if !self.status.pulled_all {
                self.events.push_back(SessionEvent::CaughtUp);
            }
            self.status.pulled_all = true;
        } else {
            self.status.pulled_all = false;
        }
        Ok(())
    }

    /// Splits received changes into those the authorizer accepts and a summary of the rest.
    #[allow(clippy::type_complexity)]
    fn authorize(
        &self,
        changes: Vec<Change>,
    ) -> (
        Vec<Change>,
        Option<(u64, String, Vec<(String, Vec<crate::Value>)>)>,
    ) {
        let Some(authorizer) = &self.config.authorizer else {
            return (changes, None);
        };
        let mut accepted = Vec::with_capacity(changes.len());
        let mut refused: Option<(u64, String, Vec<(String, Vec<crate::Value>)>)> = None;
        for change in changes {
            match authorizer.authorize(&change) {
                Ok(()) => accepted.push(change),
                Err(reason) => {
                    let entry = refused.get_or_insert_with(|| (0, truncate(reason), Vec::new()));
                    entry.0 += 1;
                    let row = (change.table.to_string(), change.pk);
                    if entry.2.len() < REJECT_SAMPLE_MAX && !entry.2.contains(&row) {
                        entry.2.push(row);
                    }
                }
            }
        }
        (accepted, refused)
    }

    fn on_ack(&mut self, replica: &Replica, ack: Ack, now_ms: u64) -> Result<(), StepError> {
        if let Some(index) = self.in_flight.iter().position(|f| f.to == ack.to) {
            for acknowledged in self.in_flight.drain(..=index) {
                self.status.changes_acknowledged += acknowledged.changes as u64;
                self.events.push_back(SessionEvent::Acknowledged {
                    changes: acknowledged.changes,
                });
            }
        }
        if ack.resend {
            let local_version = replica.db_version()?;
            self.go_back(ack.to, now_ms, local_version);
        }
        Ok(())
    }

    /// Sends again from `cursor`, where the other side durably stands (a cursor it can only
    /// have from this side, as in a hello), unless this side just did so from the same cursor.
    fn go_back(&mut self, cursor: Cursor, now_ms: u64, local_version: u64) {
        // As in a hello: a cursor past what this replica holds was made by another copy of it.
        let cursor = if cursor.since > local_version {
            Cursor::since(0)
        } else {
            cursor
        };
        let repeated = self
            .last_resend
            .as_ref()
            .is_some_and(|(c, t)| *c == cursor && now_ms < t + RESEND_AFTER_MS / 4);
        if repeated {
            return;
        }
        self.last_resend = Some((cursor.clone(), now_ms));
        self.in_flight.clear();
        self.send_cursor = cursor;
        self.read_all_through = None;
        self.last_sent_done = false;
        self.status.pushed_all = false;
    }

    /// Reads and queues the next batch, if there is anything to send (`true` if it queued a
    /// frame: the batch, or the error that closed the session).
    fn queue_next_batch(
        &mut self,
        replica: &Replica,
        local_version: u64,
        now_ms: u64,
    ) -> Result<bool> {
        if self
            .read_all_through
            .is_some_and(|through| through >= local_version)
        {
            return Ok(false);
        }
        let peer = self.peer.expect("running sessions know their peer").site;
        let mut echo_reads = 0;
        // Reads may skip ahead past changes the other side holds; the batch finally sent
        // still starts where the other side stands (the last batch's end), and spans them.
        let mut read = self.send_cursor.clone();
        loop {
            let row_filter = match &self.send_filter {
                Some(Outcome::Rows(filter)) => Some(filter),
                _ => None,
            };
            // After reconciliation, rows the other side holds alike stay behind.
            let batch = replica.changes_for_rows(&peer, &read, self.batch_changes, row_filter)?;
            if batch.changes.is_empty() && !batch.done && echo_reads < ECHO_READS_MAX {
                // Everything read came from the other side: move on without a frame.
                echo_reads += 1;
                read = batch.next;
                continue;
            }
            if batch.changes.is_empty() && batch.done && self.last_sent_done {
                // Nothing new (a merge that changed nothing, say), and the other side knows
                // it has everything: nothing to say. The send cursor stays where the other
                // side stands, so the next batch starts there.
                self.read_all_through = Some(local_version);
                self.update_pushed_all();
                return Ok(false);
            }
            let rows = encode_rows(&batch.changes);
            let rows_count = batch.changes.len();
            let distinct_rows = batch
                .changes
                .chunk_by(|a, b| a.table == b.table && a.pk == b.pk)
                .count();
            if rows.len() > 2 * BATCH_BYTES_TARGET && distinct_rows > 1 {
                self.batch_changes = (self.batch_changes / 2).max(1);
                continue;
            }
            if rows.len() + 4096 > FRAME_BYTES_MAX {
                let row = &batch.changes[0];
                self.fail(FrameError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "row {:?} of table {} is {} bytes, larger than a frame may be",
                        row.pk,
                        row.table,
                        rows.len()
                    ),
                ));
                return Ok(true);
            }
            if rows.len() < BATCH_BYTES_TARGET / 2 && rows_count >= self.batch_changes {
                self.batch_changes =
                    (self.batch_changes * 2).min(replica.limits().changes_per_batch_max);
            }
            let message = Changes {
                from: self.send_cursor.clone(),
                to: batch.next.clone(),
                done: batch.done,
                count: rows_count as u32,
                checksum: blake3::hash(&rows).as_bytes().to_vec(),
                rows,
            };
            self.in_flight.push_back(InFlight {
                from: self.send_cursor.clone(),
                to: batch.next.clone(),
                changes: rows_count,
                sent_ms: now_ms,
            });
            self.last_sent_done = batch.done;
            if rows_count > 0 {
                self.status.in_sync = false;
            }
            self.send_cursor = batch.next;
            self.read_all_through = batch.done.then_some(local_version);
            self.status.pushed_all = false;
            self.queue(Message::Changes(message));
            return Ok(true);
        }
    }

    fn update_pushed_all(&mut self) {
        self.status.pushed_all = self.in_flight.is_empty() && self.read_all_through.is_some();
    }

    /// Queues a digest when this side has pulled and pushed everything, once per state.
    fn maybe_send_digest(
        &mut self,
        replica: &Replica,
        local_version: u64,
        now_ms: u64,
    ) -> Result<()> {
        self.update_pushed_all();
        if !(self.status.pulled_all && self.status.pushed_all) {
            return Ok(());
        }
        let fetching = self.blobs.status().fetching;
        let at = (local_version, self.recv_cursor.clone(), fetching);
        match &mut self.digest_sent {
            Some(sent) if sent.at == at => {
                // Compared already; ask again a few times while the answer was "differs" (the
                // other side may have compared while it was still catching up).
                if self.status.in_sync || sent.tries >= DIGEST_TRIES_MAX || now_ms < sent.retry_ms {
                    return Ok(());
                }
                sent.tries += 1;
                sent.retry_ms = now_ms + DIGEST_RETRY_MS;
            }
            _ => {
                self.digest_sent = Some(DigestSent {
                    at,
                    tries: 1,
                    retry_ms: now_ms + DIGEST_RETRY_MS,
                })
            }
        }
        let digest = replica.digest()?;
        self.queue_digest(local_version, digest, false);
        Ok(())
    }

    fn queue_digest(&mut self, db_version: u64, digest: Digest, reply: bool) {
        let fetching = self.blobs.status().fetching;
        self.queue(Message::Digest(DigestMessage {
            db_version,
            state_hash: digest.to_bytes().to_vec(),
            reply,
            fetching,
        }));
    }

    fn on_digest(&mut self, replica: &Replica, message: DigestMessage) -> Result<(), StepError> {
        let remote = Digest::from_bytes(&message.state_hash)
            .ok_or_else(|| FrameError::new(ErrorCode::WrongLength, "a digest is 32 bytes"))?;
        self.blobs.set_peer_fetching(message.fetching);
        self.update_pushed_all();
        if !(self.status.pulled_all && self.status.pushed_all) {
            // This side has news the other lacks, or the reverse: compare after it moves.
            return Ok(());
        }
        let local = replica.digest()?;
        if !message.reply {
            // The other side may have ignored this side's digest while it was catching up.
            let version = replica.db_version()?;
            self.queue_digest(version, local, true);
        }
        if local == remote {
            self.status.in_sync = true;
            self.events
                .push_back(SessionEvent::InSync { digest: local });
        } else {
            self.status.in_sync = false;
            self.events
                .push_back(SessionEvent::DigestMismatch { local, remote });
        }
        Ok(())
    }

    fn on_reconcile(
        &mut self,
        replica: &Replica,
        round: Reconcile,
        now_ms: u64,
    ) -> Result<(), StepError> {
        let Some(reconciler) = self.reconciler.as_mut() else {
            return Err(StepError::Protocol(FrameError::new(
                ErrorCode::UnexpectedMessage,
                "a reconcile round, but neither hello asked to reconcile",
            )));
        };
        match reconciler.on_round(replica, round) {
            Ok(RoundReply::Send(answer)) => self.send_round(answer, now_ms),
            Ok(RoundReply::Repeat) => {
                if let Some(frame) = reconciler.last_sent() {
                    self.outbox.push_back(frame.to_vec());
                }
            }
            Ok(RoundReply::Ignore | RoundReply::Finished) => {}
            Err(RoundError::Bad(message)) => {
                return Err(StepError::Protocol(FrameError::new(
                    ErrorCode::MalformedRound,
                    message,
                )))
            }
            Err(RoundError::Local(error)) => return Err(StepError::Local(error)),
        }
        let Some(reconciler) = self.reconciler.as_mut() else {
            return Ok(());
        };
        if let Some(outcome) = reconciler.take_outcome() {
            let stats = reconciler.stats().clone();
            self.send_filter = Some(outcome);
            self.status.reconciling = false;
            self.events.push_back(SessionEvent::Reconciled {
                rows_to_send: stats.rows_to_send,
                rows_wanted: stats.rows_wanted,
                fallback: stats.fallback,
            });
            self.status.reconciled = Some(stats);
        }
        Ok(())
    }

    /// Queues a reconcile round, keeping its frame to send again if need be.
    fn send_round(&mut self, round: Reconcile, now_ms: u64) {
        let number = round.round;
        let frame = encode_frame(&Message::Reconcile(round));
        if let Some(reconciler) = self.reconciler.as_mut() {
            reconciler.sent(number, frame.clone(), now_ms);
        }
        self.outbox.push_back(frame);
    }

    fn queue(&mut self, message: Message) {
        self.outbox.push_back(encode_frame(&message));
    }

    /// Ends the session on a local failure: the other side hears `internal` and no more (the
    /// failure's text may name local paths and tables); the application's event names it.
    fn fail_locally(&mut self, error: &Error) {
        if self.phase == Phase::Closed {
            return;
        }
        self.outbox.clear();
        self.queue(Message::Error(ErrorMessage {
            code: ErrorCode::Internal,
            message: "the other side failed locally and closed the session".into(),
        }));
        self.phase = Phase::Closed;
        self.events.push_back(SessionEvent::Closed {
            code: ErrorCode::Internal,
            message: truncate(error.to_string()),
            by_peer: false,
        });
    }

    /// Ends the session: an error frame for the other side and an event for the application.
    fn fail(&mut self, error: FrameError) {
        if self.phase == Phase::Closed {
            return;
        }
        let message = truncate(error.message);
        self.outbox.clear();
        self.queue(Message::Error(ErrorMessage {
            code: error.code,
            message: message.clone(),
        }));
        self.phase = Phase::Closed;
        self.events.push_back(SessionEvent::Closed {
            code: error.code,
            message,
            by_peer: false,
        });
    }
}

/// Whether applying failed because this replica's schema refuses the changes (a constraint,
/// a STRICT type, an invalid change), as opposed to a passing local failure (a lock, the disk).
fn refused_by_schema(error: &crate::Error) -> bool {
    use rusqlite::ErrorCode as Code;
    match error {
        crate::Error::InvalidChange { .. } | crate::Error::InvalidKey(_) => true,
        crate::Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
            matches!(e.code, Code::ConstraintViolation | Code::TypeMismatch)
        }
        _ => false,
    }
}

/// Cuts a text to what a message may carry, on a character boundary.
fn truncate(mut text: String) -> String {
    let end = cut_text(&text, TEXT_BYTES_MAX).len();
    text.truncate(end);
    text
}
