//! The engine's costs, side by side with plain SQLite in one run.
//!
//! `cargo bench -p weft-core --bench engine` prints a markdown table (the one in
//! docs/benchmarks.md). `WEFT_BENCH_QUICK=1` runs every workload at a tenth of its size.
//! Each timed workload runs `RUNS` times on fresh files and reports the median.

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_core::{Change, Replica};

const RUNS: usize = 5;
const TABLE: &str = "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL)";

fn scale(n: usize) -> usize {
    if std::env::var("WEFT_BENCH_QUICK").is_ok() {
        n / 10
    } else {
        n
    }
}

struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Scratch(tempfile::tempdir().expect("temporary directory"))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn plain(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .unwrap();
    conn.execute_batch(TABLE).unwrap();
    conn
}

fn crr(path: &Path) -> Replica {
    let replica = Replica::open(path).unwrap();
    replica.connection().execute_batch(TABLE).unwrap();
    replica.enable_crr("item").unwrap();
    replica
}

fn insert_rows(conn: &Connection, from: usize, count: usize) {
    let mut statement = conn
        .prepare_cached("INSERT INTO item VALUES (?1, ?2, ?3, ?4)")
        .unwrap();
    for i in from..from + count {
        statement
            .execute((
                i as i64,
                format!("item number {i}"),
                (i * 3) as i64,
                i as f64 * 1.5,
            ))
            .unwrap();
    }
}

#[inline(never)]
fn bulk_insert(conn: &Connection, rows: usize) -> Duration {
    let start = Instant::now();
    conn.execute_batch("BEGIN").unwrap();
    insert_rows(conn, 0, rows);
    conn.execute_batch("COMMIT").unwrap();
    start.elapsed()
}

/// The same rows from one statement: what a row costs once per-statement work is shared.
fn insert_select(conn: &Connection, rows: usize) -> Duration {
    let start = Instant::now();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?1) \
         INSERT INTO item SELECT i, 'item number ' || i, i * 3, i * 1.5 FROM n",
        [rows as i64],
    )
    .unwrap();
    start.elapsed()
}

fn bulk_update(conn: &Connection, rows: usize) -> Duration {
    conn.execute_batch("BEGIN").unwrap();
    insert_rows(conn, 0, rows);
    conn.execute_batch("COMMIT").unwrap();
    update_rows(conn, rows)
}

#[inline(never)]
fn update_rows(conn: &Connection, rows: usize) -> Duration {
    let start = Instant::now();
    conn.execute_batch("BEGIN").unwrap();
    let mut statement = conn
        .prepare_cached("UPDATE item SET qty = ?2 WHERE id = ?1")
        .unwrap();
    for i in 0..rows {
        statement.execute((i as i64, (i * 7) as i64)).unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    start.elapsed()
}

#[inline(never)]
fn one_row_transactions(conn: &Connection, count: usize) -> Duration {
    let start = Instant::now();
    insert_rows(conn, 0, count);
    start.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// How a workload's transactions are made.
#[derive(Clone, Copy)]
enum Writes<'r> {
    /// `BEGIN` and `COMMIT` on the connection: plain SQLite, or a CRR table whose triggers record.
    Sql(&'r Connection),
    /// Each transaction is one `Replica::write`: recorded below the triggers.
    Write(&'r Replica),
}

impl Writes<'_> {
    fn transaction(self, body: impl FnOnce(&Connection)) {
        match self {
            Writes::Sql(conn) => {
                conn.execute_batch("BEGIN").unwrap();
                body(conn);
                conn.execute_batch("COMMIT").unwrap();
            }
            Writes::Write(replica) => replica
                .write(|conn| {
                    body(conn);
                    Ok(())
                })
                .unwrap(),
        }
    }
}

#[inline(never)]
fn write_bulk_insert(writes: Writes<'_>, rows: usize) -> Duration {
    let start = Instant::now();
    writes.transaction(|conn| insert_rows(conn, 0, rows));
    start.elapsed()
}

#[inline(never)]
fn write_bulk_update(writes: Writes<'_>, rows: usize) -> Duration {
    writes.transaction(|conn| insert_rows(conn, 0, rows));
    let start = Instant::now();
    writes.transaction(|conn| {
        let mut statement = conn
            .prepare_cached("UPDATE item SET qty = ?2 WHERE id = ?1")
            .unwrap();
        for i in 0..rows {
            statement.execute((i as i64, (i * 7) as i64)).unwrap();
        }
    });
    start.elapsed()
}

/// One row per transaction: autocommit statements for SQL, one `Replica::write` per row.
#[inline(never)]
fn write_one_row_transactions(writes: Writes<'_>, count: usize) -> Duration {
    let start = Instant::now();
    for i in 0..count {
        match writes {
            Writes::Sql(conn) => insert_rows(conn, i, 1),
            Writes::Write(_) => writes.transaction(|conn| insert_rows(conn, i, 1)),
        }
    }
    start.elapsed()
}

/// The local-write table of docs/benchmarks.md: plain SQLite, plain SQL on a CRR table, and
/// the same work inside `Replica::write`, side by side.
fn local_writes(rows_bulk: usize, transactions: usize) {
    println!("Local writes ({RUNS} runs each, median; plain = same table without replication)\n");
    println!(
        "| workload | plain SQLite | CRR, plain SQL (triggers) | CRR, `Replica::write` | goal |"
    );
    println!("| --- | --- | --- | --- | --- |");
    row3(
        &format!("INSERT {rows_bulk} rows, one transaction"),
        three_ways(|w| write_bulk_insert(w, rows_bulk)),
        "≤ 2x (issue met at ≤ 3x)",
    );
    row3(
        &format!("UPDATE one column of {rows_bulk} rows, one transaction"),
        three_ways(|w| write_bulk_update(w, rows_bulk)),
        "same ratio",
    );
    let times = three_ways(|w| write_one_row_transactions(w, transactions));
    row3(
        &format!("{transactions} one-row transactions (WAL)"),
        times,
        "≤ 1.5x",
    );
    let per_second = |d: Duration| transactions as f64 / d.as_secs_f64();
    println!(
        "\nCommitted one-row transactions per second: plain {:.0}/s, CRR plain SQL {:.0}/s, CRR `Replica::write` {:.0}/s\n",
        per_second(times[0]),
        per_second(times[1]),
        per_second(times[2]),
    );
    let (p, c) = side_by_side(|conn| insert_select(conn, rows_bulk));
    println!("| workload | plain SQLite | Weft CRR | ratio | |");
    println!("| --- | --- | --- | --- | --- |");
    row(
        &format!("INSERT {rows_bulk} rows as one INSERT ... SELECT"),
        p,
        c,
        "(same rows, one statement)",
    );
    println!();
}

/// Median of RUNS runs of `work` on a fresh plain table, a fresh CRR table written with plain
/// SQL (its triggers record) and a fresh CRR table written through `Replica::write`,
/// interleaved.
fn three_ways(work: impl Fn(Writes<'_>) -> Duration) -> [Duration; 3] {
    let mut runs: [Vec<Duration>; 3] = Default::default();
    for _ in 0..RUNS {
        let scratch = Scratch::new();
        runs[0].push(work(Writes::Sql(&plain(&scratch.path("plain.db")))));
        let replica = crr(&scratch.path("crr.db"));
        runs[1].push(work(Writes::Sql(replica.connection())));
        let replica = crr(&scratch.path("write.db"));
        runs[2].push(work(Writes::Write(&replica)));
    }
    runs.map(median)
}

fn row3(label: &str, [plain, sql, write]: [Duration; 3], goal: &str) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {label} | {:.1} ms | {:.1} ms (**{:.2}x**) | {:.1} ms (**{:.2}x**) | {goal} |",
        ms(plain),
        ms(sql),
        sql.as_secs_f64() / plain.as_secs_f64(),
        ms(write),
        write.as_secs_f64() / plain.as_secs_f64(),
    );
}

/// Median of RUNS runs of `work` on a fresh plain table and on a fresh CRR table, interleaved.
fn side_by_side(work: impl Fn(&Connection) -> Duration) -> (Duration, Duration) {
    let (mut plain_runs, mut crr_runs) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let scratch = Scratch::new();
        plain_runs.push(work(&plain(&scratch.path("plain.db"))));
        let replica = crr(&scratch.path("crr.db"));
        crr_runs.push(work(replica.connection()));
    }
    (median(plain_runs), median(crr_runs))
}

fn row(label: &str, plain: Duration, crr: Duration, goal: &str) {
    println!(
        "| {label} | {:.1} ms | {:.1} ms | **{:.2}x** | {goal} |",
        plain.as_secs_f64() * 1e3,
        crr.as_secs_f64() * 1e3,
        crr.as_secs_f64() / plain.as_secs_f64()
    );
}

fn file_bytes(path: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
}

fn all_changes(replica: &Replica) -> Vec<Vec<Change>> {
    replica
        .changes_since(0)
        .map(|b| b.unwrap().changes)
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes bench targets; nothing to run then.
    }
    if let Ok(what) = std::env::var("WEFT_BENCH_ONCE") {
        run_once(&what);
        return;
    }
    let only = std::env::var("WEFT_BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() {
        match only.as_str() {
            "merge" => merge_throughput(scale(1_000_000)),
            "insert" => {
                let (p, c) = side_by_side(|conn| bulk_insert(conn, scale(100_000)));
                row("insert", p, c, "");
            }
            "select" => {
                let (p, c) = side_by_side(|conn| insert_select(conn, scale(100_000)));
                row("insert select", p, c, "");
            }
            "update" => {
                let (p, c) = side_by_side(|conn| bulk_update(conn, scale(100_000)));
                row("update", p, c, "");
            }
            "writes" => local_writes(scale(100_000), scale(2_000)),
            other => eprintln!("WEFT_BENCH_ONLY={other}: one of merge, insert, update"),
        }
        return;
    }
    let rows_bulk = scale(100_000);
    local_writes(rows_bulk, scale(2_000));
    digest_cost(rows_bulk);
    merge_throughput(scale(1_000_000));
    metadata_size(scale(1_000_000));
}

/// One workload, once, on one kind of table: what `scripts/bench-instructions` counts.
/// `what` is `<insert|update|transactions>-<plain|crr|write>` (`write`: through `Replica::write`).
fn run_once(what: &str) {
    let scratch = Scratch::new();
    let (workload, kind) = what.split_once('-').unwrap_or((what, "crr"));
    let replica;
    let plain_conn;
    let conn = match kind {
        "plain" => {
            plain_conn = plain(&scratch.path("plain.db"));
            &plain_conn
        }
        _ => {
            replica = crr(&scratch.path("crr.db"));
            replica.connection()
        }
    };
    if kind == "write" {
        let replica = crr(&scratch.path("write.db"));
        let writes = Writes::Write(&replica);
        match workload {
            "insert" => drop(write_bulk_insert(writes, scale(100_000))),
            "update" => drop(write_bulk_update(writes, scale(100_000))),
            "transactions" => drop(write_one_row_transactions(writes, scale(2_000))),
            other => {
                eprintln!("WEFT_BENCH_ONCE={other}-write: one of insert, update, transactions")
            }
        }
        return;
    }
    match workload {
        "insert" => drop(bulk_insert(conn, scale(100_000))),
        "update" => drop(bulk_update(conn, scale(100_000))),
        "transactions" => drop(one_row_transactions(conn, scale(2_000))),
        "merge" => merge_once(scale(100_000)),
        other => eprintln!(
            "WEFT_BENCH_ONCE={other}: one of insert, update, transactions, then -plain, -crr or -write"
        ),
    }
}

/// Merges `changes` changes into an empty replica once: what callgrind counts for merges.
fn merge_once(changes: usize) {
    let scratch = Scratch::new();
    let source = crr(&scratch.path("source.db"));
    bulk_insert(source.connection(), changes / 4);
    let batches = all_changes(&source);
    let target = crr(&scratch.path("target.db"));
    apply_all(&target, &batches);
}

#[inline(never)]
fn apply_all(target: &Replica, batches: &[Vec<Change>]) {
    for batch in batches {
        target.apply_changes(batch).unwrap();
    }
}

fn digest_cost(rows: usize) {
    let scratch = Scratch::new();
    let replica = crr(&scratch.path("digest.db"));
    bulk_insert(replica.connection(), rows);
    let start = Instant::now();
    replica.digest().unwrap();
    let after_insert = start.elapsed();
    let start = Instant::now();
    replica.digest().unwrap();
    let unchanged = start.elapsed();
    bulk_update_existing(replica.connection(), rows);
    let start = Instant::now();
    replica.digest().unwrap();
    let after_update = start.elapsed();
    println!(
        "Digest (writes pay nothing for it; `digest()` folds the writes since its last call)\n"
    );
    println!("| digest() after | time |");
    println!("| --- | --- |");
    println!(
        "| {rows} inserted rows | {:.1} ms |",
        after_insert.as_secs_f64() * 1e3
    );
    println!("| nothing new | {:.3} ms |", unchanged.as_secs_f64() * 1e3);
    println!(
        "| {rows} rows updated | {:.1} ms |\n",
        after_update.as_secs_f64() * 1e3
    );
}

fn bulk_update_existing(conn: &Connection, rows: usize) {
    conn.execute_batch("BEGIN").unwrap();
    let mut statement = conn
        .prepare_cached("UPDATE item SET qty = qty + 1 WHERE id = ?1")
        .unwrap();
    for i in 0..rows {
        statement.execute([i as i64]).unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

fn merge_throughput(changes_wanted: usize) {
    let scratch = Scratch::new();
    let source = crr(&scratch.path("source.db"));
    // Four changes per row: existence, name, qty, price.
    bulk_insert(source.connection(), changes_wanted / 4);
    let batches = all_changes(&source);
    let total: usize = batches.iter().map(Vec::len).sum();
    let target = crr(&scratch.path("target.db"));
    // A writer on another connection commits a row every 5 ms during the merge: its latency
    // shows whether the merge's bounded transactions let local writes through.
    let writer_conn = target.connect().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_writer = stop.clone();
    let writer = std::thread::spawn(move || {
        let mut latencies = Vec::new();
        let mut id = 10_000_000i64;
        while !stop_writer.load(Ordering::SeqCst) {
            let start = Instant::now();
            writer_conn
                .execute("INSERT INTO item(id, name) VALUES (?1, 'local')", [id])
                .unwrap();
            latencies.push(start.elapsed());
            id += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        latencies
    });
    let mut longest_batch = Duration::ZERO;
    let mut merging = Duration::ZERO;
    let start = Instant::now();
    for batch in &batches {
        let batch_start = Instant::now();
        target.apply_changes(batch).unwrap();
        let took = batch_start.elapsed();
        merging += took;
        longest_batch = longest_batch.max(took);
        std::thread::sleep(weft_core::PAUSE_BETWEEN_BATCHES);
    }
    let into_empty = start.elapsed();
    stop.store(true, Ordering::SeqCst);
    let mut latencies = writer.join().unwrap();
    latencies.sort();
    let start = Instant::now();
    for batch in &batches {
        target.apply_changes(batch).unwrap();
    }
    let again = start.elapsed();
    let batch_size = batches.first().map_or(0, Vec::len);
    println!(
        "Merging {total} changes ({} batches of up to {batch_size}, one transaction each)\n",
        batches.len()
    );
    println!("| apply_changes | time | changes/s | goal |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| into an empty replica, time inside its transactions | {:.2} s | **{:.0}** | ≥ 300k/s |",
        merging.as_secs_f64(),
        total as f64 / merging.as_secs_f64()
    );
    println!(
        "| into an empty replica, wall time with a {} ms pause between batches | {:.2} s | {:.0} | |",
        weft_core::PAUSE_BETWEEN_BATCHES.as_millis(),
        into_empty.as_secs_f64(),
        total as f64 / into_empty.as_secs_f64()
    );
    println!(
        "| into a replica that has them (no-ops) | {:.2} s | **{:.0}** | |\n",
        again.as_secs_f64(),
        total as f64 / again.as_secs_f64()
    );
    println!(
        "Longest merge transaction: {:.1} ms. A local writer committing every 5 ms during the merge: {} writes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms.\n",
        longest_batch.as_secs_f64() * 1e3,
        latencies.len(),
        latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        latencies[latencies.len() * 99 / 100].as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn metadata_size(rows: usize) {
    let scratch = Scratch::new();
    let plain_path = scratch.path("plain.db");
    let crr_path = scratch.path("crr.db");
    bulk_insert(&plain(&plain_path), rows);
    let replica = crr(&crr_path);
    bulk_insert(replica.connection(), rows);
    // The same rows through `Replica::write`: found through the run log, not the index.
    let write_path = scratch.path("write.db");
    let written = crr(&write_path);
    write_bulk_insert(Writes::Write(&written), rows);
    for conn in [
        Connection::open(&plain_path).unwrap(),
        Connection::open(&crr_path).unwrap(),
        Connection::open(&write_path).unwrap(),
    ] {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    let (p, c, w) = (
        file_bytes(&plain_path),
        file_bytes(&crr_path),
        file_bytes(&write_path),
    );
    println!("Database size for {rows} rows: plain {:.1} MB, CRR written by plain SQL {:.1} MB: **{:.2}x**, by `Replica::write` {:.1} MB: **{:.2}x** (cr-sqlite: ~5x)\n", p as f64 / 1e6, c as f64 / 1e6, c as f64 / p as f64, w as f64 / 1e6, w as f64 / p as f64);
}
