//! Blob buckets from apps: files and images stored by BLAKE3 hash beside the database and
//! synced with it.

use crate::database::Database;
use crate::error::{Result, WeftError};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use weft_core::blobs::Entry;

/// The MIME type recorded when the app gives none.
const DEFAULT_MIME: &str = "application/octet-stream";

/// Entries `blob_list` returns when the app asks for none in particular, and at most.
const LIST_ENTRIES_MAX: u32 = 10_000;

/// One entry of a bucket.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct BlobEntry {
    /// The bucket.
    pub bucket: String,
    /// The entry's name in it.
    pub name: String,
    /// The bytes' BLAKE3 hash, hex (empty while a merged entry's hash has not arrived).
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// MIME type, as the writer gave it.
    pub mime: String,
    /// When it was put, in milliseconds since the Unix epoch, by the writer's clock.
    pub created_ms: u64,
}

impl From<Entry> for BlobEntry {
    fn from(entry: Entry) -> BlobEntry {
        BlobEntry {
            bucket: entry.bucket,
            name: entry.name,
            hash: entry.hash.map(|h| h.to_hex()).unwrap_or_default(),
            size: entry.size,
            mime: entry.mime,
            created_ms: entry.created_ms,
        }
    }
}

#[uniffi::export]
impl Database {
    /// Stores `bytes` as `bucket/name` (replacing what the name held) and returns the entry.
    pub fn blob_put(
        &self,
        bucket: String,
        name: String,
        bytes: Vec<u8>,
        mime: Option<String>,
    ) -> Result<BlobEntry> {
        self.put_from(&bucket, &name, bytes.as_slice(), mime)
    }

    /// Stores the file at `path` as `bucket/name`, streaming it (any size).
    pub fn blob_put_file(
        &self,
        bucket: String,
        name: String,
        path: String,
        mime: Option<String>,
    ) -> Result<BlobEntry> {
        let file = File::open(&path).map_err(|e| WeftError::Io {
            message: format!("cannot read {path}: {e}"),
        })?;
        self.put_from(&bucket, &name, BufReader::new(file), mime)
    }

    /// The bytes of `bucket/name`, whole in memory (use `blob_get_to_file` for large ones).
    /// `NotFound` if there is no such entry or its bytes have not reached this device yet.
    pub fn blob_get(&self, bucket: String, name: String) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.read_into(&bucket, &name, &mut bytes)?;
        Ok(bytes)
    }

    /// Writes the bytes of `bucket/name` to the file at `path` (replaced whole, only once
    /// every byte is written); returns the entry.
    pub fn blob_get_to_file(
        &self,
        bucket: String,
        name: String,
        path: String,
    ) -> Result<BlobEntry> {
        let target = Path::new(&path);
        let partial = target.with_extension("weft-partial");
        let io_error = |e: std::io::Error| WeftError::Io {
            message: format!("cannot write {path}: {e}"),
        };
        let mut file = File::create(&partial).map_err(io_error)?;
        let written = self
            .read_into(&bucket, &name, &mut file)
            .and_then(|entry| file.sync_all().map(|()| entry).map_err(io_error));
        match written {
            Ok(entry) => {
                std::fs::rename(&partial, target).map_err(io_error)?;
                Ok(entry)
            }
            Err(error) => {
                let _ = std::fs::remove_file(&partial);
                Err(error)
            }
        }
    }

    /// The entries of `bucket` whose names start with `prefix`, in name order, after the
    /// name `after` (for paging), at most `limit` (10,000 when 0 or more).
    pub fn blob_list(
        &self,
        bucket: String,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<BlobEntry>> {
        let limit = if limit == 0 {
            LIST_ENTRIES_MAX
        } else {
            limit.min(LIST_ENTRIES_MAX)
        };
        let open = self.opened()?;
        let replica = open.writer()?;
        let entries = replica
            .buckets()
            .list(&bucket, &prefix, after.as_deref(), limit as usize)?;
        Ok(entries.into_iter().map(BlobEntry::from).collect())
    }

    /// Removes `bucket/name`; returns whether it was there. Its bytes go when no entry
    /// names them any more (after the grace period of garbage collection).
    pub fn blob_remove(&self, bucket: String, name: String) -> Result<bool> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.buckets().remove(&bucket, &name)?)
    }

    /// Marks `bucket` lazy (its bytes are fetched on first read, not by every sync) or
    /// eager again.
    pub fn blob_set_lazy(&self, bucket: String, lazy: bool) -> Result<()> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.buckets().set_lazy(&bucket, lazy)?)
    }
}

impl Database {
    fn put_from(
        &self,
        bucket: &str,
        name: &str,
        source: impl Read,
        mime: Option<String>,
    ) -> Result<BlobEntry> {
        let open = self.opened()?;
        let replica = open.writer()?;
        let mime = mime.unwrap_or_else(|| DEFAULT_MIME.to_owned());
        let entry = replica
            .buckets()
            .put(&open.blobs, bucket, name, source, &mime, |_| {})?;
        Ok(entry.into())
    }

    fn read_into(&self, bucket: &str, name: &str, out: &mut impl Write) -> Result<BlobEntry> {
        let open = self.opened()?;
        let entry = {
            let replica = open.writer()?;
            let buckets = replica.buckets();
            let entry = buckets
                .get(bucket, name)?
                .ok_or_else(|| WeftError::NotFound {
                    message: format!("no entry {name:?} in bucket {bucket:?}"),
                })?;
            let mut reader = buckets.open(&open.blobs, bucket, name)?;
            std::io::copy(&mut reader, out)?;
            entry
        };
        Ok(entry.into())
    }
}
