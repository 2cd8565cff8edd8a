//! Blobs on their way in: partial files in a store's staging directory, hashed as they grow,
//! published only once complete and verified. A partial file outlives a cut connection, so
//! the next conversation asks for the rest instead of starting over.

use super::hash::BlobHash;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The partial file of `hash` in `staging`.
pub fn partial_path(staging: &Path, hash: &BlobHash) -> PathBuf {
    staging.join(format!("{}.part", hash.to_hex()))
}

/// How many bytes of `hash` wait in `staging` from an earlier, cut transfer.
pub fn staged_len(staging: &Path, hash: &BlobHash) -> io::Result<u64> {
    match fs::metadata(partial_path(staging, hash)) {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// Why a chunk or a finished blob was refused.
#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    /// The chunk does not start where the partial file ends.
    #[error("a chunk at offset {offset} does not continue the {received} bytes received")]
    OutOfOrder {
        /// Where the chunk starts.
        offset: u64,
        /// Where it should have.
        received: u64,
    },
    /// The chunk runs past the size the blob was announced with.
    #[error("a chunk ends at {end}, past the blob's announced size of {size} bytes")]
    PastEnd {
        /// Where the chunk ends.
        end: u64,
        /// The announced size.
        size: u64,
    },
    /// The complete bytes hash to something else: they are discarded.
    #[error("the bytes received hash to {actual}, not to the blob's id {expected}")]
    HashMismatch {
        /// The id the bytes were sent as.
        expected: BlobHash,
        /// What they hash to.
        actual: BlobHash,
    },
    /// The local disk failed.
    #[error("staging: {0}")]
    Io(#[from] io::Error),
}

/// One blob being received: appended to in order, hashed on the way. Holds an exclusive lock
/// on its partial file, so two conversations (or two processes) never write the same one.
#[derive(Debug)]
pub struct Incoming {
    hash: BlobHash,
    size: Option<u64>,
    path: PathBuf,
    file: File,
    received: u64,
    hasher: blake3::Hasher,
}

impl Incoming {
    /// Claims the partial file of `hash` in `staging` (creating it): `None` when another
    /// conversation or process is receiving the same blob right now. What an earlier, cut
    /// transfer left is kept: [`Incoming::received`] says where to resume.
    pub fn claim(staging: &Path, hash: BlobHash) -> io::Result<Option<Incoming>> {
        fs::create_dir_all(staging)?;
        let path = partial_path(staging, &hash);
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        let received = file.metadata()?.len();
        Ok(Some(Incoming {
            hash,
            size: None,
            path,
            file,
            received,
            hasher: blake3::Hasher::new(),
        }))
    }

    /// Learns the blob's size from its first chunk: what is staged is hashed again (so the
    /// final check covers every byte), or dropped if it is longer than the blob.
    pub fn start(&mut self, size: u64) -> io::Result<()> {
        if self.size.is_some() {
            return Ok(());
        }
        if self.received > size {
            self.file.set_len(0)?;
            self.received = 0;
        } else if self.received > 0 {
            let mut prefix = File::open(&self.path)?.take(self.received);
            io::copy(&mut prefix, &mut self.hasher)?;
        }
        self.size = Some(size);
        Ok(())
    }

    /// Claims and starts in one step (see [`Incoming::claim`] and [`Incoming::start`]).
    pub fn resume(staging: &Path, hash: BlobHash, size: u64) -> io::Result<Option<Incoming>> {
        let Some(mut incoming) = Incoming::claim(staging, hash)? else {
            return Ok(None);
        };
        incoming.start(size)?;
        Ok(Some(incoming))
    }

    /// The blob's id.
    pub fn hash(&self) -> BlobHash {
        self.hash
    }

    /// The announced size, once the first chunk came.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Bytes received so far (including those of earlier conversations).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Whether every announced byte has arrived.
    pub fn is_complete(&self) -> bool {
        self.size == Some(self.received)
    }

    /// Appends a chunk that must start at [`Incoming::received`] and end within the size
    /// (given to [`Incoming::start`] first).
    pub fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<(), IncomingError> {
        let size = self.size.expect("start is called before append");
        if offset != self.received {
            return Err(IncomingError::OutOfOrder {
                offset,
                received: self.received,
            });
        }
        let end = offset + bytes.len() as u64;
        if end > size {
            return Err(IncomingError::PastEnd { end, size });
        }
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.received = end;
        Ok(())
    }

    /// Checks the complete bytes against the hash: the verified file's path, ready to
    /// publish (the store makes it durable), or [`IncomingError::HashMismatch`] with the partial file removed.
    pub fn finish(self) -> Result<PathBuf, IncomingError> {
        assert!(
            self.is_complete(),
            "finish is called on complete blobs only"
        );
        let actual = BlobHash::from(self.hasher.finalize());
        if actual != self.hash {
            drop(self.file);
            let _ = fs::remove_file(&self.path);
            return Err(IncomingError::HashMismatch {
                expected: self.hash,
                actual,
            });
        }
        Ok(self.path)
    }

    /// Drops the partial file: its bytes cannot be trusted (a sender that announced another
    /// size for the same hash).
    pub fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.path);
    }
}

/// A new blob copied from `source` into `staging` and hashed on the way: returns the staged
/// file (publish it under the hash; the store makes it durable), the hash and the size. `progress` is told the bytes
/// copied so far after each chunk.
pub fn stage_new(
    staging: &Path,
    mut source: impl Read,
    mut progress: impl FnMut(u64),
) -> io::Result<(PathBuf, BlobHash, u64)> {
    fs::create_dir_all(staging)?;
    let path = staging.join(format!("new-{:016x}.tmp", rand::random::<u64>()));
    let mut file = File::create(&path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    let copied = (|| -> io::Result<()> {
        loop {
            let n = match source.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buffer[..n]);
            file.write_all(&buffer[..n])?;
            size += n as u64;
            progress(size);
        }
    })();
    if let Err(e) = copied {
        drop(file);
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok((path, hasher.finalize().into(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_resumes_where_it_was_cut_and_is_verified_whole() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let hash = BlobHash::of(&bytes);
        let mut first = Incoming::resume(dir.path(), hash, bytes.len() as u64)
            .unwrap()
            .unwrap();
        assert!(
            Incoming::claim(dir.path(), hash).unwrap().is_none(),
            "one writer at a time"
        );
        first.append(0, &bytes[..40_000]).unwrap();
        assert!(matches!(
            first.append(50_000, &bytes[50_000..60_000]),
            Err(IncomingError::OutOfOrder { .. })
        ));
        drop(first);
        assert_eq!(staged_len(dir.path(), &hash).unwrap(), 40_000);
        let mut second = Incoming::resume(dir.path(), hash, bytes.len() as u64)
            .unwrap()
            .unwrap();
        assert_eq!(second.received(), 40_000);
        second.append(40_000, &bytes[40_000..]).unwrap();
        let path = second.finish().unwrap();
        assert_eq!(fs::read(path).unwrap(), bytes);
    }

    #[test]
    fn bytes_that_hash_to_something_else_are_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let claimed = BlobHash::of(b"the real bytes");
        let mut incoming = Incoming::resume(dir.path(), claimed, 5).unwrap().unwrap();
        assert!(matches!(
            incoming.append(0, b"toolong"),
            Err(IncomingError::PastEnd { .. })
        ));
        incoming.append(0, b"forge").unwrap();
        assert!(matches!(
            incoming.finish(),
            Err(IncomingError::HashMismatch { .. })
        ));
        assert_eq!(staged_len(dir.path(), &claimed).unwrap(), 0);
    }
}
