//! Every bound the engine enforces, in one place, with units in the names: [`Limits`], which a
//! replica is opened with, and the fixed bounds below it, grouped by layer. The sync layer's
//! bounds live in `sync/limits.rs`.

use std::time::Duration;

/// The engine's bounds. Breaching one is a typed error naming it ([`crate::Error::LimitExceeded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most changes merged in one transaction: bounds how long a merge holds the write lock.
    pub changes_per_batch_max: usize,
    /// Largest frame in a change bundle file.
    pub bundle_frame_bytes_max: usize,
    /// Most rows of replicated tables one [`crate::Replica::write`] may change: each is held in
    /// memory until its commit.
    pub write_rows_max: usize,
    /// Most bytes of earlier values one [`crate::Replica::write`] may hold (what updated and
    /// deleted rows held before it, kept until its commit).
    pub write_held_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            changes_per_batch_max: 10_000,
            bundle_frame_bytes_max: 64 << 20,
            write_rows_max: 10_000_000,
            write_held_bytes_max: 512 << 20,
        }
    }
}

// Storage: names, the connection, the run log, the bookkeeping tables.

/// Longest table or column name accepted, in bytes.
pub(crate) const IDENTIFIER_BYTES_MAX: usize = 128;

/// How long a connection waits for another writer before giving up with SQLITE_BUSY.
pub const LOCK_WAIT_MAX: Duration = Duration::from_secs(10);

/// How long a commit at the inline bound waits for a running background checkpoint to end
/// before checkpointing anyway (which then fails if that one still runs, as SQLite's would).
pub(crate) const CHECKPOINT_WAIT_MAX: Duration = Duration::from_secs(10);

/// How many keys nobody wrote a run of the run log may step over rather than end: a reader
/// steps over the rows of other versions in between, which is cheaper than one more entry to
/// read.
pub(crate) const RUN_GAP_MAX: i64 = 16;

/// How many ranges of keys not rewritten a sweep reads of one entry before it reads the
/// entry whole instead.
pub(crate) const SWEEP_UNREWRITTEN_RANGES_MAX: usize = 16;

/// Transactions skipped at most per call of `bookkeeping::merged_from_run`.
pub(crate) const MERGED_RUN_MAX: i64 = 100_000;

// Engine: recording writes, reading changes.

/// How many absent keys a range read of `Replica::write`'s commit may step over rather than
/// start a new range: reading a few rows nobody touched is cheaper than running the statement
/// again.
pub(crate) const CAPTURE_READ_GAP_MAX: i64 = 16;

/// Table and column names a read of changes keeps shared copies of; past it, it starts over.
pub(crate) const NAMES_HELD_MAX: usize = 64;

// The facade: the key-value table and the blobs (re-exported by the blobs module).

/// Most pairs one `Kv::scan` returns.
pub(crate) const KV_SCAN_PAIRS_MAX: usize = 100_000;

/// The largest blob a replica accepts, in bytes.
pub const BLOB_BYTES_MAX: u64 = 1 << 40;

/// Longest bucket name, in bytes.
pub const BUCKET_NAME_BYTES_MAX: usize = 64;

/// Longest entry name, in bytes.
pub const ENTRY_NAME_BYTES_MAX: usize = 1024;

/// Most entries one `Buckets::list` returns.
pub const LIST_ENTRIES_MAX: usize = 100_000;

// Change events (the events module).

/// Registers one transaction's event may gather while its end is not read yet; a larger
/// transaction is delivered as several events with the same db_version, each `partial`
/// but the last.
pub const EVENT_REGISTERS_MAX: usize = 10_000;

/// Tables whose key column names an event reader remembers; past that it forgets them all.
pub(crate) const KEY_NAMES_CACHED_MAX: usize = 1_024;
