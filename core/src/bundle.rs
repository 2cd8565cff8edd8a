//! Change bundles: changes in a file, for sync by sneakernet (Fossil's bundles).
//!
//! Layout: the 8 bytes `WEFTBNDL`, a format version byte (1), then frames — a 4-byte
//! big-endian length and that many bytes of a MessagePack array of changes — then a zero
//! length, the 8-byte big-endian count of changes, and the BLAKE3 hash of every byte before
//! the hash. Import reads the whole file and checks the hash before it applies anything, so a
//! truncated or corrupted bundle is refused whole. A frame holds exactly its array of changes:
//! bytes after it are refused.

use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::rules::change::Change;
use std::io::{Read, Write};

const MAGIC: &[u8; 8] = b"WEFTBNDL";
const FORMAT_VERSION: u8 = 1;

/// What an export or import moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BundleSummary {
    /// Changes in the bundle.
    pub changes: u64,
    /// Frames in the bundle.
    pub frames: u64,
    /// For an import: changes that won and were stored.
    pub applied: u64,
    /// For an export: the db_version the bundle is complete through.
    pub through_db_version: u64,
}

struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> HashingWriter<W> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)?;
        Ok(())
    }
}

/// Writes every change after `since` to `out` as a bundle; `progress` hears the running count.
pub fn export(
    replica: &Replica,
    since: u64,
    out: impl Write,
    mut progress: impl FnMut(u64),
) -> Result<BundleSummary> {
    let mut writer = HashingWriter {
        inner: out,
        hasher: blake3::Hasher::new(),
    };
    writer.write_all(MAGIC)?;
    writer.write_all(&[FORMAT_VERSION])?;
    let mut summary = BundleSummary {
        through_db_version: since,
        ..Default::default()
    };
    let mut cursor = crate::Cursor::since(since);
    loop {
        let batch = replica.changes(&cursor, replica.limits().changes_per_batch_max)?;
        if !batch.changes.is_empty() {
            let frame = encode_changes_frame(&batch.changes)?;
            let length = u32::try_from(frame.len())
                .map_err(|_| Error::InvalidBundle("frame over 4 GiB".into()))?;
            writer.write_all(&length.to_be_bytes())?;
            writer.write_all(&frame)?;
            summary.changes += batch.changes.len() as u64;
            summary.frames += 1;
            progress(summary.changes);
        }
        cursor = batch.next;
        if batch.done {
            break;
        }
    }
    summary.through_db_version = cursor.complete_through();
    writer.write_all(&0u32.to_be_bytes())?;
    writer.write_all(&summary.changes.to_be_bytes())?;
    let hash = writer.hasher.finalize();
    writer.inner.write_all(hash.as_bytes())?;
    writer.inner.flush()?;
    Ok(summary)
}

/// Encodes one frame's changes (without its length): a MessagePack array of changes.
#[doc(hidden)]
pub fn encode_changes_frame(changes: &[Change]) -> Result<Vec<u8>> {
    rmp_serde::to_vec(changes).map_err(|e| Error::InvalidBundle(e.to_string()))
}

/// Decodes one frame's changes: a MessagePack array of changes that fills the frame exactly
/// (bytes after it are refused, as on the wire).
#[doc(hidden)]
pub fn decode_changes_frame(frame: &[u8]) -> Result<Vec<Change>> {
    crate::sync::decode_whole(frame, "bundle frame")
        .map_err(|e| Error::InvalidBundle(format!("a frame does not decode: {}", e.message)))
}

/// Reads a bundle frame by frame, hashing as it goes.
struct BundleReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    frame_bytes_max: usize,
}

impl<R: Read> BundleReader<R> {
    fn read_exact(&mut self, buffer: &mut [u8], what: &str) -> Result<()> {
        self.inner.read_exact(buffer).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                Error::InvalidBundle(format!("truncated: the file ends inside the {what}"))
            }
            _ => Error::Io(e),
        })?;
        self.hasher.update(buffer);
        Ok(())
    }

    fn header(&mut self) -> Result<()> {
        let mut magic = [0u8; 9];
        self.read_exact(&mut magic, "header")?;
        if &magic[..8] != MAGIC {
            return Err(Error::InvalidBundle(
                "not a Weft bundle (wrong magic bytes)".into(),
            ));
        }
        if magic[8] != FORMAT_VERSION {
            return Err(Error::InvalidBundle(format!(
                "bundle format version {} is not supported (this build reads {FORMAT_VERSION})",
                magic[8]
            )));
        }
        Ok(())
    }

    /// The next frame's changes, or `None` at the end marker.
    fn frame(&mut self) -> Result<Option<Vec<Change>>> {
        let mut length = [0u8; 4];
        self.read_exact(&mut length, "frame length")?;
        let length = u32::from_be_bytes(length) as usize;
        if length == 0 {
            return Ok(None);
        }
        if length > self.frame_bytes_max {
            return Err(Error::InvalidBundle(format!(
                "a frame of {length} bytes exceeds bundle_frame_bytes_max ({})",
                self.frame_bytes_max
            )));
        }
        let mut frame = vec![0u8; length];
        self.read_exact(&mut frame, "frame")?;
        decode_changes_frame(&frame).map(Some)
    }

    /// Checks the count and hash after the end marker; returns the count.
    fn trailer(&mut self, counted: u64) -> Result<u64> {
        let mut count = [0u8; 8];
        self.read_exact(&mut count, "trailer")?;
        let expected = self.hasher.finalize();
        let mut hash = [0u8; 32];
        self.inner
            .read_exact(&mut hash)
            .map_err(|_| Error::InvalidBundle("truncated: the checksum is missing".into()))?;
        if hash != *expected.as_bytes() {
            return Err(Error::InvalidBundle(
                "checksum mismatch: the bundle is corrupted".into(),
            ));
        }
        let mut rest = [0u8; 1];
        if self.inner.read(&mut rest)? != 0 {
            return Err(Error::InvalidBundle("bytes after the checksum".into()));
        }
        let count = u64::from_be_bytes(count);
        if count != counted {
            return Err(Error::InvalidBundle(format!(
                "the trailer counts {count} changes, the frames hold {counted}"
            )));
        }
        Ok(count)
    }
}

/// Checks a whole bundle without applying it; returns its number of changes and frames.
pub fn verify(input: impl Read, frame_bytes_max: usize) -> Result<BundleSummary> {
    let mut reader = BundleReader {
        inner: input,
        hasher: blake3::Hasher::new(),
        frame_bytes_max,
    };
    reader.header()?;
    let mut summary = BundleSummary::default();
    while let Some(changes) = reader.frame()? {
        for change in &changes {
            crate::engine::apply::validate(change)?;
        }
        summary.changes += changes.len() as u64;
        summary.frames += 1;
    }
    reader.trailer(summary.changes)?;
    Ok(summary)
}

/// Applies a bundle: first checks all of it (`open` is called twice, once to verify and once
/// to apply), then merges it in one transaction, so it is applied whole or not at all.
/// Importing the same bundle again changes nothing.
pub fn import<R: Read>(
    replica: &Replica,
    mut open: impl FnMut() -> Result<R>,
    mut progress: impl FnMut(u64),
) -> Result<BundleSummary> {
    let limits = replica.limits();
    let mut summary = verify(open()?, limits.bundle_frame_bytes_max)?;
    let mut reader = BundleReader {
        inner: open()?,
        hasher: blake3::Hasher::new(),
        frame_bytes_max: limits.bundle_frame_bytes_max,
    };
    reader.header()?;
    let conn = replica.connection();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> Result<u64> {
        let mut applied = 0u64;
        let mut seen = 0u64;
        while let Some(changes) = reader.frame()? {
            for chunk in changes.chunks(limits.changes_per_batch_max) {
                applied += replica.apply_changes(chunk)?.applied as u64;
                seen += chunk.len() as u64;
                progress(seen);
            }
        }
        reader.trailer(seen)?;
        Ok(applied)
    })();
    // A refused COMMIT rolls back too: nothing of the bundle stays.
    summary.applied = crate::storage::replica_connection::finish(conn, result)?;
    Ok(summary)
}
