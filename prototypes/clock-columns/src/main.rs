//! Side by side, in one run: 100,000 `UPDATE item SET qty = ? WHERE id = ?` in one
//! transaction on a plain table, then the same followed (before COMMIT) by the clock writes of
//! each candidate layout. Median of five fresh files each. The capture itself (the preupdate
//! hook) is not in these figures.

use rusqlite::Connection;
use std::time::{Duration, Instant};

const ROWS: i64 = 100_000;
const RUNS: usize = 5;
/// A hybrid-logical-clock-sized value: what every clock column holds.
const CLOCK: i64 = 1_800_000_000_000 << 16;

/// How the clock rows are kept, and how the commit writes them.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// No clock table: plain SQLite.
    Plain,
    /// Weft's shape today: row-level stamp, a cells blob that a first update makes (here a
    /// 52-byte blob, as four registers take), a db_version index; one statement per row.
    RowStampPerRow { index: bool },
    /// A (clock, site, db_version) triple per replicated column and a row-level db_version,
    /// all fixed-width integers an update overwrites in place; one statement per row.
    ColumnsPerRow { index: bool },
    /// The same columns, written by one `UPDATE ... WHERE id BETWEEN ?1 AND ?2` for the run.
    ColumnsSetBased { index: bool },
    /// The narrowest clock row there is: a row-level stamp only, overwritten in place by one
    /// set-based statement (not a layout: it cannot tell the updated column from the others;
    /// it is the floor under any clock row per base row).
    RowStampOnlySetBased { index: bool },
}

fn setup(conn: &Connection, layout: Layout) {
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL);",
    )
    .unwrap();
    let index = match layout {
        Layout::Plain => None,
        Layout::RowStampPerRow { index } | Layout::RowStampOnlySetBased { index } => {
            conn.execute_batch(
                "CREATE TABLE clock(id INTEGER PRIMARY KEY, cl INTEGER, clock INTEGER, site INTEGER, dbv INTEGER, cells BLOB, base BLOB);",
            )
            .unwrap();
            Some(index)
        }
        Layout::ColumnsPerRow { index } | Layout::ColumnsSetBased { index } => {
            conn.execute_batch(
                "CREATE TABLE clock(id INTEGER PRIMARY KEY, cl INTEGER, dbv INTEGER, \
                 c0 INTEGER, s0 INTEGER, v0 INTEGER, c1 INTEGER, s1 INTEGER, v1 INTEGER, \
                 c2 INTEGER, s2 INTEGER, v2 INTEGER, c3 INTEGER, s3 INTEGER, v3 INTEGER, base BLOB);",
            )
            .unwrap();
            Some(index)
        }
    };
    if index == Some(true) {
        conn.execute_batch("CREATE INDEX clock_dbv ON clock(dbv)").unwrap();
    }
    conn.execute_batch("BEGIN").unwrap();
    let mut insert = conn
        .prepare("INSERT INTO item VALUES (?1, 'name ' || ?1, ?1, ?1 * 0.5)")
        .unwrap();
    for id in 0..ROWS {
        insert.execute([id]).unwrap();
    }
    match layout {
        Layout::Plain => {}
        Layout::RowStampPerRow { .. } | Layout::RowStampOnlySetBased { .. } => conn
            .execute(
                "INSERT INTO clock SELECT id, 1, ?1, 0, 1, NULL, NULL FROM item",
                [CLOCK],
            )
            .map(drop)
            .unwrap(),
        _ => conn
            .execute(
                "INSERT INTO clock SELECT id, 1, 1, ?1, 0, 1, ?1, 0, 1, ?1, 0, 1, ?1, 0, 1, NULL FROM item",
                [CLOCK],
            )
            .map(drop)
            .unwrap(),
    }
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

fn timed_update(conn: &Connection, layout: Layout) -> Duration {
    let start = Instant::now();
    conn.execute_batch("BEGIN").unwrap();
    let mut update = conn
        .prepare("UPDATE item SET qty = ?2 WHERE id = ?1")
        .unwrap();
    for id in 0..ROWS {
        update.execute([id, id * 7]).unwrap();
    }
    let (clock, dbv) = (CLOCK + 1, 2i64);
    match layout {
        Layout::Plain => {}
        Layout::RowStampPerRow { .. } => {
            let cells = vec![7u8; 52];
            let mut statement = conn
                .prepare("UPDATE clock SET cells = ?2, clock = ?3, site = 0, dbv = ?4 WHERE id = ?1")
                .unwrap();
            for id in 0..ROWS {
                statement
                    .execute(rusqlite::params![id, cells, clock, dbv])
                    .unwrap();
            }
        }
        Layout::ColumnsPerRow { .. } => {
            let mut statement = conn
                .prepare("UPDATE clock SET c2 = ?2, s2 = 0, v2 = ?3, dbv = ?3 WHERE id = ?1")
                .unwrap();
            for id in 0..ROWS {
                statement.execute([id, clock, dbv]).unwrap();
            }
        }
        Layout::RowStampOnlySetBased { .. } => {
            conn.execute(
                "UPDATE clock SET clock = ?3, site = 0, dbv = ?4 WHERE id BETWEEN ?1 AND ?2",
                [0, ROWS - 1, clock, dbv],
            )
            .unwrap();
        }
        Layout::ColumnsSetBased { .. } => {
            conn.execute(
                "UPDATE clock SET c2 = ?3, s2 = 0, v2 = ?4, dbv = ?4 WHERE id BETWEEN ?1 AND ?2",
                [0, ROWS - 1, clock, dbv],
            )
            .unwrap();
        }
    }
    conn.execute_batch("COMMIT").unwrap();
    start.elapsed()
}

fn median(layout: Layout) -> Duration {
    let mut samples: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let conn = Connection::open(dir.path().join("t.db")).unwrap();
            setup(&conn, layout);
            timed_update(&conn, layout)
        })
        .collect();
    samples.sort();
    samples[RUNS / 2]
}

fn main() {
    let layouts = [
        Layout::Plain,
        Layout::RowStampPerRow { index: true },
        Layout::RowStampPerRow { index: false },
        Layout::ColumnsPerRow { index: true },
        Layout::ColumnsPerRow { index: false },
        Layout::ColumnsSetBased { index: true },
        Layout::ColumnsSetBased { index: false },
        Layout::RowStampOnlySetBased { index: true },
        Layout::RowStampOnlySetBased { index: false },
    ];
    let plain = median(Layout::Plain);
    println!("| {ROWS} single-column UPDATEs + the clock writes before COMMIT | time | ÷ plain |");
    println!("| --- | --- | --- |");
    for layout in layouts {
        let time = if matches!(layout, Layout::Plain) { plain } else { median(layout) };
        println!(
            "| {layout:?} | {:.1} ms | {:.2}x |",
            time.as_secs_f64() * 1e3,
            time.as_secs_f64() / plain.as_secs_f64()
        );
    }
}
