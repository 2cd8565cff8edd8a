//! Helpers shared by the engine's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tempfile::TempDir;
use weft_core::WallClock;
use weft_core::{Change, Options, Replica, Value};

/// A wall clock the test moves by hand.
#[derive(Default)]
pub struct ManualClock(pub AtomicU64);

impl WallClock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

/// A replica in a fresh directory, with its own hand-driven clock.
pub struct TestReplica {
    pub replica: Replica,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
}

pub fn replica_with_clock(start_ms: u64) -> TestReplica {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock(AtomicU64::new(start_ms)));
    let options = Options {
        wall_clock: clock.clone(),
        ..Options::default()
    };
    let replica = Replica::open_with(dir.path().join("replica.db"), options).unwrap();
    TestReplica {
        replica,
        clock,
        dir,
    }
}

pub fn all_changes(replica: &Replica, since: u64) -> Vec<Change> {
    replica
        .changes_since(since)
        .flat_map(|b| b.unwrap().changes)
        .collect()
}

/// Sends everything `from` has to `to`.
pub fn sync_one_way(from: &Replica, to: &Replica) {
    for batch in from.changes_since(0) {
        to.apply_changes(&batch.unwrap().changes).unwrap();
    }
}

pub fn sync_both(a: &Replica, b: &Replica) {
    sync_one_way(a, b);
    sync_one_way(b, a);
}

/// Every row of `table`, ordered by its first column, as values.
pub fn rows(replica: &Replica, sql: &str) -> Vec<Vec<Value>> {
    let conn = replica.connection();
    let mut statement = conn.prepare(sql).unwrap();
    let count = statement.column_count();
    let rows = statement
        .query_map([], |r| {
            (0..count)
                .map(|i| r.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

pub fn exec(replica: &Replica, sql: &str) {
    replica.connection().execute_batch(sql).unwrap();
}
