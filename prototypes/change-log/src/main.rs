//! One replica-sized history, kept two ways side by side, and the reads sync makes of it.
//!
//! The history: 1,000,000 rows inserted in one transaction (db_version 1), then 10 bulk
//! transactions that each update 10,000 rows in key order, then 5,000 one-row transactions,
//! half on rows spread over the table and half on 100 hot rows (which leaves log entries whose
//! rows were all written again: dead entries).
//!
//! - `index`: Weft today, an index on the clock table's db_version.
//! - `log`: no index; `blocks(db_version, block)` holds one entry per (transaction, block of
//!   64 keys) it wrote, written once per block.
//! - `runs`: no index; `runs(db_version, last, first)` holds one entry per run of keys at most
//!   16 apart that a transaction wrote.
//!
//! The reads, each in `(db_version, key)` order and in batches of 10,000 rows, as
//! `changes::read` makes them: the last transaction only (a live push), the last 1,000
//! transactions, everything (a new peer). Then what collecting the dead entries costs.

use rusqlite::Connection;
use std::time::{Duration, Instant};

const ROWS: i64 = 1_000_000;
const BLOCK_SHIFT: i64 = 6;
const BATCH: i64 = 10_000;
const CLOCK: i64 = 1_800_000_000_000 << 16;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    Index,
    Log,
    Runs,
}

struct Replica {
    conn: Connection,
    path: Path,
    version: i64,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn new(path: Path) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("r.db")).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE clock(id INTEGER PRIMARY KEY, cl INTEGER, clock INTEGER, site INTEGER, dbv INTEGER, cells BLOB, base BLOB);
             CREATE TABLE blocks(dbv INTEGER NOT NULL, block INTEGER NOT NULL, PRIMARY KEY (dbv, block)) WITHOUT ROWID;
             CREATE TABLE runs(dbv INTEGER NOT NULL, last INTEGER NOT NULL, first INTEGER NOT NULL, PRIMARY KEY (dbv, last)) WITHOUT ROWID;",
        )
        .unwrap();
        if path == Path::Index {
            conn.execute_batch("CREATE INDEX clock_dbv ON clock(dbv)")
                .unwrap();
        }
        Replica {
            conn,
            path,
            version: 0,
            _dir: dir,
        }
    }

    /// One transaction writing the rows `ids` (sorted): its clock rows and, for the log, one
    /// entry per block.
    fn write(&mut self, ids: &[i64]) {
        self.version += 1;
        let v = self.version;
        self.conn.execute_batch("BEGIN").unwrap();
        {
            let mut upsert = self
                .conn
                .prepare_cached(
                    "INSERT INTO clock VALUES (?1, 1, ?2, 0, ?3, NULL, NULL) \
                     ON CONFLICT DO UPDATE SET clock = excluded.clock, dbv = excluded.dbv",
                )
                .unwrap();
            for id in ids {
                upsert.execute([*id, CLOCK + v, v]).unwrap();
            }
            if self.path == Path::Runs {
                // One entry per run of keys at most 16 apart.
                let mut log = self
                    .conn
                    .prepare_cached("INSERT INTO runs VALUES (?1, ?2, ?3)")
                    .unwrap();
                let mut run: Option<(i64, i64)> = None;
                for id in ids {
                    run = match run {
                        Some((first, last)) if id - last <= 16 => Some((first, *id)),
                        Some((first, last)) => {
                            log.execute([v, last, first]).unwrap();
                            Some((*id, *id))
                        }
                        None => Some((*id, *id)),
                    };
                }
                if let Some((first, last)) = run {
                    log.execute([v, last, first]).unwrap();
                }
            }
            if self.path == Path::Log {
                let mut log = self
                    .conn
                    .prepare_cached("INSERT OR IGNORE INTO blocks VALUES (?1, ?2)")
                    .unwrap();
                let mut last = None;
                for id in ids {
                    let block = id >> BLOCK_SHIFT;
                    if last != Some(block) {
                        log.execute([v, block]).unwrap();
                        last = Some(block);
                    }
                }
            }
        }
        self.conn.execute_batch("COMMIT").unwrap();
    }

    /// Reads every row changed after `since`, in batches, resuming from (db_version, key).
    fn read_since(&self, since: i64) -> (usize, Duration) {
        let start = Instant::now();
        let (first, next) = match self.path {
            Path::Index => (
                "SELECT dbv, id FROM clock WHERE dbv > ?1 ORDER BY dbv, id LIMIT ?3",
                "SELECT dbv, id FROM clock WHERE dbv = ?1 AND id > ?2 ORDER BY dbv, id LIMIT ?3",
            ),
            Path::Log => (
                "SELECT b.dbv, c.id FROM blocks b CROSS JOIN clock c ON c.id BETWEEN b.block * 64 AND b.block * 64 + 63 AND +c.dbv = b.dbv \
                 WHERE b.dbv > ?1 ORDER BY b.dbv, b.block, c.id LIMIT ?3",
                "SELECT b.dbv, c.id FROM blocks b CROSS JOIN clock c ON c.id BETWEEN b.block * 64 AND b.block * 64 + 63 AND +c.dbv = b.dbv \
                 WHERE b.dbv = ?1 AND b.block >= (?2 >> 6) AND c.id > ?2 ORDER BY b.dbv, b.block, c.id LIMIT ?3",
            ),
            Path::Runs => (
                "SELECT r.dbv, c.id FROM runs r CROSS JOIN clock c ON c.id BETWEEN r.first AND r.last AND +c.dbv = r.dbv \
                 WHERE r.dbv > ?1 ORDER BY r.dbv, r.last, c.id LIMIT ?3",
                "SELECT r.dbv, c.id FROM runs r CROSS JOIN clock c ON c.id BETWEEN max(r.first, ?2 + 1) AND r.last AND +c.dbv = r.dbv \
                 WHERE r.dbv = ?1 AND r.last > ?2 ORDER BY r.dbv, r.last, c.id LIMIT ?3",
            ),
        };
        let mut rows = 0usize;
        let mut position: Option<(i64, i64)> = None;
        loop {
            let mut got = Vec::new();
            if let Some((v, id)) = position {
                let mut s = self.conn.prepare_cached(next).unwrap();
                let mut q = s.query([v, id, BATCH]).unwrap();
                while let Some(r) = q.next().unwrap() {
                    got.push((r.get::<_, i64>(0).unwrap(), r.get::<_, i64>(1).unwrap()));
                }
            }
            let left = BATCH - got.len() as i64;
            if left > 0 {
                let after = position.map_or(since, |p| p.0);
                let mut s = self.conn.prepare_cached(first).unwrap();
                let mut q = s.query([after, 0, left]).unwrap();
                while let Some(r) = q.next().unwrap() {
                    got.push((r.get::<_, i64>(0).unwrap(), r.get::<_, i64>(1).unwrap()));
                }
            }
            rows += got.len();
            match got.last() {
                Some(last) if got.len() as i64 == BATCH => position = Some(*last),
                _ => break,
            }
        }
        (rows, start.elapsed())
    }
}

fn history(replica: &mut Replica) {
    let all: Vec<i64> = (0..ROWS).collect();
    replica.write(&all);
    for t in 0..10 {
        let from = t * 97_000;
        let ids: Vec<i64> = (from..from + 10_000).collect();
        replica.write(&ids);
    }
    let mut x: u64 = 12345;
    for t in 0..5_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let id = if t % 2 == 0 {
            (x >> 33) as i64 % ROWS
        } else {
            ((x >> 33) % 100) as i64 * 1_000
        };
        replica.write(&[id]);
    }
}

/// Deletes the entries of `log` none of whose rows (`keys`, over clock rows `c`) is still at the
/// entry's db_version, and prints how many there were and what it took.
fn collect_dead(replica: &Replica, log: &str, keys: &str) {
    let entries: i64 = replica
        .conn
        .query_row(&format!("SELECT count(*) FROM {log}"), [], |r| r.get(0))
        .unwrap();
    let start = Instant::now();
    let dead = replica
        .conn
        .execute(
            &format!("DELETE FROM {log} WHERE NOT EXISTS (SELECT 1 FROM clock c WHERE {keys} AND c.dbv = {log}.dbv)"),
            [],
        )
        .unwrap();
    println!(
        "{log}: {entries} entries, of which dead {dead}; collecting them all: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    let mut replicas = [
        Replica::new(Path::Index),
        Replica::new(Path::Log),
        Replica::new(Path::Runs),
    ];
    for r in replicas.iter_mut() {
        let start = Instant::now();
        history(r);
        println!(
            "{:?}: history written in {:.1} s",
            r.path,
            start.elapsed().as_secs_f64()
        );
    }
    let last = replicas[0].version;
    println!(
        "\n| read | rows | index | log of blocks | log of runs |\n| --- | --- | --- | --- | --- |"
    );
    for (label, since) in [
        ("the last transaction", last - 1),
        ("the last 1,000 transactions", last - 1_000),
        ("everything after the bulk updates", 11),
        ("everything (a new peer)", 0),
    ] {
        let mut cells = Vec::new();
        let mut count = 0;
        for r in &replicas {
            // The median of five reads.
            let mut times: Vec<Duration> = (0..5)
                .map(|_| {
                    let (n, t) = r.read_since(since);
                    count = n;
                    t
                })
                .collect();
            times.sort();
            cells.push(format!("{:.3} ms", times[2].as_secs_f64() * 1e3));
        }
        println!(
            "| {label} | {count} | {} | {} | {} |",
            cells[0], cells[1], cells[2]
        );
    }
    collect_dead(
        &replicas[1],
        "blocks",
        "c.id BETWEEN blocks.block * 64 AND blocks.block * 64 + 63",
    );
    collect_dead(
        &replicas[2],
        "runs",
        "c.id BETWEEN runs.first AND runs.last",
    );
    for r in &replicas {
        let pages: i64 = r
            .conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        println!("{:?}: {} pages", r.path, pages);
    }
}
