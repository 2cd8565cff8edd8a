//! Merging one batch inside the caller's write transaction, with the triggers silenced (or
//! switched off outright when every trigger in the database is Weft's).

use crate::engine::apply::{self, ApplyReport};
use crate::error::Result;
use crate::rules::change::Change;
use crate::storage::crr;
use crate::storage::transaction_state::ConnectionContext;
use rusqlite::Connection;

/// Merges `batch` inside the caller's write transaction. A batch that changes nothing takes
/// no db_version, so merging what a replica already has never looks like news to its readers.
pub(crate) fn merge_batch(
    conn: &Connection,
    context: &ConnectionContext,
    batch: &[Change],
) -> Result<ApplyReport> {
    let _merging = context.merging();
    let _triggers = TriggersOff::when_only_weft_triggers(conn)?;
    let mut state = context.lock();
    let stamp_was_taken = state.has_stamp();
    let stamp = state.begin(conn)?;
    let report = apply::apply_in_transaction(conn, &mut state, stamp, batch, !stamp_was_taken)?;
    if report.db_version.is_none() && !stamp_was_taken {
        state.release_unused_stamp();
    }
    Ok(report)
}

/// Turns the connection's triggers off while a merge writes rows, when every trigger in the
/// database is Weft's own: then a merged row runs no trigger program at all (SQLite sets up
/// every trigger's frame per row before evaluating WHEN, and a statement that fires triggers
/// writing a second table needs a statement journal; together most of a merge's SQLite time).
/// An application trigger (say one maintaining a full-text index) must see merged rows, so
/// with any such trigger present the triggers stay on and only Weft's go quiet, through
/// `weft_capturing()`.
struct TriggersOff<'a>(Option<&'a Connection>);

impl<'a> TriggersOff<'a> {
    fn when_only_weft_triggers(conn: &'a Connection) -> Result<Self> {
        if crr::has_foreign_triggers(conn)? {
            return Ok(TriggersOff(None));
        }
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
            false,
        )?;
        Ok(TriggersOff(Some(conn)))
    }
}

impl Drop for TriggersOff<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            let restored = conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
                true,
            );
            // Local writes on this connection would go unrecorded with triggers off.
            assert!(
                restored.is_ok(),
                "could not turn the connection's triggers back on"
            );
        }
    }
}
