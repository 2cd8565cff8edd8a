//! The sync protocol as a sans-I/O state machine: frames in, frames and events out.
//!
//! One protocol, two roles: a client and a server, or two server peers, hold the same
//! conversation. Each side says where it stands in the other's changes (`Hello`), sends what
//! the other lacks in bounded, checksummed batches (`Changes`), and the receiver applies each
//! batch and records its cursor in one transaction before acknowledging it (`Ack`). When both
//! sides have sent everything they hold, they exchange state digests (`Digest`) and stay
//! connected, pushing each new commit. The transport (a WebSocket, or the deterministic
//! simulation in the tests) only moves frames; [`Session`] does the rest, and reads the time
//! only when handed it.
//!
//! ```text
//!   initiator                                   responder
//!   Hello{resume: cursors it holds} ─────────►
//!                                   ◄───────── Hello{resume: its cursor for the initiator}
//!   Changes{from,to,rows} ──────────►          ◄──────── Changes{from,to,rows}   (both ways,
//!                         ◄───────── Ack{to}   Ack{to} ─────►                    windowed)
//!   Digest ─────────────────────────►          ◄──────── Digest   (when both are caught up)
//! ```
//!
//! The wire format is specified in `docs/protocol.md`.

mod authorizer;
mod blobs;
mod decoded;
mod event;
pub(crate) mod fingerprint;
mod message;
pub mod reconcile;
mod rows;
mod session;

pub use authorizer::{AllowAll, Authorizer, ReadOnly};
pub use blobs::{BlobFetch, BlobStatus, SERVES_MAX, WANTS_IN_FLIGHT};
pub use decoded::{DecodedFrame, FrameDecoder};
pub use event::Event;
pub use message::{
    decode_frame, encode_frame, Ack, BlobData, BlobRef, BlobWant, Changes, DigestMessage,
    ErrorCode, ErrorMessage, Hello, Message, RangePart, RangeSplit, Reconcile, Reject, Resume,
    Role,
};
pub use rows::{decode_rows, encode_rows};
pub use session::{Session, SessionConfig, Status};

/// The protocol version this build speaks. A peer speaking another is refused with
/// [`ErrorCode::UnsupportedProtocol`].
pub const PROTOCOL_VERSION: u32 = 3;

/// The largest frame either side sends or accepts, in bytes. A row larger than this (its
/// values together) cannot be synced.
pub const FRAME_BYTES_MAX: usize = 64 << 20;

/// The size a `Changes` batch aims for, in bytes: big enough to amortise a transaction,
/// small enough to keep both sides' memory flat and the write lock short.
pub const BATCH_BYTES_TARGET: usize = 1 << 20;

/// Batches a sender keeps unacknowledged at once.
pub const WINDOW_BATCHES: usize = 4;

/// Cursors a `Hello` carries at most.
pub const RESUME_CURSORS_MAX: usize = 16;

/// Sample rows a `Reject` names at most.
pub const REJECT_SAMPLE_MAX: usize = 8;

/// Longest text (reason, message, database name) a message may carry, in bytes.
pub const TEXT_BYTES_MAX: usize = 4096;

/// On a transport that may lose frames, how long a batch may stay unacknowledged before the
/// sender sends again from the last acknowledged cursor, in milliseconds (the simulation's
/// setting; see `SessionConfig::resend_after_ms`). Over a WebSocket nothing is resent on a
/// timer: a slow peer would otherwise be sent everything again while it works.
pub const RESEND_AFTER_MS: u64 = 5_000;

/// How long a responder waits for the initiator's `Hello`, in milliseconds.
pub const HELLO_TIMEOUT_MS: u64 = 10_000;
