//! The surface the language bindings wrap, called from Rust: transactions, errors, closing,
//! key-value, blobs and listeners on real SQLite files.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use weft_ffi::{
    ChangeEvent, ChangeListener, Database, QueryListener, QueryResult, SqlValue, WeftError,
};

/// How long a listener test waits for a callback before failing.
const CALLBACK_WAIT: Duration = Duration::from_secs(5);

fn text(value: &str) -> SqlValue {
    SqlValue::Text {
        value: value.into(),
    }
}

fn int(value: i64) -> SqlValue {
    SqlValue::Integer { value }
}

fn todo_db(dir: &tempfile::TempDir, name: &str) -> Arc<Database> {
    let db = Database::open(dir.path().join(name).display().to_string()).unwrap();
    db.execute(
        "CREATE TABLE todo(id TEXT PRIMARY KEY NOT NULL, title TEXT, done INTEGER NOT NULL DEFAULT 0)".into(),
        vec![],
    )
    .unwrap();
    db.enable_crr("todo".into()).unwrap();
    db
}

fn titles(db: &Database) -> Vec<SqlValue> {
    db.query("SELECT title FROM todo ORDER BY id".into(), vec![])
        .unwrap()
        .rows
        .into_iter()
        .map(|mut row| row.remove(0))
        .collect()
}

#[test]
fn writes_are_recorded_as_changes_and_rows_come_back_typed() {
    let dir = tempfile::tempdir().unwrap();
    let db = todo_db(&dir, "a.db");
    let changed = db
        .execute(
            "INSERT INTO todo(id, title) VALUES (?, ?), (?, ?)".into(),
            vec![text("a1"), text("milk"), text("a2"), text("eggs")],
        )
        .unwrap();
    assert_eq!(changed, 2);
    let result = db
        .query(
            "SELECT id, title, done, 1.5, x'00ff', NULL FROM todo WHERE id = ?".into(),
            vec![text("a1")],
        )
        .unwrap();
    assert_eq!(result.columns[..3], ["id", "title", "done"]);
    assert_eq!(
        result.rows,
        vec![vec![
            text("a1"),
            text("milk"),
            int(0),
            SqlValue::Real { value: 1.5 },
            SqlValue::Blob {
                value: vec![0, 255]
            },
            SqlValue::Null,
        ]]
    );
    // Recorded: the replicated table's writes are changes another replica can merge.
    let info = db.info().unwrap();
    assert_eq!(
        info.tables.iter().find(|t| t.name == "todo").unwrap().rows,
        2
    );
    assert!(info.db_version >= 1);
    assert_eq!(db.digest().unwrap().len(), 64);
}

#[test]
fn a_transaction_commits_whole_and_sees_its_own_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = todo_db(&dir, "a.db");
    let tx = db.begin_transaction().unwrap();
    tx.execute(
        "INSERT INTO todo(id, title) VALUES (?, ?)".into(),
        vec![text("a1"), text("milk")],
    )
    .unwrap();
    let inside = tx
        .query("SELECT count(*) FROM todo".into(), vec![])
        .unwrap();
    assert_eq!(inside.rows, vec![vec![int(1)]]);
    // Not visible outside before the commit.
    assert_eq!(titles(&db), Vec::<SqlValue>::new());
    tx.commit().unwrap();
    assert_eq!(titles(&db), vec![text("milk")]);
    assert!(tx.is_finished());
    assert!(matches!(
        tx.execute("DELETE FROM todo".into(), vec![]),
        Err(WeftError::Closed { .. })
    ));
}

#[test]
fn a_failing_statement_leaves_the_transaction_and_the_database_usable() {
    let dir = tempfile::tempdir().unwrap();
    let db = todo_db(&dir, "a.db");
    assert!(matches!(
        db.execute("INSERT INTO nowhere VALUES (1)".into(), vec![]),
        Err(WeftError::Sql { message }) if message.contains("no such table")
    ));
    let tx = db.begin_transaction().unwrap();
    tx.execute(
        "INSERT INTO todo(id, title) VALUES ('a1', 'milk')".into(),
        vec![],
    )
    .unwrap();
    let duplicate = tx.execute(
        "INSERT INTO todo(id, title) VALUES ('a1', 'again')".into(),
        vec![],
    );
    assert!(matches!(duplicate, Err(WeftError::Sql { message }) if message.contains("UNIQUE")));
    tx.execute(
        "INSERT INTO todo(id, title) VALUES ('a2', 'eggs')".into(),
        vec![],
    )
    .unwrap();
    tx.commit().unwrap();
    assert_eq!(titles(&db), vec![text("milk"), text("eggs")]);
    db.execute("UPDATE todo SET done = 1".into(), vec![])
        .unwrap();
}

#[test]
fn execute_many_writes_every_row_in_one_crossing() {
    let dir = tempfile::tempdir().unwrap();
    let db = todo_db(&dir, "a.db");
    let rows = |ids: &[&str]| ids.iter().map(|id| vec![text(id), text("t")]).collect();
    let insert = "INSERT INTO todo(id, title) VALUES (?, ?)";
    assert_eq!(
        db.execute_many(insert.into(), rows(&["a", "b"])).unwrap(),
        2
    );
    // All or none outside a transaction: the duplicate "a" fails the whole call.
    assert!(db.execute_many(insert.into(), rows(&["c", "a"])).is_err());
    let tx = db.begin_transaction().unwrap();
    assert_eq!(
        tx.execute_many(insert.into(), rows(&["d", "e", "f"]))
            .unwrap(),
        3
    );
    tx.commit().unwrap();
    assert_eq!(titles(&db).len(), 5);
}

#[test]
fn rollback_and_a_dropped_transaction_keep_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = todo_db(&dir, "a.db");
    let before = db.digest().unwrap();
    let tx = db.begin_transaction().unwrap();
    tx.execute("INSERT INTO todo(id) VALUES ('a1')".into(), vec![])
        .unwrap();
    tx.rollback().unwrap();
    tx.rollback().unwrap();
    let tx = db.begin_transaction().unwrap();
    tx.execute("INSERT INTO todo(id) VALUES ('a2')".into(), vec![])
        .unwrap();
    drop(tx);
    assert_eq!(titles(&db), Vec::<SqlValue>::new());
    assert_eq!(db.digest().unwrap(), before);
    // The writer is free again.
    db.execute("INSERT INTO todo(id) VALUES ('a3')".into(), vec![])
        .unwrap();
}

#[test]
fn bad_input_gets_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = todo_db(&dir, "a.db");
    db.execute("CREATE TABLE loose(x)".into(), vec![]).unwrap();
    assert!(matches!(
        db.enable_crr("loose".into()),
        Err(WeftError::NotReplicable { .. })
    ));
    assert!(matches!(
        db.blob_get("photos".into(), "none.png".into()),
        Err(WeftError::NotFound { .. })
    ));
    assert!(matches!(
        db.blob_put("../up".into(), "a".into(), vec![1], None),
        Err(WeftError::InvalidArgument { .. })
    ));
    assert!(matches!(
        db.start_sync(
            "http://not-a-sync-url".into(),
            Box::new(NoToken),
            Box::new(Ignore)
        ),
        Err(WeftError::InvalidArgument { .. })
    ));
    assert!(matches!(
        db.query("INSERT INTO todo(id) VALUES ('x')".into(), vec![]),
        Err(WeftError::Sql { .. })
    ));
}

struct NoToken;

struct Ignore;

impl weft_ffi::SyncStatusListener for Ignore {
    fn on_status(&self, _: weft_ffi::SyncStatus) {}
}

impl weft_ffi::CredentialsProvider for NoToken {
    fn token(&self) -> Result<Option<String>, WeftError> {
        Ok(None)
    }
}

#[test]
fn key_values_and_blobs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = todo_db(&dir, "a.db");
    db.kv_put("user/theme".into(), text("dark")).unwrap();
    db.kv_put("user/size".into(), int(14)).unwrap();
    db.kv_put("other".into(), int(1)).unwrap();
    assert_eq!(db.kv_get("user/theme".into()).unwrap(), Some(text("dark")));
    let scanned: Vec<String> = db
        .kv_scan("user/".into())
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(scanned, ["user/size", "user/theme"]);
    assert!(db.kv_delete("other".into()).unwrap());
    assert!(!db.kv_delete("other".into()).unwrap());

    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let entry = db
        .blob_put(
            "photos".into(),
            "cat.png".into(),
            bytes.clone(),
            Some("image/png".into()),
        )
        .unwrap();
    assert_eq!(entry.size, bytes.len() as u64);
    assert_eq!(entry.hash.len(), 64);
    assert_eq!(
        db.blob_get("photos".into(), "cat.png".into()).unwrap(),
        bytes
    );
    let file = dir.path().join("out.png");
    db.blob_get_to_file(
        "photos".into(),
        "cat.png".into(),
        file.display().to_string(),
    )
    .unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), bytes);
    let again = db
        .blob_put_file(
            "photos".into(),
            "copy.png".into(),
            file.display().to_string(),
            None,
        )
        .unwrap();
    assert_eq!(again.hash, entry.hash);
    let listed: Vec<String> = db
        .blob_list("photos".into(), "".into(), None, 0)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(listed, ["cat.png", "copy.png"]);
    assert!(db.blob_remove("photos".into(), "cat.png".into()).unwrap());
    db.blob_set_lazy("photos".into(), true).unwrap();
}

struct SendRows(mpsc::Sender<QueryResult>);

impl QueryListener for SendRows {
    fn on_rows(&self, result: QueryResult) {
        let _ = self.0.send(result);
    }
}

struct SendChanges(mpsc::Sender<ChangeEvent>);

impl ChangeListener for SendChanges {
    fn on_change(&self, event: ChangeEvent) {
        let _ = self.0.send(event);
    }
}

#[test]
fn listeners_hear_commits_and_close_stops_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = todo_db(&dir, "a.db");
    let (rows, got_rows) = mpsc::channel();
    let (changes, got_changes) = mpsc::channel();
    let watching = db
        .watch(
            "SELECT count(*) FROM todo WHERE done = ?".into(),
            vec![int(0)],
            Box::new(SendRows(rows)),
        )
        .unwrap();
    let listening = db.on_change(Box::new(SendChanges(changes))).unwrap();
    assert_eq!(
        got_rows.recv_timeout(CALLBACK_WAIT).unwrap().rows,
        vec![vec![int(0)]]
    );
    db.execute("INSERT INTO todo(id) VALUES ('a1')".into(), vec![])
        .unwrap();
    assert_eq!(
        got_rows.recv_timeout(CALLBACK_WAIT).unwrap().rows,
        vec![vec![int(1)]]
    );
    let event = got_changes.recv_timeout(CALLBACK_WAIT).unwrap();
    assert_eq!(event.tables, ["todo"]);
    assert_eq!(event.rows, 1);
    assert!(event.local);

    db.close();
    assert!(watching.is_cancelled() && listening.is_cancelled());
    assert!(db.is_closed());
    assert!(matches!(db.digest(), Err(WeftError::Closed { .. })));
    // The listeners' threads are gone: their channels closed.
    assert!(matches!(
        got_rows.recv_timeout(CALLBACK_WAIT),
        Err(mpsc::RecvTimeoutError::Disconnected)
    ));
}
