//! Change-event benchmark against the real `weft` binary on 127.0.0.1 (run by
//! `scripts/bench-events`, which builds it first) and a real `nats-server`:
//!
//! 1. Latency: one live-synced client (in-process `LiveSync`) writes one row per transaction
//!    at a steady rate; `weft watch` follows the server's feed and a NATS subscriber (plain
//!    NATS protocol over TCP) follows `weft.bench`. For each row: the time from the client's
//!    commit until its event is read from `weft watch`'s stdout, and from NATS. p50 / p99.
//! 2. Throughput: a database with many committed transactions, read from the start by one
//!    `weft watch --since 0 --count N`: events per second to one subscriber.
//!
//! `WEFT_BIN` names the binary (default target/release/weft); `WEFT_BENCH_RATE` is writes
//! per second (default 50), `WEFT_BENCH_SECONDS` how long (default 20),
//! `WEFT_BENCH_EVENTS` the transactions of the throughput part (default 20000).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use weft_client::{LiveOptions, LiveSync, SyncTarget};
use weft_core::{Change, Replica, SiteId, Value};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nats_server() -> (Process, u16) {
    let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("nats-server");
    let port = free_port();
    let child = Command::new(binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (scripts/install-test-deps installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(10));
    }
    (Process(child), port)
}

fn serve(bin: &Path, data: &Path, nats_port: Option<u16>) -> (Process, u16) {
    let port = free_port();
    let mut command = Command::new(bin);
    command
        .args(["serve", "--no-auth", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data")
        .arg(data);
    if let Some(nats) = nats_port {
        command
            .arg("--nats")
            .arg(format!("nats://127.0.0.1:{nats}"));
    }
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start weft serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on "), "{line:?}");
    (Process(child), port)
}

/// The row ids (the server's positional key `"0"`) of one event's JSON, found by a plain
/// scan (the server keys rows by position; this crate has no JSON parser).
fn ids_of(line: &[u8]) -> Vec<i64> {
    const KEY: &str = "\"pk\":{\"0\":";
    let text = String::from_utf8_lossy(line);
    text.match_indices(KEY)
        .filter_map(|(at, _)| {
            let digits: String = text[at + KEY.len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            digits.parse().ok()
        })
        .collect()
}

/// `weft watch` on the feed: (id, arrival) down a channel.
fn watch(
    bin: &Path,
    port: u16,
    since: u64,
    count: Option<u64>,
) -> (Process, mpsc::Receiver<(Vec<i64>, Instant)>) {
    let mut command = Command::new(bin);
    command
        .arg("watch")
        .arg(format!("http://127.0.0.1:{port}/v1/changes/bench"))
        .args(["--since", &since.to_string()]);
    if let Some(count) = count {
        command.args(["--count", &count.to_string()]);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { return };
            let now = Instant::now();
            if sender.send((ids_of(&line), now)).is_err() {
                return;
            }
        }
    });
    (Process(child), receiver)
}

/// A NATS subscriber speaking the plain text protocol: (ids, arrival) down a channel.
fn nats_subscribe(port: u16, subject: &str) -> mpsc::Receiver<(Vec<i64>, Instant)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    write!(
        stream,
        "CONNECT {{\"verbose\":false,\"headers\":true,\"no_responders\":true}}\r\nSUB {subject} 1\r\nPING\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    // INFO, then PONG once the subscription is registered.
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with("PONG") {
            break;
        }
    }
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let now = Instant::now();
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.first().copied() {
            Some("PING") => {
                let _ = stream.write_all(b"PONG\r\n");
            }
            Some("HMSG") | Some("MSG") => {
                let total: usize = parts.last().and_then(|n| n.parse().ok()).unwrap();
                let headers: usize = if parts[0] == "HMSG" {
                    parts[parts.len() - 2].parse().unwrap()
                } else {
                    0
                };
                let mut body = vec![0; total + 2];
                reader.read_exact(&mut body).unwrap();
                if sender.send((ids_of(&body[headers..total]), now)).is_err() {
                    return;
                }
            }
            _ => {}
        }
    });
    receiver
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<28} n={:<6} p50={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0),
    );
}

fn latency(bin: &Path, dir: &Path) {
    let rate = env_number("WEFT_BENCH_RATE", 50).max(1);
    let seconds = env_number("WEFT_BENCH_SECONDS", 20);
    let (_nats, nats_port) = nats_server();
    let data = dir.join("latency");
    let (_server, port) = serve(bin, &data, Some(nats_port));
    let client = dir.join("client.db");
    {
        let replica = Replica::open(&client).unwrap();
        replica
            .connection()
            .execute_batch("CREATE TABLE msg(id INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        replica.enable_crr("msg").unwrap();
        replica
            .connection()
            .execute("INSERT INTO msg VALUES (0, 'warm-up')", [])
            .unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let live = runtime.block_on(async {
        LiveSync::start(
            &client,
            SyncTarget::new(format!("ws://127.0.0.1:{port}/v1/sync/bench"), None),
            LiveOptions::default(),
        )
    });
    // The database exists once the warm-up row arrived.
    let db = data.join("dbs/bench.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !db.exists() || Replica::open(&db).unwrap().db_version().unwrap() == 0 {
        assert!(Instant::now() < deadline, "warm-up did not sync");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_watch, from_feed) = watch(bin, port, 0, None);
    let from_nats = nats_subscribe(nats_port, "weft.bench");
    std::thread::sleep(Duration::from_millis(500));
    let writer = Replica::open(&client).unwrap();
    let total = rate * seconds;
    let mut committed: HashMap<i64, Instant> = HashMap::new();
    let start = Instant::now();
    for id in 1..=total as i64 {
        let due = start + Duration::from_secs_f64((id - 1) as f64 / rate as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        writer
            .connection()
            .execute("INSERT INTO msg VALUES (?1, 'x')", [id])
            .unwrap();
        committed.insert(id, Instant::now());
    }
    let collect = |receiver: &mpsc::Receiver<(Vec<i64>, Instant)>| {
        let mut samples = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while samples.len() < total as usize {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok((ids, at)) = receiver.recv_timeout(left) else {
                panic!("only {} of {total} events arrived", samples.len());
            };
            for id in ids {
                if let Some(commit) = committed.get(&id) {
                    samples.push(at.saturating_duration_since(*commit));
                }
            }
        }
        samples
    };
    println!("latency: {total} single-row transactions at {rate}/s from one live client");
    report("commit -> feed (weft watch)", collect(&from_feed));
    report("commit -> NATS subscriber", collect(&from_nats));
    runtime.block_on(async { live.stop().await });
}

fn throughput(bin: &Path, dir: &Path) {
    let events = env_number("WEFT_BENCH_EVENTS", 20_000);
    let data = dir.join("throughput");
    std::fs::create_dir_all(data.join("dbs")).unwrap();
    let db = data.join("dbs/bench.db");
    {
        let replica = Replica::open(&db).unwrap();
        let site = SiteId::random();
        let started = Instant::now();
        for id in 1..=events as i64 {
            let change = |column: Option<&str>, value: Value| Change {
                table: "msg".into(),
                pk: vec![Value::Integer(id)],
                column: column.map(Into::into),
                value,
                clock: (id as u64) << 16,
                site,
                cl: 1,
                db_version: id as u64,
            };
            replica
                .apply_changes(&[
                    change(None, Value::Null),
                    change(Some("body"), Value::Text(format!("message {id}"))),
                ])
                .unwrap();
        }
        println!(
            "throughput: {events} transactions (one row, two registers each) merged in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let (_server, port) = serve(bin, &data, None);
    let started = Instant::now();
    let (_watch, from_feed) = watch(bin, port, 0, Some(events));
    let mut received = 0u64;
    let mut first = None;
    while received < events {
        let (_, at) = from_feed
            .recv_timeout(Duration::from_secs(60))
            .expect("the feed keeps going");
        first.get_or_insert(at);
        received += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "feed catch-up to one subscriber (weft watch --since 0): {events} events in {elapsed:.2} s = {:.0} events/s (first event after {:.0} ms)",
        events as f64 / elapsed,
        first.map_or(0.0, |f| f.duration_since(started).as_secs_f64() * 1e3)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bin: PathBuf = std::env::var_os("WEFT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/weft")
        });
    assert!(bin.is_file(), "no weft binary at {}", bin.display());
    let dir = tempfile::tempdir().unwrap();
    latency(&bin, dir.path());
    throughput(&bin, dir.path());
}
