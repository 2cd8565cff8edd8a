//! The protocol's messages and their frame encoding: one MessagePack map per frame, its kind
//! under `"type"`. `docs/protocol.md` specifies every field.

use super::{FRAME_BYTES_MAX, TEXT_BYTES_MAX};
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

/// The kinds of protocol errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The peer speaks another protocol version.
    UnsupportedProtocol,
    /// A frame that does not decode, or breaks a rule of its message.
    BadFrame,
    /// A frame larger than [`FRAME_BYTES_MAX`].
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
    /// The side hit a local failure (disk, database).
    Internal,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json_like_name(*self);
        f.write_str(text)
    }
}

fn serde_json_like_name(code: ErrorCode) -> &'static str {
    match code {
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

/// Encodes a message as one frame.
pub fn encode_frame(message: &Message) -> Vec<u8> {
    // Encoding plain data structures into a Vec cannot fail.
    rmp_serde::to_vec_named(message).expect("messages always encode")
}

/// Decodes one frame, checking its size and the lengths of its texts.
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
    let message: Message = rmp_serde::from_slice(frame)
        .map_err(|e| FrameError::new(ErrorCode::BadFrame, format!("undecodable frame: {e}")))?;
    check_texts(&message)?;
    Ok(message)
}

fn check_texts(message: &Message) -> Result<(), FrameError> {
    let long = |text: &str| text.len() > TEXT_BYTES_MAX;
    let too_long = match message {
        Message::Hello(h) => long(&h.database) || h.resume.len() > super::RESUME_CURSORS_MAX,
        Message::Reject(r) => long(&r.reason) || r.sample.len() > super::REJECT_SAMPLE_MAX,
        Message::Error(e) => long(&e.message),
        Message::Changes(c) => c.checksum.len() != 32,
        Message::Digest(d) => d.state_hash.len() != 32,
        Message::Ack(_) => false,
        Message::Reconcile(r) => !super::reconcile::well_formed(r),
        Message::BlobWant(w) => w.hash.len() != 32,
        Message::BlobData(d) => {
            d.hash.len() != 32
                || d.bytes.len() > crate::blobs::BLOB_CHUNK_BYTES
                || d.size > crate::blobs::BLOB_BYTES_MAX
                || d.offset.saturating_add(d.bytes.len() as u64) > d.size
        }
        Message::BlobHave(r) | Message::BlobMissing(r) => r.hash.len() != 32,
    };
    if too_long {
        return Err(FrameError::new(
            ErrorCode::BadFrame,
            "a field is longer than the protocol allows",
        ));
    }
    Ok(())
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
            ErrorCode::BadFrame
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
            ErrorCode::BadFrame
        );
    }
}
