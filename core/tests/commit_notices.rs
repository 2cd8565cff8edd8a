//! `Replica::on_commit`: who hears of which commits, that the data is readable when they do,
//! and that the WAL is still checkpointed with the hook in place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
fn other_connections_commits_are_heard_own_and_rolled_back_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let listener = replica_with_table(&path);
    let heard = Arc::new(AtomicU64::new(0));
    let counter = heard.clone();
    let subscription = listener.on_commit(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });

    // Another Replica of the file, spelled differently: heard.
    let writer = Replica::open(dir.path().join(".").join("a.db")).unwrap();
    writer
        .connection()
        .execute("INSERT INTO t VALUES (1, 'x')", [])
        .unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 1);

    // A transaction of several statements is one commit.
    writer
        .connection()
        .execute_batch(
            "BEGIN; INSERT INTO t VALUES (2, 'y'); INSERT INTO t VALUES (3, 'z'); COMMIT;",
        )
        .unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 2);

    // A rolled-back transaction is not a commit.
    writer
        .connection()
        .execute_batch("BEGIN; INSERT INTO t VALUES (4, 'w'); ROLLBACK;")
        .unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 2);

    // A connection from `connect` of the listening replica is another connection: heard.
    listener
        .connect()
        .unwrap()
        .execute("INSERT INTO t VALUES (5, 'v')", [])
        .unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 3);

    // The listener's own connection: not news to it.
    listener
        .connection()
        .execute("INSERT INTO t VALUES (6, 'u')", [])
        .unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 3);

    // A different file: not heard.
    let other = replica_with_table(&dir.path().join("b.db"));
    other
        .connection()
        .execute("INSERT INTO t VALUES (1, 'x')", [])
        .unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 3);

    // Unsubscribed: not heard.
    drop(subscription);
    writer
        .connection()
        .execute("INSERT INTO t VALUES (7, 't')", [])
        .unwrap();
    assert_eq!(heard.load(Ordering::SeqCst), 3);
}

#[test]
fn a_listener_reads_the_committed_row_from_inside_the_notice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let listener = replica_with_table(&path);
    let reader = Replica::open(&path).unwrap();
    let reader = Arc::new(Mutex::new(reader.connect().unwrap()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (r, s) = (reader.clone(), seen.clone());
    let _subscription = listener.on_commit(move || {
        // Another connection, reading at the moment of the notice: the commit must be visible.
        let count: i64 = r
            .lock()
            .unwrap()
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .unwrap();
        s.lock().unwrap().push(count);
    });
    let writer = Replica::open(&path).unwrap();
    for id in 1..=3 {
        writer
            .connection()
            .execute("INSERT INTO t VALUES (?1, 'x')", [id])
            .unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3]);
}

/// The background checkpoints keep a connection of their own between runs; it closes with the
/// replica's last connection (even while a commit subscription lives on), so closing still
/// leaves no log behind (SQLite removes it when the file's last connection closes).
#[test]
fn the_background_checkpoints_connection_closes_with_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let wal = dir.path().join("a.db-wal");
    let replica = replica_with_table(&path);
    let text = "x".repeat(200_000);
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    // 1,500 pages: past the background checkpoint's 1,000, short of the inline one's 4,000.
    for id in 0..30 {
        replica
            .connection()
            .execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params![id, text])
            .unwrap();
    }
    // The file grows only when a checkpoint copies pages into it. Half the log's pages, not
    // all: a checkpoint that starts at 1,000 frames copies fewer distinct pages (the tables'
    // own pages are in several frames), and under load the commits may all be done before a
    // second one starts.
    let checkpointed = (0..200).any(|_| {
        size() > before + 2_000_000 || {
            std::thread::sleep(std::time::Duration::from_millis(25));
            false
        }
    });
    assert!(checkpointed, "no background checkpoint reached the file");
    // Another round, on the kept connection.
    for id in 30..60 {
        replica
            .connection()
            .execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params![id, text])
            .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    // A subscription that outlives the replica keeps the file's listeners, not a connection.
    let subscription = replica.on_commit(|| {});
    drop(replica);
    assert!(
        !wal.exists(),
        "a connection outlived the replica: the log is still there"
    );
    drop(subscription);
    let reopened = Replica::open(&path).unwrap();
    let rows: i64 = reopened
        .connection()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 60);
}

#[test]
fn the_wal_is_still_checkpointed_with_the_notice_hook_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let replica = replica_with_table(&path);
    // 40 MB of commits, 200 KB each, as fast as they go. The hook replaces SQLite's automatic
    // checkpoint: it must checkpoint in the background, and inline once the log reaches
    // 4,000 pages (16 MiB), so the log stays bounded even if the background cannot keep up.
    let text = "x".repeat(200_000);
    for id in 0..200 {
        replica
            .connection()
            .execute("INSERT INTO t VALUES (?1, ?2)", rusqlite::params![id, text])
            .unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("a.db-wal"))
        .unwrap()
        .len();
    assert!(
        wal < 20_000_000,
        "the WAL grew to {wal} bytes: nothing bounded it"
    );
    // Only a checkpoint moves pages into the database file itself.
    let checkpointed = (0..200).any(|_| {
        let size = std::fs::metadata(&path).unwrap().len();
        size > 30_000_000 || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            false
        }
    });
    assert!(
        checkpointed,
        "the database file stayed at {} bytes: no checkpoint copied the log into it",
        std::fs::metadata(&path).unwrap().len()
    );
}
