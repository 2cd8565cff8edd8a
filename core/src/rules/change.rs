//! What travels between replicas: a [`Change`] (one register write), the [`Cursor`] a read of
//! changes resumes from (with its [`Position`] inside a db_version), a bounded [`ChangeBatch`],
//! and the [`PeerCursor`] a replica keeps of how far it has applied another's changes. Plain
//! data: reading and merging them is the engine's.

use crate::rules::merge::{Register, Slot, Stamp};
use crate::rules::site::{Incarnation, SiteId};
use crate::rules::value::Value;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One register write, as it travels between replicas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The table. Shared: the changes of a batch name a few tables many times.
    pub table: Arc<str>,
    /// Primary-key values in key order.
    pub pk: Vec<Value>,
    /// The column, or `None` for the row's existence (insert / delete). Shared, as `table`.
    pub column: Option<Arc<str>>,
    /// The column's value (NULL for the row's existence).
    pub value: Value,
    /// Hybrid logical clock of the write.
    pub clock: u64,
    /// The replica that made the write.
    pub site: SiteId,
    /// Causal length of the row when written: odd = present, even = deleted.
    pub cl: u64,
    /// The sender's db_version at which it wrote or merged this register.
    pub db_version: u64,
}

impl Change {
    /// The register this change writes.
    pub(crate) fn slot(&self) -> Slot {
        self.column.clone().map_or(Slot::Row, Slot::Column)
    }

    /// Who wrote it, when, in which incarnation.
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp {
            cl: self.cl,
            clock: self.clock,
            site: self.site,
        }
    }

    /// The change as a register, stored at its own db_version.
    pub(crate) fn register(&self) -> Register {
        Register {
            stamp: self.stamp(),
            value: self.value.clone(),
            db_version: self.db_version,
        }
    }
}

/// Where a read of changes stands: everything after `since`, and how far into it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Registers written at or below this db_version are not sent.
    pub since: u64,
    /// The last row sent, if the read stopped in the middle.
    pub position: Option<Position>,
}

/// How a merge moves the stored cursor into the sending replica's changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CursorMove {
    /// On from where the stored cursor stands: a cursor behind the stored one is not written.
    Forward,
    /// A session that started over from the beginning (the sender went back in time, or the
    /// two reconciled): the first batch may set the cursor below the stored one.
    StartOver,
}

/// The last row a read sent: its db_version, the source it came from and its key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Position {
    /// The row's db_version.
    pub db_version: u64,
    /// The table (or "" for relayed changes).
    pub source: String,
    /// The row's key within the source.
    pub key: Vec<Value>,
}

impl Cursor {
    /// A cursor for everything after `db_version`.
    pub fn since(db_version: u64) -> Cursor {
        Cursor {
            since: db_version,
            position: None,
        }
    }

    /// The db_version through which every change has been read.
    pub fn complete_through(&self) -> u64 {
        self.since
    }
}

/// One bounded batch of changes.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeBatch {
    /// The changes, in db_version order of their rows.
    pub changes: Vec<Change>,
    /// Where the next read starts.
    pub next: Cursor,
    /// Whether this read reached the end of what the replica holds.
    pub done: bool,
}

/// What this replica has durably received from one other replica.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerCursor {
    /// The other replica.
    pub site: SiteId,
    /// The life of the other replica's data the cursor belongs to.
    pub incarnation: Incarnation,
    /// How far into the other replica's changes this one has applied.
    pub cursor: Cursor,
}
