//! The replica pool the server's conversations borrow from: a few SQLite connections per
//! database, lent to one step at a time ([`weft_net::ReplicaLender`]).

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use weft_core::Replica;

/// Replicas of one database, lent to conversations for one step at a time: a server with many
/// connections to a database holds a few SQLite connections instead of one per client, and an
/// idle conversation holds none (a SQLite connection is a few hundred KiB of caches).
///
/// At most `open_max` steps run at once; the others wait their turn (first come, first
/// served), so a thousand clients woken by one commit do not open a thousand connections.
/// Any replica of the file serves any step: each transaction starts by learning what other
/// connections committed, and a session keeps no state in the replica between steps.
pub(crate) struct ReplicaPool {
    path: std::path::PathBuf,
    /// Replicas between steps, each with when it was handed back.
    spare: std::sync::Mutex<Vec<(Replica, Instant)>>,
    open_max: usize,
    turns: Arc<tokio::sync::Semaphore>,
}

impl ReplicaPool {
    /// A pool of at most `open_max` (at least 1) connections to the replica at `path`,
    /// starting with `first` if given.
    pub(crate) fn new(
        path: impl Into<std::path::PathBuf>,
        first: Option<Replica>,
        open_max: usize,
    ) -> Self {
        let open_max = open_max.max(1);
        ReplicaPool {
            path: path.into(),
            spare: std::sync::Mutex::new(first.into_iter().map(|r| (r, Instant::now())).collect()),
            open_max,
            turns: Arc::new(tokio::sync::Semaphore::new(open_max)),
        }
    }

    fn spare(&self) -> std::sync::MutexGuard<'_, Vec<(Replica, Instant)>> {
        self.spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A replica: the spare used last, or a new connection. Blocking; call it while holding a
    /// turn.
    pub(crate) fn take(&self) -> Result<Replica, weft_core::Error> {
        let spare = self.spare().pop();
        match spare {
            Some((replica, _)) => Ok(replica),
            None => Replica::open(&self.path),
        }
    }

    /// Hands a replica back. One left inside a transaction (a refused COMMIT, a panic halfway)
    /// is closed instead, which rolls the transaction back: the next step must not write into
    /// it or wait behind its lock. Beyond `open_max` spares (a step cancelled mid-way gives
    /// back late), it is closed too. Blocking (closing may checkpoint).
    pub(crate) fn give(&self, replica: Replica) {
        if !replica.connection().is_autocommit() {
            tracing::warn!(path = %self.path.display(), "a step left a transaction open: closing its connection, which rolls it back");
            drop(replica);
            return;
        }
        let mut spare = self.spare();
        if spare.len() < self.open_max {
            spare.push((replica, Instant::now()));
            return;
        }
        drop(spare);
        drop(replica);
    }

    /// Takes out the spares unused for `idle_for` or longer, for the caller to close (closing
    /// is blocking). A database nobody syncs then holds no connection at all.
    pub(crate) fn take_idle(&self, idle_for: Duration) -> Vec<Replica> {
        let mut spare = self.spare();
        let (idle, busy): (Vec<_>, Vec<_>) = std::mem::take(&mut *spare)
            .into_iter()
            .partition(|(_, since)| since.elapsed() >= idle_for);
        *spare = busy;
        idle.into_iter().map(|(replica, _)| replica).collect()
    }

    /// Waits for a turn to use a replica.
    pub(crate) async fn turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.turns
            .clone()
            .acquire_owned()
            .await
            .expect("the pool never closes its semaphore")
    }
}

impl weft_net::ReplicaLender for ReplicaPool {
    async fn turn(&self) -> OwnedSemaphorePermit {
        ReplicaPool::turn(self).await
    }
    fn take(&self) -> Result<Replica, weft_core::Error> {
        ReplicaPool::take(self)
    }
    fn give(&self, replica: Replica) {
        ReplicaPool::give(self, replica)
    }
}

// A replica left inside a transaction never goes back to work, and spares unused for a while
// can be closed.
#[cfg(test)]
mod tests {
    use super::*;

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
}
