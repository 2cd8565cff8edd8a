//! A live sync through the bindings' surface against a sync server on 127.0.0.1 that wants a
//! token: the credentials callback is asked again after a refusal, the status goes
//! Offline → Live, a remote write reaches a reactive query, and closing the database stops
//! the sync and its threads.

#[path = "../../../clients/tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use support::server::serve_with_token;
use weft_ffi::{
    CredentialsProvider, Database, QueryListener, QueryResult, SqlValue, SyncStatus,
    SyncStatusListener, WeftError,
};

const WAIT: Duration = Duration::from_secs(20);

/// "expired" first, then "fresh" for good; counts the calls.
/// "expired" on the first call, then "fresh" for good; counts the calls.
struct Tokens(Arc<AtomicUsize>);

impl CredentialsProvider for Tokens {
    fn token(&self) -> Result<Option<String>, WeftError> {
        let call = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Some(if call == 0 { "expired" } else { "fresh" }.into()))
    }
}

struct Statuses(Mutex<mpsc::Sender<SyncStatus>>);

impl SyncStatusListener for Statuses {
    fn on_status(&self, status: SyncStatus) {
        let _ = self.0.lock().unwrap().send(status);
    }
}

struct Rows(Mutex<mpsc::Sender<QueryResult>>);

impl QueryListener for Rows {
    fn on_rows(&self, result: QueryResult) {
        let _ = self.0.lock().unwrap().send(result);
    }
}

fn weft_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .filter(|name| {
                    name.starts_with("weft-sync-statu") || name.starts_with("weft-query")
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_live_sync_refreshes_its_token_goes_live_delivers_and_stops_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let server_runtime = tokio::runtime::Runtime::new().unwrap();
    let url = server_runtime.block_on(serve_with_token(
        dir.path().join("server.db"),
        false,
        Some("fresh".into()),
    ));
    let open = |name: &str| {
        let db = Database::open(dir.path().join(name).display().to_string()).unwrap();
        db.execute_batch("CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)".into())
            .unwrap();
        db.enable_crr("note".into()).unwrap();
        db
    };
    let (phone, laptop) = (open("phone.db"), open("laptop.db"));

    let (rows, got_rows) = mpsc::channel();
    let _watching = phone
        .watch(
            "SELECT body FROM note ORDER BY id".into(),
            vec![],
            Box::new(Rows(Mutex::new(rows))),
        )
        .unwrap();
    assert_eq!(got_rows.recv_timeout(WAIT).unwrap().rows.len(), 0);

    let tokens = Arc::new(AtomicUsize::new(0));
    let (statuses, got_status) = mpsc::channel();
    let live = phone
        .start_sync(
            url.clone(),
            Box::new(Tokens(tokens.clone())),
            Box::new(Statuses(Mutex::new(statuses))),
        )
        .unwrap();
    let mut seen = Vec::new();
    while !matches!(seen.last(), Some(SyncStatus::Live)) {
        seen.push(got_status.recv_timeout(WAIT).expect("the sync goes live"));
    }
    assert!(
        seen.iter()
            .any(|s| matches!(s, SyncStatus::Offline { error, .. } if error.contains("401"))),
        "the expired token was refused first: {seen:?}"
    );
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        2,
        "asked again after the refusal"
    );
    assert_eq!(live.status(), SyncStatus::Live);

    laptop
        .execute(
            "INSERT INTO note VALUES (1, ?)".into(),
            vec![SqlValue::Text {
                value: "from the laptop".into(),
            }],
        )
        .unwrap();
    laptop.sync_once(url, Some("fresh".into())).unwrap();
    let delivered = got_rows
        .recv_timeout(WAIT)
        .expect("the remote write reaches the query");
    assert_eq!(
        delivered.rows,
        vec![vec![SqlValue::Text {
            value: "from the laptop".into()
        }]]
    );

    assert!(!weft_threads().is_empty());
    phone.close();
    assert!(live.is_stopped());
    assert_eq!(live.status(), SyncStatus::Stopped);
    let last = got_status.try_iter().last();
    assert_eq!(last, Some(SyncStatus::Stopped));
    assert_eq!(
        weft_threads(),
        Vec::<String>::new(),
        "no thread left behind"
    );
}
