//! [`ObjectBlobs`]: a [`BlobStore`] over an `object_store`, bridged to the blocking trait
//! through a tokio runtime handle.

use crate::limits::PARTS_MAX;
use crate::limits::READ_BYTES_MAX;
use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::runtime::Handle;
use weft_core::blobs::{BlobHash, BlobStore};

/// How a publish streams a file up: memory in use is about `part_bytes ×
/// (parts_in_flight_max + 1)`, whatever the file's size (parts grow past `part_bytes` only
/// for files over `part_bytes × PARTS_MAX`, 80 GiB with the defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadLimits {
    /// Bytes of one part (S3 wants at least 5 MiB for every part but the last). A file no
    /// larger than this goes up in one plain PUT.
    pub part_bytes: usize,
    /// Parts uploading at once.
    pub parts_in_flight_max: usize,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            part_bytes: 8 << 20,
            parts_in_flight_max: 2,
        }
    }
}

/// The blobs of one database in an object store: `{prefix}/{hh}/{hash}` per blob (`hh` the
/// hash's first two hex digits), partial incoming blobs in a local staging directory.
///
/// Its methods block on the runtime `handle`: call them outside asynchronous code (on
/// tokio's blocking pool or a plain thread), never on a runtime worker.
#[derive(Clone, Debug)]
pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    staging: PathBuf,
    handle: Handle,
    description: String,
    limits: UploadLimits,
    /// The directory of a local-directory store: publishing renames into it.
    local_root: Option<PathBuf>,
}

impl ObjectBlobs {
    /// Blobs under `prefix` in `store`, staged in the local directory `staging` (which must
    /// exist), requests run on `handle`; `description` names the place in messages (a URL).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
        staging: PathBuf,
        handle: Handle,
        description: String,
    ) -> ObjectBlobs {
        ObjectBlobs {
            store,
            prefix,
            staging,
            handle,
            description,
            limits: UploadLimits::default(),
            local_root: None,
        }
    }

    /// The same, uploading with `limits`.
    pub fn with_limits(mut self, limits: UploadLimits) -> ObjectBlobs {
        assert!(limits.part_bytes > 0 && limits.parts_in_flight_max > 0);
        self.limits = limits;
        self
    }

    /// Says that `store` is a local directory at `root` (object_store's `LocalFileSystem`):
    /// publishing then moves the verified file into place with a rename when both are on
    /// one file system, instead of copying its bytes.
    pub fn with_local_root(mut self, root: PathBuf) -> ObjectBlobs {
        self.local_root = Some(root);
        self
    }

    /// Publishes by renaming `file` to where the local store keeps `location`; `false` when
    /// that cannot be done (another file system, or the store maps the path otherwise), and
    /// the caller uploads instead.
    fn publish_by_rename(&self, root: &Path, location: &ObjectPath, file: &Path) -> bool {
        let target = location
            .parts()
            .fold(root.to_path_buf(), |path, part| path.join(part.as_ref()));
        let moved = (|| -> io::Result<()> {
            File::open(file)?.sync_all()?;
            let parent = target.parent().unwrap_or(root);
            std::fs::create_dir_all(parent)?;
            std::fs::rename(file, &target)?;
            File::open(parent)?.sync_all()
        })();
        if moved.is_err() {
            return false;
        }
        // Check that the store sees it where it was put; else put the file back and upload.
        let seen = self.handle.block_on(self.store.head(location)).is_ok();
        if !seen && std::fs::rename(&target, file).is_err() {
            return false;
        }
        seen
    }

    /// The object holding `hash`'s bytes.
    pub fn location_of(&self, hash: &BlobHash) -> ObjectPath {
        let hex = hash.to_hex();
        self.prefix.clone().join(&hex[..2]).join(hex.as_str())
    }

    /// An `io::Error` for a failed `operation` on `hash`: `NotFound` stays `NotFound`.
    fn error(&self, operation: &str, hash: &BlobHash, error: object_store::Error) -> io::Error {
        let kind = match error {
            object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(
            kind,
            format!(
                "blob store {}: {operation} {hash}: {}",
                self.description,
                error_chain(&error)
            ),
        )
    }

    /// The part size for a file of `size` bytes: the configured one, or larger so that
    /// the upload stays within [`PARTS_MAX`] parts.
    fn part_bytes_for(&self, size: u64) -> usize {
        let needed = size.div_ceil(PARTS_MAX).next_multiple_of(1 << 20);
        self.limits
            .part_bytes
            .max(usize::try_from(needed).unwrap_or(usize::MAX))
    }

    /// Uploads `file` (`size` bytes) in parts; the object appears when the upload completes
    /// and never if it fails (the parts sent are aborted).
    fn upload_in_parts(
        &self,
        hash: &BlobHash,
        location: &ObjectPath,
        mut file: File,
        size: u64,
    ) -> io::Result<()> {
        let part_bytes = self.part_bytes_for(size);
        let upload = self
            .handle
            .block_on(self.store.put_multipart(location))
            .map_err(|e| self.error("starting the upload of", hash, e))?;
        // WriteMultipart spawns a task per part: on this runtime.
        let _entered = self.handle.enter();
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_bytes);
        let mut sent = 0u64;
        let streamed = loop {
            // Wait for a free slot before reading, so at most `parts_in_flight_max` parts
            // and the one being read are in memory.
            if let Err(e) = self
                .handle
                .block_on(writer.wait_for_capacity(self.limits.parts_in_flight_max))
            {
                break Err(self.error("uploading", hash, e));
            }
            let mut part = vec![0u8; part_bytes];
            let n = match read_full(&mut file, &mut part) {
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if n == 0 {
                break Ok(());
            }
            part.truncate(n);
            // A whole part is sent at once; only the last, shorter one waits for `finish`.
            writer.put(Bytes::from(part));
            sent += n as u64;
        };
        if let Err(e) = streamed {
            let _ = self.handle.block_on(writer.abort());
            return Err(e);
        }
        if sent != size {
            let _ = self.handle.block_on(writer.abort());
            return Err(io::Error::other(format!(
                "blob store {}: publishing {hash}: the file changed size while it was read \
                 ({sent} bytes, not {size})",
                self.description
            )));
        }
        self.handle
            .block_on(writer.finish())
            .map_err(|e| self.error("completing the upload of", hash, e))?;
        Ok(())
    }
}

impl BlobStore for ObjectBlobs {
    fn read_at(&self, hash: &BlobHash, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if len > READ_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a blob read of {len} bytes is over the {READ_BYTES_MAX}-byte limit"),
            ));
        }
        let location = self.location_of(hash);
        let end = offset.saturating_add(len as u64);
        if len > 0 {
            let options = GetOptions::new().with_range(Some(offset..end));
            let got = self.handle.block_on(async {
                let result = self.store.get_opts(&location, options).await?;
                result.bytes().await
            });
            match got {
                Ok(bytes) => return Ok(bytes.to_vec()),
                Err(object_store::Error::NotFound { .. }) => {}
                // A range starting at or past the end is refused by the store: the HEAD
                // below tells that case (nothing to read) from a real failure.
                Err(error) => match self.size(hash) {
                    Ok(Some(size)) if offset >= size => return Ok(Vec::new()),
                    _ => return Err(self.error("reading", hash, error)),
                },
            }
        }
        match self.size(hash)? {
            Some(_) => Ok(Vec::new()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("blob store {}: no blob {hash}", self.description),
            )),
        }
    }

    fn publish(&self, hash: &BlobHash, file: &Path) -> io::Result<()> {
        let location = self.location_of(hash);
        if let Some(root) = &self.local_root {
            if self.publish_by_rename(root, &location, file) {
                return Ok(());
            }
        }
        let mut opened = File::open(file)?;
        let size = opened.metadata()?.len();
        if size <= self.limits.part_bytes as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            (&mut opened).take(size).read_to_end(&mut bytes)?;
            self.handle
                .block_on(self.store.put(&location, PutPayload::from(bytes)))
                .map_err(|e| self.error("publishing", hash, e))?;
        } else {
            self.upload_in_parts(hash, &location, opened, size)?;
        }
        std::fs::remove_file(file)
    }

    fn size(&self, hash: &BlobHash) -> io::Result<Option<u64>> {
        match self
            .handle
            .block_on(self.store.head(&self.location_of(hash)))
        {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("looking up", hash, e)),
        }
    }

    fn delete(&self, hash: &BlobHash) -> io::Result<()> {
        match self
            .handle
            .block_on(self.store.delete(&self.location_of(hash)))
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("deleting", hash, e)),
        }
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// Fills `buffer` from `file` unless the file ends first; the bytes read.
fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// An error and its sources, `: `-separated (object_store's top message often hides the
/// HTTP status or the connection failure in a source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    // Bounded: a chain is a few levels deep.
    for _ in 0..8 {
        let Some(next) = source else { break };
        let line = next.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = next.source();
    }
    text
}
