//! The run log of clock tables keyed by rowid (file format 4): reads find every changed row
//! exactly once, in order, whichever way it was written (`Replica::write`, triggers, merges,
//! all in one transaction); dead entries are swept; a format 3 file is upgraded.

mod common;

use common::{all_changes, exec, replica_with_clock, rows, sync_one_way};
use weft_core::{Change, Cursor, Replica, Value};

/// Every change after `since`, read in batches of at most `batch` changes, in the order read.
fn changes_read(replica: &Replica, since: u64, batch: usize) -> Vec<Change> {
    let mut cursor = Cursor::since(since);
    let mut read = Vec::new();
    for _ in 0..100_000 {
        let found = replica.changes(&cursor, batch).unwrap();
        read.extend(found.changes);
        if found.done {
            return read;
        }
        cursor = found.next;
    }
    panic!("the read did not end");
}

/// Every row read after `since` with batches of at most `batch` changes, as (key, x), in the
/// order read. A row's changes arrive together, so consecutive changes of one key are one row.
fn rows_read(replica: &Replica, since: u64, batch: usize) -> Vec<(i64, Value)> {
    let mut read: Vec<(i64, Value)> = Vec::new();
    let mut last_key = None;
    for change in changes_read(replica, since, batch) {
        let [Value::Integer(key)] = change.pk[..] else {
            panic!("an integer key: {:?}", change.pk);
        };
        if last_key != Some(key) {
            read.push((key, Value::Null));
            last_key = Some(key);
        }
        if change.column.as_deref() == Some("x") {
            read.last_mut().unwrap().1 = change.value;
        }
    }
    read
}

fn log_entries(replica: &Replica, table: &str) -> i64 {
    replica
        .connection()
        .query_row(
            &format!("SELECT count(*) FROM \"{table}__weft_runs\""),
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// Entries of one version that overlap: readers would read their rows twice.
fn overlapping_entries(replica: &Replica, table: &str) -> i64 {
    replica
        .connection()
        .query_row(
            &format!(
                "SELECT count(*) FROM \"{table}__weft_runs\" a JOIN \"{table}__weft_runs\" b \
                 ON a.db_version = b.db_version AND a.last < b.last AND b.first <= a.last"
            ),
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn create(replica: &Replica) {
    exec(replica, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)");
    replica.enable_crr("t").unwrap();
}

fn write_rows(replica: &Replica, sql: &str) {
    replica.write(|conn| Ok(conn.execute_batch(sql)?)).unwrap();
}

#[test]
fn rows_written_by_write_triggers_and_a_merge_in_one_transaction_are_read_once_each_in_key_order() {
    let a = replica_with_clock(1_000);
    let b = replica_with_clock(900_000);
    create(&a.replica);
    create(&b.replica);
    write_rows(
        &a.replica,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
         INSERT INTO t SELECT i, 'w' FROM n",
    );
    write_rows(
        &b.replica,
        "WITH RECURSIVE n(i) AS (SELECT 40 UNION ALL SELECT i + 1 FROM n WHERE i < 120) \
         INSERT INTO t SELECT i, 'b' FROM n",
    );
    let from_b = all_changes(&b.replica, 0);
    let before = a.replica.db_version().unwrap();
    // Triggers, then two merges of interleaved keys (their logged runs overlap, and are
    // united), then triggers over rows the merges wrote.
    exec(
        &a.replica,
        "BEGIN; UPDATE t SET x = 't1' WHERE id BETWEEN 1 AND 50",
    );
    for parity in [1, 0] {
        let half: Vec<_> = from_b
            .iter()
            .filter(|c| matches!(c.pk[..], [Value::Integer(id)] if id % 2 == parity))
            .cloned()
            .collect();
        a.replica.apply_changes(&half).unwrap();
    }
    exec(
        &a.replica,
        "UPDATE t SET x = 't2' WHERE id BETWEEN 100 AND 150; COMMIT",
    );
    assert_eq!(a.replica.db_version().unwrap(), before + 1);
    assert_eq!(overlapping_entries(&a.replica, "t"), 0);
    let now: Vec<(i64, Value)> = rows(&a.replica, "SELECT id, x FROM t WHERE id <= 150")
        .into_iter()
        .map(|r| match &r[..] {
            [Value::Integer(id), x] => (*id, x.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(now.len(), 150);
    for batch in [1, 7, 64, 10_000] {
        assert_eq!(
            rows_read(&a.replica, before, batch),
            now,
            "batches of {batch}"
        );
    }
    // Everything reads: a new replica that takes all of a's changes has a's state.
    let c = replica_with_clock(1_000);
    create(&c.replica);
    sync_one_way(&a.replica, &c.replica);
    assert_eq!(a.replica.digest().unwrap(), c.replica.digest().unwrap());
}

#[test]
fn rows_updated_through_write_read_back_exactly_once_and_the_insert_entry_is_swept() {
    let r = replica_with_clock(1_000);
    let r = &r.replica;
    create(r);
    write_rows(
        r,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
         INSERT INTO t SELECT i, 'w' FROM n",
    );
    assert_eq!(log_entries(r, "t"), 1);
    let inserted = r.db_version().unwrap();
    write_rows(r, "UPDATE t SET x = 'even' WHERE id % 2 = 0");
    // The insert's entry still holds the odd rows; the update's holds the even ones.
    assert_eq!(log_entries(r, "t"), 2);
    let read = rows_read(r, inserted, 13);
    let even: Vec<(i64, Value)> = (1..=2500)
        .map(|i| (i * 2, Value::Text("even".into())))
        .collect();
    assert_eq!(read, even);
    write_rows(r, "UPDATE t SET x = 'once'");
    write_rows(r, "UPDATE t SET x = 'all'");
    // Every row moved on, twice: the 5,000 rows each update wrote are enough to sweep, and
    // every older entry is dead (the first sweep left the insert's entry narrowed to the odd
    // rows; the sweeps after it removed it and the others).
    assert_eq!(log_entries(r, "t"), 1);
    let everything = rows_read(r, 0, 999);
    assert_eq!(everything.len(), 5000);
    assert!(everything
        .iter()
        .enumerate()
        .all(|(i, (key, x))| *key == i as i64 + 1 && *x == Value::Text("all".into())));
}

#[test]
fn a_row_written_again_and_again_leaves_a_bounded_log() {
    let r = replica_with_clock(1_000);
    let r = &r.replica;
    create(r);
    write_rows(r, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    for i in 0..3000 {
        r.write(|conn| {
            conn.execute("UPDATE t SET x = ?1 WHERE id = 1", [format!("v{i}")])?;
            Ok(())
        })
        .unwrap();
    }
    // One entry per write, swept every 1,024 rows written.
    let entries = log_entries(r, "t");
    assert!((2..=1100).contains(&entries), "{entries} entries");
    assert_eq!(
        rows_read(r, 0, 1),
        vec![
            (1, Value::Text("v2999".into())),
            (2, Value::Text("b".into()))
        ]
        .into_iter()
        .rev()
        .collect::<Vec<_>>(),
        "row 2 was written first"
    );
    // Writes through the triggers leave the log as it is: their rows are in the index.
    exec(r, "UPDATE t SET x = 'trigger' WHERE id = 2");
    assert_eq!(log_entries(r, "t"), entries);
    let last = r.db_version().unwrap();
    assert_eq!(
        rows_read(r, last - 1, 5),
        vec![(2, Value::Text("trigger".into()))]
    );
}

#[test]
fn a_format_3_file_is_upgraded_and_every_row_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let r = Replica::open(&path).unwrap();
        create(&r);
        exec(
            &r,
            "INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three')",
        );
        // Back to version 3's layout: a full index on the version, no log, no marker column.
        // Triggers of version 3 would not write the marker; the upgrade must make them, and
        // here they are gone, as after a rebuild of the table, so a row inserted meanwhile
        // has no clock row until they are made again.
        exec(
            &r,
            "DROP TRIGGER t__weft_insert; DROP TRIGGER t__weft_update; \
             DROP TRIGGER t__weft_update_key; DROP TRIGGER t__weft_delete; \
             DROP TABLE t__weft_runs; DROP INDEX t__weft_clock_db_version; \
             ALTER TABLE t__weft_clock DROP COLUMN __weft_logged; \
             CREATE INDEX t__weft_clock_db_version ON t__weft_clock(__weft_db_version); \
             UPDATE weft_meta SET value = 3 WHERE key = 'format'; \
             INSERT INTO t VALUES (4, 'untracked');",
        );
    }
    let r = Replica::open(&path).unwrap();
    let (format, index_sql): (i64, String) = r
        .connection()
        .query_row(
            "SELECT (SELECT value FROM weft_meta WHERE key = 'format'), \
                    (SELECT sql FROM sqlite_master WHERE name = 't__weft_clock_db_version')",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(format, 4);
    assert!(
        index_sql.contains("WHERE __weft_logged IS NULL"),
        "{index_sql}"
    );
    assert_eq!(log_entries(&r, "t"), 0);
    let upgraded = r.db_version().unwrap();
    exec(&r, "UPDATE t SET x = 'trigger' WHERE id = 2");
    write_rows(&r, "UPDATE t SET x = 'write' WHERE id = 3");
    let mut everything = rows_read(&r, 0, 2);
    everything.sort_by_key(|row| row.0);
    assert_eq!(
        everything,
        vec![
            (1, Value::Text("one".into())),
            (2, Value::Text("trigger".into())),
            (3, Value::Text("write".into())),
            (4, Value::Text("untracked".into())),
        ]
    );
    assert_eq!(
        rows_read(&r, upgraded, 2),
        vec![
            (2, Value::Text("trigger".into())),
            (3, Value::Text("write".into())),
        ]
    );
    let check: String = r
        .connection()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn rows_held_for_a_missing_table_and_materialised_in_many_batches_are_read_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let small = || weft_core::Options {
        limits: weft_core::Limits {
            changes_per_batch_max: 10,
            ..Default::default()
        },
        ..Default::default()
    };
    let a = Replica::open_with(dir.path().join("a.db"), small()).unwrap();
    let b = Replica::open_with(dir.path().join("b.db"), small()).unwrap();
    create(&b);
    // Odd keys in one transaction, even ones in the next: the held changes come back in
    // version order, so the batches that materialise them cover interleaved keys.
    write_rows(
        &b,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 2 FROM n WHERE i < 99) \
         INSERT INTO t SELECT i, 'odd' FROM n",
    );
    write_rows(
        &b,
        "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 2 FROM n WHERE i < 100) \
         INSERT INTO t SELECT i, 'even' FROM n",
    );
    sync_one_way(&b, &a);
    create(&a);
    assert_eq!(overlapping_entries(&a, "t"), 0);
    let expected: Vec<(i64, Value)> = (1..=100)
        .map(|i| {
            (
                i,
                Value::Text(if i % 2 == 1 { "odd" } else { "even" }.into()),
            )
        })
        .collect();
    assert_eq!(rows_read(&a, 0, 7), expected);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
}

#[test]
fn the_smallest_and_largest_keys_are_read_one_batch_at_a_time() {
    let r = replica_with_clock(1_000);
    let r = &r.replica;
    create(r);
    let keys = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
    r.write(|conn| {
        for key in keys {
            conn.execute("INSERT INTO t VALUES (?1, 'k')", [key])?;
        }
        Ok(())
    })
    .unwrap();
    let expected: Vec<(i64, Value)> = keys.iter().map(|k| (*k, Value::Text("k".into()))).collect();
    assert_eq!(rows_read(r, 0, 1), expected);
    let inserted = r.db_version().unwrap();
    write_rows(r, "UPDATE t SET x = 'u'");
    let updated: Vec<(i64, Value)> = keys.iter().map(|k| (*k, Value::Text("u".into()))).collect();
    assert_eq!(rows_read(r, inserted, 1), updated);
    assert_eq!(overlapping_entries(r, "t"), 0);
}

#[test]
fn a_table_rebuilt_with_a_key_that_is_not_its_rowid_has_every_write_read() {
    let r = replica_with_clock(1_000);
    let r = &r.replica;
    create(r);
    write_rows(r, "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')");
    // Rebuilt the way SQLite documents, with a key that is no longer the rowid: the clock
    // table keeps its run log, but `Replica::write` records the table row by row.
    exec(
        r,
        "CREATE TABLE t2(id INT PRIMARY KEY NOT NULL, x TEXT); INSERT INTO t2 SELECT * FROM t; \
         DROP TABLE t; ALTER TABLE t2 RENAME TO t;",
    );
    let before = r.db_version().unwrap();
    r.enable_crr("t").unwrap();
    // Every row had its clock row: nothing was written, no version taken (a version taken
    // but unwritten was taken again by the next write, which a read from here then missed).
    assert_eq!(r.db_version().unwrap(), before);
    write_rows(
        r,
        "UPDATE t SET x = 'after' WHERE id = 2; INSERT INTO t VALUES (4, 'd')",
    );
    exec(r, "UPDATE t SET x = 'sql' WHERE id = 3");
    let mut read = rows_read(r, before, 1);
    read.sort_by_key(|row| row.0);
    assert_eq!(
        read,
        vec![
            (2, Value::Text("after".into())),
            (3, Value::Text("sql".into())),
            (4, Value::Text("d".into())),
        ]
    );
}

#[test]
fn changes_of_several_tables_read_in_small_batches_come_in_version_order_once_each() {
    let r = replica_with_clock(1_000);
    let r = &r.replica;
    create(r);
    exec(r, "CREATE TABLE a(id INTEGER PRIMARY KEY, x TEXT)");
    r.enable_crr("a").unwrap();
    let each = |round: usize, sql: &str| {
        if round.is_multiple_of(3) {
            exec(r, sql);
        } else {
            write_rows(r, sql);
        }
    };
    // Versions alternate between the tables, each written through `write` or through SQL.
    for round in 0..6 {
        let table = if round % 2 == 0 { "a" } else { "t" };
        each(
            round,
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30) \
                 INSERT OR REPLACE INTO {table} SELECT i, 'r{round}' FROM n"
            ),
        );
    }
    // Then updates of one column: a row read after them holds one change, so a batch of n
    // changes is n rows (a read that took rows of one table past another's would lose some).
    let updated = r.db_version().unwrap();
    for round in 0..6 {
        let table = if round % 2 == 0 { "a" } else { "t" };
        let from = round * 4;
        each(
            round,
            &format!("UPDATE {table} SET x = 'u{round}' WHERE id BETWEEN {from} AND {from} + 9"),
        );
    }
    let read = |since: u64, batch: usize| {
        let mut seen: Vec<(String, Vec<Value>, u64)> = Vec::new();
        for c in changes_read(r, since, batch) {
            let row = (c.table.to_string(), c.pk.clone());
            if seen.last().map(|s| (&s.0, &s.1)) != Some((&row.0, &row.1)) {
                seen.push((row.0, row.1, c.db_version));
            }
        }
        seen
    };
    for since in [0, updated] {
        let everything = read(since, 10_000);
        assert!(everything.len() >= 20, "{everything:?}");
        for batch in [1, 2, 5, 13] {
            assert_eq!(
                read(since, batch),
                everything,
                "since {since}, batches of {batch}"
            );
        }
    }
}
