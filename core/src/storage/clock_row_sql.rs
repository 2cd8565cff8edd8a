//! The SQL that writes clock rows, made from one template: the statements of the triggers that
//! record plain SQL writes ([`TriggerSql`]), and the same statements over bound parameters that
//! record the writes of a `Replica::write` ([`CaptureSql`]).

use crate::rules::stored_clock::encode_column_ids;
use crate::storage::schema::{Affinity, ColumnDef, TableSchema};
use crate::storage::sql_names::{quote, quoted_clock};

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

pub(crate) struct TriggerSql<'a> {
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
    pub(crate) fn new(schema: &'a TableSchema, key_is_rowid: bool) -> Self {
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

    pub(crate) fn insert_trigger(&self) -> String {
        format!(
            "CREATE TRIGGER {name} AFTER INSERT ON {table} WHEN weft_capturing() BEGIN {body} END;",
            name = self.name("insert"),
            table = self.table,
            body = self.insert_statement(Source::Row("NEW")),
        )
    }

    pub(crate) fn delete_trigger(&self) -> String {
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

    pub(crate) fn update_key_trigger(&self) -> String {
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

    pub(crate) fn update_trigger(&self) -> String {
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
