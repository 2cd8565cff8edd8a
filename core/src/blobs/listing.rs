//! Buckets: the replicated listing table (`weft_bucket_entries`) that names blobs, and the
//! local bookkeeping of which blobs this replica's store holds (`weft_blobs_held`) and which
//! buckets it fetches lazily (`weft_buckets_lazy`). Neither local table replicates.

use super::hash::BlobHash;
use super::names::{check_bucket, check_entry, LISTING_CHECKS};
use super::staging::stage_new;
use super::store::BlobStore;
use crate::error::{Error, Result};
use crate::limits::LIST_ENTRIES_MAX;
use crate::replica::Replica;
use rusqlite::{params, OptionalExtension, Row};
use std::io::{self, Read};

/// The name of the built-in listing table.
pub const BUCKET_TABLE: &str = "weft_bucket_entries";

/// The listing table, created on every replica (a replicated table like any other).
pub(crate) fn listing_table_sql() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {BUCKET_TABLE}(
  bucket TEXT NOT NULL, name TEXT NOT NULL,
  hash TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL DEFAULT 0,
  mime TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(bucket, name),{LISTING_CHECKS});
CREATE INDEX IF NOT EXISTS {BUCKET_TABLE}_hash ON {BUCKET_TABLE}(hash);"
    )
}

/// One entry of a bucket's listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The bucket.
    pub bucket: String,
    /// The entry's name in it.
    pub name: String,
    /// The bytes' hash (`None` only while a merged row's hash has not arrived yet).
    pub hash: Option<BlobHash>,
    /// Size in bytes.
    pub size: u64,
    /// MIME type, as the writer gave it (may be empty).
    pub mime: String,
    /// When it was put, in milliseconds since the Unix epoch, by the writer's clock.
    pub created_ms: u64,
}

fn entry_from(row: &Row<'_>) -> rusqlite::Result<Entry> {
    let hash: String = row.get(2)?;
    Ok(Entry {
        bucket: row.get(0)?,
        name: row.get(1)?,
        hash: hash.parse().ok(),
        size: row.get::<_, i64>(3)?.max(0) as u64,
        mime: row.get(4)?,
        created_ms: row.get::<_, i64>(5)?.max(0) as u64,
    })
}

const ENTRY_COLUMNS: &str = "bucket, name, hash, size, mime, created_ms";

/// Writes an entry (parameters in [`ENTRY_COLUMNS`] order), replacing every column of the
/// name's entry if it has one: one statement, so one clock for the whole entry.
fn upsert_sql() -> String {
    format!(
        "INSERT INTO {BUCKET_TABLE}({ENTRY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(bucket, name) DO UPDATE SET hash = excluded.hash, size = excluded.size,
           mime = excluded.mime, created_ms = excluded.created_ms"
    )
}

/// What [`Buckets::collect_garbage`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GarbageReport {
    /// Blobs removed from the store.
    pub removed: u64,
    /// Their bytes.
    pub bytes_removed: u64,
    /// Unreferenced blobs still inside their grace period.
    pub waiting: u64,
    /// Blobs a live entry references (kept).
    pub referenced: u64,
}

/// Buckets of one replica. See the `weft_core::blobs` module documentation.
pub struct Buckets<'a> {
    replica: &'a Replica,
}

impl<'a> Buckets<'a> {
    pub(crate) fn new(replica: &'a Replica) -> Self {
        Buckets { replica }
    }

    /// Copies `source` into `store` (hashed on the way, stored once per content) and names it
    /// `bucket`/`name`, replacing what the name held. Works offline: the bytes travel when
    /// the replica next syncs. `progress` is told the bytes read so far.
    pub fn put(
        &self,
        store: &dyn BlobStore,
        bucket: &str,
        name: &str,
        source: impl Read,
        mime: &str,
        progress: impl FnMut(u64),
    ) -> Result<Entry> {
        check_bucket(bucket)?;
        check_entry(name)?;
        let (staged, hash, size) = stage_new(store.staging_dir(), source, progress)?;
        let stored = match store.size(&hash) {
            Ok(Some(_)) => std::fs::remove_file(&staged).map_err(Error::from),
            Ok(None) => store.publish(&hash, &staged).map_err(Error::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = stored {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
        self.mark_held(&hash, size)?;
        self.link(bucket, name, &hash, size, mime)
    }

    /// Names bytes the store already holds (or will receive): `bucket`/`name` → `hash`.
    pub fn link(
        &self,
        bucket: &str,
        name: &str,
        hash: &BlobHash,
        size: u64,
        mime: &str,
    ) -> Result<Entry> {
        check_bucket(bucket)?;
        check_entry(name)?;
        let created_ms = self.replica.now_ms();
        self.replica.connection().execute(
            &upsert_sql(),
            params![
                bucket,
                name,
                hash.to_hex(),
                size as i64,
                mime,
                created_ms as i64
            ],
        )?;
        Ok(Entry {
            bucket: bucket.into(),
            name: name.into(),
            hash: Some(*hash),
            size,
            mime: mime.into(),
            created_ms,
        })
    }

    /// The entry `bucket`/`name`, if the listing has it.
    pub fn get(&self, bucket: &str, name: &str) -> Result<Option<Entry>> {
        Ok(self
            .replica
            .connection()
            .prepare_cached(&format!(
                "SELECT {ENTRY_COLUMNS} FROM {BUCKET_TABLE} WHERE bucket = ?1 AND name = ?2"
            ))?
            .query_row([bucket, name], entry_from)
            .optional()?)
    }

    /// Entries of `bucket` whose names start with `prefix`, in name order, after `after`
    /// (for paging), at most `limit` (capped at [`LIST_ENTRIES_MAX`]).
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Entry>> {
        let upper = format!("{prefix}\u{10FFFF}");
        let mut statement = self.replica.connection().prepare_cached(&format!(
            "SELECT {ENTRY_COLUMNS} FROM {BUCKET_TABLE}
             WHERE bucket = ?1 AND name >= ?2 AND name <= ?3 AND name > ?4
             ORDER BY name LIMIT ?5"
        ))?;
        let rows = statement.query_map(
            params![
                bucket,
                prefix,
                upper,
                after.unwrap_or(""),
                limit.min(LIST_ENTRIES_MAX) as i64
            ],
            entry_from,
        )?;
        let mut out = Vec::new();
        for row in rows {
            let entry = row?;
            if entry.name.starts_with(prefix) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// The buckets that hold at least one entry, with their entry counts and total sizes.
    pub fn buckets(&self) -> Result<Vec<(String, u64, u64)>> {
        let mut statement = self.replica.connection().prepare_cached(&format!(
            "SELECT bucket, count(*), total(size) FROM {BUCKET_TABLE} GROUP BY bucket ORDER BY bucket"
        ))?;
        let rows = statement.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, f64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes `bucket`/`name` from the listing; returns whether it was there. The bytes stay
    /// until garbage collection finds no entry referencing them.
    pub fn remove(&self, bucket: &str, name: &str) -> Result<bool> {
        Ok(self.replica.connection().execute(
            &format!("DELETE FROM {BUCKET_TABLE} WHERE bucket = ?1 AND name = ?2"),
            [bucket, name],
        )? > 0)
    }

    /// Renames `bucket`/`from` to `bucket`/`to` (replacing `to`), in one transaction: a delete
    /// and an insert, which merge like any row's.
    pub fn rename(&self, bucket: &str, from: &str, to: &str) -> Result<Entry> {
        check_entry(to)?;
        self.replica.write_transaction(|conn, _| {
            let entry = conn
                .prepare_cached(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM {BUCKET_TABLE} WHERE bucket = ?1 AND name = ?2"
                ))?
                .query_row([bucket, from], entry_from)
                .optional()?
                .ok_or_else(|| Error::NoSuchEntry {
                    bucket: bucket.into(),
                    name: from.into(),
                })?;
            conn.execute(
                &format!("DELETE FROM {BUCKET_TABLE} WHERE bucket = ?1 AND name = ?2"),
                [bucket, from],
            )?;
            conn.execute(
                &upsert_sql(),
                params![
                    bucket,
                    to,
                    entry.hash.map(|h| h.to_hex()).unwrap_or_default(),
                    entry.size as i64,
                    entry.mime,
                    entry.created_ms as i64
                ],
            )?;
            Ok(Entry {
                name: to.into(),
                ..entry
            })
        })
    }

    /// Streams the bytes of `bucket`/`name` from `store`. [`Error::BlobNotHere`] when the
    /// listing names bytes this replica has not received (yet, or in a lazy bucket).
    pub fn open(
        &self,
        store: &'a dyn BlobStore,
        bucket: &str,
        name: &str,
    ) -> Result<BlobReader<'a>> {
        let entry = self.get(bucket, name)?.ok_or_else(|| Error::NoSuchEntry {
            bucket: bucket.into(),
            name: name.into(),
        })?;
        let hash = entry.hash.ok_or_else(|| Error::BlobNotHere {
            hash: String::new(),
            entry: format!("{bucket}/{name}"),
        })?;
        if !self.is_held(&hash)? {
            return Err(Error::BlobNotHere {
                hash: hash.to_hex(),
                entry: format!("{bucket}/{name}"),
            });
        }
        Ok(BlobReader {
            store,
            hash,
            size: entry.size,
            offset: 0,
            buffer: Vec::new(),
            at: 0,
        })
    }

    /// Whether this replica's store holds `hash`'s bytes.
    pub fn is_held(&self, hash: &BlobHash) -> Result<bool> {
        Ok(self.held_size(hash)?.is_some())
    }

    /// The size of `hash`'s bytes, if this replica's store holds them.
    pub fn held_size(&self, hash: &BlobHash) -> Result<Option<u64>> {
        Ok(self
            .replica
            .connection()
            .prepare_cached("SELECT size FROM weft_blobs_held WHERE hash = ?1")?
            .query_row([hash.to_hex()], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|size| size.max(0) as u64))
    }

    /// Records that the store now holds `hash` (`size` bytes).
    pub fn mark_held(&self, hash: &BlobHash, size: u64) -> Result<()> {
        self.replica
            .connection()
            .prepare_cached(
                "INSERT INTO weft_blobs_held(hash, size) VALUES (?1, ?2)
                 ON CONFLICT(hash) DO UPDATE SET size = excluded.size, unreferenced_since_ms = NULL",
            )?
            .execute(params![hash.to_hex(), size as i64])?;
        Ok(())
    }

    /// Records that the store no longer holds `hash` (its bytes were found missing).
    pub fn forget_held(&self, hash: &BlobHash) -> Result<()> {
        self.replica
            .connection()
            .prepare_cached("DELETE FROM weft_blobs_held WHERE hash = ?1")?
            .execute([hash.to_hex()])?;
        Ok(())
    }

    /// Up to `limit` hashes that live entries name and this replica's store lacks, in hash
    /// order after `after`. Entries of lazy buckets are left out unless `lazy_too`.
    pub fn missing(
        &self,
        after: Option<&BlobHash>,
        limit: usize,
        lazy_too: bool,
    ) -> Result<Vec<BlobHash>> {
        let mut statement = self.replica.connection().prepare_cached(&format!(
            "SELECT DISTINCT e.hash FROM {BUCKET_TABLE} e
             WHERE e.hash > ?1
               AND NOT EXISTS (SELECT 1 FROM weft_blobs_held h WHERE h.hash = e.hash)
               AND (?2 OR NOT EXISTS (SELECT 1 FROM weft_buckets_lazy l WHERE l.bucket = e.bucket))
             ORDER BY e.hash LIMIT ?3"
        ))?;
        let after = after.map(|h| h.to_hex()).unwrap_or_default();
        let rows = statement.query_map(params![after, lazy_too, limit as i64], |r| {
            r.get::<_, String>(0)
        })?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(hash) = row?.parse() {
                out.push(hash);
            }
        }
        Ok(out)
    }

    /// Makes this replica fetch `bucket`'s bytes on first read (`lazy`) or with every sync
    /// (the default). A local setting: it does not replicate.
    pub fn set_lazy(&self, bucket: &str, lazy: bool) -> Result<()> {
        check_bucket(bucket)?;
        let sql = if lazy {
            "INSERT OR IGNORE INTO weft_buckets_lazy(bucket) VALUES (?1)"
        } else {
            "DELETE FROM weft_buckets_lazy WHERE bucket = ?1"
        };
        self.replica.connection().execute(sql, [bucket])?;
        Ok(())
    }

    /// Remembers the sync URL this replica last synced with: where a lazy bucket's bytes are
    /// fetched from on first read. A local setting.
    pub fn remember_source(&self, url: &str) -> Result<()> {
        crate::storage::bookkeeping::set_value(self.replica.connection(), "blob_source", url)
    }

    /// The sync URL this replica last synced with, if any.
    pub fn source(&self) -> Result<Option<String>> {
        Ok(self
            .replica
            .connection()
            .query_row(
                "SELECT value FROM weft_meta WHERE key = 'blob_source'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?)
    }

    /// Whether `bucket` is fetched lazily here.
    pub fn is_lazy(&self, bucket: &str) -> Result<bool> {
        Ok(self
            .replica
            .connection()
            .query_row(
                "SELECT 1 FROM weft_buckets_lazy WHERE bucket = ?1",
                [bucket],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Removes from `store` the blobs no live entry has referenced for at least `grace_ms`
    /// (by this replica's clock, `now_ms`). A blob becomes a candidate when a pass finds it
    /// unreferenced and stops being one when an entry names it again; each removal happens
    /// under the write lock, after checking again, so a merge cannot add a reference to bytes
    /// being removed.
    pub fn collect_garbage(
        &self,
        store: &dyn BlobStore,
        now_ms: u64,
        grace_ms: u64,
    ) -> Result<GarbageReport> {
        let conn = self.replica.connection();
        let mut report = GarbageReport::default();
        self.replica.write_transaction(|conn, _| {
            conn.execute(
                &format!(
                    "UPDATE weft_blobs_held SET unreferenced_since_ms = NULL
                     WHERE unreferenced_since_ms IS NOT NULL
                       AND EXISTS (SELECT 1 FROM {BUCKET_TABLE} e WHERE e.hash = weft_blobs_held.hash)"
                ),
                [],
            )?;
            conn.execute(
                &format!(
                    "UPDATE weft_blobs_held SET unreferenced_since_ms = ?1
                     WHERE unreferenced_since_ms IS NULL
                       AND NOT EXISTS (SELECT 1 FROM {BUCKET_TABLE} e WHERE e.hash = weft_blobs_held.hash)"
                ),
                [now_ms as i64],
            )?;
            Ok(())
        })?;
        report.referenced = conn.query_row(
            "SELECT count(*) FROM weft_blobs_held WHERE unreferenced_since_ms IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64;
        let due: Vec<(String, i64)> = conn
            .prepare(
                "SELECT hash, size FROM weft_blobs_held
                 WHERE unreferenced_since_ms IS NOT NULL AND unreferenced_since_ms <= ?1",
            )?
            .query_map([now_ms.saturating_sub(grace_ms) as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        for (hex, size) in due {
            let Ok(hash) = hex.parse::<BlobHash>() else {
                conn.execute("DELETE FROM weft_blobs_held WHERE hash = ?1", [&hex])?;
                continue;
            };
            let removed = self.replica.write_transaction(|conn, _| {
                let referenced: bool = conn.query_row(
                    &format!("SELECT EXISTS (SELECT 1 FROM {BUCKET_TABLE} WHERE hash = ?1)"),
                    [&hex],
                    |r| r.get(0),
                )?;
                if referenced {
                    conn.execute(
                        "UPDATE weft_blobs_held SET unreferenced_since_ms = NULL WHERE hash = ?1",
                        [&hex],
                    )?;
                    return Ok(false);
                }
                store.delete(&hash)?;
                conn.execute("DELETE FROM weft_blobs_held WHERE hash = ?1", [&hex])?;
                Ok(true)
            })?;
            if removed {
                report.removed += 1;
                report.bytes_removed += size.max(0) as u64;
            }
        }
        report.waiting = conn.query_row(
            "SELECT count(*) FROM weft_blobs_held WHERE unreferenced_since_ms IS NOT NULL",
            [],
            |r| r.get::<_, i64>(0),
        )? as u64;
        Ok(report)
    }
}

/// Reads a blob's bytes from a store in chunks (see [`Buckets::open`]).
pub struct BlobReader<'a> {
    store: &'a dyn BlobStore,
    hash: BlobHash,
    size: u64,
    offset: u64,
    buffer: Vec<u8>,
    at: usize,
}

/// Bytes one store read fetches.
const READ_CHUNK_BYTES: usize = 1 << 20;

impl BlobReader<'_> {
    /// The blob's id.
    pub fn hash(&self) -> BlobHash {
        self.hash
    }

    /// Its size as the listing gives it.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for BlobReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.buffer.len() {
            self.buffer = self
                .store
                .read_at(&self.hash, self.offset, READ_CHUNK_BYTES)?;
            self.at = 0;
            self.offset += self.buffer.len() as u64;
            if self.buffer.is_empty() {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buffer.len() - self.at);
        out[..n].copy_from_slice(&self.buffer[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
