//! The client against a minimal server made of the same parts (a tokio-tungstenite listener,
//! `Session::responder` and the driver) on 127.0.0.1: real sockets, real SQLite files.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::server::{serve, serve_with_token};
use weft_client::{sync_once, Credentials, LiveEvent, LiveOptions, LiveSync, SyncTarget};
use weft_core::sync::SessionEvent;
use weft_core::Replica;

fn client(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.db"));
    let replica = Replica::open(&path).unwrap();
    replica
        .connection()
        .execute_batch("CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)")
        .unwrap();
    replica.enable_crr("note").unwrap();
    path
}

fn rows(path: &Path) -> Vec<(i64, String)> {
    let replica = Replica::open(path).unwrap();
    let mut statement = replica
        .connection()
        .prepare("SELECT id, body FROM note ORDER BY id")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Whether `row` reaches the replica at `path` within 10 s, watching its sync's events.
async fn arrives(
    events: &mut tokio::sync::broadcast::Receiver<LiveEvent>,
    path: &Path,
    (id, body): (i64, &str),
) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(LiveEvent::Sync(SessionEvent::Applied {
                db_version: Some(_),
                ..
            })) = events.recv().await
            {
                if rows(path).contains(&(id, body.to_owned())) {
                    return;
                }
            }
        }
    })
    .await
    .is_ok()
}

fn write(path: &Path, sql: &str) {
    Replica::open(path)
        .unwrap()
        .connection()
        .execute_batch(sql)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_with_offline_writes_converge_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(dir.path().join("server.db"), false).await;
    let target = SyncTarget::new(url, None);
    let (a, b) = (client(dir.path(), "a"), client(dir.path(), "b"));
    write(
        &a,
        "INSERT INTO note VALUES (1, 'a1'), (2, 'a2'), (3, 'a3')",
    );
    sync_once(&a, &target, |_, _| {}).await.unwrap();
    sync_once(&b, &target, |_, _| {}).await.unwrap();
    // Offline on both sides: a concurrent update, a delete against an update, a re-insert.
    write(
        &a,
        "UPDATE note SET body = 'a-edit' WHERE id = 1; DELETE FROM note WHERE id = 2",
    );
    write(
        &b,
        "UPDATE note SET body = 'b-edit' WHERE id = 2; INSERT INTO note VALUES (4, 'b4')",
    );
    write(
        &b,
        "DELETE FROM note WHERE id = 3; INSERT INTO note VALUES (3, 'b3-again')",
    );
    for path in [&a, &b, &a] {
        let report = sync_once(path, &target, |_, _| {}).await.unwrap();
        assert!(report.in_sync, "{report:?}");
    }
    assert_eq!(rows(&a), rows(&b));
    assert_eq!(
        rows(&a),
        vec![
            (1, "a-edit".to_owned()),
            (3, "b3-again".to_owned()),
            (4, "b4".to_owned())
        ],
        "delete beats the concurrent update; the re-insert beats the delete"
    );
    assert_eq!(
        Replica::open(&a).unwrap().digest().unwrap(),
        Replica::open(&b).unwrap().digest().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_sync_sends_only_what_is_new() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(dir.path().join("server.db"), false).await;
    let target = SyncTarget::new(url, None);
    let a = client(dir.path(), "a");
    write(&a, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO note SELECT i, 'x' || i FROM n");
    let first = sync_once(&a, &target, |_, _| {}).await.unwrap();
    assert_eq!(first.sent, 1000, "500 rows, 2 registers each");
    write(&a, "UPDATE note SET body = 'new' WHERE id = 7");
    let second = sync_once(&a, &target, |_, _| {}).await.unwrap();
    assert_eq!(second.sent, 1, "only the new register");
    assert!(second.in_sync);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_changes_are_reported_and_kept_locally() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(dir.path().join("server.db"), true).await;
    let a = client(dir.path(), "a");
    write(&a, "INSERT INTO note VALUES (1, 'mine')");
    let report = sync_once(&a, &SyncTarget::new(url, None), |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.rejected, 2, "{report:?}");
    assert!(!report.in_sync);
    assert_eq!(report.reject_reasons, vec!["read-only access".to_owned()]);
    assert_eq!(rows(&a), vec![(1, "mine".to_owned())], "kept locally");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_sync_pushes_each_commit_to_the_other_client() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(dir.path().join("server.db"), false).await;
    let target = SyncTarget::new(url, None);
    let (a, b) = (client(dir.path(), "a"), client(dir.path(), "b"));
    let live_a = LiveSync::start(&a, target.clone(), LiveOptions::default());
    let live_b = LiveSync::start(&b, target, LiveOptions::default());
    let mut events_b = live_b.subscribe();
    // Let both connect, then write on A and wait for B to apply it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    write(&a, "INSERT INTO note VALUES (42, 'live')");
    assert!(
        arrives(&mut events_b, &b, (42, "live")).await,
        "B never received A's write"
    );
    live_a.stop().await;
    live_b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_in_this_process_is_pushed_at_once_not_at_the_next_poll() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve(dir.path().join("server.db"), false).await;
    let target = SyncTarget::new(url, None);
    let (a, b) = (client(dir.path(), "a"), client(dir.path(), "b"));
    // A never polls: only the commit notice can tell its sync about the app's write.
    let never = LiveOptions {
        poll_every: Duration::from_secs(24 * 3600),
        ..LiveOptions::default()
    };
    let live_a = LiveSync::start(&a, target.clone(), never);
    let live_b = LiveSync::start(&b, target, LiveOptions::default());
    let mut events_a = live_a.subscribe();
    let mut events_b = live_b.subscribe();
    let in_sync = tokio::time::timeout(Duration::from_secs(10), async {
        while !matches!(
            events_a.recv().await,
            Ok(LiveEvent::Sync(SessionEvent::InSync { .. }))
        ) {}
    })
    .await;
    assert!(in_sync.is_ok(), "A never reached the server");
    // Another Replica of the same file, spelled differently, as an app would open it.
    let spelled = dir.path().join(".").join("a.db");
    write(&spelled, "INSERT INTO note VALUES (7, 'noticed')");
    assert!(
        arrives(&mut events_b, &b, (7, "noticed")).await,
        "A's sync did not hear of the commit"
    );
    // A commit of `Replica::write` (recorded below the triggers, on its own connection) is
    // heard and pushed the same way.
    Replica::open(&spelled)
        .unwrap()
        .write(|conn| Ok(conn.execute_batch("INSERT INTO note VALUES (8, 'written')")?))
        .unwrap();
    assert!(
        arrives(&mut events_b, &b, (8, "written")).await,
        "A's sync did not hear of the write"
    );
    live_a.stop().await;
    live_b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = client(dir.path(), "a");
    // A port nobody listens on: bind, take the number, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = SyncTarget::new(format!("ws://127.0.0.1:{port}/v1/sync/test"), None);
    let error = sync_once(&a, &target, |_, _| {}).await.unwrap_err();
    assert!(error.to_string().contains("cannot reach"), "{error}");
}

/// Hands out the tokens it was given, one per connection, then the last one again; counts
/// the calls.
struct TokenQueue {
    tokens: std::sync::Mutex<Vec<String>>,
    asked: std::sync::atomic::AtomicUsize,
}

impl Credentials for TokenQueue {
    fn token(&self) -> Result<Option<String>, String> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut tokens = self.tokens.lock().map_err(|e| e.to_string())?;
        let next = if tokens.len() > 1 {
            tokens.remove(0)
        } else {
            tokens.first().cloned().ok_or("no token")?
        };
        Ok(Some(next))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_asked_for_again_and_the_sync_resumes_with_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve_with_token(dir.path().join("server.db"), false, Some("fresh".into())).await;
    let a = client(dir.path(), "a");
    let credentials = std::sync::Arc::new(TokenQueue {
        tokens: std::sync::Mutex::new(vec!["expired".into(), "fresh".into()]),
        asked: Default::default(),
    });
    let fast = LiveOptions {
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..LiveOptions::default()
    };
    let live =
        LiveSync::start_with_credentials(&a, SyncTarget::new(url, None), credentials.clone(), fast);
    let mut events = live.subscribe();
    let (mut refused, mut in_sync) = (false, false);
    let watched = tokio::time::timeout(Duration::from_secs(10), async {
        while !in_sync {
            match events.recv().await {
                Ok(LiveEvent::Disconnected { error, retry_in }) => {
                    assert!(error.contains("401"), "{error}");
                    assert!(
                        retry_in.is_some(),
                        "a refused token is retried with a new one"
                    );
                    refused = true;
                }
                Ok(LiveEvent::Sync(SessionEvent::InSync { .. })) => in_sync = true,
                _ => {}
            }
        }
    })
    .await;
    assert!(watched.is_ok(), "the sync never got in with the new token");
    assert!(refused, "the expired token was refused first");
    assert_eq!(
        credentials.asked.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "asked on connect, and again after the refusal"
    );
    live.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_fixed_token_stops_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let url = serve_with_token(dir.path().join("server.db"), false, Some("fresh".into())).await;
    let a = client(dir.path(), "a");
    let live = LiveSync::start(
        &a,
        SyncTarget::new(url, Some("expired".into())),
        LiveOptions::default(),
    );
    let mut events = live.subscribe();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(LiveEvent::Disconnected { retry_in, .. }) = events.recv().await {
                return retry_in;
            }
        }
    })
    .await;
    assert_eq!(
        ended.ok(),
        Some(None),
        "the same token cannot succeed: no retry"
    );
    live.stop().await;
}
