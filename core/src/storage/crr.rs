//! Turning an ordinary table into a conflict-free replicated relation: its clock table, the
//! triggers that record every local write, and the backfill of rows that already exist.

use crate::error::{Error, Result};
use crate::storage::bookkeeping;
use crate::storage::clock_row_sql::TriggerSql;
use crate::storage::run_log;
use crate::storage::schema::{self, ColumnDef, TableSchema};
use crate::storage::sql_names::{clock_table_name, quote, quoted_clock, version_index_name};
use rusqlite::Connection;

/// Creates or updates the clock table and triggers of `table`. Runs inside the caller's
/// transaction.
pub(crate) fn enable(conn: &Connection, table: &str) -> Result<()> {
    let schema::Inspected {
        pk,
        columns,
        key_is_rowid,
    } = schema::inspect(conn, table)?;
    let registered: bool = conn.query_row(
        "SELECT count(*) > 0 FROM weft_tables WHERE name = ?1",
        [table],
        |r| r.get(0),
    )?;
    let added = if registered {
        let old = bookkeeping::registered_schema(conn, table)
            .map_err(|e| refuse(table, e.to_string()))?;
        if old
            .pk
            .iter()
            .map(|c| &c.name)
            .ne(pk.iter().map(|c| &c.name))
        {
            return Err(refuse(
                table,
                "its primary key changed since replication was enabled",
            ));
        }
        let added: Vec<ColumnDef> = columns
            .iter()
            .filter(|c| old.column_index(&c.name).is_none())
            .cloned()
            .collect();
        if !added.is_empty() {
            make_implicit_rows_explicit(conn, &old)?;
        }
        added
    } else {
        create_clock_table(conn, table, &pk, key_is_rowid)?;
        conn.execute("INSERT INTO weft_tables(name) VALUES (?1)", [table])?;
        columns.clone()
    };
    let next_id: u32 = conn.query_row(
        "SELECT coalesce(max(id), 0) + 1 FROM weft_columns WHERE tbl = ?1",
        [table],
        |r| r.get(0),
    )?;
    for (offset, column) in added.iter().enumerate() {
        conn.execute(
            "INSERT INTO weft_columns(tbl, name, id) VALUES (?1, ?2, ?3)",
            rusqlite::params![table, column.name, next_id + offset as u32],
        )?;
    }
    let schema = bookkeeping::registered_schema(conn, table)?;
    create_triggers(conn, &schema)?;
    backfill(conn, &schema)?;
    Ok(())
}

fn refuse(table: &str, reason: impl Into<String>) -> Error {
    Error::NotReplicable {
        table: table.to_owned(),
        reason: reason.into(),
    }
}

fn create_clock_table(
    conn: &Connection,
    table: &str,
    pk: &[ColumnDef],
    key_is_rowid: bool,
) -> Result<()> {
    let key_columns: Vec<String> = pk
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), c.decl_type))
        .collect();
    let key_names: Vec<String> = pk.iter().map(|c| quote(&c.name)).collect();
    let clock = quoted_clock(table);
    // The key columns carry the base table's declared types: with the same affinity, the
    // triggers' `key = NEW.key` can use the primary key instead of scanning. A key that is the
    // base table's rowid is the clock table's rowid too: a table B-tree keyed by integer is
    // measurably cheaper to insert into than a WITHOUT ROWID one (benches/layouts.rs).
    let (key_clause, key_constraint, without_rowid) = if key_is_rowid {
        debug_assert_eq!(pk.len(), 1);
        (
            format!("{} INTEGER PRIMARY KEY", key_names[0]),
            String::new(),
            "",
        )
    } else {
        (
            key_columns.join(", "),
            format!(", PRIMARY KEY ({})", key_names.join(", ")),
            " WITHOUT ROWID",
        )
    };
    // Where the key is the rowid, readers find the rows the engine wrote since a version
    // through a run log (`crate::storage::run_log`), and those the triggers wrote through a partial index
    // on the version; elsewhere through an index on the version.
    let logged = if key_is_rowid {
        ", __weft_logged INTEGER"
    } else {
        ""
    };
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {clock} ({key_clause}, __weft_cl INTEGER, __weft_clock INTEGER, \
         __weft_site INTEGER, __weft_db_version INTEGER, __weft_cells BLOB, __weft_base BLOB{logged}{key_constraint}){without_rowid};"
    ))?;
    if key_is_rowid {
        run_log::create(conn, table)?;
    }
    conn.execute_batch(&version_index_sql(table, key_is_rowid))?;
    Ok(())
}

/// The index by db_version of a clock table: of the rows the triggers wrote, where the table
/// has a run log (`partial`), else of every row.
pub(crate) fn version_index_sql(table: &str, partial: bool) -> String {
    format!(
        "CREATE INDEX IF NOT EXISTS {index} ON {clock}(__weft_db_version){filter};",
        index = quote(&version_index_name(table)),
        clock = quoted_clock(table),
        filter = if partial {
            " WHERE __weft_logged IS NULL"
        } else {
            ""
        },
    )
}

/// Gives `table`, registered in a file of an older format, a run log beside its clock table
/// (`crate::storage::run_log`), the column that says which rows it holds, a partial db_version index in
/// place of the full one, and triggers that write the column. Returns false,
/// changing nothing, where the table keeps the index: its clock table is not keyed by rowid,
/// it has a log already, or its triggers cannot be made again because the table no longer
/// matches its registration (`enable_crr` reports that).
pub(crate) fn adopt_run_log(conn: &Connection, table: &str) -> Result<bool> {
    let clock = quoted_clock(table);
    let (clock_exists, keyed_by_rowid, base_exists): (bool, bool, bool) = conn.query_row(
        "SELECT (SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1),                 (SELECT count(*) = 0 FROM pragma_index_list(?1) WHERE origin = 'pk'),                 (SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?2)",
        [clock_table_name(table), table.to_owned()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if !clock_exists || !keyed_by_rowid || run_log::exists(conn, table)? {
        return Ok(false);
    }
    if base_exists && bookkeeping::registered_schema(conn, table).is_err() {
        return Ok(false);
    }
    // Every row stays found through the index, now partial, as the triggers' rows are: the
    // index is made again with the same entries. Rows the engine writes from now on leave it
    // for the log.
    conn.execute_batch(&format!(
        "ALTER TABLE {clock} ADD COLUMN __weft_logged INTEGER; DROP INDEX IF EXISTS {index}; {create}",
        index = quote(&version_index_name(table)),
        create = version_index_sql(table, true),
    ))?;
    run_log::create(conn, table)?;
    // A table that lost its triggers (rebuilt) is left to `refresh_triggers`, which also
    // backfills its rows inserted meanwhile.
    if base_exists && !lost_triggers(conn, table)? {
        create_triggers(conn, &bookkeeping::registered_schema(conn, table)?)?;
    }
    Ok(true)
}

/// Before new columns join, rows stored in a form read against the table's column ids ("every
/// slot at the row stamp", or the two-stamp form) must list their slots, or the new columns
/// would seem to have been written.
fn make_implicit_rows_explicit(conn: &Connection, old: &TableSchema) -> Result<()> {
    use crate::rules::stored_clock::{encode_cells, StoredClock, CLOCK_COLUMNS, TWO_STAMP_MARKER};
    let clock = quoted_clock(&old.name);
    // Rows are updated in place by key; the key columns are matched as they are.
    let key_names: Vec<String> = old.pk.iter().map(|c| quote(&c.name)).collect();
    let keys: Vec<String> = key_names.iter().map(|n| format!("c.{n}")).collect();
    let mut select = conn.prepare(&format!(
        "SELECT {keys}, {CLOCK_COLUMNS} FROM {clock} AS c WHERE c.__weft_cl % 2 = 1 \
         AND (c.__weft_cells IS NULL OR substr(c.__weft_cells, 1, {marker_len}) = x'{marker}')",
        keys = keys.join(", "),
        marker_len = TWO_STAMP_MARKER.len(),
        marker = hex::encode(TWO_STAMP_MARKER),
    ))?;
    let key_match: Vec<String> = key_names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n} = ?{}", i + 2))
        .collect();
    let mut update = conn.prepare(&format!(
        "UPDATE {clock} SET __weft_cells = ?1 WHERE {}",
        key_match.join(" AND ")
    ))?;
    let mut rows = select.query([])?;
    while let Some(row) = rows.next()? {
        let stored = StoredClock::from_row(row, key_names.len())?;
        debug_assert!(StoredClock::reads_column_ids(stored.cells.as_deref()));
        let entries = stored.expand(&old.column_ids)?;
        let mut params: Vec<rusqlite::types::Value> =
            vec![rusqlite::types::Value::Blob(encode_cells(&entries))];
        for i in 0..key_names.len() {
            params.push(row.get(i)?);
        }
        update.execute(rusqlite::params_from_iter(params))?;
    }
    Ok(())
}

fn backfill(conn: &Connection, schema: &TableSchema) -> Result<()> {
    let keys: Vec<String> = schema.pk.iter().map(|c| quote(&c.name)).collect();
    // The rows are written as the triggers write them (not logged; found by the index).
    // Only rows without a clock row are selected: `weft_db_version()` takes the transaction's
    // version when called, and a version taken but written at by nothing would be taken again
    // by the next writer on another connection, while this one reports it committed.
    let matching: Vec<String> = keys.iter().map(|k| format!("c.{k} = t.{k}")).collect();
    let selected: Vec<String> = keys.iter().map(|k| format!("t.{k}")).collect();
    conn.execute(
        &format!(
            "INSERT INTO {clock} ({keys}, __weft_cl, __weft_clock, __weft_site, __weft_db_version) \
             SELECT {selected}, 1, weft_clock(), 0, weft_db_version() FROM {table} t \
             WHERE NOT EXISTS (SELECT 1 FROM {clock} c WHERE {matching}) ON CONFLICT DO NOTHING",
            clock = quoted_clock(&schema.name),
            keys = keys.join(", "),
            selected = selected.join(", "),
            matching = matching.join(" AND "),
            table = quote(&schema.name),
        ),
        [],
    )?;
    Ok(())
}

/// Deletes the clock rows of `table` that say a row is present where the table has none: the
/// rows were removed without their triggers (the table dropped and made again, or rebuilt
/// without some rows), so this replica no longer has their values. Read as they are, they
/// would send NULLs at the rows' old stamps, which other replicas holding the real values at
/// the same stamps never take: the replicas would differ for good. Forgotten, the rows come
/// back from the replicas that still have them. Returns how many were forgotten; the caller
/// makes the digest again if any were (their share of it is not known any more).
pub(crate) fn forget_rows_without_values(conn: &Connection, table: &str) -> Result<usize> {
    let registered: bool = conn.query_row(
        "SELECT (SELECT count(*) > 0 FROM weft_tables WHERE name = ?1) \
            AND (SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
        [table],
        |r| r.get(0),
    )?;
    if !registered {
        return Ok(0);
    }
    let schema = bookkeeping::registered_schema(conn, table)?;
    let clock = quoted_clock(table);
    let matching: Vec<String> = schema
        .pk
        .iter()
        .map(|c| format!("t.{n} = {clock}.{n}", n = quote(&c.name)))
        .collect();
    let forgotten = conn.execute(
        &format!(
            "DELETE FROM {clock} WHERE __weft_cl % 2 = 1 AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {matching})",
            table = quote(table),
            matching = matching.join(" AND "),
        ),
        [],
    )?;
    Ok(forgotten)
}

/// Whether the database has triggers that are not Weft's (an application's own).
pub(crate) fn has_foreign_triggers(conn: &Connection) -> Result<bool> {
    let foreign: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name NOT LIKE '%\\_\\_weft\\_%' ESCAPE '\\'",
        [],
        |r| r.get(0),
    )?;
    Ok(foreign > 0)
}

/// The shape of the triggers this build creates, recorded as `weft_meta.triggers`. A file
/// whose triggers are older gets them made again when it is opened ([`refresh_triggers`]).
///
/// - 1 (or no key): an UPDATE that changed only a value's storage class (1 to 1.0 in a column
///   without a type) was not recorded.
/// - 2: the update trigger compares values by their bytes (BINARY collation) and storage class.
/// - 3: the same comparison, asking for the storage class only where the column's affinity
///   lets it differ between equal values (`changed_value`).
pub(crate) const TRIGGERS_VERSION: u64 = 3;

const TRIGGERS_KEY: &str = "triggers";

/// Whether the file's triggers are older than this build's.
pub(crate) fn triggers_outdated(conn: &Connection) -> Result<bool> {
    Ok(bookkeeping::get_u64(conn, TRIGGERS_KEY)? < TRIGGERS_VERSION)
}

/// Records that the file's triggers are of this build's version (a new file's are).
pub(crate) fn mark_triggers_current(conn: &Connection) -> Result<()> {
    bookkeeping::set_value(conn, TRIGGERS_KEY, TRIGGERS_VERSION as i64)
}

/// Replicated tables that exist but lack one of their triggers: a table rebuilt the way
/// SQLite documents for schema changes (create a new table, copy the rows, drop the old one,
/// rename the new one) loses the old table's triggers, and its writes would go unrecorded.
pub(crate) fn tables_missing_triggers(conn: &Connection) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for name in bookkeeping::replicated_table_names(conn)? {
        if lost_triggers(conn, &name)? {
            missing.push(name);
        }
    }
    Ok(missing)
}

/// Whether `table` exists but lacks one of its triggers ([`tables_missing_triggers`]).
fn lost_triggers(conn: &Connection, table: &str) -> Result<bool> {
    let (exists, triggers): (bool, i64) = conn.query_row(
        "SELECT (SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1), \
                (SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?1 \
                   AND name IN (?1 || '__weft_insert', ?1 || '__weft_delete', ?1 || '__weft_update_key'))",
        [table],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(exists && triggers < 3)
}

/// Makes every replicated table's triggers again, in this build's shape, and records it; and
/// gives the tables in `lost` (which lost their triggers, [`tables_missing_triggers`], read in
/// the same transaction) new ones and clock rows for the rows inserted meanwhile. Runs inside
/// the caller's write transaction. A registered
/// table that is gone (dropped, renamed) or no longer matches its registration is left as it
/// is: nothing can write to it through the old triggers that the new ones would record
/// differently, and `enable_crr` reports it.
pub(crate) fn refresh_triggers(conn: &Connection, lost: &[String]) -> Result<()> {
    let outdated = triggers_outdated(conn)?;
    for name in bookkeeping::replicated_table_names(conn)? {
        let lost = lost.contains(&name);
        if !outdated && !lost {
            continue; // another connection did it while this one waited for the lock
        }
        match bookkeeping::registered_schema(conn, &name) {
            Ok(schema) => {
                create_triggers(conn, &schema)?;
                if lost {
                    backfill(conn, &schema)?;
                    tracing::warn!(
                        table = name,
                        "replicated table had lost its triggers (rebuilt without enable_crr?); \
                         they are made again and its rows without clocks get them, but updates \
                         and deletes written in between were not recorded"
                    );
                }
            }
            Err(error) => tracing::warn!(
                table = name,
                %error,
                "replicated table left with its triggers as they were"
            ),
        }
    }
    mark_triggers_current(conn)
}

/// The trigger names of a table, for dropping.
const TRIGGER_SUFFIXES: [&str; 4] = ["insert", "update", "update_key", "delete"];

/// SQLite allocates and zeroes a frame for every trigger on the event for every row, and only
/// then evaluates its WHEN clause; `UPDATE OF <columns>` leaves a trigger out of statements
/// that do not set those columns, so an UPDATE of values does not pay for the key-change
/// trigger (measured: a large share of UPDATE cost, see docs/benchmarks.md).
fn create_triggers(conn: &Connection, schema: &TableSchema) -> Result<()> {
    for suffix in TRIGGER_SUFFIXES {
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS {}",
            quote(&format!("{}__weft_{suffix}", schema.name))
        ))?;
    }
    let sql = TriggerSql::new(schema, false);
    conn.execute_batch(&sql.insert_trigger())?;
    conn.execute_batch(&sql.delete_trigger())?;
    conn.execute_batch(&sql.update_key_trigger())?;
    if !schema.columns.is_empty() {
        conn.execute_batch(&sql.update_trigger())?;
    }
    Ok(())
}
