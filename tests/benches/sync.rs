//! Sync benchmarks against the real `weft` binary on 127.0.0.1 (run by `scripts/bench-sync`,
//! which builds it first):
//!
//! 1. Initial sync: a replica with N rows (default 1,000,000) syncs up to a fresh server;
//!    the server restarts; an empty replica syncs them down with `weft sync --once`. Reports
//!    wall time of each, bytes on the wire ÷ raw data size, and the peak RSS of the server
//!    and of the downloading client (separate processes).
//! 2. Latency: two in-process clients live-synced through the server; 1,000 writes on A, one
//!    at a time, each timed until it is visible in B's table. p50 / p99 / max.
//! 3. Idle clients: 1,000 in-process clients (each its own replica file) connect live to one
//!    server database and sync its 100 rows; once all are in sync and quiet, the server's
//!    resident memory above what it held before they came, per client, and its CPU while idle.
//!
//! `WEFT_BIN` names the binary (default target/release/weft); `WEFT_BENCH_ROWS`,
//! `WEFT_BENCH_WRITES` and `WEFT_BENCH_CLIENTS` scale the three parts;
//! `WEFT_BENCH_ONLY=initial|latency|idle` runs one.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use weft_client::{LiveEvent, LiveOptions, LiveSync, SyncTarget};
use weft_core::sync::SessionEvent;
use weft_core::Replica;

struct Server {
    child: Child,
    address: String,
}

impl Server {
    fn start(bin: &Path, data: &Path) -> Server {
        let mut child = Command::new(bin)
            .args(["serve", "--no-auth", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start weft serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        Server { child, address }
    }

    fn url(&self) -> String {
        format!("ws://{}/v1/sync/bench", self.address)
    }

    /// CPU seconds (user + system) the server used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("read /proc stat");
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
        let ticks: f64 =
            fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
        ticks / 100.0
    }

    /// Peak resident set size so far, in MiB (VmHWM).
    fn peak_rss_mib(&self) -> f64 {
        self.status_kib("VmHWM:") / 1024.0
    }

    /// Resident set size now, in KiB (VmRSS).
    fn rss_kib(&self) -> f64 {
        self.status_kib("VmRSS:")
    }

    /// A `kB` figure of /proc/PID/status.
    fn status_kib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Runs `weft sync --once` under /usr/bin/time; returns (seconds, peak RSS MiB, summary line).
fn sync_once_process(bin: &Path, db: &Path, url: &str) -> (f64, f64, String) {
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kib=%M cpu_s=%U+%S"])
        .arg(bin)
        .arg("sync")
        .arg(db)
        .arg(url)
        .arg("--once")
        .output()
        .expect("run weft sync under /usr/bin/time");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "weft sync failed: {stderr}");
    let (kib, cpu) = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib="))
        .and_then(|v| v.split_once(" cpu_s="))
        .map(|(kib, cpu)| {
            (
                kib.trim().parse::<f64>().unwrap_or(0.0),
                cpu.trim().to_owned(),
            )
        })
        .expect("max RSS from /usr/bin/time");
    eprintln!("  (client process CPU: {cpu} s user+sys)");
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("received "))
        .unwrap_or_default()
        .to_owned();
    (seconds, kib / 1024.0, summary)
}

fn bytes_in(summary: &str, after: &str) -> u64 {
    // "received N changes (B bytes), sent M (C bytes) ..."
    let rest = summary.split(after).nth(1).unwrap_or_default();
    let open = rest.find('(').map(|i| i + 1).unwrap_or(0);
    rest[open..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn initial_sync(bin: &Path, dir: &Path, rows: u64) {
    let seed = dir.join("seed.db");
    let empty = dir.join("empty.db");
    for path in [&seed, &empty] {
        // The app's schema, on both sides; only the seed has rows.
        let replica = Replica::open(path).unwrap();
        replica
            .connection()
            .execute_batch(
                "CREATE TABLE item(id INTEGER PRIMARY KEY, title TEXT, n INTEGER, done INTEGER)",
            )
            .unwrap();
        replica.enable_crr("item").unwrap();
    }
    {
        let replica = Replica::open(&seed).unwrap();
        replica
            .connection()
            .execute(
                "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1) \
                 INSERT INTO item SELECT i, 'item number ' || i || ' of the list', i * 7, i % 2 FROM k",
                [rows as i64],
            )
            .unwrap();
    }
    let raw: i64 = Replica::open(&seed)
        .unwrap()
        .connection()
        .query_row("SELECT sum(8 + length(title) + 8 + 8) FROM item", [], |r| {
            r.get(0)
        })
        .unwrap();
    let data = dir.join("server-data");
    let server = Server::start(bin, &data);
    let (up_s, up_rss, up_summary) = sync_once_process(bin, &seed, &server.url());
    let up_server_rss = server.peak_rss_mib();
    server.stop();
    // The upload leaves some hundred MB of dirty pages; the download's fsyncs would wait for
    // their writeback and measure the upload again. A server's data is written well before a
    // new client downloads it.
    let flushed = Command::new("sync").status().map(|s| s.success());
    assert!(matches!(flushed, Ok(true)), "sync(1) failed: {flushed:?}");
    let server = Server::start(bin, &data);
    let (down_s, down_rss, down_summary) = sync_once_process(bin, &empty, &server.url());
    let down_server_rss = server.peak_rss_mib();
    eprintln!(
        "  (server process CPU during the download: {:.2} s)",
        server.cpu_seconds()
    );
    server.stop();
    let down_bytes = bytes_in(&down_summary, "received ");
    let up_bytes = bytes_in(&up_summary, "sent ");
    println!(
        "initial sync of {rows} rows (4 columns; raw data {:.1} MiB):",
        raw as f64 / 1048576.0
    );
    println!(
        "  download (server -> empty client): {down_s:.2} s, {:.0} rows/s, wire {:.1} MiB = {:.2}x raw, peak RSS client {down_rss:.0} MiB, server {down_server_rss:.0} MiB",
        rows as f64 / down_s,
        down_bytes as f64 / 1048576.0,
        down_bytes as f64 / raw as f64
    );
    println!(
        "  upload (client -> fresh server):   {up_s:.2} s, {:.0} rows/s, wire {:.1} MiB = {:.2}x raw, peak RSS client {up_rss:.0} MiB, server {up_server_rss:.0} MiB",
        rows as f64 / up_s,
        up_bytes as f64 / 1048576.0,
        up_bytes as f64 / raw as f64
    );
    println!("  client summaries: down: {down_summary}; up: {up_summary}");
    let a: Vec<i64> = count_and_sum(&seed);
    let b: Vec<i64> = count_and_sum(&empty);
    assert_eq!(a, b, "the downloaded replica holds the same rows");
}

fn count_and_sum(db: &Path) -> Vec<i64> {
    Replica::open(db)
        .unwrap()
        .connection()
        .query_row(
            "SELECT count(*), sum(n), sum(length(title)) FROM item",
            [],
            |r| Ok(vec![r.get(0)?, r.get(1)?, r.get(2)?]),
        )
        .unwrap()
}

fn make_client(path: &Path) {
    let replica = Replica::open(path).unwrap();
    replica
        .connection()
        .execute_batch("CREATE TABLE IF NOT EXISTS msg(id INTEGER PRIMARY KEY, body TEXT)")
        .unwrap();
    replica.enable_crr("msg").unwrap();
}

fn latency(bin: &Path, dir: &Path, writes: usize) {
    let server = Server::start(bin, &dir.join("latency-data"));
    let target = SyncTarget::new(server.url().replace("/bench", "/latency"), None);
    let (a, b) = (dir.join("la.db"), dir.join("lb.db"));
    make_client(&a);
    make_client(&b);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let samples = runtime.block_on(async {
        let live_a = LiveSync::start(&a, target.clone(), LiveOptions::default());
        let live_b = LiveSync::start(&b, target, LiveOptions::default());
        let mut events = live_b.subscribe();
        let writer = Replica::open(&a).unwrap();
        let reader = Replica::open(&b).unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut samples = Vec::with_capacity(writes);
        for i in 0..writes as i64 {
            let started = Instant::now();
            writer
                .connection()
                .execute("INSERT INTO msg VALUES (?1, 'hello')", [i])
                .unwrap();
            let visible = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match events.recv().await {
                        Ok(LiveEvent::Sync(SessionEvent::Applied {
                            db_version: Some(_),
                            ..
                        })) => {
                            let seen: i64 = reader
                                .connection()
                                .query_row("SELECT count(*) FROM msg WHERE id = ?1", [i], |r| {
                                    r.get(0)
                                })
                                .unwrap();
                            if seen == 1 {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(e) => panic!("events: {e}"),
                    }
                }
            })
            .await;
            assert!(visible.is_ok(), "write {i} not visible on B within 10 s");
            samples.push(started.elapsed());
        }
        live_a.stop().await;
        live_b.stop().await;
        samples
    });
    server.stop();
    let mut sorted = samples.clone();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    println!(
        "write on A visible on B through the server ({writes} writes, one at a time, the writer's sync woken by its commit notice): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        sorted[sorted.len() - 1].as_secs_f64() * 1e3
    );
}

/// Server memory per idle connected client: `clients` live clients of one database.
fn idle(bin: &Path, dir: &Path, clients: usize) {
    const ROWS: i64 = 100;
    let server = Server::start(bin, &dir.join("idle-data"));
    let url = server.url().replace("/bench", "/idle");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The database holds 100 rows before anyone idles on it.
    let seed = dir.join("idle-seed.db");
    make_client(&seed);
    {
        let replica = Replica::open(&seed).unwrap();
        let tx = replica.connection().unchecked_transaction().unwrap();
        for i in 0..ROWS {
            tx.execute("INSERT INTO msg VALUES (?1, 'seeded')", [i])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let target = SyncTarget::new(url, None);
    runtime
        .block_on(weft_client::sync_once(&seed, &target, |_, _| {}))
        .unwrap();
    let made = Instant::now();
    let paths: Vec<PathBuf> = (0..clients)
        .map(|i| {
            let path = dir.join(format!("idle-{i}.db"));
            make_client(&path);
            path
        })
        .collect();
    eprintln!(
        "  ({clients} client replicas made in {:.1} s)",
        made.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(1));
    let before_kib = server.rss_kib();
    // Idle means idle: the clients do not poll for other processes' commits meanwhile.
    let options = LiveOptions {
        poll_every: Duration::from_secs(24 * 3600),
        ..LiveOptions::default()
    };
    let connected = Instant::now();
    let lives = runtime.block_on(async {
        let mut lives = Vec::with_capacity(clients);
        let mut waiting = Vec::with_capacity(clients);
        for path in &paths {
            let live = LiveSync::start(path, target.clone(), options.clone());
            let mut events = live.subscribe();
            waiting.push(tokio::spawn(async move {
                loop {
                    match events.recv().await {
                        Ok(LiveEvent::Sync(SessionEvent::InSync { .. })) => return true,
                        Ok(LiveEvent::Disconnected { error, .. }) => {
                            eprintln!("  a client disconnected: {error}");
                        }
                        Ok(_) => {}
                        Err(_) => return false,
                    }
                }
            }));
            lives.push(live);
        }
        let all = tokio::time::timeout(Duration::from_secs(300), async {
            for waiter in waiting {
                assert!(waiter.await.unwrap(), "a client's events ended");
            }
        })
        .await;
        assert!(all.is_ok(), "not every client got in sync within 300 s");
        lives
    });
    eprintln!(
        "  ({clients} clients connected and in sync in {:.1} s)",
        connected.elapsed().as_secs_f64()
    );
    for path in paths.iter().step_by(97) {
        let count: i64 = Replica::open(path)
            .unwrap()
            .connection()
            .query_row("SELECT count(*) FROM msg", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, ROWS, "every client holds the rows");
    }
    // Idle: tokio's blocking threads, which ran the connections' first steps, exit after 10 s.
    std::thread::sleep(Duration::from_secs(2));
    let cpu_before = server.cpu_seconds();
    std::thread::sleep(Duration::from_secs(15));
    let idle_cpu = server.cpu_seconds() - cpu_before;
    let after_kib = server.rss_kib();
    println!(
        "server memory with {clients} idle clients connected: {:.1} MiB before, {:.1} MiB after: {:.0} KiB per client; server CPU over 15 s idle: {:.2} s",
        before_kib / 1024.0,
        after_kib / 1024.0,
        (after_kib - before_kib) / clients as f64,
        idle_cpu
    );
    runtime.block_on(async {
        for live in lives {
            live.stop().await;
        }
    });
    server.stop();
}

fn main() {
    let bin = std::env::var_os("WEFT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/weft")
        });
    assert!(
        bin.exists(),
        "build the binary first: cargo build --release -p weft-cli"
    );
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let only = std::env::var("WEFT_BENCH_ONLY").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    if only.is_empty() || only == "initial" {
        initial_sync(&bin, dir.path(), number("WEFT_BENCH_ROWS", 1_000_000));
    }
    if only.is_empty() || only == "latency" {
        latency(&bin, dir.path(), number("WEFT_BENCH_WRITES", 1000) as usize);
    }
    if only.is_empty() || only == "idle" {
        idle(
            &bin,
            dir.path(),
            number("WEFT_BENCH_CLIENTS", 1000) as usize,
        );
    }
}
