//! The updated rows of one table whose clock rows `Replica::write`'s commit writes with one
//! set-based `UPDATE` per run of nearby keys, and the SQL functions that statement calls.
//!
//! A statement per row was a measured share of a bulk UPDATE (its reset, bindings and seek from
//! the root, then its end); one `UPDATE ... WHERE key BETWEEN ?1 AND ?2 AND
//! weft_pending(key)` walks the run instead, and asks these functions, by key, which rows
//! changed, which of their columns did and what they held before. They look rows up by key
//! rather than following the statement's order, so they answer the same whether SQLite
//! evaluates the WHERE clause and the new values row by row or in two passes.

use crate::error::{Error, Result};
use crate::rules::digest::Digest;
use crate::rules::stored_clock::updated_cells;
use crate::rules::stored_row_digest::hash_stored_row;
use crate::rules::value::Held;
use crate::rules::value::Value;
use crate::storage::function_args::{
    context_connection, hashed_clock_args, raw_arg, update_args, user_error,
};
use crate::storage::transaction_state::{ConnState, ConnectionContext};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One updated row: its key, which replicated columns changed (in schema order) and what it
/// held before the transaction.
pub(crate) struct PendingRow {
    pub rowid: i64,
    pub changed: Vec<bool>,
    pub before: Vec<Held>,
}

/// The updated rows of one table keyed by rowid, sorted by key.
pub(crate) struct PendingUpdates {
    pub table: String,
    pub column_ids: Vec<u32>,
    pub column_names: Vec<String>,
    pub rows: Vec<PendingRow>,
    /// Where the last lookup found its row: SQLite walks a run in key order, so the next
    /// row asked for is usually this one or the next (a binary search per call was a measured
    /// share of a bulk update).
    pub hint: AtomicUsize,
}

impl PendingUpdates {
    /// The row with key `rowid`, if it is pending.
    fn find(&self, rowid: i64) -> Option<&PendingRow> {
        debug_assert!(self.rows.windows(2).all(|w| w[0].rowid < w[1].rowid));
        let hint = self.hint.load(Ordering::Relaxed);
        let index = [hint, hint.wrapping_add(1)]
            .into_iter()
            .find(|&i| self.rows.get(i).is_some_and(|r| r.rowid == rowid))
            .or_else(|| self.rows.binary_search_by_key(&rowid, |r| r.rowid).ok())?;
        self.hint.store(index, Ordering::Relaxed);
        Some(&self.rows[index])
    }
}

/// Registers `weft_pending(key)`, `weft_pending_cells(key, cells, clock, site, db_version,
/// new_clock, new_db_version)` and `weft_pending_base(key, cl, clock, site, cells)` on `conn`.
/// Outside a set-based UPDATE of the commit no row is pending: the first is false and the
/// others fail.
pub(crate) fn register(conn: &Connection, context: &ConnectionContext) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8;
    let state = context.clone();
    conn.create_scalar_function("weft_pending", 1, flags, move |ctx| {
        let guard = state.pending_updates();
        Ok(match (guard.as_ref(), ctx.get_raw(0)) {
            (Some(pending), ValueRef::Integer(rowid)) => pending.find(rowid).is_some(),
            _ => false,
        })
    })?;
    let state = context.clone();
    conn.create_scalar_function("weft_pending_cells", 7, flags, move |ctx| {
        let guard = state.pending_updates();
        pending_cells(ctx, guard.as_deref()).map_err(user_error)
    })?;
    let state = context.clone();
    conn.create_scalar_function("weft_pending_base", 5, flags, move |ctx| {
        let pending = state.pending_updates().clone();
        let conn = context_connection(ctx)?;
        let mut conn_state = state.lock();
        pending_base(ctx, pending.as_deref(), &conn, &mut conn_state)
            .map(|d| d.to_bytes().to_vec())
            .map_err(user_error)
    })?;
    Ok(())
}

fn pending_row<'p>(
    ctx: &Context<'_>,
    pending: Option<&'p PendingUpdates>,
) -> Result<&'p PendingRow> {
    let pending = pending.ok_or_else(|| {
        Error::Corrupt("weft_pending_* runs only inside Replica::write's commit".into())
    })?;
    match raw_arg(ctx, 0)? {
        ValueRef::Integer(rowid) => pending.find(rowid).ok_or_else(|| {
            Error::Corrupt(format!("{}: row {rowid} is not pending", pending.table))
        }),
        other => Err(Error::Corrupt(format!(
            "weft_pending_*: a key of {other:?} is not a rowid"
        ))),
    }
}

/// The row's `cells` after its flagged columns changed at the transaction's stamp.
fn pending_cells(ctx: &Context<'_>, pending: Option<&PendingUpdates>) -> Result<Option<Vec<u8>>> {
    let row = pending_row(ctx, pending)?;
    let column_ids = &pending.expect("a pending row has its table").column_ids;
    let (stored, fresh) = update_args(ctx, 1)?;
    updated_cells(&stored, column_ids, fresh, &row.changed)
}

/// The row's digest contribution before the transaction: its stored clock row and the values it
/// held then.
fn pending_base(
    ctx: &Context<'_>,
    pending: Option<&PendingUpdates>,
    conn: &Connection,
    state: &mut ConnState,
) -> Result<Digest> {
    let row = pending_row(ctx, pending)?;
    let pending = pending.expect("a pending row has its table");
    let stored = hashed_clock_args(ctx, 1)?;
    let values: Vec<Value> = row
        .before
        .iter()
        .map(|v| Value::from_sql_ref(v.as_ref()))
        .collect();
    let columns: Vec<(u32, &str, &Value)> = pending
        .column_ids
        .iter()
        .zip(&pending.column_names)
        .zip(&values)
        .map(|((id, name), value)| (*id, name.as_str(), value))
        .collect();
    hash_stored_row(
        |ordinal| state.site(conn, ordinal),
        &pending.table,
        &[Value::Integer(row.rowid)],
        &stored,
        &columns,
    )
}
