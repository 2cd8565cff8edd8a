//! Weft for apps in other languages: one [uniffi](https://mozilla.github.io/uniffi-rs) surface
//! that the Kotlin, Swift, Python and Dart bindings in `bindings/` generate from and wrap in
//! an idiomatic layer of their own.
//!
//! - [`Database`]: open a replica file; `execute`, `query`, transactions
//!   ([`Transaction`]), `enable_crr`, `digest`, `info`; the key-value table; blob buckets.
//! - Sync: `sync_once`, and [`LiveSync`] started with a credentials callback, with a
//!   [`SyncStatus`] and the writes the server refused.
//! - Listeners: a callback per committed transaction, and reactive queries
//!   ([`Subscription`]).
//! - Errors: [`WeftError`], one variant per thing an app can do about it.
//!
//! Every write goes through `Replica::write` (the engine's recorded-write path). Blocking
//! calls release the caller's runtime (Python's GIL; Kotlin and Swift wrap them in
//! coroutines and tasks).

#![warn(missing_docs, unreachable_pub)]

uniffi::setup_scaffolding!("weft_ffi");

mod blobs;
mod database;
mod error;
mod handles;
mod kv;
mod listen;
mod live;
mod runtime;
mod statement;
mod sync_once;
mod transaction;
mod value;

pub use blobs::BlobEntry;
pub use database::{open, Database, DatabaseInfo, TableInfo};
pub use error::WeftError;
pub use kv::KvEntry;
pub use listen::{ChangeEvent, ChangeListener, QueryListener, Subscription};
pub use live::{CredentialsProvider, LiveSync, RefusedWrite, SyncStatus, SyncStatusListener};
pub use sync_once::SyncReport;
pub use transaction::Transaction;
pub use value::{QueryResult, SqlValue};

/// The version of this library, as the bindings report it.
#[uniffi::export]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
