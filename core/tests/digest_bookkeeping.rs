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
