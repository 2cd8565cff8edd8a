//! The simulation's world: servers and clients in one process, each a real SQLite replica,
//! talking through the sans-I/O `Session` over a seeded network that drops, duplicates, delays
//! (and so reorders) frames and cuts connections.
//!
//! Everything a run depends on comes from its seed: the network's and the writers' choices,
//! the replicas' wall clock (virtual time, see [`VirtualClock`]) and their site ids and
//! incarnations ([`SeededIds`]). One seed, one run: [`World::trace`] records what happened
//! so that a test can check that two runs of a seed are the same.

use crate::node::Node;
use crate::pair::{next_frame, Pair, Side};
use crate::seeded::{self, SeededIds, VirtualClock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use weft_core::blobs::BlobStore;
use weft_core::rusqlite::params;
use weft_core::sync::{ErrorCode, Role, SessionConfig, SessionEvent};
use weft_core::{Options, Replica};

/// The database name the simulation's sessions ask for.
const DATABASE: &str = "sim";

/// How often the network misbehaves.
pub struct Faults {
    /// Chance that a frame is lost.
    pub drop: f64,
    /// Chance that a frame arrives twice.
    pub duplicate: f64,
    /// Chance per step that a live link is cut.
    pub cut: f64,
    /// The longest a frame takes to arrive, in milliseconds.
    pub delay_max_ms: u64,
}

/// The network while the chaos lasts.
pub const CHAOS: Faults = Faults {
    drop: 0.03,
    duplicate: 0.03,
    cut: 0.004,
    delay_max_ms: 40,
};

/// The network once it has healed.
pub const CALM: Faults = Faults {
    drop: 0.0,
    duplicate: 0.0,
    cut: 0.0,
    delay_max_ms: 5,
};

/// Frames in flight one way: (deliver at, sequence for stable order, frame).
type Wire = Vec<(u64, u64, Vec<u8>)>;

/// A connection between two replicas: the dialling side (a client, or the server dialling a
/// peer) and the answering side, their conversation and both directions of the wire, or down
/// until a time.
pub struct Link {
    /// The replica that dials (index into [`World::nodes`]).
    pub from: usize,
    /// The replica that answers.
    pub to: usize,
    /// Whether both sides are servers.
    pub peer: bool,
    /// The conversation, while the link is up.
    pub sessions: Option<Pair>,
    /// Frames on their way to the answering side.
    pub to_server: Wire,
    /// Frames on their way to the dialling side.
    pub to_client: Wire,
    /// When a cut link comes back.
    pub down_until: u64,
}

impl Link {
    fn wire(&mut self, towards: Side) -> &mut Wire {
        match towards {
            Side::Server => &mut self.to_server,
            Side::Client => &mut self.to_client,
        }
    }

    /// The node on `side` of this link.
    fn node(&self, side: Side) -> usize {
        match side {
            Side::Client => self.from,
            Side::Server => self.to,
        }
    }
}

/// The shape of a world.
#[derive(Clone, Copy)]
pub struct Topology {
    /// How many servers (all linked to each other).
    pub servers: usize,
    /// How many clients each server has.
    pub clients_per_server: usize,
    /// Chance per step that a server is restored from its older copy, in the chaos phase.
    pub restore: f64,
    /// How long a cut peer link stays down at most (a partition), in milliseconds.
    pub partition_max_ms: u64,
}

/// One server and its clients.
pub fn star(clients: usize) -> Topology {
    Topology {
        servers: 1,
        clients_per_server: clients,
        restore: 0.0,
        partition_max_ms: 200,
    }
}

/// Three servers in a mesh, each with clients; partitions and restored servers.
pub fn mesh(clients_per_server: usize) -> Topology {
    Topology {
        servers: 3,
        clients_per_server,
        restore: 0.01,
        partition_max_ms: 2_000,
    }
}

/// What a [`Trace`] does with what happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceMode {
    /// Nothing (nothing is even formatted): the fast default.
    Off,
    /// Keeps it, to compare runs.
    Record,
    /// Keeps it and prints it to stderr as it happens.
    Print,
}

impl TraceMode {
    /// [`TraceMode::Print`] if `WEFT_SIM_TRACE` is set, else [`TraceMode::Off`].
    pub fn from_env() -> TraceMode {
        if std::env::var_os("WEFT_SIM_TRACE").is_some() {
            TraceMode::Print
        } else {
            TraceMode::Off
        }
    }
}

/// Trace lines a [`Trace`] keeps; past this it only counts and hashes them.
pub const TRACE_LINES_KEPT_MAX: usize = 200_000;

/// What happened in a run, one line per step taken (a write, a fault, a connection), frame
/// sent and session event, each with its virtual time.
pub struct Trace {
    mode: TraceMode,
    /// The first [`TRACE_LINES_KEPT_MAX`] lines.
    pub lines: Vec<String>,
    /// Every line, kept or not.
    pub lines_total: u64,
    hasher: DefaultHasher,
}

impl Trace {
    /// An empty trace.
    pub fn new(mode: TraceMode) -> Trace {
        Trace {
            mode,
            lines: Vec::new(),
            lines_total: 0,
            hasher: DefaultHasher::new(),
        }
    }

    /// Notes what happened at `now_ms` (`what` is called only if the trace is on).
    pub fn note(&mut self, now_ms: u64, what: impl FnOnce() -> String) {
        if self.mode == TraceMode::Off {
            return;
        }
        let line = format!("[{now_ms:>6}ms] {}", what());
        if self.mode == TraceMode::Print {
            eprintln!("{line}");
        }
        line.hash(&mut self.hasher);
        self.lines_total += 1;
        if self.lines.len() < TRACE_LINES_KEPT_MAX {
            self.lines.push(line);
        }
    }

    /// A hash of every line noted, kept or not (the same within one build of the tests).
    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }
}

/// Servers and clients, their links, and the seeded generator of everything that happens.
pub struct World {
    /// The generator of the network's and the writers' choices.
    pub rng: ChaCha8Rng,
    /// Virtual time, in milliseconds since the run began.
    pub now: u64,
    seq: u64,
    /// The replicas' wall clock: virtual time.
    clock: Arc<VirtualClock>,
    /// Where the replicas' site ids and incarnations come from.
    ids: Arc<SeededIds>,
    /// Servers first, then clients.
    pub nodes: Vec<Node>,
    /// Blobs received and verified, over all sessions.
    pub blobs_received: usize,
    /// How many of the nodes are servers.
    pub servers: usize,
    /// Every connection: client i to server i % servers, then every pair of servers.
    pub links: Vec<Link>,
    topology: Topology,
    /// Per server: an older copy of its file, taken early in the chaos phase.
    backups: Vec<Option<PathBuf>>,
    /// Servers restored from an older copy.
    pub restores: usize,
    /// Conversations that reconciled by ranges (not falling back to sending everything).
    pub reconciled: usize,
    /// What happened.
    pub trace: Trace,
    dir: tempfile::TempDir,
}

/// The replicated tables of the simulation's clients.
const SCHEMA: &str = "
CREATE TABLE item(id INTEGER PRIMARY KEY, title TEXT, n INTEGER, data BLOB);
CREATE TABLE pair(a TEXT NOT NULL, b INTEGER NOT NULL, v TEXT, PRIMARY KEY(a, b)) WITHOUT ROWID;
";

impl World {
    /// A world of `topology` whose every choice comes from `seed`.
    pub fn new(seed: u64, topology: Topology, trace: TraceMode) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = VirtualClock::new();
        let ids = SeededIds::new(seed);
        let options = || seeded::options(&clock, &ids);
        let mut nodes: Vec<Node> = (0..topology.servers)
            .map(|s| Node::open_with(dir.path(), &format!("server{s}.db"), options()))
            .collect();
        let clients = topology.servers * topology.clients_per_server;
        for i in 0..clients {
            let node = Node::open_with(dir.path(), &format!("client{i}.db"), options());
            let replica = &node.replica;
            replica.connection().execute_batch(SCHEMA).expect("schema");
            replica.enable_crr("item").expect("crr item");
            replica.enable_crr("pair").expect("crr pair");
            nodes.push(node);
        }
        // The first client fetches the "thumbs" bucket lazily.
        nodes[topology.servers]
            .replica
            .buckets()
            .set_lazy("thumbs", true)
            .expect("lazy");
        let link = |from, to, peer| Link {
            from,
            to,
            peer,
            sessions: None,
            to_server: Vec::new(),
            to_client: Vec::new(),
            down_until: 0,
        };
        let mut links = Vec::new();
        // Client i talks to server i % servers.
        for i in 0..clients {
            links.push(link(topology.servers + i, i % topology.servers, false));
        }
        // Every pair of servers, the lower one dialling.
        for a in 0..topology.servers {
            for b in a + 1..topology.servers {
                links.push(link(a, b, true));
            }
        }
        World {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            seq: 0,
            clock,
            ids,
            nodes,
            blobs_received: 0,
            servers: topology.servers,
            links,
            topology,
            backups: vec![None; topology.servers],
            restores: 0,
            reconciled: 0,
            trace: Trace::new(trace),
            dir,
        }
    }

    /// The options every replica of this world opens with.
    fn options(&self) -> Options {
        seeded::options(&self.clock, &self.ids)
    }

    /// The clients, after the servers.
    pub fn clients(&self) -> &[Node] {
        &self.nodes[self.servers..]
    }

    /// Notes in the trace what happened now.
    fn log(&mut self, what: impl FnOnce() -> String) {
        self.trace.note(self.now, what);
    }

    /// Keeps an older copy of a random server's file, to restore later.
    pub fn back_up(&mut self) {
        let s = self.rng.random_range(0..self.servers);
        let path = self
            .dir
            .path()
            .join(format!("server{s}-backup-{}.db", self.now));
        self.nodes[s]
            .replica
            .connection()
            .execute("VACUUM INTO ?1", [path.to_str().expect("utf-8 path")])
            .expect("backup");
        self.log(|| format!("server {s} backed up"));
        self.backups[s] = Some(path);
    }

    /// Replaces a server's data with its older copy, as an operator restoring a backup
    /// does: its connections drop, and the copy gets a new incarnation.
    pub fn restore(&mut self) {
        let s = self.rng.random_range(0..self.servers);
        let Some(backup) = self.backups[s].take() else {
            return;
        };
        for i in 0..self.links.len() {
            if self.links[i].from == s || self.links[i].to == s {
                self.cut(i);
            }
        }
        let live = self.dir.path().join(format!("server{s}.db"));
        let placeholder =
            Replica::open_with(self.dir.path().join("placeholder.db"), self.options())
                .expect("open");
        drop(std::mem::replace(&mut self.nodes[s].replica, placeholder));
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", live.display()));
        }
        std::fs::copy(&backup, &live).expect("restore the copy");
        let restored = Replica::open_with(&live, self.options()).expect("open the restored copy");
        restored.renew_incarnation().expect("new incarnation");
        self.nodes[s].replica = restored;
        self.restores += 1;
        self.log(|| format!("server {s} restored from an older copy"));
    }

    /// A random write on a random client, through plain SQL.
    pub fn write(&mut self) {
        let c = self.rng.random_range(0..self.clients().len());
        let id: i64 = self.rng.random_range(0..12);
        let op = self.rng.random_range(0..10);
        if op >= 7 {
            self.write_blob(c, id, op);
            return;
        }
        let text = format!("c{c}-{}", self.rng.random::<u16>());
        let conn = self.clients()[c].replica.connection();
        let result = match op {
            0 | 1 => conn.execute(
                "INSERT INTO item(id, title, n) VALUES (?1, ?2, ?3) ON CONFLICT(id) DO UPDATE SET title = excluded.title",
                params![id, text, id * 10],
            ),
            2 => conn.execute("UPDATE item SET n = n + 1 WHERE id = ?1", [id]),
            3 => conn.execute("DELETE FROM item WHERE id = ?1", [id]),
            4 => conn.execute(
                "UPDATE item SET data = ?2 WHERE id = ?1",
                params![id, vec![c as u8; (id as usize) * 100]],
            ),
            5 => conn.execute(
                "INSERT OR REPLACE INTO pair(a, b, v) VALUES (?1, ?2, ?3)",
                params![format!("k{}", id % 3), id % 4, text],
            ),
            _ => conn.execute(
                "DELETE FROM pair WHERE a = ?1 AND b = ?2",
                params![format!("k{}", id % 3), id % 4],
            ),
        };
        result.expect("a local write");
        self.log(|| format!("client {c} write op {op} id {id}"));
    }

    /// A random blob operation on client `c`: put (new or overwriting bytes), rename, remove.
    fn write_blob(&mut self, c: usize, id: i64, op: u32) {
        let node = &self.nodes[self.servers + c];
        let bucket = if id % 3 == 0 { "thumbs" } else { "files" };
        let name = format!("dir/f{}", id % 5);
        let size = if self.rng.random_bool(0.1) {
            self.rng.random_range(0..700_000)
        } else {
            self.rng.random_range(0..3_000)
        };
        let fill: u8 = self.rng.random();
        let buckets = node.replica.buckets();
        match op {
            7 | 8 => {
                let bytes: Vec<u8> = (0..size)
                    .map(|i| fill.wrapping_add((i % 251) as u8))
                    .collect();
                buckets
                    .put(
                        &*node.store,
                        bucket,
                        &name,
                        &bytes[..],
                        "application/x-sim",
                        |_| {},
                    )
                    .expect("put");
            }
            _ => {
                if self.rng.random_bool(0.5) {
                    buckets.remove(bucket, &name).expect("remove");
                } else if buckets.get(bucket, &name).expect("get").is_some() {
                    buckets
                        .rename(bucket, &name, &format!("moved/f{}", id % 5))
                        .expect("rename");
                }
            }
        }
        self.log(|| format!("client {c} blob op {op} {bucket}/{name} ({size} bytes)"));
    }

    /// Whether every node holds the bytes of every live entry it fetches.
    pub fn blobs_complete(&self) -> bool {
        self.nodes.iter().enumerate().all(|(n, node)| {
            node.replica
                .buckets()
                .missing(None, 1, n < self.servers)
                .expect("missing")
                .is_empty()
        })
    }

    fn connect(&mut self, i: usize) {
        let (from, to, peer) = (self.links[i].from, self.links[i].to, self.links[i].peer);
        let (mut dialler, mut answerer) = if peer {
            let mut answering = lossy(Role::Server);
            answering.accept_peer = true;
            (lossy(Role::Peer), answering)
        } else {
            (lossy(Role::Client), lossy(Role::Server))
        };
        dialler.blobs = Some(self.nodes[from].store.clone());
        answerer.blobs = Some(self.nodes[to].store.clone());
        let sessions = Pair::open(
            &self.nodes[from].replica,
            dialler,
            &self.nodes[to].replica,
            answerer,
        );
        let link = &mut self.links[i];
        link.sessions = Some(sessions);
        link.to_server.clear();
        link.to_client.clear();
        self.log(|| format!("link {i} connected"));
    }

    fn cut(&mut self, i: usize) {
        let longest = if self.links[i].peer {
            self.topology.partition_max_ms
        } else {
            200
        };
        let until = self.now + self.rng.random_range(10..longest.max(11));
        let link = &mut self.links[i];
        link.sessions = None;
        link.to_server.clear();
        link.to_client.clear();
        link.down_until = until;
        self.log(|| format!("link {i} cut until {until}"));
    }

    /// One step: virtual time moves on, then per link maybe a fault, then every due frame
    /// delivered and every session polled.
    pub fn step(&mut self, faults: &Faults) {
        self.now += self.rng.random_range(1..=10);
        self.clock.set(self.now);
        for i in 0..self.links.len() {
            let up = self.links[i].sessions.is_some();
            if up && self.rng.random_bool(faults.cut) {
                self.cut(i);
                continue;
            }
            if !up {
                if self.now >= self.links[i].down_until {
                    self.connect(i);
                } else {
                    continue;
                }
            }
            self.deliver(i);
            self.pump(i, faults);
        }
    }

    fn deliver(&mut self, i: usize) {
        let now = self.now;
        for towards in Side::BOTH.into_iter().rev() {
            let link = &mut self.links[i];
            let wire = link.wire(towards);
            wire.sort_by_key(|(at, seq, _)| (*at, *seq));
            let due = wire.iter().take_while(|(at, _, _)| *at <= now).count();
            let frames: Vec<Vec<u8>> = wire.drain(..due).map(|(_, _, f)| f).collect();
            let replica = &self.nodes[link.node(towards)].replica;
            for frame in frames {
                let Some(sessions) = link.sessions.as_mut() else {
                    break;
                };
                sessions
                    .session(towards)
                    .handle_frame(replica, &frame, now)
                    .expect("no local failure");
            }
        }
        let Some(sessions) = self.links[i].sessions.as_mut() else {
            return;
        };
        for side in Side::BOTH {
            let session = sessions.session(side);
            if session.poll_timeout().is_some_and(|t| t <= now) {
                session.handle_timeout(now);
            }
        }
    }

    /// Takes every frame both sessions want to send and puts it on the wire, with faults.
    fn pump(&mut self, i: usize, faults: &Faults) {
        let now = self.now;
        for from in Side::BOTH {
            let towards = match from {
                Side::Client => Side::Server,
                Side::Server => Side::Client,
            };
            loop {
                let link = &mut self.links[i];
                let replica = &self.nodes[link.node(from)].replica;
                let Some(sessions) = link.sessions.as_mut() else {
                    break;
                };
                let Some(frame) = next_frame(sessions.session(from), replica, now) else {
                    break;
                };
                self.trace.note(now, || {
                    format!("link {i} {} sends {}", from.name(), describe(&frame))
                });
                let copies = if self.rng.random_bool(faults.drop) {
                    0
                } else if self.rng.random_bool(faults.duplicate) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let at = now + self.rng.random_range(0..=faults.delay_max_ms);
                    self.seq += 1;
                    self.links[i]
                        .wire(towards)
                        .push((at, self.seq, frame.clone()));
                }
            }
            self.drain_events(i, from);
        }
    }

    fn drain_events(&mut self, i: usize, side: Side) {
        let Some(sessions) = self.links[i].sessions.as_mut() else {
            return;
        };
        let session = sessions.session(side);
        let mut closed = None;
        while let Some(event) = session.poll_event() {
            if let SessionEvent::Closed { code, message, .. } = &event {
                closed = Some((*code, format!("{code}: {message}")));
            }
            if matches!(
                event,
                SessionEvent::Reconciled {
                    fallback: false,
                    ..
                }
            ) {
                self.reconciled += 1;
            }
            if matches!(event, SessionEvent::BlobReceived { .. }) {
                self.blobs_received += 1;
            }
            if let SessionEvent::BlobRefused { hash, reason } = &event {
                panic!("link {i}: blob {hash} refused between honest replicas: {reason}");
            }
            self.trace
                .note(self.now, || format!("link {i} {} {event:?}", side.name()));
        }
        match closed {
            // A hello lost too often: the driver reconnects, as a real one does.
            Some((ErrorCode::Timeout, _)) => self.cut(i),
            Some((_, reason)) => panic!("link {i} closed on a protocol error: {reason}"),
            None => {}
        }
    }

    /// Every link's state, for a failure message.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (n, node) in self.nodes.iter().enumerate() {
            let missing = node
                .replica
                .buckets()
                .missing(None, 8, n < self.servers)
                .expect("missing");
            if !missing.is_empty() {
                out += &format!("node {n} lacks blobs {missing:?}\n");
                for (m, other) in self.nodes.iter().enumerate() {
                    for hash in &missing {
                        if other.replica.buckets().is_held(hash).expect("held")
                            || other.store.size(hash).expect("size").is_some()
                        {
                            out += &format!("  node {m} holds {hash:?}\n");
                        }
                    }
                }
            }
        }
        for (i, l) in self.links.iter().enumerate() {
            out += &format!(
                "link {i}: queued {}/{} frames\n  client {:?}\n  server {:?}\n",
                l.to_server.len(),
                l.to_client.len(),
                l.sessions.as_ref().map(|s| s.client.status().clone()),
                l.sessions.as_ref().map(|s| s.server.status().clone()),
            );
        }
        out
    }

    /// Whether every link is up, idle and has seen equal digests, and every node holds the
    /// blobs it fetches.
    pub fn settled(&self) -> bool {
        self.links.iter().all(|l| {
            l.to_client.is_empty()
                && l.to_server.is_empty()
                && l.sessions.as_ref().is_some_and(Pair::settled)
        }) && self.blobs_complete()
    }
}

/// A frame as a trace line: its length, a hash of its bytes and the start of what it says.
fn describe(frame: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    frame.hash(&mut hasher);
    let what = match weft_core::sync::decode_frame(frame) {
        Ok(weft_core::sync::Message::Changes(c)) => {
            format!(
                "changes {:?} -> {:?} n={} done={}",
                c.from, c.to, c.count, c.done
            )
        }
        Ok(other) => format!("{other:?}").chars().take(160).collect(),
        Err(e) => format!("{e:?}"),
    };
    format!("{} bytes #{:016x}: {what}", frame.len(), hasher.finish())
}

/// A session configuration for this network, which loses frames: resend on a timer.
fn lossy(role: Role) -> SessionConfig {
    let mut config = SessionConfig::new(role, DATABASE);
    config.resend_after_ms = Some(weft_core::sync::RESEND_AFTER_MS);
    config
}

/// Every row of a client's tables, as text, table by table in key order.
pub fn table_rows(replica: &Replica) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (table, sql) in [
        (
            "item",
            "SELECT id, title, n, hex(data) FROM item ORDER BY id",
        ),
        ("pair", "SELECT a, b, v FROM pair ORDER BY a, b"),
    ] {
        let mut statement = replica.connection().prepare(sql).expect("select");
        let count = statement.column_count();
        let rows = statement
            .query_map([], |r| {
                let mut cells = Vec::new();
                for i in 0..count {
                    cells.push(format!(
                        "{:?}",
                        r.get::<_, weft_core::rusqlite::types::Value>(i)?
                    ));
                }
                Ok(cells.join("|"))
            })
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        out.insert(table.to_owned(), rows);
    }
    out
}
