//! How the clock table's layout was chosen: candidate layouts for recording local inserts and
//! updates, each driven by plain-SQL triggers, against the same writes to a plain table.
//!
//! `cargo bench -p weft-core --bench layouts`. The trigger functions are trivial Rust
//! functions returning constants, so this measures storage layout and trigger cost only: the
//! floor under any engine that records writes this way.

use rusqlite::functions::FunctionFlags;
use rusqlite::Connection;
use std::time::{Duration, Instant};

const ROWS: i64 = 100_000;
const RUNS: usize = 5;

fn connection(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .unwrap();
    let flags = FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function("weft_clock", 0, flags, |_| Ok(123_456_789i64))
        .unwrap();
    conn.create_scalar_function("weft_db_version", 0, flags, |_| Ok(7i64))
        .unwrap();
    conn.create_scalar_function("weft_hash", -1, flags, |ctx| {
        let mut hasher = blake3::Hasher::new();
        for i in 0..ctx.len() {
            hasher.update(format!("{:?}", ctx.get_raw(i)).as_bytes());
        }
        Ok(i64::from_le_bytes(
            hasher.finalize().as_bytes()[..8].try_into().unwrap(),
        ))
    })
    .unwrap();
    conn.execute_batch(
        "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL);
         CREATE TABLE meta(k INTEGER PRIMARY KEY, v INTEGER); INSERT INTO meta VALUES (1, 0);",
    )
    .unwrap();
    conn
}

#[inline(never)]
fn insert(conn: &Connection) -> Duration {
    let start = Instant::now();
    conn.execute_batch("BEGIN").unwrap();
    let mut statement = conn
        .prepare("INSERT INTO item VALUES (?1, ?2, ?3, ?4)")
        .unwrap();
    for i in 0..ROWS {
        statement
            .execute((i, format!("item number {i}"), i * 3, i as f64 * 1.5))
            .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    start.elapsed()
}

/// One column of every row, in one transaction: the first update of rows just inserted.
#[inline(never)]
fn update(conn: &Connection) -> Duration {
    insert(conn);
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let start = Instant::now();
    conn.execute_batch("BEGIN").unwrap();
    let mut statement = conn
        .prepare("UPDATE item SET qty = ?2 WHERE id = ?1")
        .unwrap();
    for i in 0..ROWS {
        statement.execute((i, i * 7)).unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    start.elapsed()
}

fn measure(ddl: &str, work: fn(&Connection) -> Duration) -> Duration {
    let mut runs: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let conn = connection(&dir.path().join("x.db"));
            conn.execute_batch(ddl).unwrap();
            work(&conn)
        })
        .collect();
    runs.sort();
    runs[RUNS / 2]
}

fn print_table(
    what: &str,
    layouts: Vec<(&'static str, String)>,
    work: fn(&Connection) -> Duration,
) {
    let plain = measure("", work);
    println!(
        "{ROWS} {what} in one transaction, median of {RUNS}; plain: {:.1} ms\n",
        plain.as_secs_f64() * 1e3
    );
    println!("| layout | time | ratio to plain |");
    println!("| --- | --- | --- |");
    for (name, ddl) in layouts {
        let took = measure(&ddl, work);
        println!(
            "| {name} | {:.1} ms | **{:.2}x** |",
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() / plain.as_secs_f64()
        );
    }
    println!();
}

const ROW_CLOCK: &str = "CREATE TABLE c(id INTEGER PRIMARY KEY, cl INTEGER, clock INTEGER, site INTEGER, dbv INTEGER, cells BLOB) WITHOUT ROWID;";
const ROW_CLOCK_ROWID: &str = "CREATE TABLE c(id INTEGER PRIMARY KEY, cl INTEGER, clock INTEGER, site INTEGER, dbv INTEGER, cells BLOB);";
const DBV_INDEX: &str = "CREATE INDEX c_dbv ON c(dbv);";
const LOG: &str = "CREATE TABLE c(seq INTEGER PRIMARY KEY, tbl INTEGER, id INTEGER, clock INTEGER, dbv INTEGER, cols INTEGER);";
const ROW_TRIGGER: &str = "CREATE TRIGGER ti AFTER INSERT ON item BEGIN INSERT INTO c(id, cl, clock, site, dbv) VALUES (NEW.id, 1, weft_clock(), 0, weft_db_version()); END;";
const CELL_CLOCK: &str = "CREATE TABLE pks(pk_id INTEGER PRIMARY KEY, id INTEGER UNIQUE);
    CREATE TABLE c(pk_id INTEGER, col TEXT, col_version INTEGER, dbv INTEGER, site INTEGER, PRIMARY KEY(pk_id, col)) WITHOUT ROWID;
    CREATE INDEX c_dbv ON c(dbv);
    CREATE TRIGGER ti AFTER INSERT ON item BEGIN
      INSERT INTO pks(id) VALUES (NEW.id);
      INSERT INTO c VALUES (last_insert_rowid(), '-1', 1, weft_db_version(), 0);
      INSERT INTO c VALUES ((SELECT pk_id FROM pks WHERE id = NEW.id), 'name', 1, weft_db_version(), 0);
      INSERT INTO c VALUES ((SELECT pk_id FROM pks WHERE id = NEW.id), 'qty', 1, weft_db_version(), 0);
      INSERT INTO c VALUES ((SELECT pk_id FROM pks WHERE id = NEW.id), 'price', 1, weft_db_version(), 0);
    END;";
const EAGER_DIGEST: &str = "CREATE TRIGGER td AFTER INSERT ON item BEGIN UPDATE meta SET v = v + weft_hash(NEW.id, NEW.name, NEW.qty, NEW.price) WHERE k = 1; END;";

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let layouts = layouts();
    if let Some(index) = std::env::var("WEFT_LAYOUT_ONCE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        // One layout, once (0 = plain): what scripts/bench-instructions counts.
        let dir = tempfile::tempdir().unwrap();
        let conn = connection(&dir.path().join("x.db"));
        if index > 0 {
            conn.execute_batch(&layouts[index - 1].1).unwrap();
        }
        insert(&conn);
        return;
    }
    if std::env::var("WEFT_LAYOUT_NAMES").is_ok() {
        for (name, _) in &layouts {
            println!("{name}");
        }
        return;
    }
    print_table("inserts", layouts, insert);
    print_table("updates of one column", update_layouts(), update);
}

/// The candidate layouts: a name and the DDL (clock table, index, triggers) that makes it.
fn layouts() -> Vec<(&'static str, String)> {
    vec![
        (
            "a trigger that does nothing",
            "CREATE TRIGGER ti AFTER INSERT ON item BEGIN SELECT 1; END;".to_owned(),
        ),
        (
            "one clock row per row, WITHOUT ROWID, no db_version index",
            format!("{ROW_CLOCK}{ROW_TRIGGER}"),
        ),
        (
            "one clock row per row, WITHOUT ROWID, db_version index (chosen for non-integer keys)",
            format!("{ROW_CLOCK}{DBV_INDEX}{ROW_TRIGGER}"),
        ),
        (
            "one clock row per row, rowid table, db_version index (chosen for INTEGER PRIMARY KEY)",
            format!("{ROW_CLOCK_ROWID}{DBV_INDEX}{ROW_TRIGGER}"),
        ),
        (
            "one clock row per row, rowid table, no db_version index",
            format!("{ROW_CLOCK_ROWID}{ROW_TRIGGER}"),
        ),
        (
            "an append-only change log (rowid), no clock row",
            format!("{LOG}CREATE TRIGGER ti AFTER INSERT ON item BEGIN INSERT INTO c(tbl, id, clock, dbv, cols) VALUES (1, NEW.id, weft_clock(), weft_db_version(), 0); END;"),
        ),
        (
            "the WITHOUT ROWID layout + a running digest updated per row",
            format!("{ROW_CLOCK}{DBV_INDEX}{ROW_TRIGGER}{EAGER_DIGEST}"),
        ),
        (
            "one clock row per cell plus a key-mapping row (cr-sqlite's shape)",
            CELL_CLOCK.to_owned(),
        ),
    ]
}

/// The update candidates: each also records the inserts that fill the table (untimed), with
/// a rowid clock table where it has one.
fn update_layouts() -> Vec<(&'static str, String)> {
    let fixed = "CREATE TRIGGER tu AFTER UPDATE OF name, qty, price ON item BEGIN \
        UPDATE c SET clock = weft_clock(), dbv = weft_db_version() WHERE id = NEW.id; END;";
    let growing = "CREATE TRIGGER tu AFTER UPDATE OF name, qty, price ON item BEGIN \
        UPDATE c SET clock = weft_clock(), dbv = weft_db_version(), cells = zeroblob(30) WHERE id = NEW.id; END;";
    vec![
        (
            "a trigger that does nothing",
            "CREATE TRIGGER tu AFTER UPDATE OF name, qty, price ON item BEGIN SELECT 1; END;".to_owned(),
        ),
        (
            "clock row updated in place (fixed-size fields), no db_version index",
            format!("{ROW_CLOCK_ROWID}{ROW_TRIGGER}{fixed}"),
        ),
        (
            "clock row updated in place (fixed-size fields), db_version index",
            format!("{ROW_CLOCK_ROWID}{DBV_INDEX}{ROW_TRIGGER}{fixed}"),
        ),
        (
            "clock row grows by a 30-byte cells blob, no db_version index",
            format!("{ROW_CLOCK_ROWID}{ROW_TRIGGER}{growing}"),
        ),
        (
            "clock row grows by a 30-byte cells blob, db_version index (today's shape)",
            format!("{ROW_CLOCK_ROWID}{DBV_INDEX}{ROW_TRIGGER}{growing}"),
        ),
        (
            "an append-only change log (rowid), no clock row",
            format!("{LOG}CREATE TRIGGER tu AFTER UPDATE OF name, qty, price ON item BEGIN \
                INSERT INTO c(tbl, id, clock, dbv, cols) VALUES (1, NEW.id, weft_clock(), weft_db_version(), 4); END;"),
        ),
    ]
}
