//! The SQL functions every connection the library hands out carries, and its commit and
//! rollback hooks, which keep the connection's [`ConnectionContext`] exact.
//!
//! The triggers call `weft_clock()`, `weft_db_version()` and `weft_digest_version()` for the
//! transaction's stamp, `weft_cells_update(...)` for a clock row's cells after an UPDATE, and
//! `weft_row_hash(...)` / `weft_tombstone_hash(...)` for a row's digest contribution before it
//! changes; reads of changes under a row filter call `weft_*_row_sent(...)`; the capture's
//! set-based UPDATE calls `weft_pending*` ([`crate::storage::pending_updates`]).
//!
//! A connection without these functions (the sqlite3 shell, say) cannot write replicated tables:
//! the triggers call `weft_clock()` and fail with "no such function" instead of leaving a write
//! unrecorded.

use crate::error::{Error, Result};
use crate::rules::digest::Digest;
use crate::rules::stored_clock::{decode_column_ids, updated_cells, StoredClock, StoredStamp};
use crate::rules::stored_row_digest::hash_stored_row;
use crate::rules::value::Value;
use crate::storage::function_args::{
    blob_arg, context_connection, hashed_clock_args, int_arg, raw_arg, update_args, user_error,
};
use crate::storage::pending_updates;
use crate::storage::transaction_state::{ConnState, ConnectionContext, RowKey, TxnStamp};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

/// Installs the SQL functions and hooks on a connection.
pub(crate) fn install(conn: &mut Connection, context: &ConnectionContext) -> Result<()> {
    let volatile = FunctionFlags::SQLITE_UTF8;
    for (name, pick) in [
        ("weft_clock", (|s: TxnStamp| s.clock) as fn(TxnStamp) -> u64),
        ("weft_db_version", |s: TxnStamp| s.db_version),
        ("weft_digest_version", |s: TxnStamp| s.digest_version),
    ] {
        let state = context.clone();
        conn.create_scalar_function(name, 0, volatile, move |ctx| {
            if let Some(stamp) = state.open_stamp() {
                return Ok(pick(stamp) as i64);
            }
            let mut state = state.lock();
            // Only a transaction's first call needs the connection (to learn what others
            // committed); every later call of the transaction reuses its stamp.
            let stamp = match state.stamp() {
                Some(stamp) => stamp,
                None => {
                    let conn = context_connection(ctx)?;
                    state.begin(&conn).map_err(user_error)?
                }
            };
            Ok(pick(stamp) as i64)
        })?;
    }
    let state = context.clone();
    conn.create_scalar_function("weft_capturing", 0, volatile, move |_| {
        Ok(state.is_capturing())
    })?;
    conn.create_scalar_function("weft_cells_update", -1, volatile, |ctx| {
        cells_update(ctx).map_err(user_error)
    })?;
    pending_updates::register(conn, context)?;
    type RowHasher = fn(&Context<'_>, &Connection, &mut ConnState) -> Result<Digest>;
    for (name, hasher) in [
        ("weft_row_hash", stored_row_hash as RowHasher),
        ("weft_tombstone_hash", tombstone_hash),
    ] {
        let state = context.clone();
        conn.create_scalar_function(name, -1, volatile, move |ctx| {
            let conn = context_connection(ctx)?;
            let mut state = state.lock();
            hasher(ctx, &conn, &mut state)
                .map(|d| d.to_bytes().to_vec())
                .map_err(user_error)
        })?;
    }
    // weft_relay_row_sent(db_version, tbl, pk) and weft_table_row_sent(db_version, 'table',
    // key...): whether a read under a row filter keeps the row (always, without a filter).
    // SQLite evaluates them on the index's (or the run log's) rows, before it reads the base
    // row.
    let filter = context.clone();
    conn.create_scalar_function("weft_relay_row_sent", 3, volatile, move |ctx| {
        let guard = filter.row_filter();
        let Some(rows) = guard.as_ref() else {
            return Ok(true);
        };
        let version = ctx.get::<i64>(0)? as u64;
        let table = ctx.get_raw(1).as_str().unwrap_or_default();
        let key = ctx.get_raw(2).as_blob().unwrap_or_default();
        Ok(rows.keeps(version, table, RowKey::Encoded(key)))
    })?;
    let filter = context.clone();
    conn.create_scalar_function("weft_table_row_sent", -1, volatile, move |ctx| {
        let guard = filter.row_filter();
        let Some(rows) = guard.as_ref() else {
            return Ok(true);
        };
        let version = ctx.get::<i64>(0)? as u64;
        let table = ctx.get_raw(1).as_str().unwrap_or_default().to_owned();
        let key: Vec<Value> = (2..ctx.len())
            .map(|i| Value::from_sql_ref(ctx.get_raw(i)))
            .collect();
        Ok(rows.keeps(version, &table, RowKey::Values(&key)))
    })?;
    let hook = context.clone();
    conn.commit_hook(Some(move || hook.refuses_commit()))?;
    let hook = context.clone();
    conn.rollback_hook(Some(move || hook.rolled_back()))?;
    Ok(())
}

/// weft_cells_update(cells, clock, site, db_version, new_clock, new_db_version, column_ids, changed...):
/// the clock row's `cells` after a local UPDATE changed the flagged columns.
fn cells_update(ctx: &Context<'_>) -> Result<Option<Vec<u8>>> {
    let column_ids = decode_column_ids(blob_arg(ctx, 6).unwrap_or_default());
    let (stored, fresh) = update_args(ctx, 0)?;
    let mut changed = Vec::with_capacity(column_ids.len());
    for position in 0..column_ids.len() {
        changed.push(matches!(raw_arg(ctx, 7 + position)?, ValueRef::Integer(1)));
    }
    updated_cells(&stored, &column_ids, fresh, &changed)
}

/// weft_row_hash(table, key_count, key..., cl, clock, site, cells, column_ids, column_names, values...):
/// the digest contribution of a stored row, given its base-table values in column-id order.
fn stored_row_hash(ctx: &Context<'_>, conn: &Connection, state: &mut ConnState) -> Result<Digest> {
    let table = match raw_arg(ctx, 0)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => return Err(Error::Corrupt("weft_row_hash needs a table name".into())),
    };
    let key_count = int_arg(ctx, 1)? as usize;
    let key: Vec<Value> = (0..key_count)
        .map(|i| raw_arg(ctx, 2 + i).map(Value::from_sql_ref))
        .collect::<Result<_>>()?;
    let at = 2 + key_count;
    let stored = hashed_clock_args(ctx, at)?;
    let column_ids = decode_column_ids(blob_arg(ctx, at + 4).unwrap_or_default());
    let names = match raw_arg(ctx, at + 5)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => String::new(),
    };
    let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
    let values: Vec<Value> = (0..column_ids.len())
        .map(|i| raw_arg(ctx, at + 6 + i).map(Value::from_sql_ref))
        .collect::<Result<_>>()?;
    let columns: Vec<(u32, &str, &Value)> = column_ids
        .iter()
        .zip(&names)
        .zip(&values)
        .map(|((id, name), value)| (*id, *name, value))
        .collect();
    hash_stored_row(
        |ordinal| state.site(conn, ordinal),
        &table,
        &key,
        &stored,
        &columns,
    )
}

/// weft_tombstone_hash(table, cl, clock, site, key...): the digest contribution of a
/// tombstone, which is its existence register alone.
fn tombstone_hash(ctx: &Context<'_>, conn: &Connection, state: &mut ConnState) -> Result<Digest> {
    let table = match raw_arg(ctx, 0)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => {
            return Err(Error::Corrupt(
                "weft_tombstone_hash needs a table name".into(),
            ))
        }
    };
    let stored = StoredClock {
        cl: int_arg(ctx, 1)?,
        row: StoredStamp {
            clock: int_arg(ctx, 2)?,
            site: int_arg(ctx, 3)? as u32,
            db_version: 0,
        },
        cells: None,
    };
    let key: Vec<Value> = (4..ctx.len())
        .map(|i| raw_arg(ctx, i).map(Value::from_sql_ref))
        .collect::<Result<_>>()?;
    hash_stored_row(
        |ordinal| state.site(conn, ordinal),
        &table,
        &key,
        &stored,
        &[],
    )
}
