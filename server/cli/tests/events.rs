//! Change events with real processes: `weft serve` with a webhook (a small HTTP server in this
//! test) and NATS (a real `nats-server` on 127.0.0.1), `weft watch` on the feed, clients
//! syncing with `weft sync`; a `kill -9` of the server in the middle; refusals; failing and
//! hanging webhook receivers that must not stall sync.

use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::server::ServerProcess;
use support::{assert_synced, auth_args, free_port, mint_token, sync_once, todo_client, weft};
use weft_client::events::Event;
use weft_core::Replica;

mod support;

const SECRET: &str = "the secret of the event tests, long enough";
const WAIT: Duration = Duration::from_secs(60);

/// `weft serve` with the tests' secret on `port`, and `extra` arguments.
fn serve(data: &Path, port: u16, extra: &[String]) -> ServerProcess {
    let mut args = auth_args(SECRET);
    args.extend_from_slice(extra);
    ServerProcess::start(data, port, &args)
}

fn token(database: &str) -> String {
    mint_token(SECRET, &["--db", database])
}

fn client(dir: &Path, name: &str) -> PathBuf {
    todo_client(
        dir,
        name,
        "CREATE TABLE todo(id INTEGER PRIMARY KEY, title TEXT)",
    )
}

fn insert(db: &Path, id: i64) {
    Replica::open(db)
        .unwrap()
        .connection()
        .execute(
            "INSERT INTO todo(id, title) VALUES (?1, 'todo ' || ?1)",
            [id],
        )
        .unwrap();
}

/// The ids of the todo rows inserted by `events`, in the order delivered (repeats kept).
fn inserted_ids(events: &[Event]) -> Vec<i64> {
    events
        .iter()
        .flat_map(|e| &e.changes)
        .filter(|c| c.table == "todo" && c.op == weft_client::Op::Insert)
        .map(|c| c.pk["0"].as_i64().expect("an integer key"))
        .collect()
}

/// Receives events from `receiver` until `done` holds for all received, or panics after
/// [`WAIT`] naming `what`.
fn collect_until(
    receiver: &mpsc::Receiver<Event>,
    events: &mut Vec<Event>,
    what: &str,
    done: impl Fn(&[Event]) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !done(events) {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(event) => events.push(event),
            Err(_) => panic!(
                "{what}: gave up waiting; got ids {:?}",
                inserted_ids(events)
            ),
        }
    }
}

/// Every id of `1..=n` delivered, first deliveries in that order, and at most `repeats_max`
/// deliveries again.
fn assert_all_in_order(what: &str, ids: &[i64], n: i64, repeats_max: usize) {
    let mut first = Vec::new();
    for id in ids {
        if !first.contains(id) {
            first.push(*id);
        }
    }
    assert_eq!(first, (1..=n).collect::<Vec<_>>(), "{what}: {ids:?}");
    assert!(
        ids.len() - first.len() <= repeats_max,
        "{what} repeated too much: {ids:?}"
    );
}

fn has_all(events: &[Event], n: i64) -> bool {
    let ids = inserted_ids(events);
    (1..=n).all(|id| ids.contains(&id))
}

/// How a test webhook receiver answers.
const ANSWER_OK: u8 = 0;
const ANSWER_500: u8 = 1;
const ANSWER_HANG: u8 = 2;

/// A webhook receiver on 127.0.0.1: checks each request's signature, sends the events of
/// acknowledged requests down a channel.
struct Receiver {
    port: u16,
    answer: Arc<AtomicU8>,
    requests: Arc<AtomicUsize>,
}

impl Receiver {
    fn start(answer: u8, key: &'static [u8]) -> (Receiver, mpsc::Receiver<Event>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(AtomicU8::new(answer));
        let requests = Arc::new(AtomicUsize::new(0));
        let (sender, events) = mpsc::channel();
        let (mode, count) = (answer.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (sender, mode, count) = (sender.clone(), mode.clone(), count.clone());
                std::thread::spawn(move || serve_one(stream, key, &sender, &mode, &count));
            }
        });
        (
            Receiver {
                port,
                answer,
                requests,
            },
            events,
        )
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }
}

fn serve_one(
    mut stream: TcpStream,
    key: &[u8],
    sender: &mpsc::Sender<Event>,
    mode: &AtomicU8,
    count: &AtomicUsize,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut length = 0usize;
    let mut signature = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "x-weft-signature" => signature = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    count.fetch_add(1, Ordering::SeqCst);
    match mode.load(Ordering::SeqCst) {
        ANSWER_HANG => {
            std::thread::sleep(Duration::from_secs(3600));
            return;
        }
        ANSWER_500 => {
            let _ = stream.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        _ => {}
    }
    // Verify as a receiver would: HMAC-SHA256 of the exact body with the shared key.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(signature, expected, "the webhook signature verifies");
    let events: Vec<Event> = serde_json::from_slice(&body).expect("a JSON array of events");
    for event in events {
        let _ = sender.send(event);
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// `weft watch` on a feed, its lines parsed as events down a channel.
fn watch(url: &str, token: &str) -> (Child, mpsc::Receiver<Event>) {
    let mut child = weft()
        .args(["watch", url, "--token", token])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("weft watch starts");
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let event: Event = serde_json::from_str(&line).expect("one event per line");
            if sender.send(event).is_err() {
                return;
            }
        }
    });
    (child, receiver)
}

/// The nats-server binary, installed by `scripts/install-test-deps`.
fn nats_server_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([
            "/usr/sbin".into(),
            "/usr/bin".into(),
            "/usr/local/bin".into(),
        ])
        .map(|dir| dir.join("nats-server"))
        .find(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "nats-server is not installed: run ./scripts/install-test-deps \
             (apt-get install nats-server) — the NATS event test needs a real NATS server"
        )
    })
}

/// A real nats-server on 127.0.0.1, killed when dropped.
struct Nats {
    child: Child,
    port: u16,
}

impl Nats {
    fn start() -> Nats {
        let port = free_port();
        let child = Command::new(nats_server_binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child, port }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A subscriber to `subject`: the events it receives, down a channel.
    fn subscribe(&self, subject: &str) -> mpsc::Receiver<Event> {
        let (sender, receiver) = mpsc::channel();
        let (ready, subscribed) = mpsc::channel();
        let (url, subject) = (self.url(), subject.to_owned());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let client = async_nats::connect(url).await.expect("a NATS connection");
                let mut subscription = client.subscribe(subject).await.unwrap();
                client.flush().await.unwrap();
                ready.send(()).unwrap();
                while let Some(message) = subscription.next().await {
                    let event: Event = serde_json::from_slice(&message.payload).unwrap();
                    if sender.send(event).is_err() {
                        return;
                    }
                }
            });
        });
        subscribed.recv_timeout(WAIT).expect("subscribed");
        receiver
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes on a client reach the feed, a webhook and NATS in order, and none is lost when the
/// server is killed (-9) and restarted in the middle.
#[test]
fn every_sink_gets_every_transaction_in_order_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let nats = Nats::start();
    let from_nats = nats.subscribe("weft.notes");
    let (receiver, from_webhook) = Receiver::start(ANSWER_OK, SECRET.as_bytes());
    let port = free_port();
    let flags = vec![
        "--webhook".to_owned(),
        receiver.url(),
        "--nats".to_owned(),
        nats.url(),
    ];
    let server = serve(&data, port, &flags);
    let laptop = client(dir.path(), "laptop");
    let notes = token("notes");
    insert(&laptop, 1);
    assert_synced(&sync_once(&laptop, &server.url("notes"), &notes));
    let (mut watcher, from_feed) = watch(&server.feed_url("notes"), &notes);
    let (mut feed, mut webhook, mut published) = (Vec::new(), Vec::new(), Vec::new());
    // Each write waits for its event everywhere, so that every batch holds one event and the
    // repeats a kill may cause are bounded by one.
    let mut write_and_wait = |server: &ServerProcess, id: i64| {
        if id > 1 {
            insert(&laptop, id);
            assert_synced(&sync_once(&laptop, &server.url("notes"), &notes));
        }
        collect_until(&from_feed, &mut feed, "feed", |e| has_all(e, id));
        collect_until(&from_webhook, &mut webhook, "webhook", |e| has_all(e, id));
        collect_until(&from_nats, &mut published, "NATS", |e| has_all(e, id));
    };
    for id in 1..=4 {
        write_and_wait(&server, id);
    }
    drop(server);
    let server = serve(&data, port, &flags);
    for id in 5..=8 {
        write_and_wait(&server, id);
    }
    let _ = watcher.kill();
    let _ = watcher.wait();

    // The feed resumed with Last-Event-ID: no repeats at all.
    assert_all_in_order("feed", &inserted_ids(&feed), 8, 0);
    // Sinks repeat at most the batch unacknowledged at the kill.
    assert_all_in_order("webhook", &inserted_ids(&webhook), 8, 1);
    assert_all_in_order("NATS", &inserted_ids(&published), 8, 1);
    for events in [&feed, &webhook, &published] {
        let first = &events[0];
        assert_eq!(first.database, "notes");
        let site = Replica::open(&laptop).unwrap().site_id().to_hex();
        assert_eq!(first.origin.as_deref(), Some(site.as_str()));
        assert_eq!(first.changes[0].columns["title"], "todo 1");
    }
    let versions: Vec<u64> = feed.iter().map(|e| e.db_version).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "feed db_versions increase: {versions:?}"
    );
    // A durable cursor per sink in the data directory.
    let cursors = std::fs::read_dir(data.join("events")).unwrap().count();
    assert_eq!(cursors, 2);
    drop(receiver);
}

fn get(port: u16, path: &str, authorization: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let header = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// No token, a bad one, or one for another database: refused before any event.
#[test]
fn unauthorised_feed_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port(), &[]);
    let laptop = client(dir.path(), "laptop");
    insert(&laptop, 1);
    assert_synced(&sync_once(&laptop, &server.url("notes"), &token("notes")));
    let path = "/v1/changes/notes";
    let (status, answer) = get(server.port, path, None);
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("missing token"), "{answer}");
    let (status, _) = get(server.port, path, Some("Bearer not-a-jwt"));
    assert_eq!(status, 401);
    let other = format!("Bearer {}", token("todo"));
    let (status, answer) = get(server.port, path, Some(&other));
    assert_eq!(status, 403, "{answer}");
    assert!(!answer.contains("todo 1"));
    let (status, _) = get(
        server.port,
        "/v1/changes/missing",
        Some(&other.replace("todo", "x")),
    );
    assert!(status == 401 || status == 403);
    let output = weft()
        .args([
            "watch",
            &server.feed_url("notes"),
            "--token",
            &token("todo"),
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("403"),
        "{output:?}"
    );
    // The right token reads the event.
    let output = weft()
        .args([
            "watch",
            &server.feed_url("notes"),
            "--token",
            &token("notes"),
        ])
        .args(["--count", "1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"todo 1\""));
}

/// One webhook answers 500, another never answers: clients still sync at once, and the
/// failing one gets its events once it recovers.
#[test]
fn failing_webhooks_do_not_stall_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (failing, from_failing) = Receiver::start(ANSWER_500, SECRET.as_bytes());
    let (hanging, _from_hanging) = Receiver::start(ANSWER_HANG, SECRET.as_bytes());
    let flags = vec![
        "--webhook".to_owned(),
        failing.url(),
        "--webhook".to_owned(),
        hanging.url(),
    ];
    let server = serve(&dir.path().join("data"), free_port(), &flags);
    let (laptop, phone) = (client(dir.path(), "laptop"), client(dir.path(), "phone"));
    let notes = token("notes");
    for id in 1..=3 {
        insert(&laptop, id);
        let started = Instant::now();
        assert_synced(&sync_once(&laptop, &server.url("notes"), &notes));
        assert_synced(&sync_once(&phone, &server.url("notes"), &notes));
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "sync took {:?}",
            started.elapsed()
        );
        let count: i64 = Replica::open(&phone)
            .unwrap()
            .connection()
            .query_row("SELECT count(*) FROM todo", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, id);
    }
    let deadline = Instant::now() + WAIT;
    while failing.requests.load(Ordering::SeqCst) < 2 || hanging.requests.load(Ordering::SeqCst) < 1
    {
        assert!(Instant::now() < deadline, "the webhooks were not tried");
        std::thread::sleep(Duration::from_millis(50));
    }
    failing.answer.store(ANSWER_OK, Ordering::SeqCst);
    let mut events = Vec::new();
    collect_until(&from_failing, &mut events, "recovered webhook", |e| {
        has_all(e, 3)
    });
    assert_all_in_order("recovered webhook", &inserted_ids(&events), 3, 0);
}
