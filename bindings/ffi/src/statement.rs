//! Running one statement on a connection: the shared step of `execute` and `query`, in a
//! transaction or not.

use crate::value::{to_values, QueryResult, SqlValue};
use weft_core::rusqlite::{params_from_iter, Connection};
use weft_core::Value;

/// Runs `sql` with `params` and returns the rows it changed; rows it returns are read and
/// dropped (so `RETURNING` and `PRAGMA`s work too).
pub(crate) fn execute_on(
    conn: &Connection,
    sql: &str,
    params: Vec<SqlValue>,
) -> weft_core::Result<u64> {
    let mut statement = conn.prepare_cached(sql)?;
    let read_only = statement.readonly();
    let mut rows = statement.query(params_from_iter(to_values(params)))?;
    while rows.next()?.is_some() {}
    drop(rows);
    Ok(if read_only { 0 } else { conn.changes() })
}

/// Runs `sql` once per parameter row, reusing the prepared statement; returns the rows
/// changed in all. The first failing row's error stops it (what ran before stays in the
/// transaction, as with single statements).
pub(crate) fn execute_many_on(
    conn: &Connection,
    sql: &str,
    rows: Vec<Vec<SqlValue>>,
) -> weft_core::Result<u64> {
    let mut changed = 0;
    for params in rows {
        changed += execute_on(conn, sql, params)?;
    }
    Ok(changed)
}

/// Runs the query `sql` with `params` and returns its columns and rows.
pub(crate) fn query_on(
    conn: &Connection,
    sql: &str,
    params: Vec<SqlValue>,
) -> weft_core::rusqlite::Result<QueryResult> {
    let mut statement = conn.prepare_cached(sql)?;
    let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let width = columns.len();
    let mut rows = statement.query(params_from_iter(to_values(params)))?;
    let mut result = QueryResult {
        columns,
        rows: Vec::new(),
    };
    while let Some(row) = rows.next()? {
        let values = (0..width)
            .map(|i| {
                row.get_ref(i)
                    .map(|v| SqlValue::from(Value::from_sql_ref(v)))
            })
            .collect::<weft_core::rusqlite::Result<_>>()?;
        result.rows.push(values);
    }
    Ok(result)
}
