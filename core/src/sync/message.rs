//! The protocol's messages and their frame encoding: one MessagePack map per frame, its kind
//! under `"type"`. `docs/protocol.md` specifies every field.

use super::limits::{
    FRAME_BYTES_MAX, HASH_BYTES, NESTING_DEPTH_MAX, REJECT_SAMPLE_MAX, RESUME_CURSORS_MAX,
    TEXT_BYTES_MAX,
};
use crate::blobs::{BLOB_BYTES_MAX, BLOB_CHUNK_BYTES};
use crate::rules::change::Cursor;
use crate::rules::site::{Incarnation, SiteId};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a side is in the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An app's replica, talking to a server.
    Client,
    /// A server answering a client.
    Server,
    /// A server talking to another server of the same organisation.
    Peer,
}

/// One frame of the protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Who I am and where I stand in your changes. The first message each way.
    Hello(Hello),
    /// A bounded batch of my changes you lack.
    Changes(Changes),
    /// I have durably applied your changes through this cursor.
    Ack(Ack),
    /// I am caught up both ways; this is my state.
    Digest(DigestMessage),
    /// I refused some of your changes, and why.
    Reject(Reject),
    /// One round of range-based reconciliation (cursors were unknown).
    Reconcile(Reconcile),
    /// Send me this blob's bytes from this offset.
    BlobWant(BlobWant),
    /// A chunk of a blob's bytes, answering a want.
    BlobData(BlobData),
    /// I now hold this blob (a receipt for one received, or news of one wanted earlier).
    BlobHave(BlobRef),
    /// I do not hold this blob (yet); a `blob_have` follows when I do.
    BlobMissing(BlobRef),
    /// Something is wrong; I close the connection after this.
    Error(ErrorMessage),
}

/// The opening message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the sender speaks ([`super::PROTOCOL_VERSION`]).
    pub protocol: u32,
    /// The sender's site id.
    pub site: SiteId,
    /// The sender's incarnation.
    pub incarnation: Incarnation,
    /// The sender's role.
    pub role: Role,
    /// The database this conversation syncs.
    pub database: String,
    /// The sender's latest db_version (lets the receiver show progress).
    pub db_version: u64,
    /// Cursors the sender holds into other replicas' changes: the receiver resumes from the
    /// one naming its own site and incarnation, and starts from zero if none does.
    pub resume: Vec<Resume>,
    /// Set by a responder that found a cursor unknown while both sides hold data: both sides
    /// reconcile by ranges (`reconcile` messages) before sending changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reconcile: bool,
}

/// How far one replica has applied another's changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resume {
    /// The replica whose changes these are.
    pub site: SiteId,
    /// Its incarnation when they were received.
    pub incarnation: Incarnation,
    /// How far.
    pub cursor: Cursor,
}

/// A batch of changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    /// The cursor the batch starts after: the receiver's cursor must be exactly this.
    pub from: Cursor,
    /// The receiver's cursor once it has applied the batch.
    pub to: Cursor,
    /// Whether the batch reaches the end of what the sender held when it read it.
    pub done: bool,
    /// How many changes `rows` holds.
    pub count: u32,
    /// The changes, encoded as specified in `docs/protocol.md` (see [`super::encode_rows`]).
    #[serde(with = "serde_bytes")]
    pub rows: Vec<u8>,
    /// BLAKE3 of `rows`, 32 bytes.
    #[serde(with = "serde_bytes")]
    pub checksum: Vec<u8>,
}

/// Acknowledges batches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The receiver's cursor after applying.
    pub to: Cursor,
    /// Set when a batch arrived that did not start at the receiver's cursor: the sender
    /// should send again from `to`.
    pub resend: bool,
}

/// A state digest, sent when the sender is caught up both ways.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestMessage {
    /// The sender's db_version when it computed the digest.
    pub db_version: u64,
    /// The sender's state digest, 32 bytes.
    #[serde(with = "serde_bytes")]
    pub state_hash: Vec<u8>,
    /// Whether this answers the other side's digest (which is then not answered again).
    pub reply: bool,
    /// Whether the sender still fetches blobs from the receiver (blob wants queued or
    /// unanswered). A side sends a new digest when this turns false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fetching: bool,
}

/// One round of range-based reconciliation. Rounds alternate: the initiator sends the odd
/// ones, the responder the even ones, each answering the last.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reconcile {
    /// The round's number, from 1.
    pub round: u32,
    /// The sender's row count, in rounds 1 and 2 (to decide whether reconciling pays).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The sender's state digest (32 bytes), in rounds 1 and 2: equal digests end
    /// reconciliation at once, before any row is indexed.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub digest: Option<Vec<u8>>,
    /// Ranges of row hashes, each split evenly into parts the sender describes.
    pub ranges: Vec<RangeSplit>,
    /// Row hashes whose rows the sender wants (8 bytes each, big-endian).
    #[serde(with = "serde_bytes")]
    pub want: Vec<u8>,
    /// The sender has nothing more to say: reconciliation is over for both sides.
    pub done: bool,
    /// The sender gives up reconciling (too many rows, or too different): both sides send
    /// everything instead.
    pub fallback: bool,
}

/// A range of row hashes `first..=last`, split evenly into `parts.len()` parts
/// (`HashRange::split`), each described by a [`RangePart`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RangeSplit(pub u64, pub u64, pub Vec<RangePart>);

/// One part of a [`RangeSplit`]: `(count, fingerprint, rows)`. Either a summary — the
/// number of rows the sender holds in it and the sum of their fingerprints (16 bytes,
/// big-endian), no rows — or the rows themselves: `count` entries of 16 bytes (row hash, then
/// the low 64 bits of the row's fingerprint, both big-endian) and no fingerprint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RangePart(
    pub u64,
    #[serde(with = "serde_bytes")] pub Option<Vec<u8>>,
    #[serde(with = "serde_bytes")] pub Option<Vec<u8>>,
);

/// Asks for a blob's bytes from `offset` (where a partial copy from an earlier, cut transfer
/// ends; 0 for all).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlobWant {
    /// The blob's BLAKE3 hash, 32 bytes.
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
    /// The first byte wanted.
    pub offset: u64,
}

/// A chunk of a blob: `bytes` at `offset` of the `size` bytes of the blob `hash`. Chunks of
/// one blob arrive in order; the last one ends at `size`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlobData {
    /// The blob's BLAKE3 hash, 32 bytes.
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
    /// Where the chunk starts.
    pub offset: u64,
    /// The blob's whole size.
    pub size: u64,
    /// The chunk (at most [`crate::blobs::BLOB_CHUNK_BYTES`]).
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// Names one blob (in `blob_have` and `blob_missing`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlobRef {
    /// The blob's BLAKE3 hash, 32 bytes.
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
}

/// Changes the receiver refused to apply; the rest of their batch was applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    /// The refused batch's `from`.
    pub from: Cursor,
    /// The refused batch's `to`.
    pub to: Cursor,
    /// How many of its changes were refused.
    pub count: u64,
    /// Why, in words.
    pub reason: String,
    /// Some refused rows, as `(table, primary key)`.
    pub sample: Vec<(String, Vec<crate::rules::value::Value>)>,
}

/// An error; the sender closes the connection after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMessage {
    /// What kind of error.
    pub code: ErrorCode,
    /// In words.
    pub message: String,
}

/// The kinds of protocol errors. Each names what was wrong, so that the side that sent the
/// frame can tell what it did; `docs/protocol.md` lists them.
///
/// A code this build does not know decodes as [`ErrorCode::Unrecognized`] (a newer peer may
/// send codes added after this build): the conversation ends either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The peer speaks another protocol version.
    UnsupportedProtocol,
    /// A frame that breaks a rule of its message not named by a more specific code.
    BadFrame,
    /// A frame, batch or blob larger than the protocol allows (a frame over
    /// [`FRAME_BYTES_MAX`], a batch over the receiver's `changes_per_batch_max`, a blob over
    /// `BLOB_BYTES_MAX`).
    TooLarge,
    /// A batch whose rows do not match its checksum.
    ChecksumMismatch,
    /// A message out of turn (say, changes before hello).
    UnexpectedMessage,
    /// The hello names another database than the one connected to.
    WrongDatabase,
    /// The roles do not fit (two clients, a client on a peer link).
    WrongRole,
    /// Both sides have the same site id: one replica file was copied.
    SameSite,
    /// The receiver could not apply a batch (its schema refuses it); nothing of it was applied.
    ApplyFailed,
    /// No hello in time, or no progress in time.
    Timeout,
    /// The side hit a local failure (disk, database). The message says no more than that:
    /// the failure's details stay on the side that had it.
    Internal,
    /// A frame (or a batch's rows) that is not MessagePack of the shape its message has.
    UndecodableFrame,
    /// A frame whose `type` names no message of this protocol version.
    UnknownMessageType,
    /// Bytes after the end of a frame's message, or after the end of a batch's rows.
    TrailingBytes,
    /// A text, list or chunk longer than the protocol allows (see `docs/protocol.md` §3).
    FieldTooLong,
    /// A hash, checksum, digest, fingerprint or list of hashes whose length in bytes is not
    /// the one the protocol fixes.
    WrongLength,
    /// A batch whose `count` is not the number of changes its rows hold.
    CountMismatch,
    /// A batch's rows refer to a table, column or site their lists lack.
    DanglingIndex,
    /// A blob offset past the blob's end (a chunk, or a want).
    OutOfRange,
    /// More blobs wanted at once than the protocol allows.
    TooManyWants,
    /// A reconciliation round that breaks its rules (a range never offered, parts that are
    /// neither a summary nor rows, listed rows out of order or outside their range).
    MalformedRound,
    /// A code this build does not know, sent by a newer peer. Never sent.
    #[serde(other)]
    Unrecognized,
}

impl ErrorCode {
    /// The code as it travels (`"bad_frame"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::ChecksumMismatch => "checksum_mismatch",
            ErrorCode::UnexpectedMessage => "unexpected_message",
            ErrorCode::WrongDatabase => "wrong_database",
            ErrorCode::WrongRole => "wrong_role",
            ErrorCode::SameSite => "same_site",
            ErrorCode::ApplyFailed => "apply_failed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
            ErrorCode::UndecodableFrame => "undecodable_frame",
            ErrorCode::UnknownMessageType => "unknown_message_type",
            ErrorCode::TrailingBytes => "trailing_bytes",
            ErrorCode::FieldTooLong => "field_too_long",
            ErrorCode::WrongLength => "wrong_length",
            ErrorCode::CountMismatch => "count_mismatch",
            ErrorCode::DanglingIndex => "dangling_index",
            ErrorCode::OutOfRange => "out_of_range",
            ErrorCode::TooManyWants => "too_many_wants",
            ErrorCode::MalformedRound => "malformed_round",
            ErrorCode::Unrecognized => "unrecognized",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame that cannot be taken in: its error code and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError {
    /// The code to send back.
    pub code: ErrorCode,
    /// What is wrong.
    pub message: String,
}

impl FrameError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> FrameError {
        FrameError {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for FrameError {}

impl Message {
    /// The message's `type`, as it travels.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Changes(_) => "changes",
            Message::Ack(_) => "ack",
            Message::Digest(_) => "digest",
            Message::Reject(_) => "reject",
            Message::Reconcile(_) => "reconcile",
            Message::BlobWant(_) => "blob_want",
            Message::BlobData(_) => "blob_data",
            Message::BlobHave(_) => "blob_have",
            Message::BlobMissing(_) => "blob_missing",
            Message::Error(_) => "error",
        }
    }
}

/// Every message `type` of this protocol version.
const MESSAGE_TYPES: [&str; 11] = [
    "hello",
    "changes",
    "ack",
    "digest",
    "reject",
    "reconcile",
    "blob_want",
    "blob_data",
    "blob_have",
    "blob_missing",
    "error",
];

/// Encodes a message as one frame.
pub fn encode_frame(message: &Message) -> Vec<u8> {
    // Encoding plain data structures into a Vec cannot fail.
    rmp_serde::to_vec_named(message).expect("messages always encode")
}

/// Decodes one frame: exactly one message, nothing after it, within the size and the field
/// limits of the protocol. Each breach has its own [`ErrorCode`].
pub fn decode_frame(frame: &[u8]) -> Result<Message, FrameError> {
    if frame.len() > FRAME_BYTES_MAX {
        return Err(FrameError::new(
            ErrorCode::TooLarge,
            format!(
                "a frame of {} bytes exceeds the limit of {FRAME_BYTES_MAX}",
                frame.len()
            ),
        ));
    }
    let message: Message = decode_whole(frame, "frame").map_err(|error| {
        if error.code == ErrorCode::UndecodableFrame {
            name_unknown_type(frame).unwrap_or(error)
        } else {
            error
        }
    })?;
    check_fields(&message)?;
    Ok(message)
}

/// Decodes one MessagePack value that must fill `bytes` exactly: an undecodable value is
/// [`ErrorCode::UndecodableFrame`], bytes after it [`ErrorCode::TrailingBytes`].
pub(crate) fn decode_whole<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, FrameError> {
    let mut deserializer = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
    // Decoding recurses once per level of nesting: a peer's deeply nested frame must not
    // overflow the decoding thread's stack (it did, at 194 levels, in a debug build).
    deserializer.set_max_depth(NESTING_DEPTH_MAX);
    let value = T::deserialize(&mut deserializer).map_err(|e| {
        FrameError::new(
            ErrorCode::UndecodableFrame,
            format!("undecodable {what}: {e}"),
        )
    })?;
    let used = deserializer.position();
    if used != bytes.len() as u64 {
        return Err(FrameError::new(
            ErrorCode::TrailingBytes,
            format!(
                "{} bytes after the end of the {what} ({used} bytes)",
                bytes.len() as u64 - used
            ),
        ));
    }
    Ok(value)
}

/// For a frame that did not decode: [`ErrorCode::UnknownMessageType`] if it is a map whose
/// `type` is a text naming no message.
fn name_unknown_type(frame: &[u8]) -> Option<FrameError> {
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        kind: String,
    }
    let mut deserializer = rmp_serde::Deserializer::new(std::io::Cursor::new(frame));
    deserializer.set_max_depth(NESTING_DEPTH_MAX);
    let TypeOnly { kind } = TypeOnly::deserialize(&mut deserializer).ok()?;
    if MESSAGE_TYPES.contains(&kind.as_str()) {
        return None;
    }
    Some(FrameError::new(
        ErrorCode::UnknownMessageType,
        format!("no message has type {:?}", cut_text(&kind, 64)),
    ))
}

/// `text` cut to at most `bytes_max` bytes, on a character boundary.
pub(crate) fn cut_text(text: &str, bytes_max: usize) -> &str {
    let mut end = bytes_max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Checks the limits a decoded message's fields must keep.
fn check_fields(message: &Message) -> Result<(), FrameError> {
    match message {
        Message::Hello(h) => {
            check_text("hello's database", &h.database)?;
            check_count("hello's resume", h.resume.len(), RESUME_CURSORS_MAX)
        }
        Message::Reject(r) => {
            check_text("reject's reason", &r.reason)?;
            check_count("reject's sample", r.sample.len(), REJECT_SAMPLE_MAX)
        }
        Message::Error(e) => check_text("error's message", &e.message),
        Message::Changes(c) => check_hash("a batch's checksum", &c.checksum),
        Message::Digest(d) => check_hash("a digest's state_hash", &d.state_hash),
        Message::Ack(_) => Ok(()),
        Message::Reconcile(r) => super::reconcile::check_round(r),
        Message::BlobWant(w) => check_hash("a blob hash", &w.hash),
        Message::BlobData(d) => {
            check_hash("a blob hash", &d.hash)?;
            check_count("blob_data's bytes", d.bytes.len(), BLOB_CHUNK_BYTES)?;
            if d.size > BLOB_BYTES_MAX {
                return Err(FrameError::new(
                    ErrorCode::TooLarge,
                    format!("a blob of {} bytes, over {BLOB_BYTES_MAX}", d.size),
                ));
            }
            if d.offset.saturating_add(d.bytes.len() as u64) > d.size {
                return Err(FrameError::new(
                    ErrorCode::OutOfRange,
                    format!(
                        "a chunk at {} of {} bytes ends past its blob's {} bytes",
                        d.offset,
                        d.bytes.len(),
                        d.size
                    ),
                ));
            }
            Ok(())
        }
        Message::BlobHave(r) | Message::BlobMissing(r) => check_hash("a blob hash", &r.hash),
    }
}

fn check_text(what: &str, text: &str) -> Result<(), FrameError> {
    check_count(what, text.len(), TEXT_BYTES_MAX)
}

/// [`ErrorCode::FieldTooLong`] when `what` holds more than `max` (bytes or items).
pub(crate) fn check_count(what: &str, count: usize, max: usize) -> Result<(), FrameError> {
    if count > max {
        return Err(FrameError::new(
            ErrorCode::FieldTooLong,
            format!("{what} holds {count}, over the limit of {max}"),
        ));
    }
    Ok(())
}

/// [`ErrorCode::WrongLength`] unless `bytes` is `length` long.
pub(crate) fn check_length(what: &str, bytes: &[u8], length: usize) -> Result<(), FrameError> {
    if bytes.len() != length {
        return Err(FrameError::new(
            ErrorCode::WrongLength,
            format!("{what} is {} bytes, not {length}", bytes.len()),
        ));
    }
    Ok(())
}

fn check_hash(what: &str, bytes: &[u8]) -> Result<(), FrameError> {
    check_length(what, bytes, HASH_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_tagged_maps() {
        let hello = Message::Hello(Hello {
            protocol: 1,
            site: SiteId([7; 16]),
            incarnation: Incarnation([9; 16]),
            role: Role::Client,
            database: "notes".into(),
            db_version: 42,
            resume: vec![Resume {
                site: SiteId([1; 16]),
                incarnation: Incarnation([2; 16]),
                cursor: Cursor::since(5),
            }],
            reconcile: false,
        });
        let frame = encode_frame(&hello);
        assert_eq!(decode_frame(&frame), Ok(hello));
        // A map whose "type" says what it is: readable by any MessagePack library.
        let generic = rmpv::decode::read_value(&mut frame.as_slice()).unwrap();
        let map = generic.as_map().unwrap();
        assert!(map
            .iter()
            .any(|(k, v)| k.as_str() == Some("type") && v.as_str() == Some("hello")));
    }

    #[test]
    fn garbage_and_oversized_frames_are_refused_with_a_code() {
        assert_eq!(
            decode_frame(b"\xc1garbage").unwrap_err().code,
            ErrorCode::UndecodableFrame
        );
        let big = vec![0u8; FRAME_BYTES_MAX + 1];
        assert_eq!(decode_frame(&big).unwrap_err().code, ErrorCode::TooLarge);
        let bad_checksum = Message::Digest(DigestMessage {
            db_version: 1,
            state_hash: vec![1, 2, 3],
            reply: false,
            fetching: false,
        });
        assert_eq!(
            decode_frame(&encode_frame(&bad_checksum)).unwrap_err().code,
            ErrorCode::WrongLength
        );
    }
}
