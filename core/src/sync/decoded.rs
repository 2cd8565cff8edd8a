//! Frames decoded ahead of the session that handles them.
//!
//! Decoding a frame is pure work: the MessagePack of the message and, for a batch, the
//! checksum over its rows and the rows themselves. A transport can do it on another thread
//! while the session applies the previous batch ([`Session::handle_decoded`]); a large
//! download spends about a tenth of its time here.
//!
//! [`Session::handle_decoded`]: super::Session::handle_decoded

use super::message::{decode_frame, Changes, ErrorCode, FrameError, Message};
use super::rows::decode_rows;
use crate::rules::change::Change;

/// Decodes frames for one session, on any thread (see [`super::Session::frame_decoder`]).
#[derive(Clone, Copy, Debug)]
pub struct FrameDecoder {
    changes_max: usize,
}

/// A frame as [`FrameDecoder::decode`] left it: the message, or why it is not one, and for a
/// batch of changes its rows, or why they are refused. Handling it has the same outcome as
/// handling the frame's bytes.
pub struct DecodedFrame {
    pub(super) bytes: usize,
    pub(super) message: Result<Message, FrameError>,
    pub(super) rows: Option<Result<Vec<Change>, FrameError>>,
}

impl DecodedFrame {
    /// Why the frame cannot be taken in, if it cannot: the frame does not decode, or it is a
    /// batch whose checksum, count or rows are refused.
    pub fn error(&self) -> Option<&FrameError> {
        match (&self.message, &self.rows) {
            (Err(error), _) | (Ok(_), Some(Err(error))) => Some(error),
            _ => None,
        }
    }

    /// The decoded message (a batch's `rows` emptied), if the frame decoded.
    pub fn message(&self) -> Option<&Message> {
        self.message.as_ref().ok()
    }

    /// A batch's decoded changes, if the frame is a batch and its rows are accepted.
    pub fn changes(&self) -> Option<&[Change]> {
        match &self.rows {
            Some(Ok(changes)) => Some(changes),
            _ => None,
        }
    }
}

impl FrameDecoder {
    /// A decoder refusing batches of more than `changes_max` changes (a session's decoder
    /// uses its replica's `changes_per_batch_max`; see [`super::Session::frame_decoder`]).
    pub fn new(changes_max: usize) -> FrameDecoder {
        FrameDecoder { changes_max }
    }

    /// Decodes one frame; errors are kept in the result, for the session to answer.
    pub fn decode(&self, frame: &[u8]) -> DecodedFrame {
        let mut message = decode_frame(frame);
        let rows = match &mut message {
            Ok(Message::Changes(batch)) => {
                let rows = self.batch_rows(batch);
                // The encoded rows are not needed again: a frame waiting for its session
                // holds its changes once, not twice.
                batch.rows = Vec::new();
                Some(rows)
            }
            _ => None,
        };
        DecodedFrame {
            bytes: frame.len(),
            message,
            rows,
        }
    }

    /// A batch's changes, once its checksum and count are checked.
    fn batch_rows(&self, batch: &Changes) -> Result<Vec<Change>, FrameError> {
        if blake3::hash(&batch.rows).as_bytes().as_slice() != batch.checksum.as_slice() {
            return Err(FrameError::new(
                ErrorCode::ChecksumMismatch,
                "a batch's rows do not match its checksum",
            ));
        }
        let changes = decode_rows(&batch.rows, self.changes_max)?;
        if changes.len() != batch.count as usize {
            return Err(FrameError::new(
                ErrorCode::CountMismatch,
                format!(
                    "a batch says it holds {} changes and holds {}",
                    batch.count,
                    changes.len()
                ),
            ));
        }
        Ok(changes)
    }
}
