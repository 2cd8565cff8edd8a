//! `Replica::write`: writes recorded below the triggers (SQLite's preupdate hook), by each
//! row's net effect over the transaction. Each test would fail if a write went unrecorded,
//! was recorded wrongly, or if a failed write left anything behind.

mod common;
use common::*;
use proptest::prelude::*;
use weft_core::{Change, Cursor, Error, Limits, Options, Replica, Value};

const SCHEMA: &str = "
CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);
CREATE TABLE pair(a TEXT NOT NULL, b INTEGER NOT NULL, v BLOB, PRIMARY KEY(a, b)) WITHOUT ROWID;";

/// A replica in `dir` holding `schema`, with `tables` replicated.
fn replica_of(dir: &tempfile::TempDir, name: &str, schema: &str, tables: &[&str]) -> Replica {
    let replica = Replica::open(dir.path().join(name)).unwrap();
    replica.connection().execute_batch(schema).unwrap();
    for table in tables {
        replica.enable_crr(table).unwrap();
    }
    replica
}

fn replica_with_schema(dir: &tempfile::TempDir, name: &str) -> Replica {
    replica_of(dir, name, SCHEMA, &["item", "pair"])
}

/// `(table, key, column, value, causal length)` of a change: what a write recorded, without
/// its clock.
type Recorded = (String, Vec<Value>, Option<String>, Value, u64);

/// Every change after `since`, in a stable order, without clocks.
fn recorded(replica: &Replica, since: u64) -> Vec<Recorded> {
    let mut out: Vec<_> = all_changes(replica, since)
        .into_iter()
        .filter(|c| &*c.table != "weft_kv" && !c.table.starts_with("weft_bucket"))
        .map(|c: Change| {
            (
                c.table.to_string(),
                c.pk.clone(),
                c.column.as_deref().map(str::to_owned),
                c.value.clone(),
                c.cl,
            )
        })
        .collect();
    out.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    out
}

fn assert_consistent(replica: &Replica) {
    assert_eq!(
        replica.digest().unwrap(),
        replica.digest_from_scratch().unwrap(),
        "the maintained digest matches the stored registers"
    );
    let ok: String = replica
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn a_write_records_what_the_same_sql_records_through_triggers() {
    let dir = tempfile::tempdir().unwrap();
    let by_write = replica_with_schema(&dir, "write.db");
    let by_sql = replica_with_schema(&dir, "sql.db");
    let steps: [&[&str]; 4] = [
        &[
            "INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3), (10, 'ten', 10)",
            "INSERT INTO pair VALUES ('x', 1, x'01'), ('y', 2, NULL)",
        ],
        &[
            "UPDATE item SET qty = qty + 1 WHERE id >= 2",
            "UPDATE pair SET v = x'02' WHERE a = 'x'",
            "DELETE FROM item WHERE id = 1",
        ],
        &[
            "INSERT INTO item VALUES (1, 'one again', 1)",
            "UPDATE item SET id = 20 WHERE id = 10",
            "DELETE FROM pair WHERE a = 'y'",
        ],
        &[
            "INSERT OR REPLACE INTO item VALUES (30, 'thirty', 30)",
            "INSERT INTO item VALUES (3, 'x', 0) ON CONFLICT(id) DO UPDATE SET qty = qty + 1",
            "UPDATE item SET name = name WHERE id = 3",
            "UPDATE pair SET a = 'z' WHERE a = 'x'",
        ],
    ];
    for step in steps {
        let before = (by_write.db_version().unwrap(), by_sql.db_version().unwrap());
        by_write
            .write(|conn| {
                for sql in step {
                    conn.execute_batch(sql)?;
                }
                Ok(())
            })
            .unwrap();
        let conn = by_sql.connection();
        conn.execute_batch("BEGIN").unwrap();
        for sql in step {
            conn.execute_batch(sql).unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(
            recorded(&by_write, before.0),
            recorded(&by_sql, before.1),
            "step {step:?}"
        );
        assert_consistent(&by_write);
    }
    // A write that changes no value records nothing and takes no db_version.
    let version = by_write.db_version().unwrap();
    by_write
        .write(|conn| Ok(conn.execute_batch("UPDATE item SET qty = qty WHERE id = 3")?))
        .unwrap();
    assert_eq!(by_write.db_version().unwrap(), version);
    assert!(recorded(&by_write, version).is_empty());
}

#[test]
fn a_bulk_insert_of_consecutive_keys_is_recorded_row_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "bulk.db");
    replica
        .write(|conn| {
            let mut insert = conn.prepare_cached("INSERT INTO item VALUES (?1, ?2, ?3)")?;
            for i in (0..500).chain(1000..1010).chain([5000, -7]) {
                insert.execute((i, format!("item {i}"), i * 2))?;
            }
            Ok(())
        })
        .unwrap();
    let changes = recorded(&replica, 0);
    assert_eq!(changes.len(), 512 * 3, "existence and two columns per row");
    let mirror = replica_with_schema(&dir, "mirror.db");
    sync_one_way(&replica, &mirror);
    assert_eq!(
        rows(&mirror, "SELECT * FROM item ORDER BY id"),
        rows(&replica, "SELECT * FROM item ORDER BY id")
    );
    assert_eq!(mirror.digest().unwrap(), replica.digest().unwrap());
    assert_consistent(&replica);
}

#[test]
fn each_row_is_recorded_by_what_it_held_before_and_holds_at_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "net.db");
    exec(
        &replica,
        "INSERT INTO item VALUES (1, 'kept', 5), (3, 'same', 3); INSERT INTO pair VALUES ('p', 1, x'01')",
    );
    let version = replica.db_version().unwrap();
    replica
        .write(|conn| {
            conn.execute_batch(
                "INSERT INTO item VALUES (2, 'brief', 1); DELETE FROM item WHERE id = 2;
                 DELETE FROM item WHERE id = 1; INSERT INTO item VALUES (1, 'kept', 6);
                 INSERT OR REPLACE INTO item VALUES (3, 'same', 9);
                 UPDATE pair SET v = x'02'; UPDATE pair SET v = x'01';",
            )?;
            Ok(())
        })
        .unwrap();
    let qty = |id, value| {
        (
            "item".to_owned(),
            vec![Value::Integer(id)],
            Some("qty".to_owned()),
            Value::Integer(value),
            1,
        )
    };
    assert_eq!(
        recorded(&replica, version),
        vec![qty(1, 6), qty(3, 9)],
        "rows 1 and 3 (deleted or replaced, then there again) changed only qty, in the same \
         incarnation; row 2 never existed outside the write; the pair row ended as it began"
    );
    assert_consistent(&replica);
}

#[test]
fn a_delete_undone_by_a_savepoint_or_a_failed_statement_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = replica_with_schema(&dir, "a.db");
    let b = replica_with_schema(&dir, "b.db");
    exec(
        &a,
        "INSERT INTO item VALUES (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)",
    );
    sync_both(&a, &b);
    let version = a.db_version().unwrap();
    a.write(|conn| {
        conn.execute_batch(
            "SAVEPOINT s; DELETE FROM item WHERE id = 1; ROLLBACK TO s; RELEASE s;",
        )?;
        // Moves rows 1 and 2, then fails on row 3 (integer overflow): the statement is undone.
        let failed = conn.execute_batch(
            "UPDATE item SET id = id + 10, name = CASE WHEN id = 3 THEN abs(-9223372036854775808) ELSE name END",
        );
        assert!(failed.is_err());
        Ok(())
    })
    .unwrap();
    assert!(
        recorded(&a, version).is_empty(),
        "{:?}",
        recorded(&a, version)
    );
    // So a later edit made elsewhere is not overwritten by a row that never changed here.
    exec(&b, "UPDATE item SET name = 'edited on b' WHERE id = 1");
    sync_both(&a, &b);
    assert_eq!(
        rows(&a, "SELECT name FROM item WHERE id = 1"),
        vec![vec![Value::Text("edited on b".into())]]
    );
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    assert_consistent(&a);
}

#[test]
fn an_incremental_blob_write_is_an_update_of_its_column() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_of(
        &dir,
        "blob.db",
        "CREATE TABLE doc(id INTEGER PRIMARY KEY, title TEXT, body BLOB); INSERT INTO doc VALUES (1, 't', zeroblob(4));",
        &["doc"],
    );
    let version = replica.db_version().unwrap();
    replica
        .write(|conn| {
            let mut blob = conn.blob_open(rusqlite::MAIN_DB, "doc", "body", 1, false)?;
            std::io::Write::write_all(&mut blob, b"abcd").map_err(weft_core::Error::Io)?;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        recorded(&replica, version),
        vec![(
            "doc".to_owned(),
            vec![Value::Integer(1)],
            Some("body".to_owned()),
            Value::Blob(b"abcd".to_vec()),
            1
        )]
    );
    assert_consistent(&replica);
}

#[test]
fn a_work_that_panics_leaves_nothing_and_the_replica_writable() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "panic.db");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        replica.write(|conn| -> weft_core::Result<()> {
            conn.execute_batch("INSERT INTO item VALUES (1, 'never', 1)")?;
            panic!("the app's bug");
        })
    }));
    assert!(panicked.is_err());
    assert!(rows(&replica, "SELECT * FROM item").is_empty());
    exec(&replica, "INSERT INTO item VALUES (2, 'plain', 2)");
    replica
        .write(|conn| Ok(conn.execute_batch("INSERT INTO item VALUES (3, 'written', 3)")?))
        .unwrap();
    assert_eq!(recorded(&replica, 0).len(), 6);
    assert_consistent(&replica);
}

#[test]
fn an_error_from_the_work_rolls_back_everything_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "error.db");
    let version = replica.db_version().unwrap();
    let result: weft_core::Result<()> = replica.write(|conn| {
        conn.execute_batch("INSERT INTO item VALUES (1, 'gone', 1)")?;
        conn.execute_batch("INSERT INTO no_such_table VALUES (1)")?;
        Ok(())
    });
    assert!(matches!(result, Err(Error::Sqlite(_))), "{result:?}");
    assert!(rows(&replica, "SELECT * FROM item").is_empty());
    assert_eq!(replica.db_version().unwrap(), version);
    assert!(recorded(&replica, 0).is_empty());
    // The replica writes normally afterwards, through write and through plain SQL.
    replica
        .write(|conn| Ok(conn.execute_batch("INSERT INTO item VALUES (1, 'kept', 1)")?))
        .unwrap();
    exec(&replica, "INSERT INTO item VALUES (2, 'plain', 2)");
    assert_eq!(recorded(&replica, 0).len(), 6);
    assert_consistent(&replica);
}

#[test]
fn sql_that_ends_the_transaction_inside_the_work_fails_the_write_whole() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "stray.db");
    for stray in [
        "COMMIT",
        "ROLLBACK",
        "END",
        "ROLLBACK; BEGIN",
        "COMMIT; BEGIN",
    ] {
        let result: weft_core::Result<()> = replica.write(|conn| {
            conn.execute_batch("INSERT INTO item VALUES (1, 'never', 1)")?;
            // The work ignores the error its own COMMIT gets and goes on writing: those writes
            // run outside any transaction, and their commits are refused too.
            let _ = conn.execute_batch(stray);
            let _ = conn.execute_batch("INSERT INTO item VALUES (2, 'never either', 2)");
            Ok(())
        });
        assert!(
            matches!(&result, Err(Error::WriteRolledBack(m)) if m.contains("ended the transaction")),
            "{stray}: {result:?}"
        );
        assert!(
            rows(&replica, "SELECT * FROM item").is_empty(),
            "{stray}: nothing unrecorded was committed"
        );
    }
    assert!(recorded(&replica, 0).is_empty());
    replica
        .write(|conn| Ok(conn.execute_batch("INSERT INTO item VALUES (3, 'fine', 3)")?))
        .unwrap();
    assert_eq!(recorded(&replica, 0).len(), 3);
    assert_consistent(&replica);
}

#[test]
fn failed_statements_and_rolled_back_savepoints_leave_nothing_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "partial.db");
    exec(&replica, "INSERT INTO item VALUES (5, 'five', 5)");
    let version = replica.db_version().unwrap();
    replica
        .write(|conn| {
            // Rows 1 to 4 are written, then row 5 collides: the statement is undone whole.
            let failed = conn.execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9) \
                 INSERT INTO item SELECT i, 'x', i FROM n",
            );
            assert!(
                matches!(&failed, Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation),
                "{failed:?}"
            );
            conn.execute_batch(
                "SAVEPOINT s; UPDATE item SET qty = 50 WHERE id = 5; INSERT INTO item VALUES (6, 'six', 6);
                 ROLLBACK TO s; RELEASE s;
                 INSERT INTO item VALUES (7, 'seven', 7);",
            )?;
            Ok(())
        })
        .unwrap();
    let keys: Vec<Vec<Value>> = recorded(&replica, version)
        .into_iter()
        .map(|c| c.1)
        .collect();
    assert!(
        keys.iter().all(|k| k == &vec![Value::Integer(7)]),
        "only row 7 was written: {keys:?}"
    );
    assert_eq!(keys.len(), 3);
    assert_eq!(
        rows(&replica, "SELECT id, qty FROM item ORDER BY id"),
        vec![
            vec![Value::Integer(5), Value::Integer(5)],
            vec![Value::Integer(7), Value::Integer(7)]
        ]
    );
    assert_consistent(&replica);
}

#[test]
fn a_write_inside_a_write_and_a_schema_change_inside_a_write_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "refused.db");
    let nested = replica.write(|_| replica.write(|_| Ok(())));
    assert!(
        matches!(&nested, Err(Error::WriteRolledBack(m)) if m.contains("inside another write")),
        "{nested:?}"
    );
    let altered = replica.write(|conn| {
        conn.execute_batch("INSERT INTO pair VALUES ('a', 1, NULL); DROP TABLE pair;")?;
        Ok(())
    });
    assert!(
        matches!(&altered, Err(Error::WriteRolledBack(m)) if m.contains("schema changed")),
        "{altered:?}"
    );
    assert!(
        rows(&replica, "SELECT * FROM pair").is_empty(),
        "the DROP was rolled back with the rest"
    );
    // A column added inside a write is not replicated until enable_crr, as with triggers.
    replica
        .write(|conn| {
            conn.execute_batch(
                "INSERT INTO item VALUES (1, 'a', 1); ALTER TABLE item ADD COLUMN extra TEXT; \
                 UPDATE item SET extra = 'e', qty = 2 WHERE id = 1;",
            )?;
            Ok(())
        })
        .unwrap();
    assert_eq!(recorded(&replica, 0).len(), 3);
    assert_consistent(&replica);
}

/// Inserts rows 1 to `count` into `item` in one statement.
fn series_insert(count: usize) -> String {
    format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
         INSERT INTO item SELECT i, 'x', 1 FROM n"
    )
}

#[test]
fn a_write_larger_than_its_limit_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        limits: Limits {
            write_rows_max: 100,
            ..Limits::default()
        },
        ..Options::default()
    };
    let replica = Replica::open_with(dir.path().join("limit.db"), options).unwrap();
    replica.connection().execute_batch(SCHEMA).unwrap();
    replica.enable_crr("item").unwrap();
    let result = replica.write(|conn| {
        conn.execute_batch(&series_insert(101))?;
        Ok(())
    });
    assert!(
        matches!(
            result,
            Err(Error::LimitExceeded {
                limit: "write_rows_max",
                max: 100,
                actual: 101
            })
        ),
        "{result:?}"
    );
    assert!(rows(&replica, "SELECT * FROM item").is_empty());
    replica
        .write(|conn| Ok(conn.execute_batch(&series_insert(100))?))
        .unwrap();
    assert_eq!(recorded(&replica, 0).len(), 300);
}

#[test]
fn a_write_holding_more_earlier_values_than_its_limit_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        limits: Limits {
            write_held_bytes_max: 64 << 10,
            ..Limits::default()
        },
        ..Options::default()
    };
    let replica = Replica::open_with(dir.path().join("held.db"), options).unwrap();
    replica.connection().execute_batch(SCHEMA).unwrap();
    replica.enable_crr("item").unwrap();
    exec(&replica, &series_insert(1000));
    let version = replica.db_version().unwrap();
    // Each updated row holds its earlier values (about 160 bytes here) until the commit.
    let result = replica.write(|conn| Ok(conn.execute_batch("UPDATE item SET qty = 2")?));
    assert!(
        matches!(
            result,
            Err(Error::LimitExceeded {
                limit: "write_held_bytes_max",
                ..
            })
        ),
        "{result:?}"
    );
    assert_eq!(
        rows(&replica, "SELECT DISTINCT qty FROM item"),
        vec![vec![Value::Integer(1)]]
    );
    assert_eq!(replica.db_version().unwrap(), version);
}

#[test]
fn with_an_application_trigger_the_triggers_record_and_the_trigger_still_fires() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "app-trigger.db");
    exec(
        &replica,
        "CREATE TABLE audit(n INTEGER); CREATE TRIGGER item_audit AFTER INSERT ON item BEGIN INSERT INTO audit VALUES (NEW.id); END;",
    );
    replica
        .write(|conn| Ok(conn.execute_batch("INSERT INTO item VALUES (1, 'a', 1), (2, 'b', 2)")?))
        .unwrap();
    assert_eq!(
        rows(&replica, "SELECT n FROM audit ORDER BY n"),
        vec![vec![Value::Integer(1)], vec![Value::Integer(2)]]
    );
    assert_eq!(recorded(&replica, 0).len(), 6);
    // Commits are refused inside the work on this path too.
    let stray = replica.write(|conn| {
        conn.execute_batch("INSERT INTO item VALUES (9, 'never', 9)")?;
        let _ = conn.execute_batch("COMMIT");
        Ok(())
    });
    assert!(
        matches!(&stray, Err(Error::WriteRolledBack(m)) if m.contains("ended the transaction")),
        "{stray:?}"
    );
    assert!(rows(&replica, "SELECT * FROM item WHERE id = 9").is_empty());
    // Once the application's trigger is gone, writes are recorded below the triggers again.
    exec(&replica, "DROP TRIGGER item_audit");
    replica
        .write(|conn| Ok(conn.execute_batch("INSERT INTO item VALUES (3, 'c', 3)")?))
        .unwrap();
    assert_eq!(recorded(&replica, 0).len(), 9);
    assert_eq!(
        rows(&replica, "SELECT count(*) FROM audit"),
        vec![vec![Value::Integer(2)]]
    );
    assert_consistent(&replica);
}

#[test]
fn plain_sql_on_the_replica_connection_is_still_recorded_by_triggers_after_writes() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "mixed.db");
    replica
        .write(|conn| Ok(conn.execute_batch("INSERT INTO item VALUES (1, 'w', 1)")?))
        .unwrap();
    exec(
        &replica,
        "UPDATE item SET qty = 2 WHERE id = 1; INSERT INTO item VALUES (2, 's', 2)",
    );
    let other = replica_with_schema(&dir, "other.db");
    sync_one_way(&replica, &other);
    assert_eq!(
        rows(&other, "SELECT * FROM item ORDER BY id"),
        rows(&replica, "SELECT * FROM item ORDER BY id")
    );
    assert_eq!(other.digest().unwrap(), replica.digest().unwrap());
    assert_consistent(&replica);
}

/// One statement of a random transaction; its failure (a key collision) is part of the test.
#[derive(Clone, Debug)]
enum Op {
    Insert(i64, i64),
    InsertMany(Vec<i64>),
    Replace(i64, i64),
    Upsert(i64),
    Update(i64, i64),
    UpdateEvery(i64),
    Delete(i64),
    MoveKey(i64, i64),
    PairPut(u8, i64, Option<Vec<u8>>),
    PairDelete(u8, i64),
    PairSet(u8, i64, Vec<u8>),
    Savepoint(Vec<Op>, bool),
}

fn op() -> impl Strategy<Value = Op> {
    // Mostly a few keys that collide; now and then one far enough away (beyond the 16 keys
    // one range read of `write`'s commit steps over) to start a range of its own.
    let key = prop_oneof![6 => 0..8i64, 1 => 40..42i64, 1 => 90..91i64];
    let leaf = prop_oneof![
        (key.clone(), 0..5i64).prop_map(|(k, v)| Op::Insert(k, v)),
        proptest::collection::vec(key.clone(), 1..5).prop_map(Op::InsertMany),
        (key.clone(), 0..5i64).prop_map(|(k, v)| Op::Replace(k, v)),
        key.clone().prop_map(Op::Upsert),
        (key.clone(), 0..5i64).prop_map(|(k, v)| Op::Update(k, v)),
        (2..4i64).prop_map(Op::UpdateEvery),
        key.clone().prop_map(Op::Delete),
        (key.clone(), key.clone()).prop_map(|(a, b)| Op::MoveKey(a, b)),
        (
            0..3u8,
            0..3i64,
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..3))
        )
            .prop_map(|(a, b, v)| Op::PairPut(a, b, v)),
        (0..3u8, 0..3i64).prop_map(|(a, b)| Op::PairDelete(a, b)),
        (
            0..3u8,
            0..3i64,
            proptest::collection::vec(any::<u8>(), 0..3)
        )
            .prop_map(|(a, b, v)| Op::PairSet(a, b, v)),
    ];
    leaf.prop_recursive(1, 8, 4, |inner| {
        (proptest::collection::vec(inner, 1..4), any::<bool>())
            .prop_map(|(ops, rollback)| Op::Savepoint(ops, rollback))
    })
}

fn run(conn: &rusqlite::Connection, op: &Op) {
    let pair_key = |a: u8| format!("k{a}");
    // Errors are expected (a key that collides); the write goes on, as an app's would.
    let _ = match op {
        Op::Insert(k, v) => conn.execute("INSERT INTO item VALUES (?1, 'i', ?2)", [k, v]),
        Op::InsertMany(keys) => {
            let values: Vec<String> = keys.iter().map(|k| format!("({k}, 'm', {k})")).collect();
            conn.execute(
                &format!("INSERT INTO item VALUES {}", values.join(", ")),
                [],
            )
        }
        Op::Replace(k, v) => {
            conn.execute("INSERT OR REPLACE INTO item VALUES (?1, 'r', ?2)", [k, v])
        }
        Op::Upsert(k) => conn.execute(
            "INSERT INTO item VALUES (?1, 'u', 0) ON CONFLICT(id) DO UPDATE SET qty = qty + 1",
            [k],
        ),
        Op::Update(k, v) => conn.execute("UPDATE item SET qty = ?2 WHERE id = ?1", [k, v]),
        Op::UpdateEvery(m) => {
            conn.execute("UPDATE item SET name = name || '+' WHERE id % ?1 = 0", [m])
        }
        Op::Delete(k) => conn.execute("DELETE FROM item WHERE id = ?1", [k]),
        Op::MoveKey(a, b) => conn.execute("UPDATE item SET id = ?2 WHERE id = ?1", [a, b]),
        Op::PairPut(a, b, v) => conn.execute(
            "INSERT OR REPLACE INTO pair VALUES (?1, ?2, ?3)",
            rusqlite::params![pair_key(*a), b, v],
        ),
        Op::PairDelete(a, b) => conn.execute(
            "DELETE FROM pair WHERE a = ?1 AND b = ?2",
            rusqlite::params![pair_key(*a), b],
        ),
        Op::PairSet(a, b, v) => conn.execute(
            "UPDATE pair SET v = ?3 WHERE a = ?1 AND b = ?2",
            rusqlite::params![pair_key(*a), b, v],
        ),
        Op::Savepoint(ops, rollback) => {
            conn.execute_batch("SAVEPOINT inner").unwrap();
            for op in ops {
                run(conn, op);
            }
            let end = if *rollback {
                "ROLLBACK TO inner; RELEASE inner"
            } else {
                "RELEASE inner"
            };
            conn.execute_batch(end).unwrap();
            Ok(0)
        }
    };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48)
    ))]

    /// Random transactions through `write`: after each, a replica that received only the
    /// changes has the same tables and digest, and the digest matches the stored registers.
    #[test]
    fn every_write_is_recorded_whatever_the_statements_do(
        transactions in proptest::collection::vec(proptest::collection::vec(op(), 1..10), 1..6)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let source = replica_with_schema(&dir, "source.db");
        let mirror = replica_with_schema(&dir, "mirror.db");
        let mut cursor = Cursor::since(0);
        for ops in &transactions {
            source.write(|conn| {
                for op in ops {
                    run(conn, op);
                }
                Ok(())
            }).unwrap();
            loop {
                let batch = source.changes(&cursor, 64).unwrap();
                mirror.apply_changes(&batch.changes).unwrap();
                cursor = batch.next;
                if batch.done {
                    break;
                }
            }
            for table in ["SELECT * FROM item ORDER BY id", "SELECT * FROM pair ORDER BY a, b"] {
                prop_assert_eq!(rows(&mirror, table), rows(&source, table), "{:?}", ops);
            }
            prop_assert_eq!(source.digest().unwrap(), source.digest_from_scratch().unwrap());
            prop_assert_eq!(mirror.digest().unwrap(), source.digest().unwrap());
        }
    }
}

const DESC_SCHEMA: &str = "CREATE TABLE d(id INTEGER PRIMARY KEY DESC NOT NULL, v TEXT); \
                           CREATE TABLE e(id INT PRIMARY KEY NOT NULL, v TEXT);";

#[test]
fn an_integer_key_that_is_not_the_rowid_is_recorded_by_its_value() {
    let dir = tempfile::tempdir().unwrap();
    // `INTEGER PRIMARY KEY DESC` is not an alias of the rowid: rowids 1, 2, 3 hold keys 30, 20, 10.
    let replica = replica_of(&dir, "desc.db", DESC_SCHEMA, &["d", "e"]);
    replica
        .write(|conn| {
            conn.execute_batch(
                "INSERT INTO d VALUES (30, 'a'), (20, 'b'), (10, 'c'); INSERT INTO e VALUES (30, 'a'), (20, 'b');
                 UPDATE d SET v = 'B' WHERE id = 20; DELETE FROM e WHERE id = 30;",
            )?;
            Ok(())
        })
        .unwrap();
    let mirror = replica_of(&dir, "mirror.db", DESC_SCHEMA, &["d", "e"]);
    sync_one_way(&replica, &mirror);
    for table in ["SELECT * FROM d ORDER BY id", "SELECT * FROM e ORDER BY id"] {
        assert_eq!(rows(&mirror, table), rows(&replica, table), "{table}");
    }
    assert_eq!(
        rows(&mirror, "SELECT count(*) FROM d"),
        vec![vec![Value::Integer(3)]]
    );
    assert_eq!(mirror.digest().unwrap(), replica.digest().unwrap());
    assert_consistent(&replica);
}

#[test]
fn a_value_that_changes_only_its_storage_class_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    // `v` has no type, so SQLite keeps 1 and 1.0, and 'a' and x'61', apart (SQL's `IS` does not).
    let replica = replica_of(
        &dir,
        "class.db",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v, w); INSERT INTO t VALUES (1, 1, 'a'), (2, 0.0, NULL);",
        &["t"],
    );
    let version = replica.db_version().unwrap();
    replica
        .write(|conn| {
            Ok(conn.execute_batch(
                "UPDATE t SET v = 1.0, w = x'61' WHERE id = 1; UPDATE t SET v = -0.0 WHERE id = 2;",
            )?)
        })
        .unwrap();
    let changed: Vec<(Option<String>, Value)> = recorded(&replica, version)
        .into_iter()
        .map(|c| (c.2, c.3))
        .collect();
    assert_eq!(
        changed,
        vec![
            (Some("v".to_owned()), Value::Real(1.0)),
            (Some("w".to_owned()), Value::Blob(b"a".to_vec())),
        ],
        "row 1 changed class in both columns; -0.0 is the same value as 0.0"
    );
    assert_consistent(&replica);
}

#[test]
fn a_table_made_replicated_between_writes_is_recorded_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let replica = replica_with_schema(&dir, "migrate.db");
    replica
        .write(|conn| Ok(conn.execute_batch("INSERT INTO item VALUES (1, 'a', 1)")?))
        .unwrap();
    // A migration on the replica's own connection, between two writes.
    exec(
        &replica,
        "CREATE TABLE tag(id INTEGER PRIMARY KEY, label TEXT)",
    );
    replica.enable_crr("tag").unwrap();
    replica
        .write(|conn| Ok(conn.execute_batch("INSERT INTO tag VALUES (7, 'new')")?))
        .unwrap();
    let tables: Vec<String> = recorded(&replica, 0).into_iter().map(|c| c.0).collect();
    assert!(tables.contains(&"tag".to_owned()), "{tables:?}");
    assert_consistent(&replica);
}

#[test]
fn rows_deleted_by_a_foreign_key_cascade_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let schema = "CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
                  CREATE TABLE child(id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id) ON DELETE CASCADE, v TEXT);";
    let source = replica_of(&dir, "fk.db", schema, &["parent", "child"]);
    let mirror = replica_of(&dir, "fk-mirror.db", schema, &["parent", "child"]);
    exec(
        &source,
        "INSERT INTO parent VALUES (1, 'p'), (2, 'q'); INSERT INTO child VALUES (10, 1, 'a'), (11, 1, 'b'), (12, 2, 'c');",
    );
    sync_one_way(&source, &mirror);
    source
        .write(|conn| Ok(conn.execute_batch("DELETE FROM parent WHERE id = 1")?))
        .unwrap();
    sync_one_way(&source, &mirror);
    assert_eq!(
        rows(&mirror, "SELECT id FROM child ORDER BY id"),
        vec![vec![Value::Integer(12)]],
        "the cascade's deletes reached the mirror"
    );
    assert_eq!(mirror.digest().unwrap(), source.digest().unwrap());
    assert_consistent(&source);
}
