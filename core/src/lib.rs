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
//!                    └──── apply_changes() ◄── merge rule (rules/merge.rs, pure) ◄────────┘
//! ```
//!
//! - Cells are last-writer-wins registers ordered by hybrid logical clock, then site id
//!   (`rules/clock.rs`, `rules/merge.rs`); a row's causal length makes deletes beat concurrent
//!   updates and later re-inserts beat deletes.
//! - `db_version` is the local commit counter: one per transaction, the cursor others resume from.
//! - Changes for tables or columns this replica lacks are kept and relayed, and land in the
//!   table when the schema catches up, so a replica without any schema (a server) relays all.
//! - [`Replica::digest`] is an order-independent hash of the whole state: equal digests, equal
//!   state.
//!
//! The source is layered, each folder importing only from those above it in this list (one
//! exception: the facade's filtered reads use the sync layer's row filter):
//! - `rules/`: the pure rules (merge, hybrid clock, values, site ids, the digest, how a clock
//!   row stores its registers, the travelling types [`Change`] and [`Cursor`]); no SQL runs;
//! - `storage/`: the replica file (table shapes, bookkeeping tables, run log, file format, CRR
//!   setup), each connection's transaction state and the SQL functions and hooks it carries;
//! - `engine/`: recording local writes (`capture/`), merging changes (`apply/`, `merge_batch.rs`), reading
//!   changes out (`read_changes.rs`);
//! - `replica/`: the [`Replica`] facade, and [`blobs`] and [`bundle`] beside it;
//! - [`sync`]: the sync protocol's state machine, which asks the facade (and uses the rules'
//!   types), never storage or the engine.
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

pub mod blobs;
pub mod bundle;
mod engine;
mod error;
pub mod events;
mod limits;
mod replica;
mod rules;
mod storage;
pub mod sync;
#[doc(hidden)]
pub mod test_support;

pub use engine::apply::ApplyReport;
pub use error::{Error, Result};
pub use limits::{Limits, LOCK_WAIT_MAX};
pub use replica::kv::{Kv, KV_TABLE};
pub use replica::{ChangeBatches, Info, Options, Replica};
pub use rules::change::{Change, ChangeBatch, Cursor, CursorMove, PeerCursor, Position};
pub use rules::clock::{SharedWallClock, SystemClock, WallClock};
pub use rules::digest::Digest;
pub use rules::site::{IdSource, Incarnation, RandomIds, SharedIdSource, SiteId};
pub use rules::value::{encode_key, KeyDecodeError, Value};
pub use storage::commit_notices::CommitSubscription;
pub use storage::replica_connection::{ReplicaConnection, PAUSE_BETWEEN_BATCHES};

/// The SQLite binding this crate is built on: [`Replica::connection`] hands out its `Connection`.
pub use rusqlite;
