//! Every bound and timing of the sync protocol, in one place: what a frame or message may
//! hold (a breach is a protocol error with its own code, see `docs/protocol.md`), how much a
//! session keeps queued, and how often it retries.
//!
//! Units are last in the names (`_bytes`, `_ms`); `_max` is a bound that is never exceeded.

use crate::blobs::BLOB_CHUNK_BYTES;

// The wire: what one frame or message may hold.

/// The largest frame either side sends or accepts, in bytes. A row larger than this (its
/// values together) cannot be synced.
pub const FRAME_BYTES_MAX: usize = 64 << 20;

/// Levels of nesting (arrays and maps within each other) a frame, a batch's rows or a bundle
/// frame may have. The deepest message nests about 8; the decoder recurses once per level,
/// and a fuzzed frame of 194 levels overflowed a test thread's stack in a debug build.
pub(crate) const NESTING_DEPTH_MAX: usize = 32;

/// Cursors a `Hello` carries at most.
pub(crate) const RESUME_CURSORS_MAX: usize = 16;

/// Sample rows a `Reject` names at most.
pub(crate) const REJECT_SAMPLE_MAX: usize = 8;

/// Longest text (reason, message, database name) a message may carry, in bytes.
pub(crate) const TEXT_BYTES_MAX: usize = 4096;

/// The length of every hash the protocol carries (a batch's checksum, a state digest, a
/// blob's hash), in bytes.
pub(crate) const HASH_BYTES: usize = 32;

// Sending changes.

/// The size a `Changes` batch aims for, in bytes: big enough to amortise a transaction,
/// small enough to keep both sides' memory flat and the write lock short.
pub(crate) const BATCH_BYTES_TARGET: usize = 1 << 20;

/// Batches a sender keeps unacknowledged at once.
pub(crate) const WINDOW_BATCHES: usize = 4;

/// Reads of nothing but the other side's own changes one step skips before it sends an empty
/// batch anyway (to bound the time one step takes, and show progress).
pub(crate) const ECHO_READS_MAX: usize = 64;

// Timings.

/// On a transport that may lose frames, how long a batch may stay unacknowledged before the
/// sender sends again from the last acknowledged cursor, in milliseconds (the simulation's
/// setting; see `SessionConfig::resend_after_ms`). Over a WebSocket nothing is resent on a
/// timer: a slow peer would otherwise be sent everything again while it works.
pub const RESEND_AFTER_MS: u64 = 5_000;

/// How long a responder waits for the initiator's `Hello`, in milliseconds.
pub(crate) const HELLO_TIMEOUT_MS: u64 = 10_000;

/// Times a side offers its digest for one state while the states differ.
pub(crate) const DIGEST_TRIES_MAX: u32 = 3;

/// Milliseconds between those offers.
pub(crate) const DIGEST_RETRY_MS: u64 = 1_000;

// A session's queues.

/// Frames a session's tick leaves queued at most: [`crate::sync::Session::handle_tick`] stops
/// reading changes and blob bytes while the driver has this many frames still to take
/// (back-pressure: what it would send waits in the replica, where it costs no memory).
pub(crate) const OUTBOX_FRAMES_TICK_MAX: usize = 64;

/// Frames a session queues for the driver at most, replies to received frames included. A
/// driver that feeds frames and takes none reaches it (a bug): the next step closes the
/// session with a typed error (`Error::LimitExceeded`), rather than grow without end. Replies
/// are small (acks, digests, blob answers) but for reconciliation rounds (a few MiB at most).
pub(crate) const OUTBOX_FRAMES_MAX: usize = 1024;

/// Events a session queues for the application at most. A tick reads nothing while this many
/// wait; a received frame finding them waiting means a driver that takes no events (a bug):
/// the session closes with a typed error (`Error::LimitExceeded`) rather than grow or drop
/// news the application counts on.
pub(crate) const EVENTS_QUEUED_MAX: usize = 4096;

// Blobs.

/// Blob wants a side keeps open at once.
pub(crate) const WANTS_IN_FLIGHT: usize = 4;

/// Blobs a side serves at once; a side that wants more is in breach of the protocol.
pub(crate) const SERVES_MAX: usize = 16;

/// Hashes waiting to be considered for a want; more overflow into a rescan of the listing.
pub(crate) const CANDIDATES_MAX: usize = 4096;

/// Hashes one scan of the listing reads.
pub(crate) const SCAN_PAGE: usize = 256;

/// Hashes the other side lacks that a side remembers (to want again when told they arrived).
pub(crate) const PARKED_MAX: usize = 1024;

/// Wants of the other side that this side could not serve and remembers (to tell it when
/// the bytes arrive).
pub(crate) const UNSERVED_MAX: usize = 1024;

/// Blobs that failed verification in one session; past this the session stops fetching.
pub(crate) const REFUSED_MAX: usize = 64;

/// How often a side looks again for bytes it was asked for and lacked, in milliseconds.
pub(crate) const UNSERVED_CHECK_MS: u64 = 500;

/// How long a parked want waits before it is asked again without news, in milliseconds (on a
/// reliable transport; a lossy one asks again after its resend delay).
pub(crate) const PARKED_RETRY_MS: u64 = 30_000;

/// How often, at most, a side scans the listing again for blobs it lacks once the replica
/// has changed (entries that arrived through another conversation, whose bytes this
/// conversation's peer may hold), in milliseconds.
pub(crate) const RESCAN_MS: u64 = 1_000;

/// Bytes one store read fetches for a blob being sent: a few chunks, so a store whose reads
/// cost a request each (S3) or a file open (a directory) is asked less often.
pub(crate) const READ_AHEAD_BYTES: usize = 4 * BLOB_CHUNK_BYTES;

// Range-based reconciliation.

/// Bytes per row in a listed part: the row hash (8) and the low 64 bits of its fingerprint
/// (8). Two different versions of a row agree on those with odds of 2^-64.
pub(crate) const LISTED_ROW_BYTES: u64 = 16;

/// Bytes of a range part's fingerprint sum.
pub(crate) const FINGERPRINT_BYTES: usize = 16;

/// Bytes of one wanted row hash.
pub(crate) const WANTED_ROW_BYTES: usize = 8;

/// Parts a range is split into when it differs.
pub(crate) const FANOUT: usize = 16;

/// A side lists its rows in a range that differs, instead of splitting it, when it holds at
/// most this many.
pub(crate) const LEAF_ROWS: u64 = 16;

/// When a side describes a range, a part where it holds at most this many rows is listed at
/// once: a listing costs no more than a summary.
pub(crate) const INLINE_ROWS: u64 = 1;

/// Ranges one round carries at most (a round of summaries stays under about 4 MiB).
pub(crate) const RANGES_PER_ROUND_MAX: usize = 8_192;

/// Row hashes one round asks for at most.
pub(crate) const WANTS_PER_ROUND_MAX: usize = 65_536;

/// Rows a side indexes at most: `RowIndex::BYTES_PER_ROW` bytes each (48 MiB), and up to
/// 56 while the index is built (112 MiB). Beyond it, both sides send everything instead.
pub(crate) const RECONCILE_ROWS_MAX: u64 = 2 << 20;

/// Rows a side marks to send at most; beyond it, it sends everything (a few bytes each).
pub(crate) const SEND_ROWS_MAX: usize = 1 << 20;

/// Reconciling pays when both sides hold rows and neither holds more than this many times
/// the other's; else one side is mostly new to the other and sending everything is cheaper.
pub(crate) const ROWS_RATIO_MAX: u64 = 8;
