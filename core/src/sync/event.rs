//! What a session reports to the application as the conversation goes.

use super::message::{ErrorCode, Role};
use crate::blobs::BlobHash;
use crate::rules::digest::Digest;
use crate::rules::site::SiteId;

/// Something the application may want to know about one session: progress, results,
/// problems (taken with [`super::Session::poll_event`]).
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// The other side said hello.
    Connected {
        /// Its site id.
        site: SiteId,
        /// Its role.
        role: Role,
        /// Its db_version when it said hello: how much it may have to send.
        db_version: u64,
        /// Where this side resumes in its changes (0 = from the start).
        resume_from: u64,
    },
    /// A batch from the other side was merged.
    Applied {
        /// The local db_version it was stored at, if it changed anything.
        db_version: Option<u64>,
        /// Changes in the batch.
        changes: usize,
        /// How far into the other side's db_versions this side now is.
        received_through: u64,
    },
    /// The other side acknowledged a batch this side sent.
    Acknowledged {
        /// Changes in the acknowledged batches.
        changes: usize,
    },
    /// Range-based reconciliation ended: changes flow from here on.
    Reconciled {
        /// Rows this side found the other side lacks or holds differently, and will send.
        rows_to_send: u64,
        /// Rows this side asked the other side for.
        rows_wanted: u64,
        /// Whether the sides gave up comparing and send everything (one side held many times
        /// the rows of the other, or too many to index).
        fallback: bool,
    },
    /// This side has everything the other side held when it last looked.
    CaughtUp,
    /// Both sides are caught up and their state digests are equal.
    InSync {
        /// The common digest.
        digest: Digest,
    },
    /// Both sides are caught up but their digests differ: changes one side refused, or
    /// writes still in flight.
    DigestMismatch {
        /// This side's digest.
        local: Digest,
        /// The other side's.
        remote: Digest,
    },
    /// The other side refused changes this side sent. They stay in the local replica.
    Rejected {
        /// How many.
        count: u64,
        /// Why.
        reason: String,
    },
    /// This side refused changes the other side sent (its authorizer said no).
    Refused {
        /// How many.
        count: u64,
        /// Why.
        reason: String,
    },
    /// Bytes of a blob moved: received and written (`incoming`), or handed out to send.
    BlobProgress {
        /// The blob.
        hash: BlobHash,
        /// Its bytes received (or sent) so far, counting a partial copy from before.
        done: u64,
        /// Its size.
        size: u64,
        /// Whether it is coming in (else going out).
        incoming: bool,
    },
    /// A blob arrived whole, matched its hash, and is stored.
    BlobReceived {
        /// The blob.
        hash: BlobHash,
        /// Its size.
        size: u64,
    },
    /// The other side confirmed it stored a blob this side sent.
    BlobSent {
        /// The blob.
        hash: BlobHash,
    },
    /// The other side does not hold a blob this side wants (yet): it is fetched when the
    /// other side says it arrived.
    BlobMissing {
        /// The blob.
        hash: BlobHash,
    },
    /// A blob's bytes did not match its hash (or its sender contradicted itself): refused,
    /// nothing stored, not wanted again in this session.
    BlobRefused {
        /// The blob.
        hash: BlobHash,
        /// Why.
        reason: String,
    },
    /// The session ended: the other side reported an error, or this side found one.
    Closed {
        /// What went wrong.
        code: ErrorCode,
        /// In words.
        message: String,
        /// Whether the other side sent it (else this side closed).
        by_peer: bool,
    },
}
