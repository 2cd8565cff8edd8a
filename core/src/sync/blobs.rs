//! Blob bytes over the sync connection: the part of a session that fetches the blobs its
//! listing names and its store lacks, and serves the blobs the other side wants.
//!
//! ```text
//!   fetching side                               serving side
//!   blob_want{hash, offset} ──────────►                     (offset: a partial copy's end)
//!                           ◄────────── blob_data{hash, offset, size, bytes}  (in order, chunked)
//!                           ◄────────── ...last chunk ends at size
//!   blob_have{hash} ──────────────────►                     (verified and stored: a receipt)
//!
//!   blob_want{hash, 0} ───────────────►
//!                           ◄────────── blob_missing{hash}  (not here yet)
//!                           ◄────────── blob_have{hash}     (arrived later: want it again)
//! ```
//!
//! What to fetch: the hashes in received listing changes (winning or not, so both sides of a
//! concurrent put reach a server and stay until garbage collection), and a scan of live
//! entries whose bytes are not held. Lazy buckets are left out on a client. At most
//! [`WANTS_IN_FLIGHT`] wants are open at once; chunks are appended to a partial file and
//! hashed on the way, and nothing is published before the whole blob matches its hash. A
//! cut connection leaves the partial file; the next want starts where it ends.

use super::event::SessionEvent;
use super::limits::{
    CANDIDATES_MAX, PARKED_MAX, PARKED_RETRY_MS, READ_AHEAD_BYTES, REFUSED_MAX, RESCAN_MS,
    SCAN_PAGE, SERVES_MAX, UNSERVED_CHECK_MS, UNSERVED_MAX, WANTS_IN_FLIGHT,
};
use super::message::{check_length, BlobData, BlobRef, BlobWant, ErrorCode, FrameError, Message};
use super::step_error::StepError;
use crate::blobs::staging::{Incoming, IncomingError};
use crate::blobs::{BlobHash, BlobStore, BLOB_CHUNK_BYTES, BUCKET_TABLE};
use crate::replica::Replica;
use crate::rules::change::Change;
use crate::rules::value::Value;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Which blobs a side fetches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobFetch {
    /// Those of every bucket (a server).
    All,
    /// Those of every bucket not set lazy on this replica (a client's default).
    Eager,
    /// These only (a read of a lazy bucket's entry), then nothing more.
    Only(Vec<BlobHash>),
    /// None (still serving those the other side wants).
    Nothing,
}

/// What blob transfer did in a session, for status displays and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobStatus {
    /// Whether this side still fetches (wants queued, open, or a scan not finished).
    pub fetching: bool,
    /// Whether the other side said, in its last digest, that it still fetches from this one.
    pub peer_fetching: bool,
    /// Blobs received, verified and stored.
    pub received: u64,
    /// Their bytes received in this session (a resumed blob counts what it still needed).
    pub bytes_received: u64,
    /// Blobs the other side confirmed it stored after this side sent them.
    pub sent: u64,
    /// Blob bytes sent.
    pub bytes_sent: u64,
    /// Wanted blobs the other side did not hold (yet).
    pub missing: u64,
    /// Blobs refused: their bytes did not match their hash.
    pub refused: u64,
}

/// A want this side has open, with the claimed partial file its bytes go to.
#[derive(Debug)]
struct Want {
    incoming: Incoming,
    asked_offset: u64,
    asked_ms: u64,
}

/// A blob this side is sending, with the bytes read ahead of the chunks sent.
#[derive(Debug)]
struct Serve {
    hash: BlobHash,
    next: u64,
    size: u64,
    /// Bytes read from the store; `ahead[at..]` starts at `next`.
    ahead: Vec<u8>,
    at: usize,
}

/// The blob part of one session. See the [module](self) documentation.
pub(crate) struct BlobExchange {
    store: Option<Arc<dyn BlobStore>>,
    fetch: BlobFetch,
    retry_ms: Option<u64>,
    candidates: VecDeque<BlobHash>,
    scan_after: Option<BlobHash>,
    scan_done: bool,
    /// The replica's db_version when the last scan started, and when.
    scanned_at: Option<(u64, u64)>,
    /// When a rescan the replica's changes call for is due (see [`RESCAN_MS`]).
    rescan_due_ms: Option<u64>,
    wanting: BTreeMap<BlobHash, Want>,
    parked: BTreeMap<BlobHash, u64>,
    refused: BTreeSet<BlobHash>,
    serving: VecDeque<Serve>,
    unserved: BTreeSet<BlobHash>,
    unserved_checked_ms: u64,
    control: VecDeque<Message>,
    events: VecDeque<SessionEvent>,
    status: BlobStatus,
}

impl BlobExchange {
    /// An exchange over `store` (none: answer every want with "missing", fetch nothing).
    pub(crate) fn new(
        store: Option<Arc<dyn BlobStore>>,
        fetch: BlobFetch,
        retry_ms: Option<u64>,
    ) -> BlobExchange {
        let fetch = if store.is_some() {
            fetch
        } else {
            BlobFetch::Nothing
        };
        let (candidates, scan_done) = match &fetch {
            BlobFetch::Only(hashes) => (hashes.iter().copied().collect(), true),
            BlobFetch::Nothing => (VecDeque::new(), true),
            BlobFetch::All | BlobFetch::Eager => (VecDeque::new(), false),
        };
        let mut exchange = BlobExchange {
            store,
            fetch,
            retry_ms,
            candidates,
            scan_after: None,
            scan_done,
            scanned_at: None,
            rescan_due_ms: None,
            wanting: BTreeMap::new(),
            parked: BTreeMap::new(),
            refused: BTreeSet::new(),
            serving: VecDeque::new(),
            unserved: BTreeSet::new(),
            unserved_checked_ms: 0,
            control: VecDeque::new(),
            events: VecDeque::new(),
            status: BlobStatus::default(),
        };
        exchange.update_fetching();
        exchange
    }

    /// Where blob transfer stands.
    pub(crate) fn status(&self) -> &BlobStatus {
        &self.status
    }

    /// Records the other side's word on whether it still fetches from this side.
    pub(crate) fn set_peer_fetching(&mut self, fetching: bool) {
        self.status.peer_fetching = fetching;
    }

    /// The next event, if any.
    /// Events waiting for the session to hand them out.
    pub(crate) fn events_queued(&self) -> usize {
        self.events.len()
    }

    pub(crate) fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn lazy_too(&self) -> bool {
        self.fetch == BlobFetch::All
    }

    fn fetches_listings(&self) -> bool {
        matches!(self.fetch, BlobFetch::All | BlobFetch::Eager)
    }

    fn update_fetching(&mut self) {
        self.status.fetching =
            !self.wanting.is_empty() || !self.candidates.is_empty() || !self.scan_done;
    }

    /// Notes the hashes that merged listing changes name (winning or not).
    pub(crate) fn on_applied(&mut self, replica: &Replica, changes: &[Change]) {
        if !self.fetches_listings() {
            return;
        }
        for change in changes {
            if &*change.table != BUCKET_TABLE || change.column.as_deref() != Some("hash") {
                continue;
            }
            let Value::Text(text) = &change.value else {
                continue;
            };
            let Ok(hash) = text.parse::<BlobHash>() else {
                continue;
            };
            if !self.lazy_too() {
                let lazy = match change.pk.first() {
                    Some(Value::Text(bucket)) => replica.buckets().is_lazy(bucket).unwrap_or(false),
                    _ => false,
                };
                if lazy {
                    continue;
                }
            }
            if self.candidates.len() >= CANDIDATES_MAX {
                // Too many at once: read them from the listing instead (live entries only).
                self.scan_after = None;
                self.scan_done = false;
                continue;
            }
            self.candidates.push_back(hash);
        }
        self.update_fetching();
    }

    /// Opens wants while there is room and something to want. Returns a local failure.
    pub(crate) fn want_more(&mut self, replica: &Replica, now_ms: u64) -> crate::Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        self.retry_parked(now_ms);
        self.maybe_rescan(replica, now_ms)?;
        while self.wanting.len() < WANTS_IN_FLIGHT {
            let Some(hash) = self.next_candidate(replica, now_ms)? else {
                break;
            };
            if self.wanting.contains_key(&hash)
                || self.parked.contains_key(&hash)
                || self.refused.contains(&hash)
                || replica.buckets().is_held(&hash)?
            {
                continue;
            }
            match Incoming::claim(store.staging_dir(), hash)? {
                Some(incoming) => self.ask(hash, incoming.received(), now_ms, incoming),
                None => {
                    // Another conversation is receiving it: look again later.
                    if self.parked.len() < PARKED_MAX {
                        self.parked.insert(hash, now_ms);
                    }
                }
            }
        }
        self.update_fetching();
        Ok(())
    }

    /// Starts a new scan of the listing when the last one is done, the replica changed since
    /// it started, and [`RESCAN_MS`] passed: an entry may have arrived through another
    /// conversation while only this one's peer holds its bytes.
    fn maybe_rescan(&mut self, replica: &Replica, now_ms: u64) -> crate::Result<()> {
        if !self.fetches_listings() || !self.scan_done || !self.candidates.is_empty() {
            return Ok(());
        }
        let Some((at_version, at_ms)) = self.scanned_at else {
            return Ok(());
        };
        if self.rescan_due_ms.is_some_and(|due| now_ms < due) {
            // The replica is known to have changed; the rescan is already due then.
            return Ok(());
        }
        let version = replica.db_version()?;
        if version <= at_version {
            return Ok(());
        }
        if now_ms < at_ms + RESCAN_MS {
            // Not yet: come back then (poll_timeout).
            self.rescan_due_ms = Some(at_ms + RESCAN_MS);
            return Ok(());
        }
        self.rescan_due_ms = None;
        self.scan_after = None;
        self.scan_done = false;
        Ok(())
    }

    fn next_candidate(
        &mut self,
        replica: &Replica,
        now_ms: u64,
    ) -> crate::Result<Option<BlobHash>> {
        if let Some(hash) = self.candidates.pop_front() {
            return Ok(Some(hash));
        }
        if self.scan_done {
            return Ok(None);
        }
        if self.scan_after.is_none() {
            // A scan from the start: what a later rescan compares the replica with.
            self.scanned_at = Some((replica.db_version()?, now_ms));
        }
        let page =
            replica
                .buckets()
                .missing(self.scan_after.as_ref(), SCAN_PAGE, self.lazy_too())?;
        self.scan_done = page.len() < SCAN_PAGE;
        self.scan_after = page.last().copied();
        self.candidates.extend(page);
        Ok(self.candidates.pop_front())
    }

    fn ask(&mut self, hash: BlobHash, offset: u64, now_ms: u64, incoming: Incoming) {
        self.control.push_back(Message::BlobWant(BlobWant {
            hash: hash.0.to_vec(),
            offset,
        }));
        self.wanting.insert(
            hash,
            Want {
                incoming,
                asked_offset: offset,
                asked_ms: now_ms,
            },
        );
    }

    fn retry_parked(&mut self, now_ms: u64) {
        let after = self.retry_ms.unwrap_or(PARKED_RETRY_MS);
        let due: Vec<BlobHash> = self
            .parked
            .iter()
            .filter(|(_, since)| now_ms >= **since + after)
            .map(|(hash, _)| *hash)
            .collect();
        for hash in due {
            self.parked.remove(&hash);
            if self.candidates.len() < CANDIDATES_MAX {
                self.candidates.push_back(hash);
            }
        }
    }

    /// On a lossy transport: wants unanswered for the resend delay are asked again from
    /// where their bytes stand.
    pub(crate) fn handle_timeout(&mut self, now_ms: u64) {
        let Some(after) = self.retry_ms else {
            return;
        };
        let stale: Vec<BlobHash> = self
            .wanting
            .iter()
            .filter(|(_, w)| now_ms >= w.asked_ms + after)
            .map(|(hash, _)| *hash)
            .collect();
        for hash in stale {
            if let Some(want) = self.wanting.remove(&hash) {
                self.ask(hash, want.incoming.received(), now_ms, want.incoming);
            }
        }
    }

    /// When [`BlobExchange::handle_timeout`] or a look for unserved bytes is next due.
    pub(crate) fn poll_timeout(&self) -> Option<u64> {
        let resend = self
            .retry_ms
            .and_then(|after| self.wanting.values().map(|w| w.asked_ms + after).min());
        let parked = self
            .parked
            .values()
            .min()
            .map(|since| since + self.retry_ms.unwrap_or(PARKED_RETRY_MS));
        let unserved =
            (!self.unserved.is_empty()).then_some(self.unserved_checked_ms + UNSERVED_CHECK_MS);
        [resend, parked, unserved, self.rescan_due_ms]
            .into_iter()
            .flatten()
            .min()
    }

    /// The other side wants a blob: serve it, or say it is missing.
    pub(crate) fn on_want(&mut self, replica: &Replica, want: BlobWant) -> Result<(), StepError> {
        let hash = parse_hash(&want.hash)?;
        let held = match &self.store {
            Some(_) => replica.buckets().held_size(&hash)?,
            None => None,
        };
        let Some(size) = held else {
            if self.store.is_some() && self.unserved.len() < UNSERVED_MAX {
                self.unserved.insert(hash);
            }
            self.control
                .push_back(Message::BlobMissing(BlobRef { hash: want.hash }));
            return Ok(());
        };
        if want.offset > size {
            return Err(StepError::Protocol(FrameError::new(
                ErrorCode::OutOfRange,
                format!(
                    "a want of blob {hash} from byte {}, past its {size} bytes",
                    want.offset
                ),
            )));
        }
        if let Some(serve) = self.serving.iter_mut().find(|s| s.hash == hash) {
            // Asked again (a lost chunk, or a cut it noticed): start over from there.
            serve.next = want.offset;
            serve.ahead.clear();
            serve.at = 0;
            return Ok(());
        }
        if self.serving.len() >= SERVES_MAX {
            return Err(StepError::Protocol(FrameError::new(
                ErrorCode::TooManyWants,
                format!("more than {SERVES_MAX} blobs wanted at once"),
            )));
        }
        self.serving.push_back(Serve {
            hash,
            next: want.offset,
            size,
            ahead: Vec::new(),
            at: 0,
        });
        Ok(())
    }

    /// A chunk of a blob this side wants. Verified and stored when complete.
    pub(crate) fn on_data(
        &mut self,
        replica: &Replica,
        data: BlobData,
        now_ms: u64,
    ) -> Result<(), StepError> {
        let hash = parse_hash(&data.hash)?;
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let Some(want) = self.wanting.get_mut(&hash) else {
            // Not wanted (any more): nothing of it is stored.
            return Ok(());
        };
        let incoming = &mut want.incoming;
        if incoming.size().is_none() {
            incoming.start(data.size)?;
        }
        if incoming.size() != Some(data.size) {
            let reason = format!(
                "the sender gave blob {hash} a size of {:?} bytes, then {}",
                incoming.size(),
                data.size
            );
            if let Some(want) = self.wanting.remove(&hash) {
                want.incoming.discard();
            }
            self.refuse(hash, reason);
            return Ok(());
        }
        match incoming.append(data.offset, &data.bytes) {
            Ok(()) => {}
            Err(IncomingError::OutOfOrder { offset, received }) => {
                if offset > received && want.asked_offset != received {
                    // A chunk was lost: ask again from where the bytes end.
                    if let Some(want) = self.wanting.remove(&hash) {
                        self.ask(hash, received, now_ms, want.incoming);
                    }
                }
                // Else a repeat of a chunk already written: nothing to do.
                return Ok(());
            }
            Err(e @ (IncomingError::PastEnd { .. } | IncomingError::HashMismatch { .. })) => {
                // The frame's rules rule this out; refuse rather than trust that.
                if let Some(want) = self.wanting.remove(&hash) {
                    want.incoming.discard();
                }
                self.refuse(hash, e.to_string());
                return Ok(());
            }
            Err(IncomingError::Io(e)) => return Err(e.into()),
        }
        want.asked_ms = now_ms;
        self.status.bytes_received += data.bytes.len() as u64;
        let (received, size) = (incoming.received(), data.size);
        self.events.push_back(SessionEvent::BlobProgress {
            hash,
            done: received,
            size,
            incoming: true,
        });
        if received < size {
            return Ok(());
        }
        let Some(want) = self.wanting.remove(&hash) else {
            return Ok(());
        };
        match want.incoming.finish() {
            Ok(path) => {
                store.publish(&hash, &path)?;
                replica.buckets().mark_held(&hash, size)?;
                self.status.received += 1;
                self.unserved_checked_ms = 0;
                self.control
                    .push_back(Message::BlobHave(BlobRef { hash: data.hash }));
                self.events
                    .push_back(SessionEvent::BlobReceived { hash, size });
            }
            Err(IncomingError::HashMismatch { actual, .. }) => {
                self.refuse(
                    hash,
                    format!("its bytes hash to {actual}: refused, nothing stored"),
                );
            }
            Err(IncomingError::Io(e)) => return Err(e.into()),
            // `finish` reports only a mismatch or the disk; anything else is a local fault.
            Err(e) => return Err(std::io::Error::other(e).into()),
        }
        self.update_fetching();
        Ok(())
    }

    fn refuse(&mut self, hash: BlobHash, reason: String) {
        self.status.refused += 1;
        tracing::warn!(%hash, %reason, "refused a blob");
        self.events
            .push_back(SessionEvent::BlobRefused { hash, reason });
        if self.refused.len() < REFUSED_MAX {
            self.refused.insert(hash);
        } else {
            // A side that keeps sending wrong bytes gets no more wants from this session.
            self.candidates.clear();
            self.scan_done = true;
            self.fetch = BlobFetch::Nothing;
        }
        self.update_fetching();
    }

    /// The other side now holds a blob: a receipt for one this side sent, or news of one it
    /// wanted and was told was missing.
    pub(crate) fn on_have(&mut self, blob: BlobRef) -> Result<(), FrameError> {
        let hash = parse_hash(&blob.hash)?;
        if self.parked.remove(&hash).is_some() && self.candidates.len() < CANDIDATES_MAX {
            self.candidates.push_back(hash);
        } else {
            self.status.sent += 1;
            self.events.push_back(SessionEvent::BlobSent { hash });
        }
        self.update_fetching();
        Ok(())
    }

    /// The other side lacks a blob this side wanted: wait for its `blob_have`.
    pub(crate) fn on_missing(&mut self, blob: BlobRef, now_ms: u64) -> Result<(), FrameError> {
        let hash = parse_hash(&blob.hash)?;
        if self.wanting.remove(&hash).is_some() {
            self.status.missing += 1;
            if self.parked.len() < PARKED_MAX {
                self.parked.insert(hash, now_ms);
            }
            self.events.push_back(SessionEvent::BlobMissing { hash });
        }
        self.update_fetching();
        Ok(())
    }

    /// The next control message (want, have, missing), if any.
    pub(crate) fn next_control(&mut self) -> Option<Message> {
        self.control.pop_front()
    }

    /// Looks again, now and then, for bytes the other side wanted and this side lacked.
    pub(crate) fn check_unserved(&mut self, replica: &Replica, now_ms: u64) -> crate::Result<()> {
        if self.unserved.is_empty() || now_ms < self.unserved_checked_ms + UNSERVED_CHECK_MS {
            return Ok(());
        }
        self.unserved_checked_ms = now_ms;
        let mut arrived = Vec::new();
        for hash in &self.unserved {
            if replica.buckets().is_held(hash)? {
                arrived.push(*hash);
            }
        }
        for hash in arrived {
            self.unserved.remove(&hash);
            self.control.push_back(Message::BlobHave(BlobRef {
                hash: hash.0.to_vec(),
            }));
        }
        Ok(())
    }

    /// The next chunk of a blob being served, if any (blobs take turns, a chunk each).
    pub(crate) fn next_chunk(&mut self, replica: &Replica) -> crate::Result<Option<Message>> {
        let Some(store) = self.store.clone() else {
            return Ok(None);
        };
        while let Some(mut serve) = self.serving.pop_front() {
            let len = (serve.size - serve.next).min(BLOB_CHUNK_BYTES as u64) as usize;
            if serve.ahead.len() - serve.at < len {
                let want = (serve.size - serve.next).min(READ_AHEAD_BYTES as u64) as usize;
                serve.ahead = match store.read_at(&serve.hash, serve.next, want) {
                    Ok(bytes) if bytes.len() == want => bytes,
                    _ => Vec::new(),
                };
                serve.at = 0;
            }
            let bytes = match serve.ahead.get(serve.at..serve.at + len) {
                Some(chunk) => {
                    serve.at += len;
                    chunk.to_vec()
                }
                None => {
                    // Gone from the store (or shorter than recorded): it is not held after all.
                    tracing::warn!(hash = %serve.hash, store = %store.describe(),
                        "a blob recorded as held could not be read; forgetting it");
                    replica.buckets().forget_held(&serve.hash)?;
                    self.control.push_back(Message::BlobMissing(BlobRef {
                        hash: serve.hash.0.to_vec(),
                    }));
                    continue;
                }
            };
            let message = Message::BlobData(BlobData {
                hash: serve.hash.0.to_vec(),
                offset: serve.next,
                size: serve.size,
                bytes,
            });
            serve.next += len as u64;
            self.status.bytes_sent += len as u64;
            self.events.push_back(SessionEvent::BlobProgress {
                hash: serve.hash,
                done: serve.next,
                size: serve.size,
                incoming: false,
            });
            if serve.next < serve.size {
                self.serving.push_back(serve);
            }
            return Ok(Some(message));
        }
        Ok(None)
    }
}

fn parse_hash(bytes: &[u8]) -> Result<BlobHash, FrameError> {
    check_length("a blob hash", bytes, crate::sync::limits::HASH_BYTES)?;
    BlobHash::from_slice(bytes)
        .ok_or_else(|| FrameError::new(ErrorCode::WrongLength, "a blob hash is 32 bytes"))
}
