//! The version of a replica file's bookkeeping layout, and the upgrades from older layouts.
//!
//! A replica records the version it was written in under `weft_meta.format` (absent: version
//! 1, before the key existed). Opening a file of an older version upgrades it in one write
//! transaction; a file of a newer version is refused, so an older build never writes a layout
//! it does not understand.

use crate::error::{Error, Result};
use crate::storage::bookkeeping;
use rusqlite::{Connection, OptionalExtension};
use std::time::Instant;

/// The layout this build writes.
///
/// - 1: `weft_relay` keyed by `(tbl, pk, col)`, with an index on `db_version`.
/// - 2: `weft_relay` keyed by `(db_version, tbl, pk, col)`, with a unique index on
///   `(tbl, pk, col)`: reading changes in db_version order (every sync of a server) is a
///   straight scan instead of an index seek per register.
/// - 3: a clock row's `__weft_cells` may also hold the two-stamp form (`crate::rules::stored_clock`), which
///   version 2 cannot read. Nothing is rewritten: every version 2 row is valid in version 3.
/// - 4: a clock table keyed by rowid has a run log (`crate::storage::run_log`) for the rows the engine
///   writes, a `__weft_logged` column that says which rows it holds, and a partial index on
///   `__weft_db_version` for the others, which the triggers write. Version 3 would not see
///   the rows found through the log.
pub(crate) const FORMAT_VERSION: u64 = 4;

const FORMAT_KEY: &str = "format";

/// The layout version `conn`'s file records.
pub(crate) fn stored(conn: &Connection) -> Result<u64> {
    let value: Option<i64> = conn
        .query_row(
            "SELECT value FROM weft_meta WHERE key = ?1",
            [FORMAT_KEY],
            |r| r.get(0),
        )
        .optional()?;
    match value {
        None => Ok(1),
        Some(v) if v >= 1 => Ok(v as u64),
        Some(v) => Err(Error::Corrupt(format!("file format version {v}"))),
    }
}

/// Refuses a file written in a layout newer than this build's.
pub(crate) fn check_supported(found: u64) -> Result<()> {
    if found > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

/// Brings the bookkeeping tables of `conn`'s file to [`FORMAT_VERSION`] and records it. Runs
/// inside the caller's write transaction; each step checks the layout itself, so a file that
/// lost its version key, or was set up half-way, is upgraded all the same. `name` is for the
/// log.
pub(crate) fn upgrade(conn: &Connection, name: &str) -> Result<()> {
    check_supported(stored(conn)?)?;
    if relay_keyed_by_register(conn)? {
        let registers: i64 = conn.query_row("SELECT count(*) FROM weft_relay", [], |r| r.get(0))?;
        tracing::info!(
            replica = name,
            registers,
            "upgrading the file format: rewriting the relay in db_version order"
        );
        let started = Instant::now();
        conn.execute_batch(&format!(
            "{create}
             INSERT INTO weft_relay_v2(tbl, pk, col, cl, clock, site, db_version, value)
               SELECT tbl, pk, col, cl, clock, site, db_version, value FROM weft_relay;
             DROP TABLE weft_relay;
             ALTER TABLE weft_relay_v2 RENAME TO weft_relay;",
            create = bookkeeping::relay_table_sql("weft_relay_v2"),
        ))?;
        tracing::info!(
            replica = name,
            registers,
            seconds = started.elapsed().as_secs_f64(),
            "file format upgraded"
        );
    }
    conn.execute_batch(bookkeeping::RELAY_KEY_INDEX_SQL)?;
    conn.execute_batch("DROP INDEX IF EXISTS weft_relay_db_version")?;
    if has_table(conn, "weft_tables")? {
        let started = Instant::now();
        let mut adopted = 0;
        for table in bookkeeping::replicated_table_names(conn)? {
            adopted += usize::from(crate::storage::crr::adopt_run_log(conn, &table)?);
        }
        if adopted > 0 {
            tracing::info!(
                replica = name,
                tables = adopted,
                seconds = started.elapsed().as_secs_f64(),
                "file format upgraded: clock tables keyed by rowid are indexed by run logs"
            );
        }
    }
    bookkeeping::set_value(conn, FORMAT_KEY, FORMAT_VERSION as i64)
}

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get(0),
    )?)
}

/// Whether `weft_relay` still has version 1's layout: its primary key does not start with
/// `db_version`.
fn relay_keyed_by_register(conn: &Connection) -> Result<bool> {
    let position: Option<i64> = conn
        .query_row(
            "SELECT pk FROM pragma_table_info('weft_relay') WHERE name = 'db_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(position.is_some_and(|p| p != 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERSION_1_RELAY: &str = "
        CREATE TABLE weft_meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
        CREATE TABLE weft_relay(
          tbl TEXT NOT NULL, pk BLOB NOT NULL, col TEXT NOT NULL,
          cl INTEGER NOT NULL, clock INTEGER NOT NULL, site INTEGER NOT NULL, db_version INTEGER NOT NULL, value,
          PRIMARY KEY(tbl, pk, col)) WITHOUT ROWID;
        CREATE INDEX weft_relay_db_version ON weft_relay(db_version);
        INSERT INTO weft_relay VALUES ('t', x'01', 'a', 1, 10, 1, 7, 'seven'), ('t', x'02', 'a', 1, 11, 1, 3, 'three');";

    #[test]
    fn a_version_1_relay_is_rewritten_with_its_registers_in_db_version_order() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(VERSION_1_RELAY).unwrap();
        assert_eq!(stored(&conn).unwrap(), 1);
        upgrade(&conn, "test").unwrap();
        assert_eq!(stored(&conn).unwrap(), FORMAT_VERSION);
        assert!(!relay_keyed_by_register(&conn).unwrap());
        let rows: Vec<(i64, String)> = conn
            .prepare("SELECT db_version, value FROM weft_relay")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(rows, vec![(3, "three".into()), (7, "seven".into())]);
        // The key stays unique: a second write of a register replaces it.
        conn.execute(
            "INSERT OR REPLACE INTO weft_relay VALUES ('t', x'01', 'a', 1, 12, 1, 9, 'nine')",
            [],
        )
        .unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM weft_relay", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 2);
        upgrade(&conn, "test").unwrap();
    }

    #[test]
    fn a_newer_format_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(VERSION_1_RELAY).unwrap();
        bookkeeping::set_value(&conn, FORMAT_KEY, 99).unwrap();
        let error = upgrade(&conn, "test").unwrap_err();
        assert!(error.to_string().contains("newer"), "{error}");
    }
}
