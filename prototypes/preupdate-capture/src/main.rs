//! Records 100,000 inserts, then a first update of one column of each row, three ways in one
//! run: a plain table; Weft-shaped SQL triggers writing a clock table; and triggers off with
//! the preupdate hook capturing each row and prepared statements writing the same clock rows
//! before COMMIT. Each with and without a db_version index on the clock table. Trigger
//! functions return constants, as in `core/benches/layouts.rs`. Prints ratios to plain.

use libsqlite3_sys as ffi;
use rusqlite::config::DbConfig;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::Connection;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ROWS: i64 = 100_000;
const RUNS: usize = 5;

unsafe extern "C" {
    fn sqlite3_preupdate_hook(
        db: *mut ffi::sqlite3,
        callback: Option<PreupdateCallback>,
        arg: *mut c_void,
    ) -> *mut c_void;
    fn sqlite3_preupdate_old(
        db: *mut ffi::sqlite3,
        i: c_int,
        out: *mut *mut ffi::sqlite3_value,
    ) -> c_int;
    fn sqlite3_preupdate_new(
        db: *mut ffi::sqlite3,
        i: c_int,
        out: *mut *mut ffi::sqlite3_value,
    ) -> c_int;
    fn sqlite3_preupdate_count(db: *mut ffi::sqlite3) -> c_int;
}

type PreupdateCallback = unsafe extern "C" fn(
    *mut c_void,
    *mut ffi::sqlite3,
    c_int,
    *const c_char,
    *const c_char,
    i64,
    i64,
);

/// One captured row: the mask of changed columns (0 for an insert; every update here changes
/// `qty`), the rowid, the old values (which a real capture needs for the digest).
type Captured = Arc<Mutex<Vec<(u32, i64, Vec<Value>)>>>;

unsafe fn owned(value: *mut ffi::sqlite3_value) -> Value {
    unsafe {
        let bytes = |p: *const u8| {
            let n = ffi::sqlite3_value_bytes(value) as usize;
            if n == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(p, n).to_vec()
            }
        };
        match ffi::sqlite3_value_type(value) {
            ffi::SQLITE_INTEGER => Value::Integer(ffi::sqlite3_value_int64(value)),
            ffi::SQLITE_FLOAT => Value::Real(ffi::sqlite3_value_double(value)),
            ffi::SQLITE_TEXT => Value::Text(
                String::from_utf8_lossy(&bytes(ffi::sqlite3_value_text(value))).into_owned(),
            ),
            ffi::SQLITE_BLOB => Value::Blob(bytes(ffi::sqlite3_value_blob(value) as *const u8)),
            _ => Value::Null,
        }
    }
}

unsafe extern "C" fn capture(
    arg: *mut c_void,
    db: *mut ffi::sqlite3,
    op: c_int,
    _database: *const c_char,
    table: *const c_char,
    _old_rowid: i64,
    new_rowid: i64,
) {
    unsafe {
        let captured = &*(arg as *const Captured);
        if CStr::from_ptr(table).to_bytes() != b"item" {
            return;
        }
        let mut rows = captured.lock().expect("capture lock");
        match op {
            ffi::SQLITE_INSERT => rows.push((0, new_rowid, Vec::new())),
            ffi::SQLITE_UPDATE => {
                let count = sqlite3_preupdate_count(db);
                let (mut mask, mut old_values) = (0u32, Vec::with_capacity(count as usize));
                for i in 0..count {
                    let (mut old, mut new) = (std::ptr::null_mut(), std::ptr::null_mut());
                    sqlite3_preupdate_old(db, i, &mut old);
                    sqlite3_preupdate_new(db, i, &mut new);
                    let (old, new) = (owned(old), owned(new));
                    if old != new {
                        mask |= 1 << i;
                    }
                    old_values.push(old);
                }
                rows.push((mask, new_rowid, old_values));
            }
            _ => {}
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Recording {
    Plain,
    Triggers,
    Hook,
}

fn open(
    path: &std::path::Path,
    recording: Recording,
    index: bool,
    captured: &Captured,
) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .unwrap();
    let flags = FunctionFlags::SQLITE_UTF8;
    conn.create_scalar_function("weft_clock", 0, flags, |_| Ok(123_456_789i64))
        .unwrap();
    conn.create_scalar_function("weft_cells", -1, flags, |_| Ok(vec![1u8; 30]))
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, price REAL);",
    )
    .unwrap();
    if recording == Recording::Plain {
        return conn;
    }
    conn.execute_batch(
        "CREATE TABLE c(id INTEGER PRIMARY KEY, cl INTEGER, clock INTEGER, site INTEGER, dbv INTEGER, cells BLOB);
         CREATE TRIGGER ti AFTER INSERT ON item BEGIN
           INSERT INTO c VALUES (NEW.id, 1, weft_clock(), 0, 1, NULL) ON CONFLICT DO UPDATE SET cl = cl + 1; END;
         CREATE TRIGGER tu AFTER UPDATE OF name, qty, price ON item BEGIN
           UPDATE c SET clock = weft_clock(), dbv = 2, cells = weft_cells() WHERE id = NEW.id; END;",
    )
    .unwrap();
    if index {
        conn.execute_batch("CREATE INDEX c_dbv ON c(dbv)").unwrap();
    }
    if recording == Recording::Hook {
        let arg = Box::into_raw(Box::new(captured.clone())) as *mut c_void; // lives as long as the process
        unsafe { sqlite3_preupdate_hook(conn.handle(), Some(capture), arg) };
    }
    conn
}

/// Writes the captured rows' clock rows, as the triggers would have.
fn write_clock_rows(conn: &Connection, captured: &Captured) {
    let rows = std::mem::take(&mut *captured.lock().unwrap());
    let mut insert = conn
        .prepare_cached("INSERT INTO c VALUES (?1, 1, weft_clock(), 0, 1, NULL) ON CONFLICT DO UPDATE SET cl = cl + 1")
        .unwrap();
    let mut update = conn
        .prepare_cached(
            "UPDATE c SET clock = weft_clock(), dbv = 2, cells = weft_cells(?2) WHERE id = ?1",
        )
        .unwrap();
    for (mask, id, _old) in rows {
        if mask == 0 {
            insert.execute([id]).unwrap();
        } else {
            update.execute((id, mask)).unwrap();
        }
    }
}

fn write(conn: &Connection, recording: Recording, captured: &Captured, update: bool) -> Duration {
    let start = Instant::now();
    if recording == Recording::Hook {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)
            .unwrap();
    }
    conn.execute_batch("BEGIN").unwrap();
    if update {
        let mut statement = conn
            .prepare_cached("UPDATE item SET qty = ?2 WHERE id = ?1")
            .unwrap();
        for i in 0..ROWS {
            statement.execute((i, i * 7 + 1)).unwrap();
        }
    } else {
        let mut statement = conn
            .prepare_cached("INSERT INTO item VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for i in 0..ROWS {
            statement
                .execute((i, format!("item number {i}"), i * 3, i as f64 * 1.5))
                .unwrap();
        }
    }
    if recording == Recording::Hook {
        write_clock_rows(conn, captured);
    }
    conn.execute_batch("COMMIT").unwrap();
    if recording == Recording::Hook {
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, true)
            .unwrap();
    }
    start.elapsed()
}

fn measure(recording: Recording, index: bool, update: bool) -> f64 {
    let mut runs: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let dir = tempfile::tempdir().unwrap();
            let captured = Captured::default();
            let conn = open(&dir.path().join("x.db"), recording, index, &captured);
            if update {
                write(&conn, recording, &captured, false);
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                    .unwrap();
            }
            let took = write(&conn, recording, &captured, update);
            if recording != Recording::Plain {
                let clocked: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM c WHERE dbv = ?1",
                        [1 + i64::from(update)],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(clocked, ROWS, "every row recorded");
            }
            took
        })
        .collect();
    runs.sort();
    runs[RUNS / 2].as_secs_f64()
}

fn main() {
    println!("| {ROWS} rows, one transaction | db_version index | SQL triggers | preupdate hook, then clock rows before COMMIT |");
    println!("| --- | --- | --- | --- |");
    for update in [false, true] {
        let plain = measure(Recording::Plain, false, update);
        for index in [true, false] {
            let triggers = measure(Recording::Triggers, index, update);
            let hook = measure(Recording::Hook, index, update);
            println!(
                "| {} | {} | {:.2}x | {:.2}x |",
                if update {
                    "first UPDATE of one column"
                } else {
                    "INSERT"
                },
                if index { "yes" } else { "no" },
                triggers / plain,
                hook / plain
            );
        }
    }
}
