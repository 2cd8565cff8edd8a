//! One test per merge rule, through real SQLite files.

mod common;
use common::*;
use weft_core::{Error, Replica, Value};

const TODO: &str =
    "CREATE TABLE todo(id INTEGER PRIMARY KEY, title TEXT, done INTEGER NOT NULL DEFAULT 0);";

fn pair() -> (TestReplica, TestReplica) {
    let a = replica_with_clock(1_000);
    let b = replica_with_clock(1_000);
    for r in [&a, &b] {
        exec(&r.replica, TODO);
        r.replica.enable_crr("todo").unwrap();
    }
    (a, b)
}

fn todos(r: &TestReplica) -> Vec<Vec<Value>> {
    rows(&r.replica, "SELECT id, title, done FROM todo ORDER BY id")
}

#[test]
fn inserts_updates_and_deletes_converge() {
    let (a, b) = pair();
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (1, 'milk'), (2, 'eggs'), (3, 'bread')",
    );
    exec(&b.replica, "INSERT INTO todo(id, title) VALUES (10, 'tea')");
    sync_both(&a.replica, &b.replica);
    assert_eq!(todos(&a), todos(&b));
    assert_eq!(todos(&a).len(), 4);
    exec(
        &a.replica,
        "UPDATE todo SET done = 1 WHERE id = 1; DELETE FROM todo WHERE id = 3",
    );
    exec(
        &b.replica,
        "UPDATE todo SET title = 'green tea' WHERE id = 10",
    );
    sync_both(&a.replica, &b.replica);
    assert_eq!(todos(&a), todos(&b));
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
    assert_eq!(
        todos(&a),
        vec![
            vec![
                Value::Integer(1),
                Value::Text("milk".into()),
                Value::Integer(1)
            ],
            vec![
                Value::Integer(2),
                Value::Text("eggs".into()),
                Value::Integer(0)
            ],
            vec![
                Value::Integer(10),
                Value::Text("green tea".into()),
                Value::Integer(0)
            ],
        ]
    );
}

#[test]
fn concurrent_updates_later_wall_clock_wins() {
    let (a, b) = pair();
    exec(&a.replica, "INSERT INTO todo(id, title) VALUES (1, 'x')");
    sync_both(&a.replica, &b.replica);
    a.clock.set(5_000);
    b.clock.set(6_000);
    exec(&a.replica, "UPDATE todo SET title = 'from a' WHERE id = 1");
    exec(&b.replica, "UPDATE todo SET title = 'from b' WHERE id = 1");
    sync_both(&a.replica, &b.replica);
    assert_eq!(todos(&a)[0][1], Value::Text("from b".into()));
    assert_eq!(todos(&a), todos(&b));
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
}

#[test]
fn equal_clocks_fall_to_the_higher_site_id() {
    let (a, b) = pair();
    exec(&a.replica, "INSERT INTO todo(id, title) VALUES (1, 'x')");
    sync_both(&a.replica, &b.replica);
    // Same wall time on both, and both clocks have seen the same: the next ticks can tie.
    a.clock.set(50_000);
    b.clock.set(50_000);
    exec(&a.replica, "UPDATE todo SET title = 'from a' WHERE id = 1");
    exec(&b.replica, "UPDATE todo SET title = 'from b' WHERE id = 1");
    let clock_of = |r: &TestReplica| {
        all_changes(&r.replica, 0)
            .into_iter()
            .find(|c| c.column.as_deref() == Some("title"))
            .unwrap()
            .clock
    };
    assert_eq!(clock_of(&a), clock_of(&b), "the test needs tied clocks");
    sync_both(&a.replica, &b.replica);
    let winner = if a.replica.site_id() > b.replica.site_id() {
        "from a"
    } else {
        "from b"
    };
    assert_eq!(todos(&a)[0][1], Value::Text(winner.into()));
    assert_eq!(todos(&a), todos(&b));
}

#[test]
fn causal_order_beats_a_skewed_clock() {
    let (a, b) = pair();
    // a's wall clock runs an hour fast; b's is right.
    a.clock.set(3_600_000 + 1_000);
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (1, 'from the fast clock')",
    );
    sync_one_way(&a.replica, &b.replica);
    // b saw a's write, so b's later edit must win although b's wall clock is behind.
    b.clock.set(2_000);
    exec(
        &b.replica,
        "UPDATE todo SET title = 'seen and edited' WHERE id = 1",
    );
    sync_both(&a.replica, &b.replica);
    assert_eq!(todos(&a)[0][1], Value::Text("seen and edited".into()));
    assert_eq!(todos(&a), todos(&b));
}

#[test]
fn delete_beats_a_concurrent_update_with_a_later_clock() {
    let (a, b) = pair();
    exec(&a.replica, "INSERT INTO todo(id, title) VALUES (1, 'x')");
    sync_both(&a.replica, &b.replica);
    a.clock.set(2_000);
    b.clock.set(9_000);
    exec(&a.replica, "DELETE FROM todo WHERE id = 1");
    exec(
        &b.replica,
        "UPDATE todo SET title = 'late edit' WHERE id = 1",
    );
    sync_both(&a.replica, &b.replica);
    assert!(todos(&a).is_empty());
    assert!(todos(&b).is_empty());
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
}

#[test]
fn reinsert_after_delete_wins_over_the_delete_and_old_edits() {
    let (a, b) = pair();
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (1, 'first')",
    );
    sync_both(&a.replica, &b.replica);
    exec(&b.replica, "UPDATE todo SET done = 1 WHERE id = 1");
    exec(
        &a.replica,
        "DELETE FROM todo WHERE id = 1; INSERT INTO todo(id, title) VALUES (1, 'second life')",
    );
    sync_both(&a.replica, &b.replica);
    let expected = vec![vec![
        Value::Integer(1),
        Value::Text("second life".into()),
        Value::Integer(0),
    ]];
    assert_eq!(todos(&a), expected);
    assert_eq!(todos(&b), expected);
    // A delete elsewhere that only saw the first life loses to the re-insert too.
    let c = replica_with_clock(99_000);
    exec(&c.replica, TODO);
    c.replica.enable_crr("todo").unwrap();
    exec(&c.replica, "INSERT INTO todo(id, title) VALUES (1, 'c')");
    exec(&c.replica, "DELETE FROM todo WHERE id = 1");
    sync_both(&a.replica, &c.replica);
    assert_eq!(todos(&c), expected);
    assert_eq!(a.replica.digest().unwrap(), c.replica.digest().unwrap());
}

#[test]
fn an_update_that_changes_nothing_records_nothing() {
    let (a, _b) = pair();
    exec(&a.replica, "INSERT INTO todo(id, title) VALUES (1, 'x')");
    let version = a.replica.db_version().unwrap();
    exec(
        &a.replica,
        "UPDATE todo SET title = 'x' WHERE id = 1; UPDATE todo SET done = done",
    );
    assert_eq!(a.replica.db_version().unwrap(), version);
    assert!(all_changes(&a.replica, version).is_empty());
}

#[test]
fn every_transaction_takes_one_db_version_across_connections() {
    let (a, _b) = pair();
    let before = a.replica.db_version().unwrap();
    exec(&a.replica, "BEGIN; INSERT INTO todo(id, title) VALUES (1, 'x'); INSERT INTO todo(id, title) VALUES (2, 'y'); UPDATE todo SET done = 1; COMMIT");
    assert_eq!(a.replica.db_version().unwrap(), before + 1);
    let other = a.replica.connect().unwrap();
    other
        .execute(
            "INSERT INTO todo(id, title) VALUES (3, 'from another connection')",
            [],
        )
        .unwrap();
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (4, 'back on the first')",
    );
    assert_eq!(a.replica.db_version().unwrap(), before + 3);
    let versions: Vec<u64> = all_changes(&a.replica, before)
        .iter()
        .map(|c| c.db_version)
        .collect();
    for v in before + 1..=before + 3 {
        assert!(
            versions.contains(&v),
            "db_version {v} missing from {versions:?}"
        );
    }
    assert_eq!(
        a.replica.digest().unwrap(),
        a.replica.digest_from_scratch().unwrap()
    );
}

#[test]
fn a_connection_without_the_functions_cannot_write_unrecorded() {
    let (a, _b) = pair();
    let plain = rusqlite::Connection::open(a.replica.path()).unwrap();
    let error = plain
        .execute("INSERT INTO todo(id, title) VALUES (1, 'sneaky')", [])
        .unwrap_err();
    assert!(error.to_string().contains("no such function"), "{error}");
    assert!(todos(&a).is_empty());
}

#[test]
fn plain_sql_forms_are_all_captured() {
    let (a, b) = pair();
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (1, 'a'), (2, 'b'), (3, 'c');
         INSERT INTO todo(id, title) VALUES (1, 'upserted') ON CONFLICT(id) DO UPDATE SET title = excluded.title;
         INSERT OR REPLACE INTO todo(id, title, done) VALUES (2, 'replaced', 1);
         UPDATE todo SET id = 30 WHERE id = 3;
         BEGIN; UPDATE todo SET done = 1 WHERE id = 1; DELETE FROM todo WHERE id = 2; COMMIT;
         BEGIN; INSERT INTO todo(id, title) VALUES (99, 'rolled back'); ROLLBACK;",
    );
    sync_one_way(&a.replica, &b.replica);
    let expected = vec![
        vec![
            Value::Integer(1),
            Value::Text("upserted".into()),
            Value::Integer(1),
        ],
        vec![
            Value::Integer(30),
            Value::Text("c".into()),
            Value::Integer(0),
        ],
    ];
    assert_eq!(todos(&a), expected);
    assert_eq!(todos(&b), expected);
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
}

#[test]
fn the_engine_works_inside_an_open_application_transaction() {
    let (a, b) = pair();
    exec(
        &a.replica,
        "BEGIN; INSERT INTO todo(id, title) VALUES (1, 'inside')",
    );
    let changes = all_changes(&a.replica, 0);
    assert!(
        changes
            .iter()
            .any(|c| c.value == Value::Text("inside".into())),
        "the open transaction's own writes are visible to it"
    );
    assert_eq!(
        a.replica.digest().unwrap(),
        a.replica.digest_from_scratch().unwrap()
    );
    exec(&a.replica, "COMMIT");
    sync_one_way(&a.replica, &b.replica);
    assert_eq!(todos(&b).len(), 1);
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
}

/// Regression: dropping a connection with a transaction open made SQLite call the rollback
/// hook after rusqlite had freed it (a segfault). Nothing of the transaction survives.
#[test]
fn dropping_a_replica_or_connection_mid_transaction_rolls_back_cleanly() {
    let (a, _b) = pair();
    let path = a.replica.path().to_path_buf();
    exec(&a.replica, "INSERT INTO todo(id, title) VALUES (1, 'kept')");
    let other = a.replica.connect().unwrap();
    other
        .execute_batch("BEGIN; INSERT INTO todo(id, title) VALUES (2, 'abandoned on a connection')")
        .unwrap();
    drop(other);
    exec(
        &a.replica,
        "BEGIN; INSERT INTO todo(id, title) VALUES (3, 'abandoned on the replica')",
    );
    drop(a.replica);
    let reopened = weft_core::Replica::open(&path).unwrap();
    assert_eq!(
        rows(&reopened, "SELECT id FROM todo"),
        vec![vec![Value::Integer(1)]]
    );
    assert_eq!(
        reopened.digest().unwrap(),
        reopened.digest_from_scratch().unwrap()
    );
}

#[test]
fn application_triggers_still_see_merged_rows_and_local_writes_stay_captured() {
    let (a, b) = pair();
    // b keeps an audit log with a trigger of its own: merged rows must reach it.
    exec(
        &b.replica,
        "CREATE TABLE audit(title TEXT);
         CREATE TRIGGER todo_audit AFTER INSERT ON todo BEGIN INSERT INTO audit VALUES (NEW.title); END;",
    );
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (1, 'merged'), (2, 'also merged')",
    );
    sync_one_way(&a.replica, &b.replica);
    assert_eq!(
        rows(&b.replica, "SELECT title FROM audit ORDER BY title"),
        vec![
            vec![Value::Text("also merged".into())],
            vec![Value::Text("merged".into())]
        ]
    );
    // a has only Weft's triggers, so its merges run with triggers off; afterwards its own
    // writes must still be recorded.
    exec(
        &b.replica,
        "INSERT INTO todo(id, title) VALUES (3, 'from b')",
    );
    sync_one_way(&b.replica, &a.replica);
    exec(&a.replica, "UPDATE todo SET done = 1 WHERE id = 3");
    sync_one_way(&a.replica, &b.replica);
    assert_eq!(todos(&b), todos(&a));
    assert_eq!(
        todos(&b)[2][2],
        Value::Integer(1),
        "a's write after a merge was captured and synced"
    );
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
}

#[test]
fn concurrent_writers_on_separate_connections_never_share_a_db_version() {
    let (a, b) = pair();
    const PER_WRITER: i64 = 150;
    let writers: Vec<_> = (0..3i64)
        .map(|w| {
            let conn = a.replica.connect().unwrap();
            std::thread::spawn(move || {
                for i in 0..PER_WRITER {
                    let id = w * 1_000 + i;
                    conn.execute("INSERT INTO todo(id, title) VALUES (?1, 'x')", [id])
                        .unwrap();
                    if i % 10 == 0 {
                        conn.execute("UPDATE todo SET done = 1 WHERE id = ?1", [id])
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    // The replica's own connection writes at the same time.
    for i in 0..PER_WRITER {
        exec(
            &a.replica,
            &format!("INSERT INTO todo(id, title) VALUES ({}, 'main')", 9_000 + i),
        );
    }
    for writer in writers {
        writer.join().unwrap();
    }
    let changes = all_changes(&a.replica, 0);
    let mut insert_versions: Vec<u64> = changes
        .iter()
        .filter(|c| c.column.is_none())
        .map(|c| c.db_version)
        .collect();
    let inserts = insert_versions.len();
    assert_eq!(inserts, 4 * PER_WRITER as usize);
    insert_versions.sort_unstable();
    insert_versions.dedup();
    assert_eq!(
        insert_versions.len(),
        inserts,
        "two transactions got the same db_version"
    );
    assert!(insert_versions
        .iter()
        .all(|v| *v <= a.replica.db_version().unwrap()));
    assert_eq!(
        a.replica.digest().unwrap(),
        a.replica.digest_from_scratch().unwrap()
    );
    sync_one_way(&a.replica, &b.replica);
    assert_eq!(todos(&b), todos(&a));
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
}

#[test]
fn opening_an_initialised_replica_does_not_wait_for_another_writer() {
    let (a, _b) = pair();
    let path = a.replica.path().to_path_buf();
    let site = a.replica.site_id();
    drop(a.replica);
    // Another process holds the write lock (a long import, say).
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let reopened = weft_core::Replica::open(&path).unwrap();
    assert!(
        started.elapsed() < weft_core::LOCK_WAIT_MAX / 2,
        "open waited for the write lock"
    );
    assert_eq!(reopened.site_id(), site);
    assert!(rows(&reopened, "SELECT count(*) FROM todo")[0][0] == Value::Integer(0));
    writer.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_batch_that_appends_rows_and_comes_back_to_one_merges_it_again() {
    // The merge skips looking up integer keys above every stored key; a row written earlier
    // in the same batch must still be found when the batch comes back to it.
    let (a, b) = pair();
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (1, 'one'), (2, 'two')",
    );
    sync_one_way(&a.replica, &b.replica);
    let since = a.replica.db_version().unwrap();
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (10, 'first')",
    );
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (11, 'eleven')",
    );
    a.clock.set(2_000);
    exec(&a.replica, "UPDATE todo SET title = 'second' WHERE id = 10");
    let mut changes = all_changes(&a.replica, since);
    // Row 10's insert, row 11, then row 10 again: two runs of row 10 in one batch.
    changes.sort_by_key(|c| c.db_version);
    let runs: Vec<i64> = changes
        .chunk_by(|x, y| x.pk == y.pk)
        .map(|run| match run[0].pk[0] {
            Value::Integer(id) => id,
            _ => unreachable!("integer keys"),
        })
        .collect();
    assert_eq!(runs, vec![10, 11, 10], "{changes:?}");
    b.replica.apply_changes(&changes).unwrap();
    assert_eq!(todos(&b), todos(&a));
    assert_eq!(b.replica.digest().unwrap(), a.replica.digest().unwrap());
    assert_eq!(
        b.replica.digest_from_scratch().unwrap(),
        b.replica.digest().unwrap()
    );
}

#[test]
fn a_text_key_stored_as_an_integer_is_found_by_the_integer_key_later_in_the_batch() {
    // INTEGER PRIMARY KEY stores the text '7' as the integer 7: once a batch has written a
    // key that is not an integer, integer keys above the largest seen must still be looked up.
    let (a, b) = pair();
    exec(
        &a.replica,
        "INSERT INTO todo(id, title) VALUES (5, 'five'), (7, 'seven')",
    );
    a.clock.set(2_000);
    exec(
        &a.replica,
        "UPDATE todo SET title = 'seven again' WHERE id = 7",
    );
    let changes = all_changes(&a.replica, 0);
    let of = |id: i64| -> Vec<weft_core::Change> {
        changes
            .iter()
            .filter(|c| c.pk == vec![Value::Integer(id)])
            .cloned()
            .collect()
    };
    // Row 5, then row 7's first write keyed by text, then its later title keyed by integer.
    let mut batch = of(5);
    let (later, first): (Vec<_>, Vec<_>) = of(7)
        .into_iter()
        .partition(|c| c.column.as_deref() == Some("title"));
    batch.extend(first.into_iter().map(|mut c| {
        c.pk = vec![Value::Text("7".into())];
        c
    }));
    batch.extend(later);
    b.replica.apply_changes(&batch).unwrap();
    assert_eq!(
        todos(&b),
        vec![
            vec![
                Value::Integer(5),
                Value::Text("five".into()),
                Value::Integer(0)
            ],
            vec![
                Value::Integer(7),
                Value::Text("seven again".into()),
                Value::Integer(0)
            ],
        ]
    );
}

/// Runs `update` on a replica holding `setup` (table `t`, replicated) and returns the one
/// change it recorded, checking the digest against the stored registers.
fn the_one_change_of(setup: &str, update: &str) -> Value {
    let t = replica_with_clock(1_000);
    let replica = &t.replica;
    exec(replica, setup);
    replica.enable_crr("t").unwrap();
    replica.digest().unwrap();
    let version = replica.db_version().unwrap();
    exec(replica, update);
    let changes = all_changes(replica, version);
    assert_eq!(changes.len(), 1, "{update}: {changes:?}");
    assert_eq!(
        replica.digest().unwrap(),
        replica.digest_from_scratch().unwrap()
    );
    changes[0].value.clone()
}

#[test]
fn an_update_that_changes_only_the_storage_class_is_recorded() {
    // `v` has no type: SQLite keeps 1 and 1.0 apart, though SQL's `IS` holds them equal.
    let value = the_one_change_of(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v); INSERT INTO t VALUES (1, 1);",
        "UPDATE t SET v = 1.0 WHERE id = 1",
    );
    assert_eq!(value, Value::Real(1.0));
}

/// The update trigger asks for the storage class only where the column's affinity lets two
/// equal values differ in it: every pair of these values, in every kind of column, is recorded
/// exactly when the stored value changed.
#[test]
fn an_update_is_recorded_exactly_when_the_stored_value_changes_whatever_the_column_type() {
    let types = [
        "INTEGER",
        "INT",
        "BIGINT",
        "NUMERIC",
        "DECIMAL(10,2)",
        "BOOLEAN",
        "DATE",
        "REAL",
        "DOUBLE",
        "FLOAT",
        "FLOATING POINT",
        "TEXT",
        "VARCHAR(10)",
        "CLOB",
        "BLOB",
        "",
        "ANY",
    ];
    let values = [
        "1",
        "1.0",
        "1.5",
        "0.0",
        "-0.0",
        "-9223372036854775808",
        "-9223372036854775808.0",
        "9223372036854775807",
        "9223372036854775807.0",
        "'1'",
        "'1.0'",
        "x'31'",
        "'a'",
        "'A'",
        "NULL",
    ];
    for declared in types {
        let t = replica_with_clock(1_000);
        let replica = &t.replica;
        exec(
            replica,
            &format!("CREATE TABLE t(id INTEGER PRIMARY KEY, x {declared})"),
        );
        replica.enable_crr("t").unwrap();
        let stored = |id: usize| rows(replica, &format!("SELECT x FROM t WHERE id = {id}"));
        let mut id = 0;
        for before in values {
            for after in values {
                id += 1;
                exec(replica, &format!("INSERT INTO t VALUES ({id}, {before})"));
                let was = stored(id);
                let version = replica.db_version().unwrap();
                exec(
                    replica,
                    &format!("UPDATE t SET x = {after} WHERE id = {id}"),
                );
                let changed = stored(id) != was;
                let recorded = all_changes(replica, version).len();
                assert_eq!(
                    recorded,
                    usize::from(changed),
                    "{declared:?} column, {before} -> {after}: stored {was:?} then {:?}",
                    stored(id)
                );
            }
        }
        assert_eq!(
            replica.digest().unwrap(),
            replica.digest_from_scratch().unwrap(),
            "{declared:?}"
        );
    }
}

#[test]
fn an_update_that_changes_only_the_case_under_a_nocase_collation_is_recorded() {
    let value = the_one_change_of(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT COLLATE NOCASE); INSERT INTO t VALUES (1, 'a');",
        "UPDATE t SET x = 'A' WHERE id = 1",
    );
    assert_eq!(value, Value::Text("A".into()));
}

#[test]
fn triggers_of_an_older_build_are_made_again_when_the_file_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let replica = Replica::open(&path).unwrap();
        exec(&replica, "CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
        replica.enable_crr("t").unwrap();
        // What a build before trigger version 2 left: an update trigger comparing with `IS NOT`
        // alone, and no version key.
        exec(
            &replica,
            "DROP TRIGGER t__weft_update;
             CREATE TRIGGER t__weft_update AFTER UPDATE OF v ON t WHEN NEW.v IS NOT OLD.v BEGIN SELECT 1; END;
             DELETE FROM weft_meta WHERE key = 'triggers';",
        );
    }
    let replica = Replica::open(&path).unwrap();
    let sql: String = replica
        .connection()
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 't__weft_update'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("typeof(NEW"), "{sql}");
    exec(
        &replica,
        "INSERT INTO t VALUES (1, 1); UPDATE t SET v = 1.0 WHERE id = 1;",
    );
    let values: Vec<Value> = all_changes(&replica, 0)
        .into_iter()
        .filter(|c| &*c.table == "t" && c.column.is_some())
        .map(|c| c.value)
        .collect();
    assert_eq!(values, vec![Value::Real(1.0)]);
    assert_eq!(
        replica.digest().unwrap(),
        replica.digest_from_scratch().unwrap()
    );
}

/// A file as a build before trigger version 2 left it: no `triggers` key.
fn older_triggers_file(dir: &std::path::Path, extra_sql: &str) -> std::path::PathBuf {
    let path = dir.join("older.db");
    let replica = Replica::open(&path).unwrap();
    exec(
        &replica,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v); CREATE TABLE gone(id INTEGER PRIMARY KEY, v);",
    );
    replica.enable_crr("t").unwrap();
    replica.enable_crr("gone").unwrap();
    exec(&replica, extra_sql);
    exec(&replica, "DELETE FROM weft_meta WHERE key = 'triggers'");
    path
}

fn triggers_version(path: &std::path::Path) -> Option<i64> {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT value FROM weft_meta WHERE key = 'triggers'",
            [],
            |r| r.get(0),
        )
        .ok()
}

#[test]
fn an_older_file_whose_replicated_table_was_dropped_still_opens_and_is_brought_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let path = older_triggers_file(dir.path(), "DROP TABLE gone");
    let replica = Replica::open(&path).unwrap();
    assert_eq!(triggers_version(&path), Some(3));
    exec(&replica, "INSERT INTO t VALUES (1, 1)");
    let clocked: i64 = replica
        .connection()
        .query_row("SELECT count(*) FROM t__weft_clock", [], |r| r.get(0))
        .unwrap();
    assert_eq!(clocked, 1, "t's new triggers record");
}

#[test]
fn an_older_file_opens_at_once_while_another_writer_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = older_triggers_file(dir.path(), "");
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let replica = Replica::open(&path).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "opening waited {:?} for the other writer",
        started.elapsed()
    );
    assert_eq!(
        triggers_version(&path),
        None,
        "the triggers are kept for now"
    );
    other.execute_batch("ROLLBACK").unwrap();
    drop(replica);
    Replica::open(&path).unwrap();
    assert_eq!(
        triggers_version(&path),
        Some(3),
        "a later open makes them again"
    );
}

/// The `v` values a replica's changes give table `t`'s rows, by key.
fn t_values(replica: &Replica) -> Vec<(Vec<Value>, Value)> {
    let mut values: Vec<(Vec<Value>, Value)> = all_changes(replica, 0)
        .into_iter()
        .filter(|c| &*c.table == "t" && c.column.as_deref() == Some("v"))
        .map(|c| (c.pk, c.value))
        .collect();
    values.sort_by_key(|(pk, _)| format!("{pk:?}"));
    values
}

#[test]
fn a_table_rebuilt_without_enable_crr_gets_its_triggers_back_when_the_file_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rebuilt.db");
    let replica = Replica::open(&path).unwrap();
    exec(
        &replica,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');",
    );
    replica.enable_crr("t").unwrap();
    exec(&replica, "INSERT INTO t VALUES (2, 'b')");
    // SQLite's documented way to change a table's schema; dropping `t` drops its triggers.
    exec(
        &replica,
        "BEGIN;
         CREATE TABLE t_new(id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t_new SELECT * FROM t;
         DROP TABLE t;
         ALTER TABLE t_new RENAME TO t;
         COMMIT;
         INSERT INTO t VALUES (3, 'c');",
    );
    assert_eq!(
        t_values(&replica).len(),
        2,
        "the insert of 3 went unrecorded"
    );
    drop(replica);

    let replica = Replica::open(&path).unwrap();
    exec(
        &replica,
        "UPDATE t SET v = 'A' WHERE id = 1; INSERT INTO t VALUES (4, 'd');",
    );
    let text = |s: &str| Value::Text(s.into());
    assert_eq!(
        t_values(&replica),
        vec![
            (vec![Value::Integer(1)], text("A")),
            (vec![Value::Integer(2)], text("b")),
            (vec![Value::Integer(3)], text("c")),
            (vec![Value::Integer(4)], text("d")),
        ]
    );
    assert_eq!(
        replica.digest().unwrap(),
        replica.digest_from_scratch().unwrap()
    );
}

fn digest_is_sound(replica: &Replica) {
    assert_eq!(
        replica.digest().unwrap(),
        replica.digest_from_scratch().unwrap()
    );
}

/// A replica and a peer holding the same `t`, digests taken (so the stored sum holds the rows).
fn replica_and_peer(dir: &std::path::Path) -> (Replica, Replica) {
    let a = Replica::open(dir.join("a.db")).unwrap();
    let b = Replica::open(dir.join("b.db")).unwrap();
    for r in [&a, &b] {
        exec(r, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
        r.enable_crr("t").unwrap();
    }
    exec(&a, "INSERT INTO t VALUES (1, 'a'), (2, 'b')");
    sync_one_way(&a, &b);
    digest_is_sound(&a);
    digest_is_sound(&b);
    (a, b)
}

fn converge(a: &Replica, b: &Replica) {
    sync_both(a, b);
    let table = "SELECT id, v FROM t ORDER BY id";
    assert_eq!(rows(a, table), rows(b, table));
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    digest_is_sound(a);
}

#[test]
fn a_dropped_and_recreated_table_takes_its_rows_back_from_a_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = replica_and_peer(dir.path());
    exec(
        &a,
        "DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
    );
    a.enable_crr("t").unwrap();
    digest_is_sound(&a);
    // Before the fix, `a` sent its two rows with NULL values at their old stamps, which `b`
    // ignored (same stamps), and the digests differed for good.
    converge(&a, &b);
    assert_eq!(
        rows(&a, "SELECT id, v FROM t ORDER BY id"),
        vec![
            vec![Value::Integer(1), Value::Text("a".into())],
            vec![Value::Integer(2), Value::Text("b".into())],
        ]
    );
}

/// Forgetting clock rows without values makes the digest again from every stored register,
/// which would count twice what the open transaction already wrote: inside a transaction that
/// has written, `enable_crr` refuses, names the table and the way out, and loses nothing.
#[test]
fn forgetting_rows_without_values_is_refused_in_a_transaction_that_has_written() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = replica_and_peer(dir.path());
    exec(&a, "CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT)");
    a.enable_crr("u").unwrap();
    exec(
        &a,
        "DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); \
         BEGIN; INSERT INTO u VALUES (1, 'written first')",
    );
    match a.enable_crr("t") {
        Err(Error::NotReplicable { table, reason }) => {
            assert_eq!(table, "t");
            assert!(reason.contains("before writing"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    exec(&a, "COMMIT");
    assert_eq!(
        rows(&a, "SELECT v FROM u"),
        vec![vec![Value::Text("written first".into())]]
    );
    a.enable_crr("t").unwrap();
    digest_is_sound(&a);
    converge(&a, &b);
    assert_eq!(
        rows(&a, "SELECT count(*) FROM t"),
        vec![vec![Value::Integer(2)]]
    );
}

#[test]
fn rows_a_rebuild_left_out_come_back_from_a_peer_after_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = replica_and_peer(dir.path());
    exec(
        &a,
        "BEGIN;
         CREATE TABLE t_new(id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t_new SELECT * FROM t WHERE id = 1;
         DROP TABLE t;
         ALTER TABLE t_new RENAME TO t;
         COMMIT;",
    );
    drop(a);
    let a = Replica::open(dir.path().join("a.db")).unwrap();
    digest_is_sound(&a);
    converge(&a, &b);
    assert_eq!(
        rows(&a, "SELECT count(*) FROM t"),
        vec![vec![Value::Integer(2)]]
    );
}
