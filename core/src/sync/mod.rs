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
mod limits;
mod message;
mod reconcile;
mod rows;
mod session;
mod step_error;

pub use authorizer::{AllowAll, Authorizer, ReadOnly};
pub use blobs::{BlobFetch, BlobStatus};
pub use decoded::{DecodedFrame, FrameDecoder};
pub use event::SessionEvent;
pub use limits::{FRAME_BYTES_MAX, RESEND_AFTER_MS};
pub(crate) use message::decode_whole;
pub use message::{
    decode_frame, encode_frame, Ack, BlobData, BlobRef, BlobWant, Changes, DigestMessage,
    ErrorCode, ErrorMessage, FrameError, Hello, Message, RangePart, RangeSplit, Reconcile, Reject,
    Resume, Role,
};
pub use reconcile::ReconcileStats;
pub use rows::{decode_rows, encode_rows};
pub use session::{Session, SessionConfig, Status};

/// The protocol version this build speaks. A peer speaking another is refused with
/// [`ErrorCode::UnsupportedProtocol`].
pub const PROTOCOL_VERSION: u32 = 3;
