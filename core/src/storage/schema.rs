//! Reading a table's shape from SQLite and deciding whether it can be replicated.

use crate::error::{Error, Result};
use crate::limits::IDENTIFIER_BYTES_MAX;
use crate::storage::sql_names::{clock_table_name, is_plain_identifier, quote};
use rusqlite::Connection;

/// One column of a replicated table.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ColumnDef {
    /// The column name.
    pub name: String,
    /// The declared type, as written in CREATE TABLE (may be empty).
    pub decl_type: String,
}

/// The parts of a clock-join SELECT ([`TableSchema::clock_join_select`]) its caller writes,
/// by name: all three are SQL text, and swapped they would still build a statement.
#[derive(Clone, Copy)]
pub(crate) struct JoinSelect<'a> {
    /// The clock table's columns selected after the key (over `c`).
    pub columns: &'a str,
    /// The WHERE condition.
    pub filter: &'a str,
    /// What follows it: `ORDER BY ...`, or nothing.
    pub order: &'a str,
}

/// The replicated shape of a table: its key columns and its other columns.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TableSchema {
    /// The table name.
    pub name: String,
    /// Primary-key columns in key order.
    pub pk: Vec<ColumnDef>,
    /// Replicated non-key columns in table order (generated columns are not replicated).
    pub columns: Vec<ColumnDef>,
    /// Stable ids of `columns`, parallel to it; ids are never reused within a table.
    pub column_ids: Vec<u32>,
    /// Whether the clock rows are found by version through a run log (the key is the rowid),
    /// not an index.
    pub run_log: bool,
}

impl TableSchema {
    /// The name of the table's clock table.
    pub(crate) fn clock_table(&self) -> String {
        clock_table_name(&self.name)
    }

    /// The position of a non-key column by name.
    pub(crate) fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The position in `columns` of the column with stable id `id`; an id the table does not
    /// have means the clock table is damaged.
    pub(crate) fn position_of_id(&self, id: u32) -> Result<usize> {
        self.column_ids
            .iter()
            .position(|c| *c == id)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "{}: clock cells name unknown column id {id}",
                    self.name
                ))
            })
    }

    /// `"k1" = ?1 AND "k2" = ?2`: matches the key bound as the first parameters.
    pub(crate) fn key_match(&self) -> String {
        let terms: Vec<String> = self
            .pk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", quote(&c.name), i + 1))
            .collect();
        terms.join(" AND ")
    }

    /// `SELECT c.<key columns>, <columns>, t.<columns> FROM clock c LEFT JOIN base t ...
    /// WHERE <filter> <order>`: clock rows with the values of their base rows (NULL for
    /// tombstones). The key columns come first, then `select.columns`, then the values.
    pub(crate) fn clock_join_select(&self, select: &JoinSelect<'_>) -> String {
        let from = format!("{} c", quote(&self.clock_table()));
        self.joined_select(&from, select)
    }

    /// As [`TableSchema::clock_join_select`], for a table with a run log: the clock rows of
    /// the log's entries (`r`), each read from key `lower` (an expression over `r`) on.
    pub(crate) fn log_join_select(&self, lower: &str, select: &JoinSelect<'_>) -> String {
        debug_assert!(self.run_log && self.pk.len() == 1);
        let from = crate::storage::run_log::join(&self.name, &quote(&self.clock_table()), lower);
        self.joined_select(&from, select)
    }

    /// The clock-join SELECT over `from`, which names the clock table `c`.
    fn joined_select(&self, from: &str, select: &JoinSelect<'_>) -> String {
        let JoinSelect {
            columns: clock_columns,
            filter,
            order,
        } = *select;
        let keys: Vec<String> = self
            .pk
            .iter()
            .map(|c| format!("c.{}", quote(&c.name)))
            .collect();
        let join: Vec<String> = self
            .pk
            .iter()
            .map(|c| format!("t.{n} = c.{n}", n = quote(&c.name)))
            .collect();
        let values: String = self
            .columns
            .iter()
            .map(|c| format!(", t.{}", quote(&c.name)))
            .collect();
        format!(
            "SELECT {keys}, {clock_columns}{values} FROM {from} LEFT JOIN {table} t ON {join} WHERE {filter} {order}",
            keys = keys.join(", "),
            table = quote(&self.name),
            join = join.join(" AND "),
        )
    }

    /// The key columns as the clock-join SELECT names them (`c."k1", c."k2"`).
    pub(crate) fn clock_join_keys(&self) -> Vec<String> {
        self.pk
            .iter()
            .map(|c| format!("c.{}", quote(&c.name)))
            .collect()
    }
}

/// SQLite's type affinity of a column, from its declared type (the rules of
/// <https://sqlite.org/datatype3.html>, section 3.1, in their order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Affinity {
    /// Declared type contains "INT". Integral REAL values are stored as INTEGER, except
    /// -2^63, which stays REAL.
    Integer,
    /// "CHAR", "CLOB" or "TEXT": numbers are stored as text.
    Text,
    /// "BLOB", no type at all, and `ANY` (which keeps every value as given in a STRICT table):
    /// values are stored as they come, so 1 and 1.0 can both be there.
    Blob,
    /// "REAL", "FLOA" or "DOUB": every number is read back as REAL.
    Real,
    /// Anything else. Stores numbers as [`Affinity::Integer`] does.
    Numeric,
}

impl Affinity {
    /// The affinity SQLite gives a column declared as `decl_type`.
    pub(crate) fn of(decl_type: &str) -> Affinity {
        let upper = decl_type.to_ascii_uppercase();
        if upper.trim() == "ANY" {
            Affinity::Blob
        } else if upper.contains("INT") {
            Affinity::Integer
        } else if ["CHAR", "CLOB", "TEXT"].iter().any(|t| upper.contains(t)) {
            Affinity::Text
        } else if upper.contains("BLOB") || upper.trim().is_empty() {
            Affinity::Blob
        } else if ["REAL", "FLOA", "DOUB"].iter().any(|t| upper.contains(t)) {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }
}

fn refuse(table: &str, reason: impl Into<String>) -> Error {
    Error::NotReplicable {
        table: table.to_owned(),
        reason: reason.into(),
    }
}

/// Checks a user table name: plain, and not one of SQLite's or Weft's own.
pub(crate) fn check_table_name(table: &str) -> Result<()> {
    if !is_plain_identifier(table) {
        return Err(refuse(
            table,
            format!("the name must be letters, digits and underscores, not starting with a digit, at most {IDENTIFIER_BYTES_MAX} bytes"),
        ));
    }
    let lower = table.to_ascii_lowercase();
    if lower.starts_with("sqlite_") || lower.contains("__weft") {
        return Err(refuse(
            table,
            "names starting with sqlite_ or containing __weft are reserved",
        ));
    }
    Ok(())
}

struct RawColumn {
    name: String,
    decl_type: String,
    not_null: bool,
    has_default: bool,
    pk_position: i64,
    hidden: i64,
}

/// A table's shape as read from SQLite, after every rule was checked.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Inspected {
    /// Primary-key columns in key order.
    pub pk: Vec<ColumnDef>,
    /// Replicated non-key columns in table order.
    pub columns: Vec<ColumnDef>,
    /// Whether the key is the table's rowid (a rowid table with `INTEGER PRIMARY KEY`), so
    /// its values are always integers.
    pub key_is_rowid: bool,
}

/// Reads the table's shape and checks every rule a replicated table must follow.
pub(crate) fn inspect(conn: &Connection, table: &str) -> Result<Inspected> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    if !exists {
        return Err(refuse(table, "no such table"));
    }
    let without_rowid = is_without_rowid(conn, table)?;
    let raw = read_columns(conn, table)?;
    let mut pk: Vec<&RawColumn> = raw.iter().filter(|c| c.pk_position > 0).collect();
    pk.sort_by_key(|c| c.pk_position);
    if pk.is_empty() {
        return Err(refuse(
            table,
            "it has no PRIMARY KEY; replicated rows need a stable key",
        ));
    }
    let rowid_alias = is_rowid_alias(conn, table, without_rowid, &pk)?;
    for column in &raw {
        check_column_name(table, &column.name)?;
        if column.pk_position > 0 {
            if !column.not_null && !without_rowid && !rowid_alias {
                return Err(refuse(
                    table,
                    format!(
                        "primary key column {:?} is nullable; declare it NOT NULL",
                        column.name
                    ),
                ));
            }
            if !column
                .decl_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " (),_".contains(c))
            {
                return Err(refuse(
                    table,
                    format!(
                        "primary key column {:?} has an unusual declared type",
                        column.name
                    ),
                ));
            }
        } else if column.hidden == 0 && column.not_null && !column.has_default {
            return Err(refuse(
                table,
                format!(
                    "column {:?} is NOT NULL without a DEFAULT; a merged row may arrive before all its cells, so give it a default",
                    column.name
                ),
            ));
        }
    }
    check_unique_constraints(conn, table)?;
    check_key_collations(conn, table)?;
    let to_def = |c: &RawColumn| ColumnDef {
        name: c.name.clone(),
        decl_type: c.decl_type.clone(),
    };
    let pk_defs = pk.iter().map(|c| to_def(c)).collect();
    // Generated columns (hidden 2 and 3) are computed from the others; they are not replicated.
    let columns = raw
        .iter()
        .filter(|c| c.pk_position == 0 && c.hidden == 0)
        .map(to_def)
        .collect();
    Ok(Inspected {
        pk: pk_defs,
        columns,
        key_is_rowid: rowid_alias,
    })
}

fn is_without_rowid(conn: &Connection, table: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get::<_, String>(0),
        )
        .map(|sql| {
            sql.to_ascii_uppercase()
                .replace(char::is_whitespace, "")
                .contains("WITHOUTROWID")
        })?)
}

/// Whether the single key column is the table's rowid: `INTEGER PRIMARY KEY` of a rowid table,
/// except `INTEGER PRIMARY KEY DESC`, which SQLite keeps in an index of its own like any other
/// key (so a key index tells them apart).
fn is_rowid_alias(
    conn: &Connection,
    table: &str,
    without_rowid: bool,
    pk: &[&RawColumn],
) -> Result<bool> {
    if without_rowid || pk.len() != 1 || !pk[0].decl_type.eq_ignore_ascii_case("INTEGER") {
        return Ok(false);
    }
    let key_index: bool = conn.query_row(
        "SELECT count(*) > 0 FROM pragma_index_list(?1) WHERE origin = 'pk'",
        [table],
        |r| r.get(0),
    )?;
    Ok(!key_index)
}

/// How SQLite lays out a table's rows: every column's name in table order (the order its
/// hooks number columns in, generated columns included) and whether the key is the rowid.
pub(crate) struct RowLayout {
    /// Column names in table order.
    pub column_names: Vec<String>,
    /// Whether the primary key is the rowid.
    pub key_is_rowid: bool,
}

/// Reads the row layout of an existing table.
pub(crate) fn row_layout(conn: &Connection, table: &str) -> Result<RowLayout> {
    let raw = read_columns(conn, table)?;
    let mut pk: Vec<&RawColumn> = raw.iter().filter(|c| c.pk_position > 0).collect();
    pk.sort_by_key(|c| c.pk_position);
    let key_is_rowid = is_rowid_alias(conn, table, is_without_rowid(conn, table)?, &pk)?;
    Ok(RowLayout {
        column_names: raw.iter().map(|c| c.name.clone()).collect(),
        key_is_rowid,
    })
}

fn check_column_name(table: &str, column: &str) -> Result<()> {
    if !is_plain_identifier(column) {
        return Err(refuse(
            table,
            format!("column {column:?} must be named with letters, digits and underscores, not starting with a digit"),
        ));
    }
    if column.to_ascii_lowercase().starts_with("__weft") {
        return Err(refuse(
            table,
            format!("column {column:?}: names starting with __weft are reserved"),
        ));
    }
    Ok(())
}

fn read_columns(conn: &Connection, table: &str) -> Result<Vec<RawColumn>> {
    let mut statement = conn.prepare("SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk, hidden FROM pragma_table_xinfo(?1)")?;
    let rows = statement.query_map([table], |r| {
        Ok(RawColumn {
            name: r.get(0)?,
            decl_type: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            not_null: r.get(2)?,
            has_default: r.get(3)?,
            pk_position: r.get(4)?,
            hidden: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn check_unique_constraints(conn: &Connection, table: &str) -> Result<()> {
    let mut statement = conn.prepare(
        "SELECT name, origin FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND origin != 'pk'",
    )?;
    let indexes: Vec<(String, String)> = statement
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some((name, _)) = indexes.first() {
        return Err(refuse(
            table,
            format!(
                "it has a UNIQUE constraint or unique index ({name}) besides the primary key; two replicas could each insert a row that is valid alone but not together"
            ),
        ));
    }
    Ok(())
}

/// Refuses key columns compared by a collation other than BINARY: under NOCASE 'a' and 'A'
/// are one row of the table, but two keys everywhere else (the clock table, other replicas,
/// the digest), so a change of case would be recorded as another row.
fn check_key_collations(conn: &Connection, table: &str) -> Result<()> {
    let mut statement = conn.prepare(
        "SELECT x.name, x.coll FROM pragma_index_list(?1) AS i, pragma_index_xinfo(i.name) AS x \
         WHERE i.origin = 'pk' AND x.key = 1 AND x.coll != 'BINARY'",
    )?;
    let collated: Option<(String, String)> = statement
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .next()
        .transpose()?;
    if let Some((column, collation)) = collated {
        return Err(refuse(
            table,
            format!(
                "primary key column {column:?} compares by the {collation} collation; replicated keys must compare by their bytes (declare it without COLLATE, or with COLLATE BINARY)"
            ),
        ));
    }
    Ok(())
}
