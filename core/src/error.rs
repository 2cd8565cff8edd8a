//! The engine's errors: each says what went wrong in terms of what the caller did.

use crate::rules::value::KeyDecodeError;

/// Everything the engine can report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused something (a constraint, a type a STRICT column refuses, I/O).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A table cannot be made replicated; the message names the problem.
    #[error("cannot replicate table {table:?}: {reason}")]
    NotReplicable {
        /// The table asked for.
        table: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A change received from elsewhere breaks the rules; nothing of its batch was applied.
    #[error("invalid change for table {table:?}: {reason}")]
    InvalidChange {
        /// The change's table.
        table: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A primary key that does not decode.
    #[error("invalid primary key: {0}")]
    InvalidKey(#[from] KeyDecodeError),
    /// A change bundle that is truncated, corrupted or not a bundle; nothing was applied.
    #[error("invalid bundle: {0}")]
    InvalidBundle(String),
    /// A batch larger than the configured limit.
    #[error("limit exceeded: {limit} is {max}, got {actual}")]
    LimitExceeded {
        /// The name of the limit in [`crate::Limits`].
        limit: &'static str,
        /// Its value.
        max: u64,
        /// What was asked for.
        actual: u64,
    },
    /// The file was written by a newer Weft, in a layout this build does not know.
    #[error(
        "the replica's file format is version {found}, written by a newer weft; this build reads up to version {supported}: upgrade weft"
    )]
    NewerFormat {
        /// The version the file records.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
    /// The replica's own metadata is damaged.
    #[error("replica metadata is corrupt: {0}")]
    Corrupt(String),
    /// A bucket or entry name that breaks the naming rules (see `blobs::check_entry`).
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The listing has no such entry.
    #[error("no entry {name:?} in bucket {bucket:?}")]
    NoSuchEntry {
        /// The bucket.
        bucket: String,
        /// The name asked for.
        name: String,
    },
    /// The listing names bytes this replica's store does not hold (not received yet, or in a
    /// lazy bucket not read yet).
    #[error("the bytes of {entry} ({hash}) are not here yet: sync with a replica that has them")]
    BlobNotHere {
        /// The blob's hash (empty while the entry's hash has not arrived).
        hash: String,
        /// `bucket/name`.
        entry: String,
    },
    /// A [`crate::Replica::write`] was rolled back whole, for the reason given.
    #[error("the write was rolled back, nothing of it was kept: {0}")]
    WriteRolledBack(String),
    /// Reading or writing a file failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
