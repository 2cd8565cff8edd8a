//! Which tables can be replicated, migrations, and changes for schema this replica lacks.

mod common;
use common::*;
use weft_core::{Error, Value};

fn refusal(sql: &str, table: &str) -> String {
    let r = replica_with_clock(1_000);
    exec(&r.replica, sql);
    match r.replica.enable_crr(table) {
        Err(e @ Error::NotReplicable { .. }) => e.to_string(),
        other => panic!("expected a refusal for {sql}, got {other:?}"),
    }
}

#[test]
fn tables_that_cannot_merge_are_refused_with_the_reason() {
    assert!(refusal("CREATE TABLE t(a, b)", "t").contains("PRIMARY KEY"));
    assert!(refusal("CREATE TABLE t(a TEXT PRIMARY KEY, b)", "t").contains("nullable"));
    assert!(refusal(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT UNIQUE)",
        "t"
    )
    .contains("UNIQUE"));
    assert!(refusal(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT); CREATE UNIQUE INDEX te ON t(e)",
        "t"
    )
    .contains("UNIQUE"));
    assert!(refusal(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        "t"
    )
    .contains("DEFAULT"));
    assert!(refusal("CREATE TABLE t(id INTEGER PRIMARY KEY)", "missing").contains("no such table"));
    for collated in [
        "CREATE TABLE t(k TEXT COLLATE NOCASE PRIMARY KEY NOT NULL, v)",
        "CREATE TABLE t(k TEXT NOT NULL, j INTEGER NOT NULL, v, PRIMARY KEY(k COLLATE RTRIM, j)) WITHOUT ROWID",
    ] {
        let reason = refusal(collated, "t");
        assert!(reason.contains("collation") && reason.contains("\"k\""), "{reason}");
    }
    assert!(
        refusal("CREATE TABLE \"we ird\"(id INTEGER PRIMARY KEY)", "we ird")
            .contains("letters, digits")
    );
    assert!(refusal("CREATE TABLE t(id INTEGER PRIMARY KEY, \"x-y\" TEXT)", "t").contains("x-y"));
}

#[test]
fn composite_keys_without_rowid_and_repeated_enable_work() {
    let a = replica_with_clock(1_000);
    let b = replica_with_clock(1_000);
    for r in [&a, &b] {
        exec(&r.replica, "CREATE TABLE m(room TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT, PRIMARY KEY(room, seq)) WITHOUT ROWID");
        r.replica.enable_crr("m").unwrap();
        r.replica.enable_crr("m").unwrap();
    }
    exec(
        &a.replica,
        "INSERT INTO m VALUES ('x', 1, 'hi'), ('x', 2, 'there'), ('y', 1, 'other')",
    );
    exec(
        &a.replica,
        "UPDATE m SET body = 'HI' WHERE room = 'x' AND seq = 1",
    );
    sync_one_way(&a.replica, &b.replica);
    let all = "SELECT room, seq, body FROM m ORDER BY room, seq";
    assert_eq!(rows(&a.replica, all), rows(&b.replica, all));
    assert_eq!(
        rows(&b.replica, all)[0],
        vec![
            Value::Text("x".into()),
            Value::Integer(1),
            Value::Text("HI".into())
        ]
    );
    assert_eq!(a.replica.digest().unwrap(), b.replica.digest().unwrap());
}

#[test]
fn existing_rows_are_backfilled() {
    let a = replica_with_clock(1_000);
    let b = replica_with_clock(1_000);
    exec(&a.replica, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'old'), (2, 'older')");
    a.replica.enable_crr("t").unwrap();
    exec(&b.replica, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
    b.replica.enable_crr("t").unwrap();
    sync_one_way(&a.replica, &b.replica);
    assert_eq!(rows(&b.replica, "SELECT id, v FROM t ORDER BY id").len(), 2);
}

#[test]
fn a_relay_without_schema_holds_changes_and_materialises_them_later() {
    let a = replica_with_clock(1_000);
    let relay = replica_with_clock(1_000);
    let c = replica_with_clock(1_000);
    for r in [&a, &c] {
        exec(
            &r.replica,
            "CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)",
        );
        r.replica.enable_crr("note").unwrap();
    }
    exec(
        &a.replica,
        "INSERT INTO note VALUES (1, 'one'), (2, 'two'); DELETE FROM note WHERE id = 2",
    );
    sync_one_way(&a.replica, &relay.replica);
    assert!(relay.replica.info().unwrap().relayed_registers > 0);
    assert_eq!(relay.replica.digest().unwrap(), a.replica.digest().unwrap());
    sync_one_way(&relay.replica, &c.replica);
    assert_eq!(c.replica.digest().unwrap(), a.replica.digest().unwrap());
    assert_eq!(
        rows(&c.replica, "SELECT id, body FROM note"),
        vec![vec![Value::Integer(1), Value::Text("one".into())]]
    );
    // The relay learns the schema: its held changes land in the table, digest unchanged.
    exec(
        &relay.replica,
        "CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)",
    );
    relay.replica.enable_crr("note").unwrap();
    assert_eq!(relay.replica.info().unwrap().relayed_registers, 0);
    assert_eq!(
        rows(&relay.replica, "SELECT id, body FROM note"),
        vec![vec![Value::Integer(1), Value::Text("one".into())]]
    );
    assert_eq!(relay.replica.digest().unwrap(), a.replica.digest().unwrap());
    assert_eq!(
        relay.replica.digest().unwrap(),
        relay.replica.digest_from_scratch().unwrap()
    );
}

#[test]
fn a_new_column_is_relayed_by_old_replicas_and_lands_after_their_migration() {
    let new = replica_with_clock(1_000);
    let old = replica_with_clock(1_000);
    let third = replica_with_clock(1_000);
    for r in [&new, &old, &third] {
        exec(&r.replica, "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT)");
        r.replica.enable_crr("t").unwrap();
    }
    exec(&old.replica, "INSERT INTO t VALUES (1, 'before')");
    sync_both(&old.replica, &new.replica);
    exec(
        &new.replica,
        "ALTER TABLE t ADD COLUMN colour TEXT DEFAULT 'none'",
    );
    new.replica.enable_crr("t").unwrap();
    exec(
        &new.replica,
        "UPDATE t SET colour = 'red' WHERE id = 1; INSERT INTO t VALUES (2, 'new row', 'blue')",
    );
    sync_one_way(&new.replica, &old.replica);
    assert_eq!(old.replica.digest().unwrap(), new.replica.digest().unwrap());
    assert_eq!(
        rows(&old.replica, "SELECT id, a FROM t ORDER BY id").len(),
        2
    );
    // The old replica relays the column to a third one that already migrated.
    exec(
        &third.replica,
        "ALTER TABLE t ADD COLUMN colour TEXT DEFAULT 'none'",
    );
    third.replica.enable_crr("t").unwrap();
    sync_one_way(&old.replica, &third.replica);
    let with_colour = "SELECT id, a, colour FROM t ORDER BY id";
    assert_eq!(
        rows(&third.replica, with_colour),
        rows(&new.replica, with_colour)
    );
    // Then the old one migrates: the held cells land, nothing changes in the digest.
    let before = old.replica.digest().unwrap();
    exec(
        &old.replica,
        "ALTER TABLE t ADD COLUMN colour TEXT DEFAULT 'none'",
    );
    old.replica.enable_crr("t").unwrap();
    assert_eq!(
        rows(&old.replica, with_colour),
        rows(&new.replica, with_colour)
    );
    assert_eq!(old.replica.digest().unwrap(), before);
    assert_eq!(
        old.replica.digest().unwrap(),
        old.replica.digest_from_scratch().unwrap()
    );
    assert_eq!(old.replica.info().unwrap().relayed_registers, 0);
}

/// Rows whose clock is stored against the table's column set (all at one stamp, or some
/// columns updated later: the two-stamp form) list their registers before a column joins, so
/// the new column does not seem to have been written at an old stamp.
#[test]
fn rows_updated_in_some_columns_keep_exactly_their_registers_when_a_column_is_added() {
    let r = replica_with_clock(1_000);
    let peer = replica_with_clock(1_000);
    for replica in [&r.replica, &peer.replica] {
        exec(
            replica,
            "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT)",
        );
        replica.enable_crr("t").unwrap();
    }
    exec(
        &r.replica,
        "INSERT INTO t VALUES (1, 'a', 'b'), (2, 'a', 'b'), (3, 'a', 'b')",
    );
    r.clock.set(2_000);
    exec(&r.replica, "UPDATE t SET a = 'by sql' WHERE id = 1");
    r.replica
        .write(|conn| {
            conn.execute("UPDATE t SET b = 'by write' WHERE id = 2", [])?;
            Ok(())
        })
        .unwrap();
    let registers = |replica: &weft_core::Replica| -> Vec<(String, Option<String>)> {
        let mut found: Vec<_> = all_changes(replica, 0)
            .into_iter()
            .map(|c| (format!("{:?}", c.pk), c.column.map(|c| c.to_string())))
            .collect();
        found.sort();
        found
    };
    let before = registers(&r.replica);
    assert_eq!(before.len(), 9, "{before:?}");
    exec(&r.replica, "ALTER TABLE t ADD COLUMN c TEXT DEFAULT 'none'");
    r.replica.enable_crr("t").unwrap();
    assert_eq!(registers(&r.replica), before);
    assert_eq!(
        r.replica.digest().unwrap(),
        r.replica.digest_from_scratch().unwrap()
    );
    // The rows stay the same rows: a later update of the new column adds one register.
    r.clock.set(3_000);
    exec(&r.replica, "UPDATE t SET c = 'set' WHERE id = 1");
    assert_eq!(registers(&r.replica).len(), 10);
    exec(
        &peer.replica,
        "ALTER TABLE t ADD COLUMN c TEXT DEFAULT 'none'",
    );
    peer.replica.enable_crr("t").unwrap();
    sync_one_way(&r.replica, &peer.replica);
    assert_eq!(peer.replica.digest().unwrap(), r.replica.digest().unwrap());
    let all = "SELECT id, a, b, c FROM t ORDER BY id";
    assert_eq!(rows(&peer.replica, all), rows(&r.replica, all));
}

#[test]
fn kv_get_put_delete_scan_and_replicate() {
    let a = replica_with_clock(1_000);
    let b = replica_with_clock(1_000);
    let kv = a.replica.kv();
    kv.put("user/1", &Value::Text("ada".into())).unwrap();
    kv.put("user/2", &Value::Integer(2)).unwrap();
    kv.put("userx", &Value::Blob(vec![1, 2])).unwrap();
    kv.put("user/1", &Value::Text("ada lovelace".into()))
        .unwrap();
    assert_eq!(
        kv.get("user/1").unwrap(),
        Some(Value::Text("ada lovelace".into()))
    );
    assert_eq!(kv.get("nobody").unwrap(), None);
    assert!(kv.delete("user/2").unwrap());
    assert!(!kv.delete("user/2").unwrap());
    sync_one_way(&a.replica, &b.replica);
    let scanned = b.replica.kv().scan("user/").unwrap();
    assert_eq!(
        scanned,
        vec![("user/1".to_owned(), Value::Text("ada lovelace".into()))]
    );
    assert_eq!(b.replica.kv().scan("").unwrap().len(), 2);
}
