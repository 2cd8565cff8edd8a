//! Reading a replica's changes out: in bounded batches, for everyone or for one peer (leaving
//! out what that peer sent, and, after range-based reconciliation, the rows it holds alike).

use super::Replica;
use crate::engine::read_changes;
use crate::error::Result;
use crate::rules::change::{ChangeBatch, Cursor};
use crate::rules::site::SiteId;
use crate::rules::value::encode_key;
use crate::storage::bookkeeping;
use crate::storage::transaction_state::{RowKey, RowSelection};
use crate::sync::fingerprint::{self, RowFilter};
use std::sync::Arc;

impl Replica {
    /// One bounded batch of the changes after `cursor` (at most `max_changes`, never splitting a row).
    pub fn changes(&self, cursor: &Cursor, max_changes: usize) -> Result<ChangeBatch> {
        self.read_changes(cursor, max_changes, false)
    }

    fn read_changes(
        &self,
        cursor: &Cursor,
        max_changes: usize,
        filtered: bool,
    ) -> Result<ChangeBatch> {
        let max_changes = max_changes.clamp(1, self.options.limits.changes_per_batch_max);
        self.read_transaction(|| {
            let catalog = bookkeeping::load_catalog(&self.conn)?;
            let mut state = self.context.lock();
            read_changes::read(
                &self.conn,
                &mut state,
                &catalog,
                cursor,
                max_changes,
                filtered,
            )
        })
    }

    /// Like [`Replica::changes`], for sending to `peer`: leaves out registers that this
    /// replica stored by merging a batch from `peer` ([`Replica::apply_changes_from`]), which
    /// `peer` holds already (or something newer). The cursor still moves past them, so a
    /// batch may come back empty and not done.
    pub fn changes_for(
        &self,
        peer: &SiteId,
        cursor: &Cursor,
        max_changes: usize,
    ) -> Result<ChangeBatch> {
        self.changes_for_rows(peer, cursor, max_changes, None)
    }

    /// Like [`Replica::changes_for`], leaving out too the changes `filter` does not send
    /// (after range-based reconciliation: rows the peer holds alike). Whole rows are left out
    /// inside SQLite, then each register is checked with [`RowFilter::sends`] (a row changed
    /// after the snapshot carries older registers too). A batch that is `done` ends at least
    /// at the snapshot: everything left out below it, the peer holds.
    pub(crate) fn changes_for_rows(
        &self,
        peer: &SiteId,
        cursor: &Cursor,
        max_changes: usize,
        filter: Option<&Arc<RowFilter>>,
    ) -> Result<ChangeBatch> {
        // Skip whole transactions merged from `peer` at the start without reading them (after
        // a large download, all of them are).
        let skipped;
        let cursor = match cursor.position {
            None => {
                let through = bookkeeping::merged_from_run(&self.conn, peer, cursor.since)?;
                skipped = Cursor::since(through);
                &skipped
            }
            Some(_) => cursor,
        };
        let mut batch = match filter {
            Some(filter) => self.context.with_row_filter(filter.clone(), || {
                self.read_changes(cursor, max_changes, true)
            })?,
            None => self.changes(cursor, max_changes)?,
        };
        let low = batch.changes.iter().map(|c| c.db_version).min();
        let high = batch.changes.iter().map(|c| c.db_version).max();
        if let (Some(low), Some(high)) = (low, high) {
            let echoes = bookkeeping::merged_from(&self.conn, peer, low, high)?;
            if !echoes.is_empty() {
                batch.changes.retain(|c| !echoes.contains(&c.db_version));
            }
        }
        if let Some(filter) = filter {
            filter_registers(&mut batch, filter);
        }
        Ok(batch)
    }

    /// Stops leaving `peer`'s own changes out of what is sent to it: for a peer that came back
    /// with a new incarnation, or older than it was, and may have lost them.
    pub fn forget_merged_from(&self, peer: &SiteId) -> Result<()> {
        self.write_transaction(|conn, _| {
            conn.execute(
                "DELETE FROM weft_merged_from WHERE site = ?1",
                [peer.0.as_slice()],
            )?;
            Ok(())
        })
    }

    /// All changes after `db_version`, as an iterator of bounded batches.
    pub fn changes_since(&self, db_version: u64) -> ChangeBatches<'_> {
        ChangeBatches {
            replica: self,
            cursor: Some(Cursor::since(db_version)),
        }
    }
}

/// An iterator over all changes after a db_version, in bounded batches.
pub struct ChangeBatches<'a> {
    replica: &'a Replica,
    cursor: Option<Cursor>,
}

impl Iterator for ChangeBatches<'_> {
    type Item = Result<ChangeBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let cursor = self.cursor.take()?;
        let batch = self
            .replica
            .changes(&cursor, self.replica.options.limits.changes_per_batch_max);
        match &batch {
            Ok(b) if b.done && b.changes.is_empty() => return None,
            Ok(b) if !b.done => self.cursor = Some(b.next.clone()),
            _ => {}
        }
        Some(batch)
    }
}

/// Leaves out of `batch` the registers `filter` does not send, hashing each row once, and
/// moves a `done` batch's end to at least the filter's snapshot.
fn filter_registers(batch: &mut ChangeBatch, filter: &RowFilter) {
    let mut keep = Vec::with_capacity(batch.changes.len());
    for row in batch
        .changes
        .chunk_by(|a, b| a.table == b.table && a.pk == b.pk)
    {
        let mut hash = None;
        for change in row {
            let row_hash = || *hash.get_or_insert_with(|| fingerprint::change_row_hash(change));
            keep.push(filter.sends(change.db_version, row_hash));
        }
    }
    let mut keep = keep.into_iter();
    batch.changes.retain(|_| keep.next().unwrap_or(true));
    if batch.done && batch.next.since < filter.through {
        batch.next = Cursor::since(filter.through);
    }
}

/// The sync layer's row filter, as the storage layer's `weft_*_row_sent` functions ask it: a
/// row's hash is computed only when the filter needs it.
impl RowSelection for RowFilter {
    fn keeps(&self, db_version: u64, table: &str, key: RowKey<'_>) -> bool {
        self.sends(db_version, || match key {
            RowKey::Encoded(key) => fingerprint::row_hash(table, key),
            RowKey::Values(values) => fingerprint::row_hash(table, &encode_key(values)),
        })
    }
}
