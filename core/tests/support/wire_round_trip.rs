//! The properties the wire fuzzers check, shared by the fuzz targets (`core/fuzz/`) and by
//! `cargo test`'s replay of their corpus (`core/tests/fuzz_corpus.rs`): a decoder never
//! panics, and what it decodes encodes to bytes that decode to the same value and encode to
//! the same bytes again. Equality is checked on the encodings, so that a REAL NaN (unequal to
//! itself) still counts as the same value.

use weft_core::sync::{decode_frame, decode_rows, encode_frame, encode_rows, FrameDecoder};
use weft_core::sync::{FrameError, Message};

/// The changes a batch may hold in these checks (the default `changes_per_batch_max`).
pub const CHANGES_MAX: usize = 10_000;

/// The largest bundle frame these checks accept.
pub const BUNDLE_FRAME_BYTES_MAX: usize = 1 << 20;

/// Decodes `data` as a frame (and, through a session's decoder, a batch's rows); if it
/// decodes, checks that it round-trips. Returns the frame's error, if any.
pub fn check_frame(data: &[u8]) -> Result<(), FrameError> {
    let decoded = FrameDecoder::new(CHANGES_MAX).decode(data);
    let message = decode_frame(data)?;
    assert!(
        decoded.message().is_some(),
        "the frame decoder refuses a frame decode_frame accepts"
    );
    let encoded = encode_frame(&message);
    let again = decode_frame(&encoded).expect("an encoded frame decodes");
    assert_eq!(
        encode_frame(&again),
        encoded,
        "{message:?} does not round-trip"
    );
    if !matches!(message, Message::Changes(_)) {
        assert!(decoded.error().is_none(), "{:?}", decoded.error());
    }
    Ok(())
}

/// Decodes `data` as a batch's rows; if they decode, checks that they round-trip.
pub fn check_rows(data: &[u8]) -> Result<(), FrameError> {
    let changes = decode_rows(data, CHANGES_MAX)?;
    let encoded = encode_rows(&changes);
    let again = decode_rows(&encoded, CHANGES_MAX).expect("encoded rows decode");
    assert_eq!(again.len(), changes.len());
    assert_eq!(
        encode_rows(&again),
        encoded,
        "{changes:?} does not round-trip"
    );
    Ok(())
}

/// Reads `data` as a whole bundle file and as one bundle frame; a frame that decodes must
/// round-trip. Returns the bundle's error, if any (the frame's otherwise).
pub fn check_bundle(data: &[u8]) -> Result<(), weft_core::Error> {
    let whole = weft_core::bundle::verify(data, BUNDLE_FRAME_BYTES_MAX).map(|_| ());
    let changes = weft_core::bundle::decode_changes_frame(data)?;
    let encoded = weft_core::bundle::encode_changes_frame(&changes).expect("changes encode");
    let again = weft_core::bundle::decode_changes_frame(&encoded).expect("a frame decodes");
    assert_eq!(
        weft_core::bundle::encode_changes_frame(&again).expect("changes encode"),
        encoded,
        "{changes:?} does not round-trip"
    );
    whole
}
