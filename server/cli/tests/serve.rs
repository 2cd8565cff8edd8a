//! `weft serve` and `weft token`, run as processes on 127.0.0.1 and spoken to over real HTTP
//! and WebSocket connections: health, tokens, the refusals before an upgrade, database names,
//! the generated secret, bad clients, shutdown.

mod support;

use support::{http_get, weft_assert as weft};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use weft_server::token::{self, Grant, TokenRole};
use weft_server::Secret;

const SECRET: &str = "a test secret that is long enough";

/// How long any one wait in these tests may take.
const WAIT: Duration = Duration::from_secs(20);

/// A `weft serve` process, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `weft serve --data DATA --listen 127.0.0.1:0 ARGS` and waits for its address.
    fn start(data: &Path, args: &[&str]) -> Server {
        let mut child = support::weft()
            .arg("serve")
            .arg("--data")
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weft serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let log = stderr.clone();
        let mut err = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = match rx.recv_timeout(WAIT) {
            Ok(addr) => addr.parse().expect("a socket address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "weft serve printed no address; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        // stdout and stderr are separate pipes: wait for the log line written after the
        // address, so every start-up message is in `stderr` before a test reads it.
        let deadline = Instant::now() + WAIT;
        while !stderr.lock().unwrap().contains("serving ws://") {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "weft serve logged no start-up line; stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Server {
            child,
            addr,
            stderr,
        }
    }

    fn ws_url(&self, database: &str) -> String {
        format!("ws://{}/v1/sync/{database}", self.addr)
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "weft serve did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `url` with `token` as a bearer header; a refusal is its HTTP status
/// and body.
async fn ws_connect(url: &str, token: Option<&str>) -> Result<Socket, (u16, String)> {
    let mut request = url.into_client_request().expect("a request");
    if let Some(token) = token {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
    }
    let connecting = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(WAIT, connecting).await {
        Err(_) => panic!("connecting to {url} timed out"),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(WsError::Http(response))) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((response.status().as_u16(), body))
        }
        Ok(Err(other)) => panic!("connecting to {url}: {other}"),
    }
}

/// Asserts that connecting is refused with `status` and a body holding `reason` on one line.
async fn assert_refused(url: &str, token: Option<&str>, status: u16, reason: &str) {
    match ws_connect(url, token).await {
        Ok(_) => panic!("{url} accepted; expected {status} {reason:?}"),
        Err((got, body)) => {
            assert_eq!(got, status, "{url}: {body}");
            assert!(body.contains(reason), "{url}: {body:?} lacks {reason:?}");
            assert_eq!(body.trim_end().lines().count(), 1, "one line: {body:?}");
        }
    }
}

fn mint(secret: &str, dbs: &[&str], write: bool) -> String {
    token::mint(
        &Secret::new(secret).unwrap(),
        &Grant {
            sub: "tester".into(),
            dbs: dbs.iter().map(|d| d.to_string()).collect(),
            write,
            role: TokenRole::Client,
            ttl: Duration::from_secs(600),
        },
    )
    .unwrap()
}

/// The files under `dir`, relative, sorted; SQLite's -wal and -shm files left out.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if !name.ends_with("-wal") && !name.ends_with("-shm") {
                found.push(name);
            }
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The claims of a JWT, unverified.
fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("three parts");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&json).expect("JSON claims")
}

#[test]
fn healthz_answers_ok_and_no_auth_warns() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--no-auth"]);
    assert_eq!(http_get(server.addr, "/healthz"), (200, "ok".to_owned()));
    let (status, body) = http_get(server.addr, "/nope");
    assert_eq!(status, 404);
    assert!(body.contains("/v1/sync/{database}"), "{body}");
    assert!(
        server.stderr().contains("auth is off"),
        "{}",
        server.stderr()
    );
}

#[test]
fn the_secret_is_generated_once_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = data.join("auth-secret");
    let first = {
        let server = Server::start(&data, &[]);
        let log = server.stderr();
        assert!(
            log.contains("weft token --secret-file") && log.contains("generated"),
            "{log}"
        );
        assert!(!log.contains(std::fs::read_to_string(&file).unwrap().trim()));
        std::fs::read_to_string(&file).unwrap()
    };
    assert_eq!(
        first.len(),
        65,
        "64 hex characters and a newline: {first:?}"
    );
    assert!(first.trim().chars().all(|c| c.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let server = Server::start(&data, &[]);
    assert!(
        !server.stderr().contains("generated"),
        "{}",
        server.stderr()
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
    // A token minted from the file opens the restarted server.
    let token = weft()
        .args(["token", "--secret-file"])
        .arg(&file)
        .args(["--db", "notes"])
        .assert()
        .success();
    let token = String::from_utf8(token.get_output().stdout.clone()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let socket = ws_connect(&server.ws_url("notes"), Some(token.trim())).await;
        assert!(socket.is_ok(), "{:?}", socket.err());
    });
    assert!(data.join("dbs/notes.db").exists());
}

#[test]
fn a_secret_file_can_be_given() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--auth-secret-file", file.to_str().unwrap()],
    );
    assert!(!dir.path().join("data/auth-secret").exists());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let token = mint(SECRET, &["notes"], true);
        assert!(ws_connect(&server.ws_url("notes"), Some(&token))
            .await
            .is_ok());
    });
}

#[test]
fn bad_secrets_and_flags_stop_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    weft()
        .arg("serve")
        .arg("--data")
        .arg(&data)
        .args(["--auth-secret", "short"])
        .timeout(WAIT)
        .assert()
        .failure()
        .stderr(predicates::str::contains("at least 16"));
    weft()
        .arg("serve")
        .arg("--data")
        .arg(&data)
        .args(["--auth-secret", SECRET, "--no-auth"])
        .timeout(WAIT)
        .assert()
        .failure()
        .stderr(predicates::str::contains("cannot be used with"));
    weft()
        .arg("serve")
        .arg("--data")
        .arg(&data)
        .args(["--auth-secret-file"])
        .arg(dir.path().join("missing"))
        .timeout(WAIT)
        .assert()
        .failure()
        .stderr(predicates::str::contains("missing"));
}

#[test]
fn weft_token_prints_one_token_with_the_claims_asked_for() {
    let assert = weft()
        .args(["token", "--secret", SECRET, "--db", "notes", "--db", "todo"])
        .args(["--read-only", "--ttl", "30m", "--sub", "alice"])
        .assert()
        .success();
    let out = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    assert_eq!(out.lines().count(), 1);
    let token = out.trim();
    let verified = token::verify(&Secret::new(SECRET).unwrap(), token).unwrap();
    assert_eq!(verified.sub, "alice");
    assert_eq!(verified.dbs, ["notes", "todo"]);
    assert!(!verified.write);
    assert_eq!(verified.role, "client");
    assert_eq!(verified.exp - verified.iat, 30 * 60);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(verified.iat.abs_diff(now) < 60);

    // Defaults: a write token for "weft", valid 24 hours.
    let assert = weft()
        .args(["token", "--secret", SECRET, "--db", "*"])
        .assert()
        .success();
    let json = claims(String::from_utf8_lossy(&assert.get_output().stdout).trim());
    assert_eq!(json["sub"], "weft");
    assert_eq!(json["dbs"], serde_json::json!(["*"]));
    assert_eq!(json["write"], true);
    assert_eq!(json["role"], "client");
    assert_eq!(
        json["exp"].as_u64().unwrap() - json["iat"].as_u64().unwrap(),
        86_400
    );
}

#[test]
fn weft_token_refuses_bad_requests() {
    let bad: &[(&[&str], &str)] = &[
        (&["--secret", SECRET], "--db"),
        (&["--db", "notes"], "--secret"),
        (&["--secret", "short", "--db", "a"], "at least 16"),
        (
            &["--secret", SECRET, "--db", "../x"],
            "invalid database name",
        ),
        (&["--secret", SECRET, "--db", "a", "--ttl", "soon"], "--ttl"),
        (
            &["--secret", SECRET, "--db", "a", "--ttl", "0s"],
            "positive",
        ),
        (
            &["--secret", SECRET, "--secret-file", "f", "--db", "a"],
            "cannot be used with",
        ),
        (
            &["--secret-file", "/nonexistent/secret", "--db", "a"],
            "/nonexistent/secret",
        ),
    ];
    for (args, reason) in bad {
        weft()
            .arg("token")
            .args(*args)
            .assert()
            .failure()
            .stdout("")
            .stderr(predicates::str::contains(*reason));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tokens_are_refused_before_the_upgrade_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--auth-secret", SECRET]);
    let url = server.ws_url("secret");

    assert_refused(&url, None, 401, "missing token").await;
    let wrong = mint("another secret, also long enough", &["secret"], true);
    assert_refused(&url, Some(&wrong), 401, "bad signature").await;
    assert_refused(&url, Some("not-a-jwt"), 401, "invalid token").await;
    let mut claims = Grant {
        sub: "late".into(),
        dbs: vec!["secret".into()],
        write: true,
        role: TokenRole::Client,
        ttl: Duration::from_secs(60),
    }
    .claims_at(SystemTime::now() - Duration::from_secs(3600))
    .unwrap();
    let expired = token::encode(&Secret::new(SECRET).unwrap(), &claims).unwrap();
    assert_refused(&url, Some(&expired), 401, "token expired").await;
    let other_db = mint(SECRET, &["public"], true);
    assert_refused(
        &url,
        Some(&other_db),
        403,
        "does not grant database \"secret\"",
    )
    .await;
    claims.exp += 7200;
    claims.role = "admin".into();
    let admin = token::encode(&Secret::new(SECRET).unwrap(), &claims).unwrap();
    assert_refused(&url, Some(&admin), 403, "role \"admin\" is unknown").await;
    let wrong_query = format!("{url}?token={wrong}");
    assert_refused(&wrong_query, None, 401, "bad signature").await;

    // A non-bearer Authorization header.
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 401),
        other => panic!("expected 401, got {other:?}"),
    }

    // Nothing was created for any of them; the server goes on serving.
    // (blobs/ and staging/ are the blob store and its staging area, made at start.)
    assert_eq!(files_under(&data), ["blobs", "dbs", "staging"]);
    assert_eq!(http_get(server.addr, "/healthz").0, 200);
    let good = mint(SECRET, &["secret"], false);
    assert!(ws_connect(&url, Some(&good)).await.is_ok());
    let query = format!("{url}?token={good}");
    assert!(ws_connect(&query, None).await.is_ok());
    assert_eq!(
        files_under(&data),
        ["blobs", "dbs", "dbs/secret.db", "staging", "staging/secret"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_database_names_are_400_and_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--auth-secret", SECRET]);
    let all = mint(SECRET, &["*"], true);
    let long = "x".repeat(65);
    let paths = [
        "/v1/sync/..%2Fx".to_owned(),
        "/v1/sync/..%2F..%2Fescape".to_owned(),
        "/v1/sync/%2e%2e".to_owned(),
        "/v1/sync/../x".to_owned(),
        "/v1/sync/a/b".to_owned(),
        "/v1/sync/.hidden".to_owned(),
        "/v1/sync/-x".to_owned(),
        "/v1/sync/a.db".to_owned(),
        "/v1/sync/a%00".to_owned(),
        format!("/v1/sync/{long}"),
        "/v1/sync/".to_owned(),
        "/v1/sync".to_owned(),
    ];
    for path in &paths {
        // With no token at all, and over a WebSocket with a token for every database.
        let (status, body) = http_get(server.addr, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("invalid database name"), "{path}: {body}");
        let url = format!("ws://{}{path}", server.addr);
        assert_refused(&url, Some(&all), 400, "invalid database name").await;
    }
    // The longest valid name works.
    let longest = "x".repeat(64);
    assert!(ws_connect(&server.ws_url(&longest), Some(&all))
        .await
        .is_ok());
    let expected = [
        "data",
        "data/blobs",
        "data/dbs",
        &format!("data/dbs/{longest}.db"),
        "data/staging",
        &format!("data/staging/{longest}"),
    ];
    assert_eq!(files_under(dir.path()), expected);
    assert_eq!(http_get(server.addr, "/healthz").0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_token_reads_but_its_writes_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--auth-secret", SECRET]);
    let url = server.ws_url("notes");
    let schema = "CREATE TABLE note(id TEXT PRIMARY KEY NOT NULL, body TEXT)";
    let replica = |name: &str, sql: &str| -> PathBuf {
        let path = dir.path().join(name);
        let replica = weft_core::Replica::open(&path).unwrap();
        replica.connection().execute_batch(schema).unwrap();
        replica.enable_crr("note").unwrap();
        replica.connection().execute_batch(sql).unwrap();
        path
    };
    let rows = |path: &Path| -> Vec<String> {
        let replica = weft_core::Replica::open(path).unwrap();
        let mut statement = replica
            .connection()
            .prepare("SELECT id || '=' || body FROM note ORDER BY id")
            .unwrap();
        let rows = statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<Vec<String>, _>>()
            .unwrap();
        rows
    };
    let sync = |path: PathBuf, token: String| {
        let target = weft_client::SyncTarget::new(url.clone(), Some(token));
        async move {
            tokio::time::timeout(WAIT, weft_client::sync_once(&path, &target, |_, _| {}))
                .await
                .expect("sync in time")
                .expect("sync works")
        }
    };

    let writer = replica(
        "writer.db",
        "INSERT INTO note VALUES ('a', 'from the writer')",
    );
    let report = sync(writer.clone(), mint(SECRET, &["notes"], true)).await;
    assert!(report.in_sync && report.rejected == 0, "{report:?}");

    let reader = replica(
        "reader.db",
        "INSERT INTO note VALUES ('b', 'from the reader')",
    );
    let report = sync(reader.clone(), mint(SECRET, &["notes"], false)).await;
    assert!(report.rejected > 0, "{report:?}");
    assert!(
        report
            .reject_reasons
            .iter()
            .any(|r| r.contains("token is read-only")),
        "{report:?}"
    );
    // The reader got the writer's row and kept its own; the server has only the writer's.
    assert_eq!(rows(&reader), ["a=from the writer", "b=from the reader"]);
    let report = sync(writer.clone(), mint(SECRET, &["notes"], true)).await;
    assert!(report.in_sync, "{report:?}");
    assert_eq!(rows(&writer), ["a=from the writer"]);
    assert!(server.stderr().contains("token is read-only"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_clients_do_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--auth-secret", SECRET]);
    let token = mint(SECRET, &["notes"], true);
    let url = server.ws_url("notes");

    // A malformed frame: the server answers with an error frame (or just closes) and hangs up.
    let mut socket = ws_connect(&url, Some(&token)).await.unwrap();
    socket
        .send(Message::Binary(vec![0xc1, 0xff, 0x00, 0x13].into()))
        .await
        .unwrap();
    assert_closes(&mut socket).await;

    // Text, which the protocol never sends.
    let mut socket = ws_connect(&url, Some(&token)).await.unwrap();
    socket.send(Message::Text("hello".into())).await.unwrap();
    assert_closes(&mut socket).await;

    // A frame one byte over the limit.
    let mut socket = ws_connect(&url, Some(&token)).await.unwrap();
    let huge = vec![0u8; weft_core::sync::FRAME_BYTES_MAX + 1];
    let _ = socket.send(Message::Binary(huge.into())).await;
    assert_closes(&mut socket).await;

    // A client that vanishes mid-handshake.
    let mut raw = TcpStream::connect(server.addr).unwrap();
    write!(raw, "GET /v1/sync/notes HTTP/1.1\r\nHost: x\r\n").unwrap();
    drop(raw);

    assert_eq!(http_get(server.addr, "/healthz").0, 200);
    let target = weft_client::SyncTarget::new(url.clone(), Some(token.clone()));
    let path = dir.path().join("fine.db");
    let report = tokio::time::timeout(WAIT, weft_client::sync_once(&path, &target, |_, _| {}))
        .await
        .expect("sync in time")
        .expect("a good client still syncs");
    assert!(report.in_sync, "{report:?}");
}

/// Reads until the server ends the connection (a close frame, an error or the end).
async fn assert_closes(socket: &mut Socket) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Err(_) => panic!("the server kept the connection open"),
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[test]
fn sigterm_closes_connections_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--auth-secret", SECRET]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut socket = runtime
        .block_on(ws_connect(
            &server.ws_url("notes"),
            Some(&mint(SECRET, &["notes"], true)),
        ))
        .unwrap();
    let started = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    // Well before the session's own hello timeout would have closed it.
    assert!(started.elapsed() < Duration::from_secs(8));
    let close = runtime.block_on(async {
        loop {
            match tokio::time::timeout(WAIT, socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(Some(Ok(_))) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    });
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_commit_through_one_connection_is_pushed_to_the_others_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--auth-secret", SECRET]);
    let token = mint(SECRET, &["notes"], true);
    let target = weft_client::SyncTarget::new(server.ws_url("notes"), Some(token));
    let make = |name: &str| note_replica(dir.path(), name);
    let (a, b) = (make("a.db"), make("b.db"));
    let live = weft_client::LiveSync::start(&b, target.clone(), Default::default());
    let mut events = live.subscribe();
    // Wait for B's first exchange to finish, so what follows can only come by push.
    tokio::time::timeout(WAIT, async {
        while !matches!(
            events.recv().await,
            Ok(weft_client::LiveEvent::Sync(
                weft_core::sync::SessionEvent::InSync { .. }
            ))
        ) {}
    })
    .await
    .expect("B in sync");

    weft_core::Replica::open(&a)
        .unwrap()
        .connection()
        .execute_batch("INSERT INTO note VALUES ('x', 'pushed')")
        .unwrap();
    let report = tokio::time::timeout(WAIT, weft_client::sync_once(&a, &target, |_, _| {}))
        .await
        .expect("A syncs in time")
        .expect("A syncs");
    assert!(report.in_sync, "{report:?}");
    let deadline = Instant::now() + WAIT;
    loop {
        let count: i64 = weft_core::Replica::open(&b)
            .unwrap()
            .connection()
            .query_row("SELECT count(*) FROM note WHERE body = 'pushed'", [], |r| {
                r.get(0)
            })
            .unwrap();
        if count == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "B never received A's row");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    live.stop().await;
}

/// A replica at `dir/name` with the replicated table `note(id, body)`.
fn note_replica(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let replica = weft_core::Replica::open(&path).unwrap();
    replica
        .connection()
        .execute_batch("CREATE TABLE note(id TEXT PRIMARY KEY NOT NULL, body TEXT)")
        .unwrap();
    replica.enable_crr("note").unwrap();
    path
}

/// The server's open descriptors of exactly `file` (its SQLite connections to it).
fn descriptors_of(pid: u32, file: &Path) -> usize {
    let file = std::fs::canonicalize(file).unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| *target == file)
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn many_live_clients_share_a_few_database_connections_and_each_gets_every_push() {
    const CLIENTS: usize = 24;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--auth-secret", SECRET]);
    let token = mint(SECRET, &["notes"], true);
    let target = weft_client::SyncTarget::new(server.ws_url("notes"), Some(token));
    let make = |name: &str| note_replica(dir.path(), name);
    let paths: Vec<PathBuf> = (0..CLIENTS).map(|i| make(&format!("c{i}.db"))).collect();
    let mut lives = Vec::new();
    let mut waiters = Vec::new();
    for path in &paths {
        let live = weft_client::LiveSync::start(path, target.clone(), Default::default());
        let mut events = live.subscribe();
        waiters.push(tokio::spawn(async move {
            while !matches!(
                events.recv().await,
                Ok(weft_client::LiveEvent::Sync(
                    weft_core::sync::SessionEvent::InSync { .. }
                ))
            ) {}
        }));
        lives.push(live);
    }
    for waiter in waiters {
        tokio::time::timeout(WAIT, waiter)
            .await
            .expect("every client in sync")
            .unwrap();
    }
    // Every client is connected and idle: the server holds at most its pool's 8 connections
    // to the file, not one per client.
    let held = descriptors_of(server.child.id(), &data.join("dbs").join("notes.db"));
    assert!(
        (1..=8).contains(&held),
        "the server holds {held} descriptors of notes.db for {CLIENTS} idle clients"
    );

    // One commit wakes all of them at once; each must still get it through the shared few.
    let writer = make("writer.db");
    weft_core::Replica::open(&writer)
        .unwrap()
        .connection()
        .execute_batch("INSERT INTO note VALUES ('x', 'to everyone')")
        .unwrap();
    let report = tokio::time::timeout(WAIT, weft_client::sync_once(&writer, &target, |_, _| {}))
        .await
        .expect("the writer syncs in time")
        .expect("the writer syncs");
    assert!(report.in_sync, "{report:?}");
    let deadline = Instant::now() + WAIT;
    for path in &paths {
        loop {
            let count: i64 = weft_core::Replica::open(path)
                .unwrap()
                .connection()
                .query_row(
                    "SELECT count(*) FROM note WHERE body = 'to everyone'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if count == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never received the row",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for live in lives {
        live.stop().await;
    }
}
