//! The Rust side of the bindings' overhead benchmark (docs/benchmarks.md, "Bindings"): the
//! protocol of bindings/BENCH.md, run through weft-core directly (`lang=rust`) and through
//! weft-ffi's `Database` called from Rust (`lang=rust-ffi`, the surface without a foreign
//! language). `scripts/bench-bindings` runs it beside the Python and Kotlin runs.

use std::time::{Duration, Instant};
use weft_core::rusqlite::OptionalExtension;
use weft_core::Replica;
use weft_ffi::{Database, SqlValue};

const ROWS: i64 = 10_000;
const WARM_UP_CALLS: i64 = 2_000;
const ROUND_CALLS: i64 = 20_000;
const ROUNDS: usize = 5;
const SCHEMA: &str =
    "CREATE TABLE item(id INTEGER PRIMARY KEY NOT NULL, name TEXT, qty INTEGER NOT NULL DEFAULT 0)";
const INSERT: &str = "INSERT INTO item(id, name, qty) VALUES (?, ?, ?)";
const POINT_QUERY: &str = "SELECT name, qty FROM item WHERE id = ?";

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn report(lang: &str, measure: &str, value: f64, unit: &str) {
    println!("bench lang={lang} measure={measure} value={value:.3} unit={unit}");
}

fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1e3
}

/// weft-core directly: `Replica::write` for the insert, a cached statement for the query.
mod core_direct {
    use super::*;

    pub(super) fn fresh(path: &std::path::Path) -> Replica {
        let replica = Replica::open(path).unwrap();
        replica
            .write(|conn| Ok(conn.execute_batch(SCHEMA)?))
            .unwrap();
        replica.enable_crr("item").unwrap();
        replica
    }

    pub(super) fn insert(replica: &Replica) -> Duration {
        let started = Instant::now();
        replica
            .write(|conn| {
                let mut insert = conn.prepare_cached(INSERT)?;
                for id in 0..ROWS {
                    insert.execute((id, format!("item {id}"), id % 100))?;
                }
                Ok(())
            })
            .unwrap();
        started.elapsed()
    }

    pub(super) fn point_query(replica: &Replica, calls: i64) -> Duration {
        let conn = replica.connection();
        let started = Instant::now();
        for i in 0..calls {
            let row: Option<(String, i64)> = conn
                .prepare_cached(POINT_QUERY)
                .unwrap()
                .query_row([i % ROWS], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .unwrap();
            std::hint::black_box(row);
        }
        started.elapsed()
    }
}

/// weft-ffi's `Database`, as every binding calls it.
mod through_ffi {
    use super::*;
    use std::sync::Arc;

    pub(super) fn fresh(path: &std::path::Path) -> Arc<Database> {
        let db = Database::open(path.display().to_string()).unwrap();
        db.execute(SCHEMA.into(), vec![]).unwrap();
        db.enable_crr("item".into()).unwrap();
        db
    }

    pub(super) fn insert(db: &Database) -> Duration {
        let started = Instant::now();
        let tx = db.begin_transaction().unwrap();
        for id in 0..ROWS {
            tx.execute(
                INSERT.into(),
                vec![
                    SqlValue::Integer { value: id },
                    SqlValue::Text {
                        value: format!("item {id}"),
                    },
                    SqlValue::Integer { value: id % 100 },
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
        started.elapsed()
    }

    pub(super) fn insert_many(db: &Database) -> Duration {
        let started = Instant::now();
        let tx = db.begin_transaction().unwrap();
        let rows = (0..ROWS)
            .map(|id| {
                vec![
                    SqlValue::Integer { value: id },
                    SqlValue::Text {
                        value: format!("item {id}"),
                    },
                    SqlValue::Integer { value: id % 100 },
                ]
            })
            .collect();
        tx.execute_many(INSERT.into(), rows).unwrap();
        tx.commit().unwrap();
        started.elapsed()
    }

    pub(super) fn point_query(db: &Database, calls: i64) -> Duration {
        let started = Instant::now();
        for i in 0..calls {
            let rows = db
                .query(
                    POINT_QUERY.into(),
                    vec![SqlValue::Integer { value: i % ROWS }],
                )
                .unwrap();
            std::hint::black_box(rows);
        }
        started.elapsed()
    }
}

fn main() {
    let dir = tempfile::tempdir().unwrap();

    let inserts = (0..ROUNDS)
        .map(|round| {
            let replica = core_direct::fresh(&dir.path().join(format!("core-insert-{round}.db")));
            ms(core_direct::insert(&replica))
        })
        .collect();
    report("rust", "insert_10k", median(inserts), "ms");
    let replica = core_direct::fresh(&dir.path().join("core-query.db"));
    core_direct::insert(&replica);
    core_direct::point_query(&replica, WARM_UP_CALLS);
    let rounds = (0..ROUNDS)
        .map(|_| {
            core_direct::point_query(&replica, ROUND_CALLS).as_secs_f64() * 1e6 / ROUND_CALLS as f64
        })
        .collect();
    report("rust", "point_query", median(rounds), "us");

    let inserts = (0..ROUNDS)
        .map(|round| {
            let db = through_ffi::fresh(&dir.path().join(format!("ffi-insert-{round}.db")));
            ms(through_ffi::insert(&db))
        })
        .collect();
    report("rust-ffi", "insert_10k", median(inserts), "ms");
    let inserts = (0..ROUNDS)
        .map(|round| {
            let db = through_ffi::fresh(&dir.path().join(format!("ffi-many-{round}.db")));
            ms(through_ffi::insert_many(&db))
        })
        .collect();
    report("rust-ffi", "insert_10k_many", median(inserts), "ms");
    let db = through_ffi::fresh(&dir.path().join("ffi-query.db"));
    through_ffi::insert(&db);
    through_ffi::point_query(&db, WARM_UP_CALLS);
    let rounds = (0..ROUNDS)
        .map(|_| {
            through_ffi::point_query(&db, ROUND_CALLS).as_secs_f64() * 1e6 / ROUND_CALLS as f64
        })
        .collect();
    report("rust-ffi", "point_query", median(rounds), "us");
}
