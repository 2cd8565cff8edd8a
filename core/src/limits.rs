//! Every bound the engine enforces, in one place, with units in the names.

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

/// Longest table or column name accepted, in bytes.
pub(crate) const IDENTIFIER_BYTES_MAX: usize = 128;

/// How long a connection waits for another writer before giving up with SQLITE_BUSY.
pub const LOCK_WAIT_MAX: Duration = Duration::from_secs(10);
