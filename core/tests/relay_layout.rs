//! The relay's storage: in db_version order since file format 2, with older files upgraded
//! when opened.

mod common;

use common::{all_changes, replica_with_clock, TestReplica};
use weft_core::test_support::{HashRange, RowIndex};
use weft_core::Replica;

/// A replica with table `t(id, a, b)` holding row 1, whose `b` was updated after the insert:
/// its registers carry two db_versions.
fn source() -> TestReplica {
    let r = replica_with_clock(1_000);
    let conn = r.replica.connection();
    conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT)")
        .unwrap();
    r.replica.enable_crr("t").unwrap();
    conn.execute("INSERT INTO t VALUES (1, 'a', 'b'), (2, 'x', 'y')", [])
        .unwrap();
    r.clock.set(2_000);
    conn.execute("UPDATE t SET b = 'b2' WHERE id = 1", [])
        .unwrap();
    r
}

fn index_rows(replica: &Replica, rows_max: usize) -> Option<Vec<(u64, [u8; 16])>> {
    RowIndex::build(replica, rows_max).unwrap().map(|index| {
        index
            .rows(HashRange::ALL)
            .map(|row| (row.hash, row.fingerprint.to_bytes()))
            .collect()
    })
}

#[test]
fn a_row_relayed_in_several_runs_is_indexed_and_digested_as_one_row() {
    let source = source();
    let changes = all_changes(&source.replica, 0);
    // One relay-only replica receives the row's registers one by one (each its own
    // db_version, so a row in several runs of the relay), the other all at once.
    let piecemeal = replica_with_clock(1_000);
    for change in &changes {
        piecemeal
            .replica
            .apply_changes(std::slice::from_ref(change))
            .unwrap();
    }
    let whole = replica_with_clock(1_000);
    whole.replica.apply_changes(&changes).unwrap();

    let expected = index_rows(&whole.replica, 10).unwrap();
    assert_eq!(expected.len(), 2, "two rows");
    assert_eq!(index_rows(&piecemeal.replica, 10).unwrap(), expected);
    // Parts fill the bound (twice the rows) and are folded before the index gives up.
    assert_eq!(index_rows(&piecemeal.replica, 2).unwrap(), expected);
    assert_eq!(
        index_rows(&piecemeal.replica, 1),
        None,
        "two rows exceed one"
    );
    for r in [&piecemeal, &whole] {
        assert_eq!(
            r.replica.digest().unwrap(),
            source.replica.digest().unwrap()
        );
        assert_eq!(
            r.replica.digest_from_scratch().unwrap(),
            r.replica.digest().unwrap()
        );
    }
}

#[test]
fn a_file_of_format_1_is_upgraded_when_opened_and_keeps_every_relayed_change() {
    let source = source();
    let relay = replica_with_clock(1_000);
    relay
        .replica
        .apply_changes(&all_changes(&source.replica, 0))
        .unwrap();
    let before = all_changes(&relay.replica, 0);
    let digest = relay.replica.digest().unwrap();
    // Put the relay back into format 1's layout, as an older build wrote it.
    relay
        .replica
        .connection()
        .execute_batch(
            "CREATE TABLE old_relay(
               tbl TEXT NOT NULL, pk BLOB NOT NULL, col TEXT NOT NULL,
               cl INTEGER NOT NULL, clock INTEGER NOT NULL, site INTEGER NOT NULL, db_version INTEGER NOT NULL, value,
               PRIMARY KEY(tbl, pk, col)) WITHOUT ROWID;
             INSERT INTO old_relay SELECT * FROM weft_relay;
             DROP TABLE weft_relay;
             ALTER TABLE old_relay RENAME TO weft_relay;
             CREATE INDEX weft_relay_db_version ON weft_relay(db_version);
             DELETE FROM weft_meta WHERE key = 'format';",
        )
        .unwrap();
    let path = relay.dir.path().join("replica.db");
    let TestReplica { replica, dir, .. } = relay;
    drop(replica);

    let reopened = Replica::open(&path).unwrap();
    let layout: Vec<String> = reopened
        .connection()
        .prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'weft_relay' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !layout.iter().any(|name| name == "weft_relay_db_version"),
        "{layout:?}"
    );
    assert!(
        layout.iter().any(|name| name == "weft_relay_key"),
        "{layout:?}"
    );
    assert_eq!(all_changes(&reopened, 0), before);
    assert_eq!(reopened.digest().unwrap(), digest);
    assert_eq!(reopened.digest_from_scratch().unwrap(), digest);
    let integrity: String = reopened
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(dir);
}

#[test]
fn a_file_of_a_newer_format_is_refused_not_rewritten() {
    let r = replica_with_clock(1_000);
    r.replica
        .connection()
        .execute(
            "INSERT OR REPLACE INTO weft_meta(key, value) VALUES ('format', 99)",
            [],
        )
        .unwrap();
    let path = r.dir.path().join("replica.db");
    let TestReplica { replica, dir, .. } = r;
    drop(replica);
    let error = Replica::open(&path)
        .err()
        .expect("a newer format is refused");
    assert!(error.to_string().contains("newer weft"), "{error}");
    drop(dir);
}

/// Two replicas of table `t(id, a, x)`, one of which lacks column x (so keeps x in its relay).
fn full_and_behind() -> (TestReplica, TestReplica) {
    let full = replica_with_clock(1_000);
    let behind = replica_with_clock(1_000);
    full.replica
        .connection()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, x TEXT)")
        .unwrap();
    full.replica.enable_crr("t").unwrap();
    behind
        .replica
        .connection()
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT)")
        .unwrap();
    behind.replica.enable_crr("t").unwrap();
    (full, behind)
}

#[test]
fn a_register_over_a_stale_one_of_an_older_incarnation_replaces_it() {
    // The replica lacks column x, so x stays in its relay; deleting the row locally leaves
    // that register there at the old causal length. A re-insert's x must replace it.
    let (full, behind) = full_and_behind();
    full.replica
        .connection()
        .execute("INSERT INTO t VALUES (1, 'a', 'v')", [])
        .unwrap();
    common::sync_one_way(&full.replica, &behind.replica);
    behind.clock.set(2_000);
    behind
        .replica
        .connection()
        .execute("DELETE FROM t WHERE id = 1", [])
        .unwrap();
    common::sync_one_way(&behind.replica, &full.replica);
    full.clock.set(3_000);
    full.replica
        .connection()
        .execute("INSERT INTO t VALUES (1, 'a2', 'w')", [])
        .unwrap();
    common::sync_one_way(&full.replica, &behind.replica);
    common::sync_one_way(&behind.replica, &full.replica);
    assert_eq!(
        behind.replica.digest().unwrap(),
        full.replica.digest().unwrap()
    );
    let x: String = behind
        .replica
        .connection()
        .query_row(
            "SELECT value FROM weft_relay WHERE tbl = 't' AND col = 'x'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(x, "w");
}

#[test]
fn a_local_delete_takes_registers_relayed_for_the_row_out_of_the_digest() {
    // The replica lacks column x, so x stays in its relay. Deleting the row locally ends that
    // register's incarnation: a replica that has x counts only the tombstone, and so must this one.
    let (full, behind) = full_and_behind();
    full.replica
        .connection()
        .execute_batch("INSERT INTO t VALUES (1, 'a', 'v'); INSERT INTO t VALUES (2, 'b', 'kept')")
        .unwrap();
    common::sync_one_way(&full.replica, &behind.replica);
    assert_eq!(
        behind.replica.digest().unwrap(),
        full.replica.digest().unwrap()
    );
    behind.clock.set(2_000);
    behind
        .replica
        .connection()
        .execute("DELETE FROM t WHERE id = 1", [])
        .unwrap();
    common::sync_one_way(&behind.replica, &full.replica);
    let expected = full.replica.digest().unwrap();
    assert_eq!(expected, full.replica.digest_from_scratch().unwrap());
    let relayed = |replica: &Replica| -> Vec<(Vec<u8>, String)> {
        replica
            .connection()
            .prepare(
                "SELECT pk, value FROM weft_relay WHERE tbl = 't' AND col = 'x' ORDER BY value",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(relayed(&behind.replica).len(), 2);

    // Inside the caller's transaction the fold only computes: nothing is deleted.
    behind.replica.connection().execute_batch("BEGIN").unwrap();
    assert_eq!(behind.replica.digest().unwrap(), expected);
    behind.replica.connection().execute_batch("COMMIT").unwrap();
    assert_eq!(relayed(&behind.replica).len(), 2);

    // A stored fold drops the dead register, and only that one.
    assert_eq!(behind.replica.digest().unwrap(), expected);
    let left = relayed(&behind.replica);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, "kept");
    assert_eq!(behind.replica.digest_from_scratch().unwrap(), expected);
    assert_eq!(behind.replica.digest().unwrap(), expected);
}
