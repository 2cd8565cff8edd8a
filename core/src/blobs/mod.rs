//! Blobs and buckets: files and images beside the rows.
//!
//! A bucket's listing is the replicated table [`BUCKET_TABLE`] (bucket, name, hash, size,
//! mime, created): entries merge like any rows. The bytes are stored once per content under
//! their BLAKE3 hash ([`BlobHash`]) in a [`BlobStore`] — a local directory ([`LocalBlobs`]) on a
//! client, any object store on a server — and travel by hash over the sync connection
//! (`blob_want` / `blob_data` / `blob_have`, see `docs/protocol.md`), verified on arrival
//! ([`staging::Incoming`]) before anything is published.

mod hash;
mod listing;
mod names;
pub mod staging;
mod store;

pub use crate::limits::{
    BLOB_BYTES_MAX, BUCKET_NAME_BYTES_MAX, ENTRY_NAME_BYTES_MAX, LIST_ENTRIES_MAX,
};
pub use hash::{BlobHash, NotAHash};
pub(crate) use listing::listing_table_sql;
pub use listing::{BlobReader, Buckets, Entry, GarbageReport, BUCKET_TABLE};
pub use names::{check_bucket, check_entry};
pub use store::{BlobStore, LocalBlobs};

/// Bytes of one `blob_data` frame: small enough that a connection holds little, large
/// enough that a 1 GiB blob is a few thousand frames.
pub const BLOB_CHUNK_BYTES: usize = 256 << 10;
