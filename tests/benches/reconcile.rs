//! Range-based reconciliation between two servers that never met (no cursors either way):
//! both hold the same N rows (default 1,000,000), then D rows (default 100,000) change on
//! one or the other only (half each, different rows; 2 registers each). The two then sync as peers, in
//! process, over a perfect in-memory pipe: the bytes are the protocol's, the time is the two
//! replicas' work (SQLite reads, fingerprints, merges), with no network in it.
//!
//! Reports the bytes exchanged both ways ÷ the bytes of the differing rows (their changes in
//! the wire's `rows` encoding, as an oracle that knew the difference would send them), next
//! to what sending everything both ways costs, and the time.
//!
//! `WEFT_BENCH_ROWS` (rows in common) and `WEFT_BENCH_DIVERGED` (rows changed) scale it. Run with `scripts/bench-reconcile`.

use std::time::Instant;
use weft_core::rusqlite::params;
use weft_core::sync::{encode_rows, Role, Session, SessionConfig, SessionEvent, Status};
use weft_core::{Change, Replica};
use weft_tests::pair::next_frame;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every change of `replica` after `since`.
fn changes(replica: &Replica, since: u64) -> Vec<Vec<Change>> {
    replica
        .changes_since(since)
        .map(|b| b.expect("read changes").changes)
        .collect()
}

fn apply(to: &Replica, batches: &[Vec<Change>]) {
    for batch in batches {
        to.apply_changes(batch).expect("apply");
    }
}

fn encoded_bytes(batches: &[Vec<Change>]) -> usize {
    batches.iter().map(|b| encode_rows(b).len()).sum()
}

/// Syncs two servers as peers until both are in sync; returns both statuses.
fn reconcile(a: &Replica, b: &Replica) -> (Status, Status) {
    let mut answering = SessionConfig::new(Role::Server, "bench");
    answering.accept_peer = true;
    let mut left = Session::initiator(a, SessionConfig::new(Role::Peer, "bench")).expect("a");
    let mut right = Session::responder(b, answering).expect("b");
    for step in 0..10_000_000u64 {
        let mut moved = false;
        while let Some(frame) = next_frame(&mut left, a, step) {
            right.handle_frame(b, &frame, step).expect("b takes");
            moved = true;
        }
        while let Some(frame) = next_frame(&mut right, b, step) {
            left.handle_frame(a, &frame, step).expect("a takes");
            moved = true;
        }
        for session in [&mut left, &mut right] {
            while let Some(event) = session.poll_event() {
                if let SessionEvent::Closed { message, .. } = event {
                    panic!("the conversation closed: {message}");
                }
            }
        }
        if !moved && left.status().in_sync && right.status().in_sync {
            return (left.status().clone(), right.status().clone());
        }
    }
    panic!("no sync");
}

fn main() {
    let rows = env_number("WEFT_BENCH_ROWS", 1_000_000) as i64;
    let diverged = env_number("WEFT_BENCH_DIVERGED", 100_000) as i64;
    assert!(diverged <= rows, "more changes than rows");
    let dir = tempfile::tempdir().expect("temp dir");
    let writer = Replica::open(dir.path().join("writer.db")).expect("writer");
    writer
        .connection()
        .execute_batch("CREATE TABLE item(id INTEGER PRIMARY KEY, title TEXT, n INTEGER)")
        .expect("schema");
    writer.enable_crr("item").expect("crr");
    let setup = Instant::now();
    writer
        .connection()
        .execute(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1) \
             INSERT INTO item SELECT i, 'item number ' || i, i FROM k",
            [rows],
        )
        .expect("rows");
    let common = changes(&writer, 0);
    // Two schema-less servers holding the same rows, strangers to each other.
    let a = Replica::open(dir.path().join("a.db")).expect("a");
    let b = Replica::open(dir.path().join("b.db")).expect("b");
    apply(&a, &common);
    apply(&b, &common);
    let full_bytes = encoded_bytes(&common);
    // Half the divergence lands on A only, half on B only, on rows spread over the table.
    let stride = (rows / diverged.max(1)).max(1);
    let version = writer.db_version().expect("version");
    writer
        .connection()
        .execute(
            "UPDATE item SET title = 'changed on a', n = n + 1 WHERE id % ?1 = 0 AND (id / ?1) % 2 = 0 AND id / ?1 <= ?2",
            params![stride, diverged],
        )
        .expect("a's changes");
    let only_a = changes(&writer, version);
    let version = writer.db_version().expect("version");
    writer
        .connection()
        .execute(
            "UPDATE item SET title = 'changed on b', n = n + 2 WHERE id % ?1 = 0 AND (id / ?1) % 2 = 1 AND id / ?1 <= ?2",
            params![stride, diverged],
        )
        .expect("b's changes");
    let only_b = changes(&writer, version);
    apply(&a, &only_a);
    apply(&b, &only_b);
    let changed: usize = only_a.iter().chain(&only_b).map(Vec::len).sum();
    let differing_bytes = encoded_bytes(&only_a) + encoded_bytes(&only_b);
    println!(
        "setup: {rows} rows on both servers, {changed} changes on one side only ({:.1} s)",
        setup.elapsed().as_secs_f64()
    );
    assert_ne!(a.digest().expect("digest"), b.digest().expect("digest"));

    if std::env::var_os("WEFT_BENCH_PHASES").is_some() {
        let t = Instant::now();
        let index = weft_core::test_support::RowIndex::build(&a, usize::MAX).expect("index");
        println!(
            "phase: indexing A's {} rows takes {:.2} s",
            index.map_or(0, |i| i.len()),
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let mut registers = 0;
        let mut cursor = weft_core::Cursor::since(0);
        loop {
            let batch = a.changes(&cursor, 10_000).expect("read");
            registers += batch.changes.len();
            cursor = batch.next;
            if batch.done {
                break;
            }
        }
        println!(
            "phase: reading A's {registers} registers takes {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
    let started = Instant::now();
    let (left, right) = reconcile(&a, &b);
    let elapsed = started.elapsed();
    assert_eq!(a.digest().expect("digest"), b.digest().expect("digest"));
    let exchanged = left.bytes_sent + left.bytes_received;
    let stats = (
        left.reconciled.clone().expect("A reconciled"),
        right.reconciled.clone().expect("B reconciled"),
    );
    assert!(
        !stats.0.fallback,
        "the sides fell back to sending everything"
    );
    println!("reconciled in {:.2} s", elapsed.as_secs_f64());
    println!(
        "rounds {} + {}, ranges described {} + {}, rows listed {} + {}, rows sent {} + {}",
        stats.0.rounds_sent,
        stats.1.rounds_sent,
        stats.0.ranges_sent,
        stats.1.ranges_sent,
        stats.0.rows_listed,
        stats.1.rows_listed,
        stats.0.rows_to_send,
        stats.1.rows_to_send
    );
    println!(
        "changes sent: A -> B {}, B -> A {} (the differing rows hold {changed})",
        right.changes_received, left.changes_received
    );
    println!(
        "bytes exchanged {exchanged} = {:.2} x the differing rows ({differing_bytes} bytes)",
        exchanged as f64 / differing_bytes as f64
    );
    println!(
        "sending everything both ways instead: about {} bytes ({:.1} x what reconciling sent)",
        2 * full_bytes,
        (2 * full_bytes) as f64 / exchanged as f64
    );
}
