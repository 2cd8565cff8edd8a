//! Materialising the relay: when a table is replicated (or gains columns), the changes held for
//! it in the relay are taken out and merged again, so those for columns it now has land in it.

use crate::engine::apply;
use crate::engine::read_changes::{self, relay_change, RELAY_COLUMNS};
use crate::error::Result;
use crate::rules::change::Change;
use crate::rules::digest::register_hash;
use crate::rules::value::encode_key;
use crate::storage::bookkeeping;
use crate::storage::transaction_state::ConnectionContext;
use rusqlite::Connection;

/// Moves changes held for `table` into it: they are taken out of the relay and merged again,
/// so registers for columns the table now has land in it and the rest go back to the relay.
pub(super) fn materialize_relay(
    conn: &Connection,
    context: &ConnectionContext,
    table: &str,
    batch_max: usize,
) -> Result<()> {
    let _merging = context.merging();
    let mut state = context.lock();
    let held: Vec<Change> = {
        let mut statement = conn.prepare(&format!(
            "SELECT {RELAY_COLUMNS} FROM weft_relay WHERE tbl = ?1"
        ))?;
        let mut rows = statement.query([table])?;
        let mut held = Vec::new();
        let mut names = read_changes::Names::default();
        while let Some(r) = rows.next()? {
            held.push(relay_change(conn, &mut state, &mut names, r)?);
        }
        held
    };
    if held.is_empty() {
        return Ok(());
    }
    let mut counters = bookkeeping::read_counters(conn)?;
    for change in &held {
        let key = encode_key(&change.pk);
        counters.digest_sum.sub(&register_hash(
            table,
            &key,
            &change.slot(),
            &change.register(),
        ));
    }
    conn.execute("DELETE FROM weft_relay WHERE tbl = ?1", [table])?;
    bookkeeping::write_digest(conn, &counters.digest_sum, counters.digest_version)?;
    let stamp = state.begin(conn)?;
    for chunk in held.chunks(batch_max) {
        apply::apply_in_transaction(conn, &mut state, stamp, chunk, false)?;
    }
    Ok(())
}
