//! Bad input gets a clear error and loses nothing.

mod common;
use common::*;
use weft_core::{bundle, Change, Cursor, Error, SiteId, Value};

fn strict_replica() -> TestReplica {
    let r = replica_with_clock(1_000);
    exec(
        &r.replica,
        "CREATE TABLE s(id INTEGER PRIMARY KEY, n INTEGER) STRICT",
    );
    r.replica.enable_crr("s").unwrap();
    exec(&r.replica, "INSERT INTO s VALUES (1, 10)");
    r
}

fn change(table: &str, pk: i64, column: Option<&str>, value: Value, cl: u64) -> Change {
    Change {
        table: table.into(),
        pk: vec![Value::Integer(pk)],
        column: column.map(Into::into),
        value,
        clock: 5_000 << 16,
        site: SiteId([7; 16]),
        cl,
        db_version: 1,
    }
}

fn assert_untouched(r: &TestReplica, digest: weft_core::Digest) {
    assert_eq!(r.replica.digest().unwrap(), digest);
    assert_eq!(
        rows(&r.replica, "SELECT id, n FROM s"),
        vec![vec![Value::Integer(1), Value::Integer(10)]]
    );
    let check: String = r
        .replica
        .connection()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_value_a_strict_column_refuses_fails_the_whole_batch() {
    let r = strict_replica();
    let digest = r.replica.digest().unwrap();
    let batch = vec![
        change("s", 2, None, Value::Null, 1),
        change("s", 2, Some("n"), Value::Integer(5), 1),
        change("s", 3, None, Value::Null, 1),
        change("s", 3, Some("n"), Value::Text("not a number".into()), 1),
    ];
    let error = r.replica.apply_changes(&batch).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("cannot store TEXT value in INTEGER column"),
        "{error}"
    );
    assert_untouched(&r, digest);
    // The replica reopens and keeps working.
    let path = r.replica.path().to_path_buf();
    drop(r.replica);
    let reopened = weft_core::Replica::open(&path).unwrap();
    assert_eq!(reopened.digest().unwrap(), digest);
}

#[test]
fn changes_that_break_the_rules_are_refused_before_anything_is_written() {
    let r = strict_replica();
    let digest = r.replica.digest().unwrap();
    let cases = [
        (
            change("s", 2, Some("n"), Value::Integer(1), 2),
            "even causal length",
        ),
        (
            change("s\"; DROP TABLE s; --", 2, None, Value::Null, 1),
            "plain identifier",
        ),
        (
            change("s", 2, Some("n; x"), Value::Integer(1), 1),
            "plain identifier",
        ),
        (
            change("s", 2, None, Value::Integer(3), 1),
            "carries a value",
        ),
        (change("s", 2, None, Value::Null, 0), "causal length 0"),
        (
            Change {
                pk: vec![],
                ..change("s", 2, None, Value::Null, 1)
            },
            "empty primary key",
        ),
        (
            Change {
                pk: vec![Value::Integer(1), Value::Integer(2)],
                ..change("s", 2, None, Value::Null, 1)
            },
            "primary key has 2 values",
        ),
    ];
    for (bad, reason) in cases {
        let batch = vec![change("s", 9, None, Value::Null, 1), bad];
        let error = r.replica.apply_changes(&batch).unwrap_err();
        assert!(matches!(error, Error::InvalidChange { .. }), "{error:?}");
        assert!(
            error.to_string().contains(reason),
            "{error} should mention {reason}"
        );
        assert_untouched(&r, digest);
    }
}

#[test]
fn a_batch_over_the_limit_is_refused_by_name() {
    let r = strict_replica();
    let max = r.replica.limits().changes_per_batch_max;
    let batch: Vec<Change> = (0..=max as i64)
        .map(|i| change("s", 100 + i, None, Value::Null, 1))
        .collect();
    let error = r.replica.apply_changes(&batch).unwrap_err();
    assert!(
        error.to_string().contains("changes_per_batch_max"),
        "{error}"
    );
}

#[test]
fn clocks_far_in_the_future_are_accepted_and_reported() {
    let r = strict_replica();
    let day_ahead = (1_000 + 86_400_000u64) << 16;
    let batch = vec![Change {
        clock: day_ahead,
        ..change("s", 4, None, Value::Null, 1)
    }];
    assert_eq!(r.replica.apply_changes(&batch).unwrap().applied, 1);
    assert_eq!(r.replica.info().unwrap().far_future_clocks, 1);
    // Local writes still beat what this replica has seen.
    exec(&r.replica, "UPDATE s SET n = 11 WHERE id = 4");
    let mine = all_changes(&r.replica, 0)
        .into_iter()
        .find(|c| c.column.as_deref() == Some("n") && c.pk == vec![Value::Integer(4)])
        .unwrap();
    assert!(mine.clock > day_ahead);
}

fn exported(r: &TestReplica) -> Vec<u8> {
    let mut bytes = Vec::new();
    bundle::export(&r.replica, 0, &mut bytes, |_| {}).unwrap();
    bytes
}

fn import(r: &TestReplica, bytes: &[u8]) -> weft_core::Result<bundle::BundleSummary> {
    bundle::import(&r.replica, || Ok(bytes), |_| {})
}

#[test]
fn bundles_move_everything_and_import_twice_changes_nothing() {
    let a = strict_replica();
    exec(
        &a.replica,
        "INSERT INTO s VALUES (2, 20), (3, 30); DELETE FROM s WHERE id = 3",
    );
    let b = strict_replica();
    let bytes = exported(&a);
    let first = import(&b, &bytes).unwrap();
    assert!(first.applied > 0);
    let digest = b.replica.digest().unwrap();
    let second = import(&b, &bytes).unwrap();
    assert_eq!(second.applied, 0);
    assert_eq!(b.replica.digest().unwrap(), digest);
    let back = exported(&b);
    import(&a, &back).unwrap();
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
}

#[test]
fn truncated_corrupted_or_garbled_bundles_are_refused_whole() {
    let a = strict_replica();
    exec(&a.replica, "INSERT INTO s VALUES (2, 20), (3, 30)");
    let bytes = exported(&a);
    let b = strict_replica();
    let digest = b.replica.digest().unwrap();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let mut garbled = b"WEFTBNDL\x01".to_vec();
    let frame = [0x93u8, 0xc1, 0xc1, 0xc1]; // an array of three never-used bytes
    garbled.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    garbled.extend_from_slice(&frame);
    garbled.extend_from_slice(&0u32.to_be_bytes());
    garbled.extend_from_slice(&3u64.to_be_bytes());
    let hash = blake3::hash(&garbled);
    garbled.extend_from_slice(hash.as_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", bytes[..bytes.len() - 10].to_vec(), "truncated"),
        ("cut in a frame", bytes[..20].to_vec(), "truncated"),
        ("flipped byte", flipped, ""),
        (
            "not a bundle",
            b"hello world, not a bundle".to_vec(),
            "magic",
        ),
        ("garbled frame", garbled, "does not decode"),
    ];
    for (what, bad, reason) in cases {
        let error = import(&b, &bad).unwrap_err();
        assert!(
            matches!(error, Error::InvalidBundle(_) | Error::InvalidChange { .. }),
            "{what}: {error:?}"
        );
        assert!(error.to_string().contains(reason), "{what}: {error}");
        assert_untouched(&b, digest);
    }
}

#[test]
fn a_bundle_whose_change_breaks_the_schema_applies_nothing() {
    let a = replica_with_clock(1_000);
    exec(&a.replica, "CREATE TABLE s(id INTEGER PRIMARY KEY, n)");
    a.replica.enable_crr("s").unwrap();
    exec(
        &a.replica,
        "INSERT INTO s VALUES (5, 'text where the other side wants integers')",
    );
    let bytes = {
        let mut out = Vec::new();
        bundle::export(&a.replica, 0, &mut out, |_| {}).unwrap();
        out
    };
    let b = strict_replica();
    let digest = b.replica.digest().unwrap();
    assert!(import(&b, &bytes).is_err());
    assert_untouched(&b, digest);
}

#[test]
fn reading_in_tiny_batches_and_resuming_from_a_saved_cursor_misses_nothing() {
    let r = replica_with_clock(1_000);
    exec(&r.replica, "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT); CREATE TABLE u(k TEXT PRIMARY KEY NOT NULL, v)");
    r.replica.enable_crr("t").unwrap();
    r.replica.enable_crr("u").unwrap();
    exec(&r.replica, "BEGIN; INSERT INTO t VALUES (1,'a','b'), (2,'a','b'), (3,'a','b'); INSERT INTO u VALUES ('x', 1), ('y', 2); COMMIT");
    let middle = r.replica.db_version().unwrap();
    // Rows move to later versions while older registers stay behind in them.
    exec(&r.replica, "UPDATE t SET a = 'A' WHERE id = 1; UPDATE u SET v = 3 WHERE k = 'x'; INSERT INTO t VALUES (4, 'd', 'd')");
    let mut everything = all_changes(&r.replica, 0);
    let sort = |c: &mut Vec<Change>| c.sort_by(|x, y| format!("{x:?}").cmp(&format!("{y:?}")));
    sort(&mut everything);
    for max in [1usize, 2, 3, 7] {
        let mut got = Vec::new();
        let mut cursor = Cursor::since(0);
        for round in 0.. {
            assert!(round < 100, "reading must end");
            let batch = r.replica.changes(&cursor, max).unwrap();
            assert!(
                batch.changes.len() <= max.max(3),
                "a batch holds at most max changes (or one row)"
            );
            got.extend(batch.changes);
            // Save and restore the cursor, as a reconnecting peer would.
            cursor = rmp_serde::from_slice(&rmp_serde::to_vec(&batch.next).unwrap()).unwrap();
            if batch.done {
                break;
            }
            assert_eq!(
                cursor.complete_through(),
                0,
                "nothing is complete until the read is"
            );
        }
        sort(&mut got);
        got.dedup();
        assert_eq!(got, everything, "batches of {max}");
        assert_eq!(cursor.complete_through(), r.replica.db_version().unwrap());
    }
    // From the middle: the changes after it, including the newer cells of older rows.
    let later = all_changes(&r.replica, middle);
    assert!(later.iter().all(|c| c.db_version > middle));
    assert_eq!(
        later.len(),
        1 + 1 + 3,
        "two single-cell updates and one insert of three registers"
    );
}

#[test]
fn an_empty_path_is_refused_rather_than_opening_a_temporary_database() {
    let error = weft_core::Replica::open("")
        .err()
        .expect("an empty path must be refused");
    assert!(error.to_string().contains("empty path"), "{error}");
}

#[test]
fn weft_sql_functions_called_by_hand_with_wrong_arguments_fail_cleanly() {
    let r = strict_replica();
    let conn = r.replica.connection();
    for (sql, expected) in [
        ("SELECT weft_row_hash()", "needs argument 1"),
        ("SELECT weft_row_hash('s', 5)", "needs argument 3"),
        (
            "SELECT weft_row_hash('s', 1, 1, 1, 1, 0, NULL, x'01', 'n')",
            "needs argument 10",
        ),
        ("SELECT weft_tombstone_hash()", "needs argument 1"),
        (
            "SELECT weft_cells_update(NULL, 1, 0, 1, 2, 2, x'0102')",
            "needs argument 8",
        ),
        (
            "SELECT weft_cells_update(x'ff', 1, 0, 1, 2, 2, x'01', 1)",
            "clock cells end inside a number",
        ),
    ] {
        let error = conn
            .query_row(sql, [], |row| row.get::<_, rusqlite::types::Value>(0))
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains(expected), "{sql}: {text}");
        assert!(!text.contains("unwinding panic"), "{sql} panicked");
    }
    // The replica is unharmed.
    assert_eq!(
        r.replica.digest().unwrap(),
        r.replica.digest_from_scratch().unwrap()
    );
}
