//! Local listeners on real replica files: a callback per committed transaction (local writes
//! on another connection, merges), and reactive queries that re-run when their tables change.

use std::sync::mpsc;
use std::time::Duration;
use weft_client::events::{build_event, value_from_json, value_to_json, BucketChange};
use weft_client::{on_change_event, reactive_query, Event, ListenOptions, Op, QueryResult};
use weft_core::blobs::{LocalBlobs, BUCKET_TABLE};
use weft_core::{Replica, Value};

const WAIT: Duration = Duration::from_secs(20);

fn replica(dir: &std::path::Path, name: &str) -> Replica {
    let replica = Replica::open(dir.join(format!("{name}.db"))).unwrap();
    replica
        .connection()
        .execute_batch(
            "CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT, data BLOB);
             CREATE TABLE tag(a TEXT NOT NULL, b INTEGER NOT NULL, PRIMARY KEY(a, b)) WITHOUT ROWID;
             CREATE TABLE other(id INTEGER PRIMARY KEY, x INTEGER)",
        )
        .unwrap();
    for table in ["note", "tag", "other"] {
        replica.enable_crr(table).unwrap();
    }
    replica
}

#[test]
fn a_listener_sees_every_transaction_local_and_merged() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = replica(dir.path(), "laptop");
    let phone = replica(dir.path(), "phone");
    let (sender, events) = mpsc::channel::<Event>();
    let _subscription = on_change_event(laptop.path(), ListenOptions::default(), move |event| {
        let _ = sender.send(event.clone());
    })
    .unwrap();
    let conn = laptop.connection();
    let mut got = Vec::new();
    // One write, then its event: an event read long after its commit holds only what of it
    // is still current (docs/events.md).
    for statement in [
        "INSERT INTO note VALUES (1, 'a', x'00ff'), (2, 'b', NULL)",
        "UPDATE note SET body = 'a2' WHERE id = 1",
        "DELETE FROM note WHERE id = 2",
        "INSERT INTO tag VALUES ('x', 9007199254740993)",
    ] {
        conn.execute(statement, []).unwrap();
        got.push(events.recv_timeout(WAIT).expect("an event per transaction"));
    }
    phone
        .connection()
        .execute("INSERT INTO note VALUES (3, 'from the phone', NULL)", [])
        .unwrap();
    let since = laptop.db_version().unwrap();
    for batch in phone.changes_since(0) {
        laptop.apply_changes(&batch.unwrap().changes).unwrap();
    }
    got.push(events.recv_timeout(WAIT).expect("an event for the merge"));
    let versions: Vec<u64> = got.iter().map(|e| e.db_version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
    let local = laptop.site_id().to_hex();
    assert_eq!(got[0].database, "laptop");
    assert_eq!(got[0].origin.as_deref(), Some(local.as_str()));
    assert_eq!(got[0].changes.len(), 2);
    assert_eq!(got[0].changes[0].op, Op::Insert);
    assert_eq!(got[0].changes[0].pk["id"], 1);
    assert_eq!(got[0].changes[0].columns["data"]["$blob"], "AP8=");
    assert_eq!(got[1].changes[0].op, Op::Update);
    assert_eq!(
        got[1].changes[0].columns.keys().collect::<Vec<_>>(),
        vec!["body"]
    );
    assert_eq!(got[2].changes[0].op, Op::Delete);
    assert!(got[2].changes[0].columns.is_empty());
    assert_eq!(got[3].changes[0].pk["a"], "x");
    assert_eq!(
        got[3].changes[0].pk["b"]["$int"], "9007199254740993",
        "past 2^53 an integer is a string"
    );
    let merged = &got[4];
    assert!(merged.db_version > since);
    assert_eq!(merged.origin, Some(phone.site_id().to_hex()));
    assert_eq!(merged.changes[0].columns["body"], "from the phone");
    assert!(events.recv_timeout(Duration::from_millis(200)).is_err());
}

#[test]
fn a_reactive_query_reruns_when_a_table_it_reads_changes() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = replica(dir.path(), "laptop");
    let (sender, results) = mpsc::channel::<QueryResult>();
    let _subscription = reactive_query(
        laptop.path(),
        "SELECT id, body FROM note WHERE id > ?1 ORDER BY id",
        vec![Value::Integer(0)],
        None,
        ListenOptions::default(),
        move |result| {
            let _ = sender.send(result.clone());
        },
    )
    .unwrap();
    let first = results.recv_timeout(WAIT).unwrap();
    assert_eq!(first.columns, vec!["id", "body"]);
    assert!(first.rows.is_empty());
    laptop
        .connection()
        .execute("INSERT INTO note(id, body) VALUES (1, 'a')", [])
        .unwrap();
    let second = results.recv_timeout(WAIT).unwrap();
    assert_eq!(
        second.rows,
        vec![vec![Value::Integer(1), Value::Text("a".into())]]
    );
    // A table the query does not read: no new result.
    laptop
        .connection()
        .execute("INSERT INTO other VALUES (1, 1)", [])
        .unwrap();
    assert!(results.recv_timeout(Duration::from_millis(300)).is_err());
    laptop
        .connection()
        .execute("UPDATE note SET body = 'b'", [])
        .unwrap();
    let third = results.recv_timeout(WAIT).unwrap();
    assert_eq!(third.rows[0][1], Value::Text("b".into()));
    assert!(reactive_query(
        laptop.path(),
        "SELECT 1",
        vec![],
        None,
        ListenOptions::default(),
        |_| {}
    )
    .is_err());
}

#[test]
fn values_keep_their_sqlite_types_in_json() {
    for value in [
        Value::Null,
        Value::Integer(42),
        Value::Integer(-(1 << 53) + 1),
        Value::Integer(i64::MAX),
        Value::Integer(i64::MIN),
        Value::Real(1.0),
        Value::Real(-0.5),
        Value::Real(f64::INFINITY),
        Value::Real(f64::NEG_INFINITY),
        Value::Text("{\"$blob\": 1}".into()),
        Value::Blob(vec![0, 1, 255]),
    ] {
        let json = value_to_json(&value);
        let text = serde_json::to_string(&json).unwrap();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value_from_json(&back), Some(value.clone()), "{text}");
    }
    assert_eq!(value_to_json(&Value::Real(1.0)).to_string(), "1.0");
    assert_eq!(
        value_to_json(&Value::Integer(1 << 53)).to_string(),
        "{\"$int\":\"9007199254740992\"}"
    );
    let event = build_event("db", 7, &[], |_| None);
    assert_eq!(
        event.to_json_line(),
        "{\"database\":\"db\",\"db_version\":7,\"origin\":null,\"changes\":[]}"
    );
}

#[test]
fn bucket_entries_appear_in_bucket_terms_and_a_rename_is_a_delete_and_an_insert() {
    let dir = tempfile::tempdir().unwrap();
    let laptop = replica(dir.path(), "laptop");
    let store = LocalBlobs::beside(laptop.path()).unwrap();
    let (sender, events) = mpsc::channel::<Event>();
    let _subscription = on_change_event(laptop.path(), ListenOptions::default(), move |event| {
        let _ = sender.send(event.clone());
    })
    .unwrap();
    let buckets = laptop.buckets();
    let put = buckets
        .put(
            &store,
            "photos",
            "2026/cat.jpg",
            &b"meow"[..],
            "image/jpeg",
            |_| {},
        )
        .unwrap();
    let put_event = events.recv_timeout(WAIT).expect("an event for the put");
    buckets.rename("photos", "2026/cat.jpg", "cat.jpg").unwrap();
    let rename_event = events.recv_timeout(WAIT).expect("an event for the rename");
    assert!(buckets.remove("photos", "cat.jpg").unwrap());
    let remove_event = events.recv_timeout(WAIT).expect("an event for the removal");
    laptop
        .connection()
        .execute("INSERT INTO note(id, body) VALUES (1, 'a')", [])
        .unwrap();
    let plain_event = events.recv_timeout(WAIT).expect("an event for a plain row");

    let hash = put.hash.unwrap().to_hex();
    let row = &put_event.changes[0];
    assert_eq!((put_event.changes.len(), row.op), (1, Op::Insert));
    assert_eq!(row.table, BUCKET_TABLE);
    assert_eq!(row.pk["bucket"], "photos");
    assert_eq!(
        row.bucket,
        Some(BucketChange {
            bucket: "photos".into(),
            name: "2026/cat.jpg".into(),
            hash: Some(hash.clone()),
            size: Some(4),
            mime: Some("image/jpeg".into()),
            created_ms: Some(put.created_ms),
        })
    );
    let line = put_event.to_json_line();
    assert!(
        line.contains(&format!(
            "\"bucket\":{{\"bucket\":\"photos\",\"name\":\"2026/cat.jpg\",\"hash\":\"{hash}\",\"size\":4,\"mime\":\"image/jpeg\",\"created_ms\":{}}}",
            put.created_ms
        )),
        "{line}"
    );
    let back: Event = serde_json::from_str(&line).unwrap();
    assert_eq!(back, put_event, "the JSON reads back into the same event");

    // The rename: one transaction, the old name deleted and the new one inserted.
    let mut renamed: Vec<(Op, BucketChange)> = rename_event
        .changes
        .iter()
        .map(|row| (row.op, row.bucket.clone().expect("a listing row")))
        .collect();
    renamed.sort_by_key(|(op, _)| *op != Op::Delete);
    assert_eq!(renamed.len(), 2, "{rename_event:?}");
    assert_eq!(renamed[0].0, Op::Delete);
    assert_eq!(renamed[0].1.name, "2026/cat.jpg");
    assert_eq!(renamed[0].1.hash, None, "a delete names only the entry");
    assert_eq!(renamed[1].0, Op::Insert);
    assert_eq!(renamed[1].1.name, "cat.jpg");
    assert_eq!(renamed[1].1.hash.as_deref(), Some(hash.as_str()));
    assert_eq!(renamed[1].1.size, Some(4));

    let removed = &remove_event.changes[0];
    assert_eq!(removed.op, Op::Delete);
    assert_eq!(
        removed
            .bucket
            .as_ref()
            .map(|b| (b.bucket.as_str(), b.name.as_str())),
        Some(("photos", "cat.jpg"))
    );

    assert_eq!(plain_event.changes[0].bucket, None);
    assert!(
        !plain_event.to_json_line().contains("\"bucket\""),
        "other tables' rows have no bucket object"
    );

    // A server knows no key column names (positional pk) and still describes the entry.
    laptop
        .buckets()
        .put(&store, "docs", "a.txt", &b"hi"[..], "text/plain", |_| {})
        .unwrap();
    let registers: Vec<_> = laptop
        .changes_since(0)
        .flat_map(|batch| batch.unwrap().changes)
        .filter(|change| &*change.table == BUCKET_TABLE)
        .collect();
    let event = build_event("db", 1, &registers, |_| None);
    let docs = event
        .changes
        .iter()
        .find(|row| row.pk["0"] == "docs")
        .expect("the docs entry");
    assert_eq!(docs.bucket.as_ref().unwrap().name, "a.txt");
    assert_eq!(
        docs.bucket.as_ref().unwrap().mime.as_deref(),
        Some("text/plain")
    );
}
