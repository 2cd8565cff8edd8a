//! The replica pool the server's conversations borrow from: a replica left inside a
//! transaction never goes back to work, and spares unused for a while can be closed.

use std::time::Duration;
use weft_client::driver::ReplicaPool;
use weft_core::Replica;

fn replica_with_table(path: &std::path::Path) -> Replica {
    let replica = Replica::open(path).unwrap();
    replica
        .connection()
        .execute_batch("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    replica.enable_crr("t").unwrap();
    replica
}

#[test]
fn a_replica_handed_back_inside_a_transaction_is_closed_and_its_writes_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    drop(replica_with_table(&path));
    let pool = ReplicaPool::new(&path, None, 4);

    let stuck = pool.take().unwrap();
    stuck
        .connection()
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1, 'never committed');")
        .unwrap();
    pool.give(stuck);

    // The next step gets a connection outside any transaction, and the write lock is free.
    let next = pool.take().unwrap();
    assert!(next.connection().is_autocommit());
    next.connection()
        .execute("INSERT INTO t VALUES (2, 'committed')", [])
        .unwrap();
    let rows: Vec<i64> = next
        .connection()
        .prepare("SELECT id FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, vec![2], "the abandoned transaction was rolled back");
    pool.give(next);
}

#[test]
fn spares_unused_for_long_enough_are_taken_out_to_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    drop(replica_with_table(&path));
    let pool = ReplicaPool::new(&path, None, 4);
    let (a, b) = (pool.take().unwrap(), pool.take().unwrap());
    pool.give(a);
    pool.give(b);
    assert!(pool.take_idle(Duration::from_secs(3600)).is_empty());
    assert_eq!(pool.take_idle(Duration::ZERO).len(), 2);
    assert!(pool.take_idle(Duration::ZERO).is_empty(), "none left");
    // The pool opens a new connection when it has no spare.
    assert!(pool.take().unwrap().connection().is_autocommit());
}

#[test]
fn the_pool_keeps_no_more_spares_than_it_may_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    drop(replica_with_table(&path));
    let pool = ReplicaPool::new(&path, None, 2);
    let taken: Vec<Replica> = (0..3).map(|_| pool.take().unwrap()).collect();
    for replica in taken {
        pool.give(replica);
    }
    assert_eq!(pool.take_idle(Duration::ZERO).len(), 2);
}
