//! Peer convergence benchmark against the real `weft` binary on 127.0.0.1 (run by
//! `scripts/bench-peers`, which builds it first): three `weft serve` processes in a mesh
//! (each dials the other two), one live-synced client (in-process `LiveSync`) on each, and a
//! steady load of writes spread over the three clients. For each write: the time from the
//! client's commit until the row is visible on all three servers, and until it is visible
//! on all three servers and both other clients. p50 / p99 / max.
//!
//! Visibility is observed by polling every database file with a read-only SQLite connection
//! every [`POLL`]: a server's relayed registers by db_version, a client's table by id.
//!
//! `WEFT_BIN` names the binary (default target/release/weft); `WEFT_BENCH_RATE` is writes
//! per second over all clients (default 60), `WEFT_BENCH_SECONDS` how long (default 30).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use weft_client::{LiveOptions, LiveSync, SyncTarget};
use weft_core::rusqlite::{Connection, OpenFlags};
use weft_core::Replica;

/// How often the observer looks at every file.
const POLL: Duration = Duration::from_millis(2);

/// The longest a write may take to be visible everywhere before the run fails.
const VISIBLE_WITHIN: Duration = Duration::from_secs(20);

struct Server {
    child: Child,
    port: u16,
    data: PathBuf,
}

impl Server {
    fn start(bin: &Path, data: &Path, port: u16, peers: &[u16]) -> Server {
        let mut command = Command::new(bin);
        command
            .args(["serve", "--no-auth", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(data);
        for peer in peers {
            command.arg("--peer").arg(format!("ws://127.0.0.1:{peer}"));
        }
        let mut child = command
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
        assert!(line.starts_with("listening on "), "{line:?}");
        Server {
            child,
            port,
            data: data.to_owned(),
        }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/v1/sync/bench", self.port)
    }

    fn db(&self) -> PathBuf {
        self.data.join("dbs/bench.db")
    }

    /// CPU seconds (user + system) the server used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / 100.0
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn make_client(path: &Path) {
    let replica = Replica::open(path).unwrap();
    replica
        .connection()
        .execute_batch("CREATE TABLE IF NOT EXISTS msg(id INTEGER PRIMARY KEY, body TEXT)")
        .unwrap();
    replica.enable_crr("msg").unwrap();
}

/// One file the observer watches, and what it has seen of it.
enum Watched {
    /// A server's replica: relayed registers of `msg.body` past `after`.
    Server { path: PathBuf, after: i64 },
    /// A client's `msg` table: ids from `from` on (all below are seen).
    Client {
        path: PathBuf,
        from: i64,
        pending: std::collections::BTreeSet<i64>,
    },
}

impl Watched {
    /// The write ids newly visible in the file.
    fn poll(&mut self, connection: &Connection) -> Vec<i64> {
        match self {
            Watched::Server { after, .. } => {
                let mut statement = connection
                    .prepare_cached(
                        "SELECT db_version, value FROM weft_relay \
                         WHERE db_version > ?1 AND tbl = 'msg' AND col = 'body'",
                    )
                    .unwrap();
                let rows: Vec<(i64, String)> = statement
                    .query_map([*after], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect())
                    .unwrap_or_default();
                let mut seen = Vec::new();
                for (db_version, body) in rows {
                    *after = (*after).max(db_version);
                    if let Some(id) = body.strip_prefix('w').and_then(|n| n.parse().ok()) {
                        seen.push(id);
                    }
                }
                seen
            }
            Watched::Client { from, pending, .. } => {
                let mut statement = connection
                    .prepare_cached("SELECT id FROM msg WHERE id >= ?1")
                    .unwrap();
                let ids: Vec<i64> = statement
                    .query_map([*from], |r| r.get(0))
                    .and_then(|rows| rows.collect())
                    .unwrap_or_default();
                let mut seen = Vec::new();
                for id in ids {
                    if pending.insert(id) {
                        seen.push(id);
                    }
                }
                // Advance `from` over the contiguous run of seen ids.
                while pending.remove(from) {
                    *from += 1;
                }
                seen
            }
        }
    }

    fn path(&self) -> &Path {
        match self {
            Watched::Server { path, .. } | Watched::Client { path, .. } => path,
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn main() {
    let bin = std::env::var_os("WEFT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/weft")
        });
    assert!(
        bin.exists(),
        "build the binary first: cargo build --release -p weft-cli (or set WEFT_BIN)"
    );
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rate = number("WEFT_BENCH_RATE", 60).max(1);
    let seconds = number("WEFT_BENCH_SECONDS", 30).max(1);
    let writes = (rate * seconds) as usize;
    let dir = tempfile::tempdir().unwrap();

    let ports = [free_port(), free_port(), free_port()];
    let servers: Vec<Server> = (0..3)
        .map(|i| {
            let others: Vec<u16> = (0..3).filter(|&j| j != i).map(|j| ports[j]).collect();
            Server::start(
                &bin,
                &dir.path().join(format!("server{i}")),
                ports[i],
                &others,
            )
        })
        .collect();
    let clients: Vec<PathBuf> = (0..3)
        .map(|i| dir.path().join(format!("client{i}.db")))
        .collect();
    for client in &clients {
        make_client(client);
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let options = LiveOptions::default();
    let live: Vec<LiveSync> = runtime.block_on(async {
        clients
            .iter()
            .zip(&servers)
            .map(|(client, server)| {
                LiveSync::start(client, SyncTarget::new(server.url(), None), options.clone())
            })
            .collect()
    });

    // Warm-up: one row from each client, visible everywhere, before the clock starts.
    for (i, client) in clients.iter().enumerate() {
        Replica::open(client)
            .unwrap()
            .connection()
            .execute("INSERT INTO msg VALUES (?1, 'warm-up')", [-(i as i64) - 1])
            .unwrap();
    }
    let warm = Instant::now();
    loop {
        let everywhere = servers.iter().all(|s| s.db().exists())
            && clients.iter().all(|c| {
                Connection::open_with_flags(c, OpenFlags::SQLITE_OPEN_READ_ONLY)
                    .and_then(|conn| {
                        conn.query_row("SELECT count(*) FROM msg WHERE id < 0", [], |r| {
                            r.get::<_, i64>(0)
                        })
                    })
                    .unwrap_or(0)
                    == 3
            });
        if everywhere {
            break;
        }
        assert!(warm.elapsed() < VISIBLE_WITHIN, "no warm-up convergence");
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu_before: Vec<f64> = servers.iter().map(Server::cpu_seconds).collect();

    // Observers: servers 0..3, then clients 0..3 (index 3 + i).
    let mut watched: Vec<Watched> = servers
        .iter()
        .map(|s| Watched::Server {
            path: s.db(),
            after: 0,
        })
        .chain(clients.iter().map(|c| Watched::Client {
            path: c.clone(),
            from: 0,
            pending: Default::default(),
        }))
        .collect();
    let committed: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; writes]));
    let seen: Arc<Mutex<Vec<[Option<Instant>; 6]>>> = Arc::new(Mutex::new(vec![[None; 6]; writes]));
    let observer = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let connections: Vec<Connection> = watched
                .iter()
                .map(|w| {
                    Connection::open_with_flags(w.path(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(seconds) + VISIBLE_WITHIN;
            loop {
                let now = Instant::now();
                let mut all = true;
                {
                    let mut seen = seen.lock().unwrap();
                    for (index, (w, connection)) in watched.iter_mut().zip(&connections).enumerate()
                    {
                        for id in w.poll(connection) {
                            if let Some(slot) =
                                usize::try_from(id).ok().and_then(|i| seen.get_mut(i))
                            {
                                slot[index].get_or_insert(now);
                            }
                        }
                    }
                    for (id, row) in seen.iter().enumerate() {
                        let writer = 3 + id % 3;
                        if (0..6).any(|j| j != writer && row[j].is_none()) {
                            all = false;
                            break;
                        }
                    }
                }
                if all {
                    return true;
                }
                if now > deadline {
                    return false;
                }
                std::thread::sleep(POLL);
            }
        })
    };

    // The load: write k on client k % 3, at `rate` writes per second.
    let writers: Vec<Replica> = clients.iter().map(|c| Replica::open(c).unwrap()).collect();
    let started = Instant::now();
    for k in 0..writes {
        let due = started + Duration::from_secs_f64(k as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        writers[k % 3]
            .connection()
            .execute(
                "INSERT INTO msg VALUES (?1, ?2)",
                (k as i64, format!("w{k}")),
            )
            .unwrap();
        committed.lock().unwrap()[k] = Some(Instant::now());
    }
    let load_s = started.elapsed().as_secs_f64();
    let complete = observer.join().expect("the observer");
    assert!(
        complete,
        "some writes were not visible everywhere within {VISIBLE_WITHIN:?}"
    );
    let cpu: Vec<f64> = servers
        .iter()
        .zip(&cpu_before)
        .map(|(s, before)| s.cpu_seconds() - before)
        .collect();

    let committed = committed.lock().unwrap();
    let seen = seen.lock().unwrap();
    let mut on_servers = Vec::with_capacity(writes);
    let mut everywhere = Vec::with_capacity(writes);
    for (k, row) in seen.iter().enumerate() {
        let at = committed[k].expect("committed");
        let writer = 3 + k % 3;
        let latest = |indexes: &mut dyn Iterator<Item = usize>| {
            indexes
                .filter_map(|j| row[j])
                .max()
                .map(|t| t.saturating_duration_since(at))
                .expect("seen")
        };
        on_servers.push(latest(&mut (0..3)));
        everywhere.push(latest(&mut (0..6).filter(|&j| j != writer)));
    }
    on_servers.sort();
    everywhere.sort();
    println!(
        "peers: 3 servers in a mesh on 127.0.0.1, one live client on each; {writes} writes at {rate}/s over {load_s:.1} s, spread over the 3 clients (each client's sync woken by its commit notice; visibility polled every {} ms)",
        POLL.as_millis()
    );
    for (what, samples) in [
        ("on all 3 servers", &on_servers),
        ("on all 3 servers and both other clients", &everywhere),
    ] {
        println!(
            "  commit -> visible {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            percentile(samples, 0.50),
            percentile(samples, 0.99),
            samples[samples.len() - 1].as_secs_f64() * 1e3
        );
    }
    println!(
        "  server CPU during the load: {:.2} s, {:.2} s, {:.2} s",
        cpu[0], cpu[1], cpu[2]
    );
    runtime.block_on(async {
        for sync in live {
            sync.stop().await;
        }
    });
    for server in servers {
        server.stop();
    }
}
