//! Recording the writes of a [`crate::Replica::write`] below the triggers.
//!
//! Plain SQL is recorded by triggers, one trigger program per row, which is most of what a
//! replicated write costs (docs/benchmarks.md). Inside `Replica::write` the connection's
//! triggers are off instead (as merges have them, and only when every trigger in the database
//! is Weft's), SQLite's preupdate hook notes each row of a replicated table the transaction
//! touches and what that row held before the transaction first touched it
//! ([`recorder`]), and just before COMMIT [`flush`] compares that with what the row holds
//! then and writes the clock rows with the triggers' own statements ([`crate::storage::clock_row_sql::CaptureSql`]),
//! or with set-based ones over runs of keys where the key is the rowid
//! ([`crate::storage::pending_updates`]).
//!
//! What is recorded is each row's net effect over the transaction, from what it held before
//! and what it holds at the commit, nothing else: a row inserted and deleted again leaves
//! nothing; a row deleted (or replaced) and inserted again is an update of the columns that
//! differ. Because only the rows' final contents count, statements that failed half way and
//! savepoints rolled back leave nothing behind. Nothing can commit before the clock rows are
//! written: commits are refused on the connection while the work runs.

mod hook;
mod recorder;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::limits::{CAPTURE_READ_GAP_MAX, RUN_GAP_MAX};
use crate::rules::value::Held;
use crate::storage::bookkeeping;
use crate::storage::clock_row_sql::CaptureSql;
use crate::storage::pending_updates::{PendingRow, PendingUpdates};
use crate::storage::run_log::{self, nearby_runs};
use crate::storage::schema;
use crate::storage::transaction_state::{ConnectionContext, TxnStamp};
use hook::HookGuard;
pub(crate) use recorder::Plan;
use recorder::{KeyedRows, Recorder, TablePlan, Touched, TouchedRowids};
use rusqlite::{Connection, OptionalExtension};
use std::sync::{Arc, Mutex};

/// The plan of the schema version last seen, kept between writes.
#[derive(Default)]
pub(crate) struct PlanCache(Mutex<Option<Arc<Plan>>>);

impl PlanCache {
    /// The plan for the connection's current schema, made again only when the schema changed.
    pub(crate) fn current(&self, conn: &Connection) -> Result<Arc<Plan>> {
        let version = schema_version(conn)?;
        let mut cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plan) = cached.as_ref().filter(|p| p.schema_version == version) {
            return Ok(plan.clone());
        }
        let plan = Arc::new(load_plan(conn, version)?);
        *cached = Some(plan.clone());
        Ok(plan)
    }

    /// Drops the cached plan: after a write failed, its schema changes were rolled back and
    /// the schema version it was made for may be taken again by a different schema.
    pub(crate) fn forget(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn
        .prepare_cached("PRAGMA schema_version")?
        .query_row([], |r| r.get(0))?)
}

fn load_plan(conn: &Connection, schema_version: i64) -> Result<Plan> {
    let mut tables = Vec::new();
    for schema in bookkeeping::load_catalog(conn)?.into_values() {
        let layout = schema::row_layout(conn, &schema.name)?;
        let position = |name: &str| -> Result<usize> {
            layout
                .column_names
                .iter()
                .position(|c| c == name)
                .ok_or_else(|| {
                    Error::Corrupt(format!(
                        "{}: replicated column {name:?} is not in the table",
                        schema.name
                    ))
                })
        };
        if layout.column_names.is_empty() {
            continue; // registered, but the table is gone: nothing can write to it
        }
        let key_columns: Vec<usize> = schema
            .pk
            .iter()
            .map(|c| position(&c.name))
            .collect::<Result<_>>()?;
        let value_columns: Vec<usize> = schema
            .columns
            .iter()
            .map(|c| position(&c.name))
            .collect::<Result<_>>()?;
        let sql = CaptureSql::new(&schema, layout.key_is_rowid);
        let columns_needed = key_columns
            .iter()
            .chain(&value_columns)
            .max()
            .map_or(0, |c| c + 1);
        tables.push(TablePlan {
            schema,
            key_is_rowid: layout.key_is_rowid,
            key_columns,
            value_columns,
            columns_needed,
            sql,
        });
    }
    Ok(Plan::new(
        schema_version,
        tables,
        crate::storage::crr::has_foreign_triggers(conn)?,
    ))
}

/// Fails when the work's own SQL ended the transaction (`COMMIT`, which is refused and so
/// rolls back, `ROLLBACK`, `END`, `RELEASE` of the outermost savepoint), even if it began
/// another one: what it wrote before is gone, and the write must not report success.
pub(crate) fn check_transaction_kept<T>(
    conn: &Connection,
    context: &ConnectionContext,
    rollbacks_before: u64,
    outcome: &Result<T>,
) -> Result<()> {
    if !conn.is_autocommit() && context.rollbacks() == rollbacks_before {
        return Ok(());
    }
    let cause = outcome
        .as_ref()
        .err()
        .map(|e| format!(" (the work failed with: {e})"))
        .unwrap_or_default();
    Err(Error::WriteRolledBack(format!(
        "the work's SQL ended the transaction (COMMIT, ROLLBACK or RELEASE); Replica::write commits when the work returns{cause}"
    )))
}

/// Runs `work` inside the caller's open write transaction on `conn`, whose triggers are off
/// and whose commits the caller refuses, with the hook recording, then writes the clock rows.
/// The caller commits, or rolls back on an error.
pub(crate) fn record<T>(
    conn: &Connection,
    context: &ConnectionContext,
    rollbacks_before: u64,
    plan: Arc<Plan>,
    plans: &PlanCache,
    limits: Limits,
    work: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let hook = HookGuard::install(conn, Recorder::new(plan.clone(), limits));
    let outcome = work(conn);
    let recorder = hook.finish();
    check_transaction_kept(conn, context, rollbacks_before, &outcome)?;
    let value = outcome?;
    if let Some(failure) = recorder.failure {
        return Err(failure);
    }
    if schema_version(conn)? != plan.schema_version {
        let now = plans.current(conn);
        if !now.as_ref().is_ok_and(|now| now.same_tables(&plan)) {
            let cause = now.err().map(|e| format!(" ({e})")).unwrap_or_default();
            return Err(Error::WriteRolledBack(format!(
                "a replicated table's schema changed inside Replica::write; change schemas outside it{cause}"
            )));
        }
    }
    flush(conn, context, &plan, recorder)?;
    Ok(value)
}

/// Writes the clock rows of every touched row, from what it held before and holds now.
fn flush(
    conn: &Connection,
    context: &ConnectionContext,
    plan: &Plan,
    recorder: Recorder,
) -> Result<()> {
    if recorder.rows == 0 {
        return Ok(()); // takes no db_version
    }
    // The transaction's stamp, bound into the bulk statement instead of asked for per row; the
    // SQL functions the other statements call return the same stamp.
    let stamp = context.lock().begin(conn)?;
    let mut written = 0;
    for (table, touched) in plan.tables.iter().zip(recorder.touched) {
        written += match touched {
            Touched::Rowid(rows) if rows.is_empty() => 0,
            Touched::Rowid(rows) => {
                let (mut logged, mut rewritten) = (Vec::new(), Vec::new());
                let rows = flush_rowid_table(
                    conn,
                    context,
                    table,
                    rows,
                    stamp,
                    &mut logged,
                    &mut rewritten,
                )?;
                if rows > 0 && table.schema.run_log {
                    let name = &table.schema.name;
                    run_log::append_runs(
                        conn,
                        name,
                        stamp.db_version,
                        logged,
                        run_log::Earlier::None,
                    )?;
                    let mut state = context.lock();
                    state.sweeps.after_write(
                        conn,
                        name,
                        stamp.db_version,
                        rows as u64,
                        &rewritten,
                    )?;
                }
                rows
            }
            Touched::Keyed(rows) if rows.is_empty() => 0,
            Touched::Keyed(rows) => flush_keyed_table(conn, table, rows)?,
        };
    }
    if written == 0 {
        // Every touched row ended as it began: the commit takes no db_version.
        context.lock().release_unused_stamp();
    }
    Ok(())
}

fn flush_keyed_table(conn: &Connection, table: &TablePlan, rows: KeyedRows) -> Result<usize> {
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut insert = conn.prepare_cached(&table.sql.insert)?;
    let mut recorder = EarlierRowRecorder::new(conn, table)?;
    let mut written = 0;
    for (_, (key, before)) in rows {
        written += match before {
            None => insert.execute(rusqlite::params_from_iter(&key))?,
            Some(before) => recorder.record_earlier(&key, &before)?,
        };
    }
    Ok(written)
}

/// Writes the clock rows of one table keyed by rowid. Adds the runs of keys it wrote to
/// `logged`, and the keys of the updated rows, whose clock rows it moved to the transaction's
/// version, to `rewritten` (ascending).
fn flush_rowid_table(
    conn: &Connection,
    context: &ConnectionContext,
    table: &TablePlan,
    rows: TouchedRowids,
    stamp: TxnStamp,
    logged: &mut Vec<(i64, i64)>,
    rewritten: &mut Vec<i64>,
) -> Result<usize> {
    let (mut absent, mut present) = (rows.appended, rows.ascending);
    let (appended, ascending) = (absent.len(), present.len());
    for (rowid, before) in rows.others {
        match before {
            None => absent.push(rowid),
            Some(values) => present.push((rowid, values)),
        }
    }
    if absent.len() > appended {
        absent.sort_unstable();
    }
    let mut written = 0;
    if present.len() > ascending {
        present.sort_unstable_by_key(|p| p.0);
    }
    if let Some(sql) = &table.sql.insert_range {
        // Rows inserted with consecutive keys (a bulk insert) are recorded by one statement
        // per run of keys; the statement records only the rows that exist now.
        let mut insert = conn.prepare_cached(sql)?;
        // Runs of consecutive keys: neighbours at most 1 apart.
        for (first, last) in nearby_runs(&absent, 1) {
            written +=
                insert.execute((first, last, stamp.clock as i64, stamp.db_version as i64))?;
            logged.push((first, last));
        }
    }
    if present.is_empty() {
        return Ok(written);
    }
    // The rows that were there are written at most once each, in these runs (`crate::storage::run_log`).
    let keys: Vec<i64> = present.iter().map(|p| p.0).collect();
    logged.extend(nearby_runs(&keys, RUN_GAP_MAX));
    let mut recorder = EarlierRowRecorder::new(conn, table)?;
    let Some(sql) = &table.sql.read_range else {
        for (rowid, before) in present {
            written += recorder.record_earlier(&[Held::Integer(rowid)], &before)?;
        }
        return Ok(written);
    };
    // The rows as they are now, read by one scan per range of nearby keys instead of a lookup
    // per row (a statement run per row is a measured share of the commit's work), beside
    // the rows' earlier values, both in key order.
    let mut read = conn.prepare_cached(sql)?;
    let mut earlier = present.into_iter().peekable();
    // Rows still there with a changed column, for one set-based UPDATE per run of keys.
    let mut updated = Vec::new();
    for (first, last) in nearby_runs(&keys, CAPTURE_READ_GAP_MAX) {
        let mut now = read.query((first, last))?;
        let mut current = now.next()?;
        while let Some((rowid, before)) = earlier.next_if(|p| p.0 <= last) {
            while let Some(row) = current {
                if row.get::<_, i64>(0)? >= rowid {
                    break;
                }
                current = now.next()?;
            }
            let row = match current {
                Some(row) if row.get::<_, i64>(0)? == rowid => Some(row),
                _ => None,
            };
            match (row, &table.sql.update_range) {
                (Some(row), Some(_)) => {
                    let changed = changed_columns(row, &before, 1)?;
                    if changed.contains(&true) {
                        updated.push(PendingRow {
                            rowid,
                            changed,
                            before,
                        });
                    }
                }
                (row, _) => written += recorder.record(&[Held::Integer(rowid)], &before, row, 1)?,
            }
        }
    }
    debug_assert!(earlier.next().is_none(), "every row lies in a range");
    if !updated.is_empty() {
        *rewritten = updated.iter().map(|r| r.rowid).collect();
        written += update_runs(conn, context, table, updated, rewritten, stamp)?;
    }
    Ok(written)
}

/// Writes the clock rows of updated rows (sorted by key; `keys` are theirs) by one set-based
/// UPDATE per run of nearby keys; a run in which every key is pending skips asking which are.
/// Returns how many it wrote.
fn update_runs(
    conn: &Connection,
    context: &ConnectionContext,
    table: &TablePlan,
    rows: Vec<PendingRow>,
    keys: &[i64],
    stamp: TxnStamp,
) -> Result<usize> {
    let (Some(sparse), Some(dense)) = (&table.sql.update_range, &table.sql.update_dense_range)
    else {
        return Err(crate::error::Error::Corrupt(
            "updated rows of a table without a set-based update".into(),
        ));
    };
    debug_assert!(keys.iter().eq(rows.iter().map(|r| &r.rowid)));
    let pending = Arc::new(PendingUpdates {
        table: table.schema.name.clone(),
        column_ids: table.schema.column_ids.clone(),
        column_names: table
            .schema
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        rows,
        hint: Default::default(),
    });
    let mut sparse = conn.prepare_cached(sparse)?;
    let mut dense = conn.prepare_cached(dense)?;
    let mut counted = keys.iter().peekable();
    context.with_pending_updates(pending, || {
        let mut written = 0;
        for (first, last) in nearby_runs(keys, CAPTURE_READ_GAP_MAX) {
            let mut count: i128 = 0;
            while counted.next_if(|k| **k <= last).is_some() {
                count += 1;
            }
            let every_key = count == i128::from(last) - i128::from(first) + 1;
            let update = if every_key { &mut dense } else { &mut sparse };
            written += update.execute((
                first,
                last,
                stamp.clock as i64,
                stamp.db_version as i64,
                stamp.digest_version as i64,
            ))?;
        }
        Ok(written)
    })
}

/// Records rows that existed before the transaction: deleted if gone, updated in the columns
/// that differ if still there, nothing if nothing differs. Holds one table's statements.
struct EarlierRowRecorder<'c> {
    read: rusqlite::CachedStatement<'c>,
    delete: rusqlite::CachedStatement<'c>,
    update: Option<rusqlite::CachedStatement<'c>>,
    columns: usize,
}

impl<'c> EarlierRowRecorder<'c> {
    fn new(conn: &'c Connection, table: &TablePlan) -> Result<EarlierRowRecorder<'c>> {
        Ok(EarlierRowRecorder {
            read: conn.prepare_cached(&table.sql.read)?,
            delete: conn.prepare_cached(&table.sql.delete)?,
            update: table
                .sql
                .update
                .as_deref()
                .map(|sql| conn.prepare_cached(sql))
                .transpose()?,
            columns: table.schema.columns.len(),
        })
    }

    /// Reads the row as it is now and records it. Returns the number of clock rows written
    /// (0 or 1).
    fn record_earlier(&mut self, key: &[Held], before: &[Held]) -> Result<usize> {
        let columns = self.columns;
        debug_assert_eq!(before.len(), columns);
        // Which columns differ now, compared as the row is read (nothing copied).
        let flags: Option<Vec<Held>> = self
            .read
            .query_row(rusqlite::params_from_iter(key), |row| {
                changed_flags(row, before, 0)
            })
            .optional()?;
        self.write(key, before, flags)
    }

    /// Records a row given as it is now (`None`: gone), its replicated columns from column
    /// `at` of `now`. Returns the number of clock rows written (0 or 1).
    fn record(
        &mut self,
        key: &[Held],
        before: &[Held],
        now: Option<&rusqlite::Row<'_>>,
        at: usize,
    ) -> Result<usize> {
        debug_assert_eq!(before.len(), self.columns);
        let flags = now.map(|row| changed_flags(row, before, at)).transpose()?;
        self.write(key, before, flags)
    }

    fn write(&mut self, key: &[Held], before: &[Held], flags: Option<Vec<Held>>) -> Result<usize> {
        let Some(flags) = flags else {
            return Ok(self
                .delete
                .execute(rusqlite::params_from_iter(key.iter().chain(before)))?);
        };
        if flags.iter().all(|f| *f == Held::Integer(0)) {
            return Ok(0);
        }
        let update = self
            .update
            .as_mut()
            .expect("a row with a changed column has a column to update");
        Ok(update.execute(rusqlite::params_from_iter(
            key.iter().chain(before).chain(&flags),
        ))?)
    }
}

/// Whether each replicated column differs from `before`, the columns read from column `at` of
/// `row` on.
fn changed_columns(
    row: &rusqlite::Row<'_>,
    before: &[Held],
    at: usize,
) -> rusqlite::Result<Vec<bool>> {
    (0..before.len())
        .map(|i| Ok(!before[i].is_same_as_ref(row.get_ref(at + i)?)))
        .collect()
}

/// [`changed_columns`] as the flags the per-row update statement binds (1: changed).
fn changed_flags(
    row: &rusqlite::Row<'_>,
    before: &[Held],
    at: usize,
) -> rusqlite::Result<Vec<Held>> {
    Ok(changed_columns(row, before, at)?
        .into_iter()
        .map(|changed| Held::Integer(i64::from(changed)))
        .collect())
}
