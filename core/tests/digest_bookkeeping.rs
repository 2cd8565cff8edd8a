//! The maintained digest equals one recomputed from scratch after every kind of write.

mod common;
use common::*;

fn check(r: &TestReplica, step: &str) {
    assert_eq!(
        r.replica.digest().unwrap(),
        r.replica.digest_from_scratch().unwrap(),
        "after {step}"
    );
}

fn fresh() -> TestReplica {
    let r = replica_with_clock(1_000);
    exec(&r.replica, "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b INTEGER); CREATE TABLE u(id INTEGER PRIMARY KEY, label TEXT NOT NULL DEFAULT '')");
    r.replica.enable_crr("t").unwrap();
    r.replica.enable_crr("u").unwrap();
    r
}

#[test]
fn every_local_write_kind_keeps_the_digest_exact() {
    let steps = [
        "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2)",
        "UPDATE t SET a = 'z' WHERE id = 1",
        "UPDATE t SET b = 5",
        "DELETE FROM t WHERE id = 2",
        "INSERT INTO t VALUES (2, 'again', 3)",
        "UPDATE t SET id = 7 WHERE id = 1",
        "INSERT OR REPLACE INTO u(id, label) VALUES (1, 'x')",
        "INSERT OR REPLACE INTO u(id, label) VALUES (1, 'y')",
        "UPDATE u SET id = 3 WHERE id = 1",
        "DELETE FROM u",
    ];
    for with_digest_between in [true, false] {
        let r = fresh();
        for step in steps {
            exec(&r.replica, step);
            if with_digest_between {
                check(&r, step);
            }
        }
        check(&r, "all steps");
    }
}

#[test]
fn merges_keep_the_digest_exact() {
    let a = fresh();
    let b = fresh();
    exec(
        &a.replica,
        "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2); INSERT INTO u(id) VALUES (1)",
    );
    check(&a, "a's inserts");
    sync_one_way(&a.replica, &b.replica);
    check(&b, "first merge");
    exec(&b.replica, "UPDATE t SET a = 'local' WHERE id = 1");
    check(&b, "local update of merged row");
    a.clock.set(9_000);
    exec(&a.replica, "DELETE FROM t WHERE id = 1; UPDATE t SET b = 9 WHERE id = 2; UPDATE u SET id = 4 WHERE id = 1");
    sync_one_way(&a.replica, &b.replica);
    check(&b, "second merge");
    sync_one_way(&b.replica, &a.replica);
    check(&a, "merge back");
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
}

#[test]
fn merges_that_move_the_digest_checkpoint_keep_later_local_writes_exact() {
    // A merge into a replica whose digest is current moves the checkpoint itself; local
    // writes after it, on merged rows and new ones, must still fold in exactly.
    let source = fresh();
    exec(
        &source.replica,
        "INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)",
    );
    let changes: Vec<_> = source
        .replica
        .changes_since(0)
        .flat_map(|b| b.unwrap().changes)
        .collect();
    let target = fresh();
    target.replica.digest().unwrap();
    target.replica.apply_changes(&changes[..4]).unwrap();
    target.replica.apply_changes(&changes[4..]).unwrap();
    check(&target, "two merges in a row");
    exec(&target.replica, "UPDATE t SET a = 'local' WHERE id = 2");
    check(&target, "a local write on a merged row after the merges");
    // Local writes not yet folded in, then a merge: it must not move the checkpoint.
    exec(&target.replica, "UPDATE t SET a = 'again' WHERE id = 1");
    exec(&target.replica, "INSERT INTO t VALUES (9, 'new', 9)");
    exec(&source.replica, "UPDATE t SET b = 42 WHERE id = 3");
    let more: Vec<_> = source
        .replica
        .changes_since(0)
        .flat_map(|b| b.unwrap().changes)
        .collect();
    target.replica.apply_changes(&more).unwrap();
    exec(&target.replica, "DELETE FROM t WHERE id = 1");
    check(
        &target,
        "a merge after unfolded local writes, then a delete",
    );
}

/// Rows whose columns sit at two stamps (updated in some columns) store the earlier stamp in
/// their cells; the digest's share of a row as of the checkpoint is read from them when the
/// row is written again after a `digest()`, through every path that writes it.
#[test]
fn rows_updated_in_some_columns_are_written_again_after_a_digest() {
    let r = replica_with_clock(1_000);
    exec(
        &r.replica,
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT)",
    );
    r.replica.enable_crr("t").unwrap();
    exec(
        &r.replica,
        "INSERT INTO t VALUES (1, 'a', 'b'), (2, 'a', 'b'), (3, 'a', 'b'), (4, 'a', 'b')",
    );
    r.clock.set(2_000);
    exec(&r.replica, "UPDATE t SET a = 'by sql' WHERE id IN (1, 2)");
    r.replica
        .write(|c| {
            c.execute("UPDATE t SET a = 'by write' WHERE id IN (3, 4)", [])?;
            Ok(())
        })
        .unwrap();
    check(&r, "the first updates");
    r.clock.set(3_000);
    exec(&r.replica, "UPDATE t SET b = 'again' WHERE id = 1");
    check(&r, "an update through the triggers");
    exec(&r.replica, "DELETE FROM t WHERE id = 2");
    check(&r, "a delete through the triggers");
    r.clock.set(4_000);
    r.replica
        .write(|c| {
            c.execute("UPDATE t SET b = 'again' WHERE id = 3", [])?;
            c.execute("DELETE FROM t WHERE id = 4", [])?;
            Ok(())
        })
        .unwrap();
    check(&r, "an update and a delete through write");
    assert_eq!(
        rows(&r.replica, "SELECT id, a, b FROM t ORDER BY id"),
        vec![
            vec![
                weft_core::Value::Integer(1),
                weft_core::Value::Text("by sql".into()),
                weft_core::Value::Text("again".into())
            ],
            vec![
                weft_core::Value::Integer(3),
                weft_core::Value::Text("by write".into()),
                weft_core::Value::Text("again".into())
            ],
        ]
    );
}

/// A merge and a local update of the same row in one open transaction: the merged registers
/// carry a clock above the transaction's own, at the same db_version. The local update's
/// clock row must still read back every register as it was written.
#[test]
fn a_row_merged_and_updated_in_one_transaction_keeps_every_stamp() {
    for (a_ms, b_ms) in [(1_000, 50_000), (40_000, 50_000)] {
        let a = replica_with_clock(a_ms);
        let b = replica_with_clock(b_ms);
        for r in [&a.replica, &b.replica] {
            exec(r, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT, y TEXT)");
            r.enable_crr("t").unwrap();
        }
        exec(&a.replica, "INSERT INTO t VALUES (2, 'a2', 'a2')");
        exec(&b.replica, "INSERT INTO t VALUES (1, 'bx', 'by')");
        let from_b = all_changes(&b.replica, 0);
        exec(&a.replica, "BEGIN; UPDATE t SET x = 'q' WHERE id = 2");
        a.replica.apply_changes(&from_b).unwrap();
        exec(&a.replica, "UPDATE t SET x = 'local' WHERE id = 1; COMMIT");
        check(&a, "the merge and the update");
        // Row 1's existence and y are still b's writes, at b's clock and site.
        let b_site = b.replica.site_id();
        let of_row_1: Vec<_> = all_changes(&a.replica, 0)
            .into_iter()
            .filter(|c| c.pk == vec![weft_core::Value::Integer(1)])
            .map(|c| (c.column.map(|c| c.to_string()), c.site == b_site))
            .collect();
        assert_eq!(of_row_1.len(), 3, "{of_row_1:?}");
        for (column, from_b) in &of_row_1 {
            assert_eq!(*from_b, column.as_deref() != Some("x"), "{of_row_1:?}");
        }
        sync_both(&a.replica, &b.replica);
        assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
        let all = "SELECT id, x, y FROM t ORDER BY id";
        assert_eq!(rows(&a.replica, all), rows(&b.replica, all));
    }
}
