//! # weft-core: Weft's CRDT engine over SQLite
//!
//! A [`Replica`] is one SQLite file with a random 16-byte site id. [`Replica::enable_crr`]
//! turns an ordinary table into a conflict-free replicated relation: a clock table beside it
//! holds one row per base row, and triggers record every INSERT, UPDATE and DELETE made with
//! plain SQL on any connection the library hands out.
//!
//! ```text
//!   app SQL ──► base table ──triggers──► clock table ──► changes() ──► Change rows ──► other replica
//!                    ▲                         ▲                                          │
//!                    └──── apply_changes() ◄── merge rule (merge.rs, pure) ◄──────────────┘
//! ```
//!
//! - Cells are last-writer-wins registers ordered by hybrid logical clock, then site id
//!   ([`clock`], [`merge`]); a row's causal length makes deletes beat concurrent updates and
//!   later re-inserts beat deletes.
//! - `db_version` is the local commit counter: one per transaction, the cursor others resume from.
//! - Changes for tables or columns this replica lacks are kept and relayed, and land in the
//!   table when the schema catches up, so a replica without any schema (a server) relays all.
//! - [`Replica::digest`] is an order-independent hash of the whole state: equal digests, equal
//!   state.
//!
//! No sockets, no runtime and no clock reads it is not handed live here.
//!
//! ```
//! use weft_core::Replica;
//! # fn main() -> weft_core::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! let laptop = Replica::open(dir.path().join("laptop.db"))?;
//! let phone = Replica::open(dir.path().join("phone.db"))?;
//! for replica in [&laptop, &phone] {
//!     replica.connection().execute_batch("CREATE TABLE note(id TEXT PRIMARY KEY NOT NULL, body TEXT)")?;
//!     replica.enable_crr("note")?;
//! }
//! // Plain SQL is captured by the triggers, on both sides, offline.
//! laptop.connection().execute("INSERT INTO note VALUES ('a', 'from the laptop')", [])?;
//! phone.connection().execute("INSERT INTO note VALUES ('b', 'from the phone')", [])?;
//! // Exchange changes in bounded batches; applying is idempotent and order-independent.
//! for (from, to) in [(&laptop, &phone), (&phone, &laptop)] {
//!     for batch in from.changes_since(0) {
//!         to.apply_changes(&batch?.changes)?;
//!     }
//! }
//! assert_eq!(laptop.digest()?, phone.digest()?);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod apply;
pub mod blobs;
pub mod bundle;
mod capture;
mod cells;
mod changes;
pub mod clock;
mod commits;
mod connection;
mod crr;
pub mod digest;
mod error;
pub mod fingerprint;
mod format;
pub mod kv;
mod limits;
pub mod merge;
mod meta;
mod replica;
mod runs;
pub mod schema;
mod site;
pub mod sync;
pub mod value;

pub use apply::ApplyReport;
pub use changes::{Change, ChangeBatch, Cursor, Position};
pub use commits::CommitSubscription;
pub use connection::ReplicaConnection;
pub use digest::Digest;
pub use error::{Error, Result};
pub use limits::Limits;
pub use meta::PeerCursor;
pub use replica::{
    ChangeBatches, Info, Options, Replica, KV_TABLE, LOCK_WAIT_MAX, PAUSE_BETWEEN_BATCHES,
};
pub use site::{IdSource, Incarnation, RandomIds, SharedIdSource, SiteId};
pub use value::Value;

/// The SQLite binding this crate is built on: [`Replica::connection`] hands out its `Connection`.
pub use rusqlite;
