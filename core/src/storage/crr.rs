//! Turning an ordinary table into a conflict-free replicated relation: its clock table, the
//! triggers that record every local write, and the backfill of rows that already exist.

use crate::error::{Error, Result};
use crate::rules::stored_clock::encode_column_ids;
use crate::storage::bookkeeping;
use crate::storage::run_log;
use crate::storage::schema::{self, Affinity, ColumnDef, TableSchema};
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

/// The statements that record the writes of a `Replica::write` (the engine's capture): the
/// triggers' own statements, reading the row's key, earlier values and changed-flags from
/// bound parameters instead of `NEW` and `OLD`.
pub(crate) struct CaptureSql {
    /// Records the rows with integer keys `?1..=?2` that exist now as inserted at clock `?3`
    /// and db_version `?4` (for a table whose key is the rowid).
    pub insert_range: Option<String>,
    /// Records the row with key `?1..` as inserted, if it exists now.
    pub insert: String,
    /// Records the row with key `?1..` as deleted; its values before follow the key.
    pub delete: String,
    /// Records the row with key `?1..` as updated in the columns flagged 1; its values before
    /// follow the key, the flags follow them. None for a table with no replicated column.
    pub update: Option<String>,
    /// Records the pending rows (`pending_updates.rs`) with integer keys `?1..=?2` as
    /// updated at clock `?3`, db_version `?4`, the digest checkpoint being `?5` (for a table
    /// whose key is the rowid and that has a replicated column).
    pub update_range: Option<String>,
    /// As `update_range`, for a run in which every key is pending: without asking which are.
    pub update_dense_range: Option<String>,
    /// Reads the row's replicated columns as they are now.
    pub read: String,
    /// Reads the integer key and the replicated columns of the rows with keys `?1..=?2`, in
    /// key order (for a table whose key is the rowid).
    pub read_range: Option<String>,
}

impl CaptureSql {
    pub(crate) fn new(schema: &TableSchema, key_is_rowid: bool) -> CaptureSql {
        let sql = TriggerSql::new(schema, key_is_rowid);
        let from_base = |stamp: &str, filter: &str| {
            sql.insert_rows_statement(
                &format!(
                    "SELECT {keys}, 1, {stamp}, NULL, NULL{logged} FROM {table} WHERE {filter}",
                    keys = sql.keys(""),
                    table = sql.table,
                    logged = sql.logged_value(Source::Params),
                ),
                Source::Params,
            )
        };
        let flags: Vec<String> = (0..schema.columns.len())
            .map(|i| format!("?{}", schema.pk.len() + schema.columns.len() + i + 1))
            .collect();
        let values: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
        let update_range = |filter: &str| {
            (key_is_rowid && !schema.columns.is_empty()).then(|| {
                let key = quote(&schema.pk[0].name);
                format!(
                    "UPDATE {clock} SET __weft_base = CASE WHEN __weft_db_version <= ?5 \
                     THEN weft_pending_base({key}, __weft_cl, __weft_clock, __weft_site, __weft_cells) ELSE __weft_base END, \
                     __weft_cells = weft_pending_cells({key}, __weft_cells, __weft_clock, __weft_site, __weft_db_version, ?3, ?4), \
                     __weft_clock = ?3, __weft_site = 0, __weft_db_version = ?4{logged} \
                     WHERE {key} BETWEEN ?1 AND ?2{filter}",
                    clock = sql.clock,
                    logged = sql.logged_assignment(Source::Params),
                    filter = filter.replace("{key}", &key),
                )
            })
        };
        CaptureSql {
            insert_range: key_is_rowid.then(|| {
                from_base(
                    "?3, 0, ?4",
                    &format!("{} BETWEEN ?1 AND ?2", quote(&schema.pk[0].name)),
                )
            }),
            insert: from_base(
                "weft_clock(), 0, weft_db_version()",
                &sql.key_match(Source::Params),
            ),
            delete: sql.delete_statement(Source::Params),
            update: (!schema.columns.is_empty())
                .then(|| sql.update_statement(Source::Params, &flags)),
            update_range: update_range(" AND weft_pending({key})"),
            update_dense_range: update_range(""),
            read: format!(
                "SELECT {values} FROM {table} WHERE {filter}",
                values = if values.is_empty() {
                    "1".to_owned()
                } else {
                    values.join(", ")
                },
                table = sql.table,
                filter = sql.key_match(Source::Params),
            ),
            read_range: key_is_rowid.then(|| {
                let key = quote(&schema.pk[0].name);
                format!(
                    "SELECT {key}{values} FROM {table} WHERE {key} BETWEEN ?1 AND ?2 ORDER BY {key}",
                    values = values.iter().map(|v| format!(", {v}")).collect::<String>(),
                    table = sql.table,
                )
            }),
        }
    }
}

/// Whether an UPDATE changed column `column`'s value, as the digest and other replicas tell
/// values apart: by bytes and storage class.
///
/// `IS NOT` compares text by the column's collation ('a' and 'A' are equal under NOCASE), hence
/// `COLLATE BINARY`; and it holds an INTEGER equal to the REAL of the same number, which only
/// some affinities can store side by side. `typeof()` is asked only there, and behind a `CASE`
/// so it runs only when the values are equal: a function call per column and row is a
/// measured share of an UPDATE's cost.
fn changed_value(column: &ColumnDef) -> String {
    let n = quote(&column.name);
    let differs = format!("NEW.{n} IS NOT OLD.{n} COLLATE BINARY");
    match Affinity::of(&column.decl_type) {
        // Numbers are all text, or all REAL: the storage class follows from the value.
        Affinity::Text | Affinity::Real => format!("({differs})"),
        // Integral REALs become INTEGER, all but -2^63.
        Affinity::Integer | Affinity::Numeric => format!(
            "(CASE WHEN {differs} THEN 1 WHEN NEW.{n} = -9223372036854775808 THEN typeof(NEW.{n}) != typeof(OLD.{n}) ELSE 0 END)"
        ),
        Affinity::Blob => {
            format!("(CASE WHEN {differs} THEN 1 ELSE typeof(NEW.{n}) != typeof(OLD.{n}) END)")
        }
    }
}

/// Where the statements that record a write read the row's key and values from.
#[derive(Clone, Copy)]
enum Source<'r> {
    /// A trigger's `NEW` or `OLD` row.
    Row(&'r str),
    /// Bound parameters: the key at `?1`.., then the values of the replicated columns, then
    /// (for an update) one changed-flag per column.
    Params,
}

struct TriggerSql<'a> {
    schema: &'a TableSchema,
    /// Whether the engine logs the keys of the clock rows its statements write
    /// (`crate::storage::run_log`): where the table has a run log and the base table's key is still its
    /// rowid (the engine's capture then writes it by runs of keys). Else the engine's rows go to
    /// the index, as the triggers' do.
    engine_logs: bool,
    table: String,
    clock: String,
    column_ids: String,
    column_names: String,
}

impl<'a> TriggerSql<'a> {
    fn new(schema: &'a TableSchema, key_is_rowid: bool) -> Self {
        TriggerSql {
            schema,
            engine_logs: schema.run_log && key_is_rowid,
            table: quote(&schema.name),
            clock: quoted_clock(&schema.name),
            column_ids: format!("x'{}'", hex::encode(encode_column_ids(&schema.column_ids))),
            column_names: schema
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// `, __weft_logged = ...` where the clock table has a run log: 1 where the engine writes
    /// the row and logs its key itself (`crate::storage::run_log`), NULL where a trigger writes it or the
    /// engine does not log it (the row is then found through the partial index on the
    /// version).
    fn logged_assignment(&self, source: Source<'_>) -> &'static str {
        match (self.schema.run_log, self.logs(source)) {
            (false, _) => "",
            (true, true) => ", __weft_logged = 1",
            (true, false) => ", __weft_logged = NULL",
        }
    }

    /// Whether the rows written by statements reading `source` are logged by the engine.
    fn logs(&self, source: Source<'_>) -> bool {
        matches!(source, Source::Params) && self.engine_logs
    }

    /// `, __weft_logged` in a column list, where the clock table has a run log.
    fn logged_column(&self) -> &'static str {
        if self.schema.run_log {
            ", __weft_logged"
        } else {
            ""
        }
    }

    /// The value of that column for a new clock row, as [`TriggerSql::logged_assignment`].
    fn logged_value(&self, source: Source<'_>) -> &'static str {
        match (self.schema.run_log, self.logs(source)) {
            (false, _) => "",
            (true, true) => ", 1",
            (true, false) => ", NULL",
        }
    }

    fn name(&self, suffix: &str) -> String {
        quote(&format!("{}__weft_{suffix}", self.schema.name))
    }

    fn keys(&self, prefix: &str) -> String {
        self.schema
            .pk
            .iter()
            .map(|c| format!("{prefix}{}", quote(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key column `position` of the row the statement records.
    fn key_of(&self, source: Source<'_>, position: usize) -> String {
        match source {
            Source::Row(record) => format!("{record}.{}", quote(&self.schema.pk[position].name)),
            Source::Params => format!("?{}", position + 1),
        }
    }

    /// The replicated column `position` of the row the statement records.
    fn value_of(&self, source: Source<'_>, position: usize) -> String {
        match source {
            Source::Row(record) => {
                format!("{record}.{}", quote(&self.schema.columns[position].name))
            }
            Source::Params => format!("?{}", self.schema.pk.len() + position + 1),
        }
    }

    fn key_exprs(&self, source: Source<'_>) -> String {
        (0..self.schema.pk.len())
            .map(|i| self.key_of(source, i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn key_match(&self, source: Source<'_>) -> String {
        (0..self.schema.pk.len())
            .map(|i| {
                format!(
                    "{} = {}",
                    quote(&self.schema.pk[i].name),
                    self.key_of(source, i)
                )
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn values(&self, source: Source<'_>) -> String {
        (0..self.schema.columns.len())
            .map(|i| format!(", {}", self.value_of(source, i)))
            .collect()
    }

    /// `__weft_base = ...`: the row's digest contribution as of the checkpoint, captured the first
    /// time the row changes after it.
    fn base_assignment(&self, values_of: Source<'_>) -> String {
        format!(
            "__weft_base = CASE WHEN __weft_db_version <= weft_digest_version() THEN weft_row_hash('{name}', {key_count}, {keys}, \
             __weft_cl, __weft_clock, __weft_site, __weft_cells, {ids}, '{names}'{values}) ELSE __weft_base END",
            name = self.schema.name,
            key_count = self.schema.pk.len(),
            keys = self.keys(""),
            ids = self.column_ids,
            names = self.column_names,
            values = self.values(values_of),
        )
    }

    /// `__weft_base = ...` for an insert over an existing clock row: a tombstone, whose
    /// contribution is its existence register alone. A call with few arguments, because
    /// SQLite zeroes every register of a trigger's program for every row (measured).
    fn tombstone_base_assignment(&self) -> String {
        format!(
            "__weft_base = CASE WHEN __weft_db_version <= weft_digest_version() \
             THEN weft_tombstone_hash('{name}', __weft_cl, __weft_clock, __weft_site, {keys}) ELSE __weft_base END",
            name = self.schema.name,
            keys = self.keys(""),
        )
    }

    /// Records `rows` (a `VALUES (...)` or a `SELECT ... WHERE ...` of key columns) as inserted:
    /// a new clock row, or a new incarnation of a tombstone.
    /// `rows` lists the logged column last where the table has a run log; `source` says who
    /// writes ([`TriggerSql::logged_assignment`]).
    fn insert_rows_statement(&self, rows: &str, source: Source<'_>) -> String {
        format!(
            "INSERT INTO {clock} ({keys}, __weft_cl, __weft_clock, __weft_site, __weft_db_version, __weft_cells, __weft_base{logged_column}) \
             {rows} \
             ON CONFLICT DO UPDATE SET {base}, __weft_cl = __weft_cl + 1 - (__weft_cl % 2), \
             __weft_clock = excluded.__weft_clock, __weft_site = 0, __weft_db_version = excluded.__weft_db_version, __weft_cells = NULL{logged};",
            clock = self.clock,
            keys = self.keys(""),
            base = self.tombstone_base_assignment(),
            logged_column = self.logged_column(),
            logged = self.logged_assignment(source),
        )
    }

    fn insert_statement(&self, source: Source<'_>) -> String {
        self.insert_rows_statement(
            &format!(
                "VALUES ({}, 1, weft_clock(), 0, weft_db_version(), NULL, NULL{})",
                self.key_exprs(source),
                self.logged_value(source)
            ),
            source,
        )
    }

    fn delete_statement(&self, source: Source<'_>) -> String {
        format!(
            "UPDATE {clock} SET {base}, __weft_cl = __weft_cl + (__weft_cl % 2), __weft_clock = weft_clock(), __weft_site = 0, \
             __weft_db_version = weft_db_version(), __weft_cells = NULL{logged} WHERE {matching};",
            clock = self.clock,
            base = self.base_assignment(source),
            matching = self.key_match(source),
            logged = self.logged_assignment(source),
        )
    }

    /// Records the row as updated in the columns whose flags are 1.
    fn update_statement(&self, source: Source<'_>, flags: &[String]) -> String {
        format!(
            "UPDATE {clock} SET {base}, \
             __weft_cells = weft_cells_update(__weft_cells, __weft_clock, __weft_site, __weft_db_version, weft_clock(), weft_db_version(), {ids}, {flags}), \
             __weft_clock = weft_clock(), __weft_site = 0, __weft_db_version = weft_db_version(){logged} WHERE {matching};",
            clock = self.clock,
            base = self.base_assignment(source),
            ids = self.column_ids,
            flags = flags.join(", "),
            matching = self.key_match(source),
            logged = self.logged_assignment(source),
        )
    }

    fn insert_trigger(&self) -> String {
        format!(
            "CREATE TRIGGER {name} AFTER INSERT ON {table} WHEN weft_capturing() BEGIN {body} END;",
            name = self.name("insert"),
            table = self.table,
            body = self.insert_statement(Source::Row("NEW")),
        )
    }

    fn delete_trigger(&self) -> String {
        format!(
            "CREATE TRIGGER {name} AFTER DELETE ON {table} WHEN weft_capturing() BEGIN {body} END;",
            name = self.name("delete"),
            table = self.table,
            body = self.delete_statement(Source::Row("OLD")),
        )
    }

    fn same_key(&self) -> String {
        self.schema
            .pk
            .iter()
            .map(|c| format!("NEW.{n} IS OLD.{n}", n = quote(&c.name)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn update_key_trigger(&self) -> String {
        format!(
            "CREATE TRIGGER {name} AFTER UPDATE OF {keys} ON {table} WHEN weft_capturing() AND NOT ({same}) BEGIN {delete} {insert} END;",
            keys = self.keys(""),
            name = self.name("update_key"),
            table = self.table,
            same = self.same_key(),
            delete = self.delete_statement(Source::Row("OLD")),
            insert = self.insert_statement(Source::Row("NEW")),
        )
    }

    fn update_trigger(&self) -> String {
        let changed: Vec<String> = self.schema.columns.iter().map(changed_value).collect();
        format!(
            "CREATE TRIGGER {name} AFTER UPDATE OF {columns} ON {table} WHEN weft_capturing() AND {same} AND ({any_changed}) BEGIN {body} END;",
            name = self.name("update"),
            columns = self.schema.columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", "),
            table = self.table,
            same = self.same_key(),
            any_changed = changed.join(" OR "),
            body = self.update_statement(Source::Row("OLD"), &changed),
        )
    }
}
