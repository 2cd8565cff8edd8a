//! Where a replica keeps blob bytes: the [`BlobStore`] trait, and [`LocalBlobs`], a plain
//! directory (what a client uses, beside its database file).

use super::hash::BlobHash;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A content-addressed store of blob bytes. Bytes appear under their hash whole or not at
/// all; nothing reads a half-written blob. Methods block (the sync session calls them from a
/// blocking step), so a store over an async client bridges inside.
pub trait BlobStore: Send + Sync {
    /// Up to `len` bytes of `hash` from `offset` (fewer only at the end). `NotFound` if the
    /// store does not hold `hash`.
    fn read_at(&self, hash: &BlobHash, offset: u64, len: usize) -> io::Result<Vec<u8>>;

    /// Makes the complete, verified file at `file` the bytes of `hash`, moving or copying it.
    /// Atomic for readers. The file is gone or may be removed afterwards.
    fn publish(&self, hash: &BlobHash, file: &Path) -> io::Result<()>;

    /// The size of `hash`'s bytes, if the store holds them.
    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>>;

    /// Removes `hash`'s bytes; removing what is absent is not an error.
    fn delete(&self, hash: &BlobHash) -> io::Result<()>;

    /// A directory on local disk where partly received blobs wait until they are complete
    /// and verified (and where new blobs are hashed before they are published).
    fn staging_dir(&self) -> &Path;

    /// Where the bytes live, in words, for messages.
    fn describe(&self) -> String;
}

/// A [`BlobStore`] in a local directory: `DIR/ab/abcdef…` per blob, staging in
/// `DIR/.staging`. Publishing is a rename, so a blob appears whole or not at all.
#[derive(Clone, Debug)]
pub struct LocalBlobs {
    root: PathBuf,
    staging: PathBuf,
    durable: bool,
}

impl LocalBlobs {
    /// Opens (creating if missing) the store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<LocalBlobs> {
        let root = dir.into();
        let staging = root.join(".staging");
        fs::create_dir_all(&staging)?;
        Ok(LocalBlobs {
            root,
            staging,
            durable: true,
        })
    }

    /// The same store without flushing to disk before a blob is published (for tests and
    /// simulations, where a power cut is not part of the experiment). By default every
    /// published blob is on disk before the listing records it as held.
    pub fn without_fsync(mut self) -> LocalBlobs {
        self.durable = false;
        self
    }

    /// The store a client keeps beside its database file: `notes.db` → `notes.db.blobs/`.
    pub fn beside(database: &Path) -> io::Result<LocalBlobs> {
        let mut dir = database.as_os_str().to_owned();
        dir.push(".blobs");
        LocalBlobs::open(PathBuf::from(dir))
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file holding `hash`'s bytes.
    pub fn path_of(&self, hash: &BlobHash) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }
}

impl BlobStore for LocalBlobs {
    fn read_at(&self, hash: &BlobHash, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut file = fs::File::open(self.path_of(hash))?;
        file.seek(SeekFrom::Start(offset))?;
        let mut out = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut out)?;
        Ok(out)
    }

    fn publish(&self, hash: &BlobHash, file: &Path) -> io::Result<()> {
        let target = self.path_of(hash);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        if self.durable {
            fs::File::open(file)?.sync_all()?;
        }
        fs::rename(file, &target)?;
        if let (true, Some(parent)) = (self.durable, target.parent()) {
            // The rename is durable once the directory is.
            fs::File::open(parent)?.sync_all()?;
        }
        Ok(())
    }

    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>> {
        match fs::metadata(self.path_of(hash)) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, hash: &BlobHash) -> io::Result<()> {
        match fs::remove_file(self.path_of(hash)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}
