//! The run log of a clock table keyed by rowid (file format 4): for every transaction, the runs
//! of keys whose clock rows the engine wrote, as entries `(db_version, last, first)`.
//!
//! An index on the clock rows' `__weft_db_version` costs every write of a row two index
//! writes (remove the row's old entry, add the new one): a quarter of a bulk UPDATE
//! (docs/benchmarks.md). Where the engine writes clock rows (the capture for
//! `Replica::write`, the merge for changes from elsewhere) it knows their keys, and adds one entry per
//! run of them before the commit; the entry of a row's previous version stays behind, dead,
//! until a sweep ([`Sweeps`]) removes it. Those rows are marked `__weft_logged = 1`.
//!
//! Triggers cannot write at the commit, and a log entry per row from inside a trigger cost
//! more than the index (measured: two statements per row). So the rows the triggers write
//! keep `__weft_logged` NULL and are found through a partial index on the version, which
//! holds only them: a row the engine writes leaves the index, one a trigger writes joins it.
//! A reader takes the rows of both, each from one of them.
//!
//! Invariants, which readers rely on:
//! - every clock row marked logged at db_version `d` has its key inside an entry of `d`
//!   (entries may also cover keys whose rows are at other versions, unmarked, or gone:
//!   readers filter);
//! - the entries of one db_version are disjoint, so reading them in `(db_version, last)` order
//!   and each one's rows in key order reads the rows in `(db_version, key)` order, each once.
//!
//! Tables keyed otherwise (WITHOUT ROWID clock tables) have no log, and a full index.

use crate::error::{Error, Result};
use crate::limits::{RUN_GAP_MAX, SWEEP_UNREWRITTEN_RANGES_MAX};
use crate::storage::sql_names::{log_name, quoted_clock, quoted_log};
use rusqlite::Connection;
use std::collections::HashMap;

/// Creates `table`'s run log if it is missing.
pub(crate) fn create(conn: &Connection, table: &str) -> Result<()> {
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (db_version INTEGER NOT NULL, last INTEGER NOT NULL, \
         first INTEGER NOT NULL, PRIMARY KEY (db_version, last)) WITHOUT ROWID",
        quoted_log(table)
    ))?;
    Ok(())
}

/// Whether `table`'s clock rows are logged by runs (else they are indexed by db_version).
/// A lookup in SQLite's in-memory schema by name: `sqlite_master` has no index, and every
/// read of changes asks for every table.
pub(crate) fn exists(conn: &Connection, table: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT count(*) > 0 FROM pragma_table_list(?1) WHERE schema = 'main'")?
        .query_row([log_name(table)], |r| r.get(0))?)
}

/// Splits sorted, distinct integers into ranges `(first, last)` in which neighbours are at
/// most `gap_max` keys apart.
pub(crate) fn nearby_runs(sorted: &[i64], gap_max: i64) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &key in sorted {
        match runs.last_mut() {
            Some((_, last)) if key.checked_sub(*last).is_some_and(|gap| gap <= gap_max) => {
                *last = key
            }
            _ => runs.push((key, key)),
        }
    }
    runs
}

/// Unites ranges `(first, last)` into disjoint ones, sorted, joining those at most
/// [`RUN_GAP_MAX`] keys apart.
fn unite(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut united: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        debug_assert!(first <= last);
        match united.last_mut() {
            Some((_, held)) if i128::from(first) - i128::from(*held) <= i128::from(RUN_GAP_MAX) => {
                *held = (*held).max(last)
            }
            _ => united.push((first, last)),
        }
    }
    united
}

/// Records that the open transaction, at `db_version`, wrote the clock rows of `keys` (any
/// order, repeats allowed) in `table`, as a merge does; see [`append_runs`].
pub(crate) fn append_keys(
    conn: &Connection,
    table: &str,
    db_version: u64,
    keys: &mut [i64],
) -> Result<()> {
    keys.sort_unstable();
    append_runs(
        conn,
        table,
        db_version,
        nearby_runs(keys, RUN_GAP_MAX),
        Earlier::Maybe,
    )
}

/// Whether the open transaction may already have entries for the version it appends at.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Earlier {
    /// It may (merges: several can run in one transaction, and materialising held changes
    /// merges several batches at one version): they are looked for.
    Maybe,
    /// It has none: `Replica::write`'s commit, the only writer of the log in its transaction,
    /// once per table.
    None,
}

/// Records that the open transaction, at `db_version`, wrote clock rows of `table` with keys
/// in `runs` (ranges `(first, last)`, any order). Entries the transaction already has (an
/// earlier merge's) are united with the new ones, keeping the version's entries disjoint.
pub(crate) fn append_runs(
    conn: &Connection,
    table: &str,
    db_version: u64,
    runs: Vec<(i64, i64)>,
    earlier: Earlier,
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let runs = unite(runs);
    let log = quoted_log(table);
    let version = db_version as i64;
    let look = earlier == Earlier::Maybe || cfg!(debug_assertions);
    let held: bool = look
        && conn
            .prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM {log} WHERE db_version = ?1)"
            ))?
            .query_row([version], |r| r.get(0))?;
    debug_assert!(
        earlier == Earlier::Maybe || !held,
        "{table}: the log has entries at version {version} already"
    );
    let mut insert = conn.prepare_cached(&insert_entry_sql(&log))?;
    if !held {
        for (first, last) in &runs {
            insert.execute([version, *last, *first])?;
        }
        return Ok(());
    }
    // Each new run takes in the entries it overlaps or nearly touches: of the version's
    // disjoint entries, those from the first whose `last` reaches it, while their `first` does.
    let mut overlapping = conn.prepare_cached(&format!(
        "SELECT first, last FROM {log} WHERE db_version = ?1 AND last >= ?2 ORDER BY last"
    ))?;
    let mut remove = conn.prepare_cached(&remove_entry_sql(&log))?;
    for (mut first, mut last) in runs {
        let reach = last.saturating_add(RUN_GAP_MAX);
        let mut taken = Vec::new();
        let mut rows = overlapping.query([version, first.saturating_sub(RUN_GAP_MAX)])?;
        while let Some(row) = rows.next()? {
            let (held_first, held_last): (i64, i64) = (row.get(0)?, row.get(1)?);
            if held_first > reach {
                break;
            }
            taken.push(held_last);
            first = first.min(held_first);
            last = last.max(held_last);
        }
        drop(rows);
        for held_last in taken {
            remove.execute([version, held_last])?;
        }
        insert.execute([version, last, first])?;
    }
    Ok(())
}

/// Adds the entry `(?1 db_version, ?2 last, ?3 first)` to the log `log` (quoted).
fn insert_entry_sql(log: &str) -> String {
    format!("INSERT INTO {log} (db_version, last, first) VALUES (?1, ?2, ?3)")
}

/// Removes the entry `(?1 db_version, ?2 last)` from the log `log` (quoted).
fn remove_entry_sql(log: &str) -> String {
    format!("DELETE FROM {log} WHERE db_version = ?1 AND last = ?2")
}

/// `FROM <log> r CROSS JOIN <clock> c ON ...`: the logged clock rows of the entries, each at
/// its entry's version, from key `lower` (an expression) on. `CROSS JOIN` keeps the log
/// outside: each entry is one range of the clock table, read in key order. The unary `+`s
/// keep SQLite from building an index on the other terms for every read (it did, and sorted
/// the result, without them; `read_changes::tests`).
pub(crate) fn join(table: &str, clock: &str, lower: &str) -> String {
    format!(
        "{log} r CROSS JOIN {clock} c ON c.rowid BETWEEN {lower} AND r.last \
         AND +c.__weft_db_version = r.db_version AND +c.__weft_logged = 1",
        log = quoted_log(table),
    )
}

/// The ranges of the keys from `first` to `last` that are not in `keys` (ascending,
/// distinct), in order, if they hold at most `budget` keys in at most
/// [`SWEEP_UNREWRITTEN_RANGES_MAX`] ranges; else `None`. Found by halving, so the work
/// grows with the number of ranges, not with the keys.
fn not_rewritten(keys: &[i64], first: i64, last: i64, budget: u64) -> Option<Vec<(i64, i64)>> {
    let from = keys.partition_point(|k| *k < first);
    let to = keys.partition_point(|k| *k <= last);
    let keys = &keys[from..to];
    let span = i128::from(last) - i128::from(first) + 1;
    if keys.is_empty() || span - keys.len() as i128 > i128::from(budget) {
        return None;
    }
    let mut ranges = Vec::new();
    gaps(keys, i128::from(first), i128::from(last), &mut ranges).then_some(ranges)
}

/// Adds the ranges of `first..=last` not in `keys` (all inside it) to `out`; false once they
/// are more than the bound.
fn gaps(keys: &[i64], first: i128, last: i128, out: &mut Vec<(i64, i64)>) -> bool {
    if first > last || keys.len() as i128 == last - first + 1 {
        return true;
    }
    if keys.is_empty() {
        out.push((first as i64, last as i64)); // inside an i64 entry's range
        return out.len() <= SWEEP_UNREWRITTEN_RANGES_MAX;
    }
    let middle = keys.len() / 2;
    let key = i128::from(keys[middle]);
    gaps(&keys[..middle], first, key - 1, out) && gaps(&keys[middle + 1..], key + 1, last, out)
}

/// Rows written between sweeps of a table's log; and what a sweep may read per row written.
const SWEEP_AFTER_ROWS: u64 = 1024;
const SWEEP_ROWS_PER_ROW_WRITTEN: u64 = 2;
/// Entries a sweep reads at a time.
const SWEEP_ENTRIES_PER_READ: i64 = 64;

/// Where the sweeps of one connection stand, per table: the last entry checked, and the rows
/// written since the last sweep.
#[derive(Default)]
pub(crate) struct Sweeps {
    tables: HashMap<String, SweepState>,
}

#[derive(Default)]
struct SweepState {
    after: Option<(i64, i64)>,
    owed: u64,
}

impl Sweeps {
    /// After the open transaction (at `db_version`) wrote `rows` clock rows of `table`: sweeps
    /// its log once enough rows were written since the last sweep, reading at most a bounded
    /// multiple of them. So the dead entries a table's writes leave are removed at a pace set
    /// by those writes, in the writers' own transactions. `rewritten` is as [`sweep`] takes it.
    pub(crate) fn after_write(
        &mut self,
        conn: &Connection,
        table: &str,
        db_version: u64,
        rows: u64,
        rewritten: &[i64],
    ) -> Result<()> {
        let state = self.tables.entry(table.to_owned()).or_default();
        state.owed = state.owed.saturating_add(rows);
        if state.owed < SWEEP_AFTER_ROWS {
            return Ok(());
        }
        let budget = state.owed.saturating_mul(SWEEP_ROWS_PER_ROW_WRITTEN);
        state.owed = 0;
        state.after = sweep(conn, table, state.after, db_version, budget, rewritten)?;
        Ok(())
    }
}

/// Checks the entries of `table`'s log after `after` (from the first if `None`) and below
/// `db_version`, reading at most about `budget` clock rows: each entry read becomes the runs
/// of its keys whose rows are still at its version (logged), so one none of whose rows is
/// is removed, and one with a long stretch of rows that moved on is narrowed or split (a
/// reader would scan those rows). An entry the budget ends inside has the part read
/// rewritten so, and the rest is left for the next sweep. Returns where the next sweep
/// starts: after the last entry checked, or `None` once it reached the end (the next sweep
/// starts again from the first).
///
/// `rewritten` holds keys, ascending and distinct, whose clock rows the open transaction moved
/// to `db_version` (or that have none): none of them is still at an earlier version. Of an
/// entry most of whose keys are among them (a bulk rewrite of what an earlier one wrote), only
/// the others are read, and one all of whose keys are is removed unread, for one row of the
/// budget.
pub(crate) fn sweep(
    conn: &Connection,
    table: &str,
    mut after: Option<(i64, i64)>,
    db_version: u64,
    budget: u64,
    rewritten: &[i64],
) -> Result<Option<(i64, i64)>> {
    debug_assert!(rewritten.windows(2).all(|w| w[0] < w[1]));
    let log = quoted_log(table);
    let clock = quoted_clock(table);
    let mut entries = conn.prepare_cached(&format!(
        "SELECT db_version, last, first FROM {log} WHERE (db_version, last) > (?1, ?2) AND db_version < ?3 \
         ORDER BY db_version, last LIMIT {SWEEP_ENTRIES_PER_READ}"
    ))?;
    let mut rows = conn.prepare_cached(&format!(
        "SELECT rowid, __weft_db_version = ?4 AND __weft_logged = 1 FROM {clock} \
         WHERE rowid BETWEEN ?1 AND ?2 ORDER BY rowid LIMIT ?3"
    ))?;
    let mut remove = conn.prepare_cached(&remove_entry_sql(&log))?;
    let mut narrow = conn.prepare_cached(&format!(
        "UPDATE {log} SET first = ?3 WHERE db_version = ?1 AND last = ?2"
    ))?;
    let mut insert = conn.prepare_cached(&insert_entry_sql(&log))?;
    let mut left = budget.max(1);
    loop {
        let (from_version, from_last) = after.unwrap_or((i64::MIN, i64::MIN));
        let batch = entries
            .query_map([from_version, from_last, db_version as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if batch.is_empty() {
            return Ok(None);
        }
        for (version, last, first) in batch {
            if first > last {
                return Err(Error::Corrupt(format!(
                    "{table}: a run-log entry ends before it starts"
                )));
            }
            let limit = i64::try_from(left).unwrap_or(i64::MAX);
            let mut read = 0u64;
            let mut live = Vec::new();
            let mut seen_last = None;
            // The keys the transaction rewrote are dead here: only the others are read, when
            // they are few (none: the entry is dead unread). Else the entry is read from its
            // first key, at most `limit` rows.
            let not_rewritten = not_rewritten(rewritten, first, last, left);
            let whole_known = not_rewritten.is_some();
            let ranges = not_rewritten.unwrap_or_else(|| vec![(first, last)]);
            for (from, to) in ranges {
                let mut found = rows.query([from, to, limit, version])?;
                while let Some(row) = found.next()? {
                    read += 1;
                    let key: i64 = row.get(0)?;
                    seen_last = Some(key);
                    if row.get::<_, Option<bool>>(1)? == Some(true) {
                        live.push(key);
                    }
                }
            }
            left = left.saturating_sub(read.max(1));
            // Read to its end: fewer rows than the limit came back, or the last one read is
            // the entry's last. Else the budget ended inside it, after `seen_last`.
            let whole = whole_known || (read as i64) < limit || seen_last == Some(last);
            let runs = nearby_runs(&live, RUN_GAP_MAX);
            if whole {
                // The entry becomes the runs of its live keys: none, itself, narrower, or
                // split where a stretch of its rows moved on.
                if runs != [(first, last)] {
                    remove.execute([version, last])?;
                    for (run_first, run_last) in &runs {
                        insert.execute([version, *run_last, *run_first])?;
                    }
                }
            } else {
                // The part read becomes the runs of its live keys, the rest stays for the
                // next sweep, which starts after those runs.
                let Some(read_to) = seen_last.filter(|key| *key < last) else {
                    return Err(Error::Corrupt(format!(
                        "{table}: a sweep read past a run-log entry"
                    )));
                };
                narrow.execute([version, last, read_to + 1])?;
                for (run_first, run_last) in &runs {
                    insert.execute([version, *run_last, *run_first])?;
                }
                return Ok(runs.last().map(|r| (version, r.1)).or(after));
            }
            after = Some((version, last));
            if left == 0 {
                return Ok(after);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{create, nearby_runs, sweep, unite};
    use rusqlite::Connection;

    /// A clock table `t` with `rows` (key, db_version, logged) and a log with `entries`.
    fn logged(rows: &[(i64, i64, Option<i64>)], entries: &[(i64, i64, i64)]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t__weft_clock(id INTEGER PRIMARY KEY, __weft_db_version INTEGER, __weft_logged INTEGER)",
        )
        .unwrap();
        create(&conn, "t").unwrap();
        for row in rows {
            conn.execute("INSERT INTO t__weft_clock VALUES (?1, ?2, ?3)", *row)
                .unwrap();
        }
        for (version, last, first) in entries {
            conn.execute(
                "INSERT INTO t__weft_runs VALUES (?1, ?2, ?3)",
                [version, last, first],
            )
            .unwrap();
        }
        conn
    }

    fn entries(conn: &Connection) -> Vec<(i64, i64, i64)> {
        conn.prepare("SELECT db_version, last, first FROM t__weft_runs ORDER BY 1, 2")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_sweep_removes_dead_entries_narrows_live_ones_and_keeps_the_open_version() {
        // Rows 1-4 moved on to version 2 (4 by a trigger: unlogged), 5-6 still at 1.
        let rows = [
            (1, 2, Some(1)),
            (2, 2, Some(1)),
            (3, 2, Some(1)),
            (4, 1, None),
            (5, 1, Some(1)),
            (6, 1, Some(1)),
            (9, 3, Some(1)),
        ];
        let conn = logged(&rows, &[(1, 3, 1), (1, 6, 4), (2, 3, 1), (3, 9, 9)]);
        let after = sweep(&conn, "t", None, 3, 100, &[]).unwrap();
        assert_eq!(after, None, "it reached the end");
        assert_eq!(entries(&conn), vec![(1, 6, 5), (2, 3, 1), (3, 9, 9)]);
    }

    #[test]
    fn an_entry_with_a_stretch_of_rows_that_moved_on_is_split_around_it() {
        let rows: Vec<_> = (1..=100)
            .map(|k| (k, if (30..=70).contains(&k) { 2 } else { 1 }, Some(1)))
            .collect();
        let conn = logged(&rows, &[(1, 100, 1), (2, 70, 30)]);
        assert_eq!(sweep(&conn, "t", None, 3, 1000, &[]).unwrap(), None);
        assert_eq!(entries(&conn), vec![(1, 29, 1), (1, 100, 71), (2, 70, 30)]);
    }

    #[test]
    fn a_live_entry_larger_than_the_budget_is_checked_a_part_at_a_time() {
        let rows: Vec<_> = (1..=100).map(|k| (k, 1, Some(1))).collect();
        let conn = logged(&rows, &[(1, 100, 1), (1, 200, 150)]);
        let mut after = None;
        for _ in 0..4 {
            after = sweep(&conn, "t", after, 3, 30, &[]).unwrap();
        }
        // Four sweeps of 30 rows: three parts of 30 rows, then the last 10 and the second
        // entry (whose rows are gone) in the fourth.
        assert_eq!(
            entries(&conn),
            vec![(1, 30, 1), (1, 60, 31), (1, 90, 61), (1, 100, 91)]
        );
        assert_eq!(after, None);
    }

    #[test]
    fn an_entry_whose_rows_are_all_dead_is_removed_when_the_budget_ends_on_its_last_row() {
        let rows: Vec<_> = (1..=10).map(|k| (k, 2, Some(1))).collect();
        let conn = logged(&rows, &[(1, 10, 1)]);
        sweep(&conn, "t", None, 5, 10, &[]).unwrap();
        assert_eq!(entries(&conn), vec![]);
    }

    #[test]
    fn a_sweep_out_of_budget_inside_an_entry_narrows_it_past_the_rows_read() {
        let rows: Vec<_> = (1..=10).map(|k| (k, 2, Some(1))).collect();
        let conn = logged(&rows, &[(1, 10, 1), (1, 20, 15)]);
        let after = sweep(&conn, "t", None, 5, 4, &[]).unwrap();
        assert_eq!(after, None, "no entry was checked whole");
        assert_eq!(entries(&conn), vec![(1, 10, 5), (1, 20, 15)]);
        // The next sweeps go on from there.
        let after = sweep(&conn, "t", after, 5, 100, &[]).unwrap();
        assert_eq!(after, None);
        assert_eq!(entries(&conn), vec![]);
    }

    #[test]
    fn an_entry_whose_every_key_the_transaction_rewrote_is_removed_without_reading_it() {
        // The clock rows still read as at versions 1 and 2, so only the rewritten keys can
        // tell the sweep that the first entry is dead; its budget of 1 row could not read it.
        let rows: Vec<_> = (1..=1003)
            .map(|k| (k, if k > 1000 { 2 } else { 1 }, Some(1)))
            .collect();
        let conn = logged(&rows, &[(1, 1000, 1), (2, 1003, 1001)]);
        let rewritten: Vec<i64> = (1..=1002).collect();
        let after = sweep(&conn, "t", None, 5, 1, &rewritten).unwrap();
        assert_eq!(after, Some((1, 1000)), "one row of the budget");
        assert_eq!(entries(&conn), vec![(2, 1003, 1001)]);
        // Key 1003 was not rewritten: it alone of the second entry is read, and is live.
        assert_eq!(sweep(&conn, "t", after, 5, 10, &rewritten).unwrap(), None);
        assert_eq!(entries(&conn), vec![(2, 1003, 1003)]);
    }

    #[test]
    fn of_an_entry_mostly_rewritten_only_the_other_keys_are_read() {
        // Every row still reads as live, so what the entry becomes shows which were read.
        let rows: Vec<_> = (1..=100).map(|k| (k, 1, Some(1))).collect();
        let conn = logged(&rows, &[(1, 100, 1)]);
        let rewritten: Vec<i64> = (1..=100).filter(|k| ![7, 8, 60].contains(k)).collect();
        sweep(&conn, "t", None, 5, 100, &rewritten).unwrap();
        assert_eq!(entries(&conn), vec![(1, 8, 7), (1, 60, 60)]);
    }

    #[test]
    fn an_entry_with_more_keys_not_rewritten_than_the_budget_is_read_as_usual() {
        let rows: Vec<_> = (1..=100).map(|k| (k, 1, Some(1))).collect();
        let conn = logged(&rows, &[(1, 100, 1)]);
        // 50 keys not rewritten, a budget of 40: the first 40 rows are read.
        let rewritten: Vec<i64> = (51..=100).collect();
        assert_eq!(
            sweep(&conn, "t", None, 5, 40, &rewritten).unwrap(),
            Some((1, 40))
        );
        assert_eq!(entries(&conn), vec![(1, 40, 1), (1, 100, 41)]);
    }

    #[test]
    fn keys_not_rewritten_are_found_in_ranges_up_to_a_bound() {
        use super::not_rewritten;
        let keys: Vec<i64> = (0..1000).filter(|k| k % 50 != 5).collect();
        assert_eq!(
            not_rewritten(&keys, 0, 149, 10),
            Some(vec![(5, 5), (55, 55), (105, 105)])
        );
        assert_eq!(
            not_rewritten(&keys, 0, 149, 2),
            None,
            "more keys than the budget"
        );
        assert_eq!(not_rewritten(&keys, 10, 20, 0), Some(vec![]));
        assert_eq!(
            not_rewritten(&keys, 0, 999, 2000),
            None,
            "20 ranges, more than 16"
        );
        assert_eq!(
            not_rewritten(&keys, 2000, 2010, 100),
            None,
            "none rewritten"
        );
        let extremes = [i64::MIN, i64::MAX];
        assert_eq!(
            not_rewritten(&extremes, i64::MIN, i64::MIN + 2, 10),
            Some(vec![(i64::MIN + 1, i64::MIN + 2)])
        );
        assert_eq!(
            not_rewritten(&extremes, i64::MAX - 1, i64::MAX, 10),
            Some(vec![(i64::MAX - 1, i64::MAX - 1)])
        );
    }

    #[test]
    fn nearby_keys_share_a_range_and_far_ones_do_not() {
        assert_eq!(nearby_runs(&[], 16), vec![]);
        assert_eq!(
            nearby_runs(&[1, 2, 18, 35, 36, i64::MAX], 16),
            vec![(1, 18), (35, 36), (i64::MAX, i64::MAX)]
        );
        assert_eq!(
            nearby_runs(&[i64::MIN, -1, 0], 16),
            vec![(i64::MIN, i64::MIN), (-1, 0)]
        );
    }

    #[test]
    fn consecutive_keys_make_one_run_and_gaps_start_new_ones() {
        assert_eq!(nearby_runs(&[], 1), vec![]);
        assert_eq!(nearby_runs(&[5], 1), vec![(5, 5)]);
        assert_eq!(
            nearby_runs(&[1, 2, 3, 7, 8, 10, i64::MAX], 1),
            vec![(1, 3), (7, 8), (10, 10), (i64::MAX, i64::MAX)]
        );
        assert_eq!(
            nearby_runs(&[i64::MIN, i64::MIN + 1, -1, 0, 1], 1),
            vec![(i64::MIN, i64::MIN + 1), (-1, 1)]
        );
    }

    #[test]
    fn united_ranges_are_disjoint_and_cover_every_range() {
        assert_eq!(unite(vec![]), vec![]);
        assert_eq!(
            unite(vec![(50, 60), (1, 3), (2, 10), (100, 100), (70, 80)]),
            vec![(1, 10), (50, 80), (100, 100)]
        );
        assert_eq!(
            unite(vec![
                (i64::MAX, i64::MAX),
                (i64::MIN, i64::MIN),
                (0, i64::MAX)
            ]),
            vec![(i64::MIN, i64::MIN), (0, i64::MAX)]
        );
    }
}
