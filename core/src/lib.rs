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

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod apply;
pub mod bundle;
mod cells;
mod changes;
pub mod clock;
mod connection;
mod crr;
pub mod digest;
mod error;
pub mod kv;
mod limits;
pub mod merge;
mod meta;
mod replica;
pub mod schema;
mod site;
pub mod value;

pub use apply::ApplyReport;
pub use changes::{Change, ChangeBatch, Cursor, Position};
pub use connection::ReplicaConnection;
pub use digest::Digest;
pub use error::{Error, Result};
pub use limits::Limits;
pub use replica::{
    ChangeBatches, Info, Options, Replica, KV_TABLE, LOCK_WAIT_MAX, PAUSE_BETWEEN_BATCHES,
};
pub use site::SiteId;
pub use value::Value;

/// The SQLite binding this crate is built on: [`Replica::connection`] hands out its `Connection`.
pub use rusqlite;
