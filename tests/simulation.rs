//! A deterministic simulation of sync: servers and clients in one process, each a real SQLite
//! replica, talking through the sans-I/O `Session` over a seeded network that drops,
//! duplicates, delays (and so reorders) frames and cuts connections. Clients write at random
//! throughout. Then the network heals and writes stop: every seed must end with equal digests
//! everywhere and equal tables on every client.
//!
//! Two worlds: one server with its clients, and three servers in a mesh of peer links (each
//! with clients) whose links are partitioned for long spells and whose servers are now and
//! then restored from an older copy of their data (with a new incarnation), so that peers
//! and clients must reconcile without cursors.
//!
//! Clients also put, overwrite, rename and remove blobs (one bucket fetched lazily by the
//! first client): every seed must also end with every replica's store holding, verified, the
//! bytes of every live entry it fetches.
//!
//! `WEFT_SIM_SEEDS=N` runs N seeds (default 200, and a quarter of that for the mesh);
//! `WEFT_SIM_SEED=S` runs only seed S (print its trace with `WEFT_SIM_TRACE=1`);
//! `WEFT_SIM_CLIENTS=N` sets the number of clients per server.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use weft_core::blobs::{BlobHash, BlobStore, LocalBlobs};
use weft_core::rusqlite::params;
use weft_core::sync::{ErrorCode, Role, Session, SessionConfig, SessionEvent};
use weft_core::Replica;

const DATABASE: &str = "sim";
/// Steps of chaos (writes, faults); each step is 1-10 virtual milliseconds.
const CHAOS_STEPS: usize = 400;
/// Steps allowed after healing before the run counts as stuck.
const HEAL_STEPS_MAX: usize = 20_000;

struct Faults {
    drop: f64,
    duplicate: f64,
    cut: f64,
    delay_max_ms: u64,
}

const CHAOS: Faults = Faults {
    drop: 0.03,
    duplicate: 0.03,
    cut: 0.004,
    delay_max_ms: 40,
};

const CALM: Faults = Faults {
    drop: 0.0,
    duplicate: 0.0,
    cut: 0.0,
    delay_max_ms: 5,
};

/// Frames in flight one way: (deliver at, sequence for stable order, frame).
type Wire = Vec<(u64, u64, Vec<u8>)>;

/// A connection between two replicas: the dialling side (a client, or the server dialling a
/// peer) and the answering side, both sessions and both directions, or down until a time.
/// The fields keep the client/server names of the common case.
struct Link {
    /// The replica that dials (index into `World::nodes`).
    from: usize,
    /// The replica that answers.
    to: usize,
    /// Whether both sides are servers.
    peer: bool,
    client: Option<Session>,
    server: Option<Session>,
    to_server: Wire,
    to_client: Wire,
    down_until: u64,
}

/// The shape of a world.
#[derive(Clone, Copy)]
struct Topology {
    servers: usize,
    clients_per_server: usize,
    /// Chance per step that a server is restored from its older copy, in the chaos phase.
    restore: f64,
    /// How long a cut peer link stays down at most (a partition), in milliseconds.
    partition_max_ms: u64,
}

struct World {
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    /// Servers first, then clients.
    nodes: Vec<Replica>,
    /// Each node's blob store (beside its file).
    stores: Vec<Arc<LocalBlobs>>,
    /// Blobs received and verified, over all sessions.
    blobs_received: usize,
    servers: usize,
    links: Vec<Link>,
    topology: Topology,
    /// Per server: an older copy of its file, taken early in the chaos phase.
    backups: Vec<Option<std::path::PathBuf>>,
    restores: usize,
    /// Conversations that reconciled by ranges (not falling back to sending everything).
    reconciled: usize,
    trace: bool,
    dir: tempfile::TempDir,
}

const SCHEMA: &str = "
CREATE TABLE item(id INTEGER PRIMARY KEY, title TEXT, n INTEGER, data BLOB);
CREATE TABLE pair(a TEXT NOT NULL, b INTEGER NOT NULL, v TEXT, PRIMARY KEY(a, b)) WITHOUT ROWID;
";

impl World {
    fn new(seed: u64, topology: Topology) -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nodes: Vec<Replica> = (0..topology.servers)
            .map(|s| Replica::open(dir.path().join(format!("server{s}.db"))).expect("server"))
            .collect();
        let clients = topology.servers * topology.clients_per_server;
        for i in 0..clients {
            let replica = Replica::open(dir.path().join(format!("client{i}.db"))).expect("client");
            replica.connection().execute_batch(SCHEMA).expect("schema");
            replica.enable_crr("item").expect("crr item");
            replica.enable_crr("pair").expect("crr pair");
            nodes.push(replica);
        }
        let stores = nodes
            .iter()
            .map(|n| {
                Arc::new(
                    LocalBlobs::beside(n.path())
                        .expect("blob store")
                        .without_fsync(),
                )
            })
            .collect();
        // The first client fetches the "thumbs" bucket lazily.
        nodes[topology.servers]
            .buckets()
            .set_lazy("thumbs", true)
            .expect("lazy");
        let link = |from, to, peer| Link {
            from,
            to,
            peer,
            client: None,
            server: None,
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
            nodes,
            stores,
            blobs_received: 0,
            servers: topology.servers,
            links,
            topology,
            backups: vec![None; topology.servers],
            restores: 0,
            reconciled: 0,
            trace: std::env::var_os("WEFT_SIM_TRACE").is_some(),
            dir,
        }
    }

    fn clients(&self) -> &[Replica] {
        &self.nodes[self.servers..]
    }

    /// Keeps an older copy of a random server's file, to restore later.
    fn back_up(&mut self) {
        let s = self.rng.random_range(0..self.servers);
        let path = self
            .dir
            .path()
            .join(format!("server{s}-backup-{}.db", self.now));
        self.nodes[s]
            .connection()
            .execute("VACUUM INTO ?1", [path.to_str().expect("utf-8 path")])
            .expect("backup");
        self.log(|| format!("server {s} backed up"));
        self.backups[s] = Some(path);
    }

    /// Replaces a server's data with its older copy, as an operator restoring a backup
    /// does: its connections drop, and the copy gets a new incarnation.
    fn restore(&mut self) {
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
        let placeholder = Replica::open(self.dir.path().join("placeholder.db")).expect("open");
        drop(std::mem::replace(&mut self.nodes[s], placeholder));
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", live.display()));
        }
        std::fs::copy(&backup, &live).expect("restore the copy");
        let restored = Replica::open(&live).expect("open the restored copy");
        restored.renew_incarnation().expect("new incarnation");
        self.nodes[s] = restored;
        self.restores += 1;
        self.log(|| format!("server {s} restored from an older copy"));
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[{:>6}ms] {}", self.now, what());
        }
    }

    /// A random write on a random client, through plain SQL.
    fn write(&mut self) {
        let c = self.rng.random_range(0..self.clients().len());
        let id: i64 = self.rng.random_range(0..12);
        let op = self.rng.random_range(0..10);
        if op >= 7 {
            self.write_blob(c, id, op);
            return;
        }
        let text = format!("c{c}-{}", self.rng.random::<u16>());
        let conn = self.clients()[c].connection();
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
        let node = self.servers + c;
        let bucket = if id % 3 == 0 { "thumbs" } else { "files" };
        let name = format!("dir/f{}", id % 5);
        let size = if self.rng.random_bool(0.1) {
            self.rng.random_range(0..700_000)
        } else {
            self.rng.random_range(0..3_000)
        };
        let fill: u8 = self.rng.random();
        let buckets = self.nodes[node].buckets();
        match op {
            7 | 8 => {
                let bytes: Vec<u8> = (0..size)
                    .map(|i| fill.wrapping_add((i % 251) as u8))
                    .collect();
                buckets
                    .put(
                        &*self.stores[node],
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
    fn blobs_complete(&self) -> bool {
        self.nodes.iter().enumerate().all(|(n, node)| {
            node.buckets()
                .missing(None, 1, n < self.servers)
                .expect("missing")
                .is_empty()
        })
    }

    fn connect(&mut self, i: usize) {
        let (from, to, peer) = (self.links[i].from, self.links[i].to, self.links[i].peer);
        let (dialler, answerer) = if peer {
            let mut answering = lossy(Role::Server);
            answering.accept_peer = true;
            (lossy(Role::Peer), answering)
        } else {
            (lossy(Role::Client), lossy(Role::Server))
        };
        let (mut dialler, mut answerer) = (dialler, answerer);
        dialler.blobs = Some(self.stores[from].clone());
        answerer.blobs = Some(self.stores[to].clone());
        let client = Session::initiator(&self.nodes[from], dialler).expect("dialling session");
        let server = Session::responder(&self.nodes[to], answerer).expect("answering session");
        let link = &mut self.links[i];
        link.client = Some(client);
        link.server = Some(server);
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
        link.client = None;
        link.server = None;
        link.to_server.clear();
        link.to_client.clear();
        link.down_until = until;
        self.log(|| format!("link {i} cut until {until}"));
    }

    /// One step: maybe a fault, then every due frame delivered and every session polled.
    fn step(&mut self, faults: &Faults) {
        self.now += self.rng.random_range(1..=10);
        for i in 0..self.links.len() {
            let up = self.links[i].client.is_some();
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
        for towards_server in [true, false] {
            let link = &mut self.links[i];
            let wire = if towards_server {
                &mut link.to_server
            } else {
                &mut link.to_client
            };
            wire.sort_by_key(|(at, seq, _)| (*at, *seq));
            let due = wire.iter().take_while(|(at, _, _)| *at <= now).count();
            let frames: Vec<Vec<u8>> = wire.drain(..due).map(|(_, _, f)| f).collect();
            for frame in frames {
                let link = &mut self.links[i];
                let (session, replica) = if towards_server {
                    (link.server.as_mut(), &self.nodes[link.to])
                } else {
                    (link.client.as_mut(), &self.nodes[link.from])
                };
                let Some(session) = session else { break };
                session
                    .handle_frame(replica, &frame, now)
                    .expect("no local failure");
            }
        }
        let link = &mut self.links[i];
        for session in [link.client.as_mut(), link.server.as_mut()]
            .into_iter()
            .flatten()
        {
            if session.poll_timeout().is_some_and(|t| t <= now) {
                session.handle_timeout(now);
            }
        }
    }

    /// Takes every frame both sessions want to send and puts it on the wire, with faults.
    fn pump(&mut self, i: usize, faults: &Faults) {
        let now = self.now;
        for from_client in [true, false] {
            loop {
                let link = &mut self.links[i];
                let (session, replica) = if from_client {
                    (link.client.as_mut(), &self.nodes[link.from])
                } else {
                    (link.server.as_mut(), &self.nodes[link.to])
                };
                let Some(session) = session else { break };
                let Some(frame) = next_frame(session, replica, now) else {
                    break;
                };
                if self.trace {
                    let what = match weft_core::sync::decode_frame(&frame) {
                        Ok(weft_core::sync::Message::Changes(c)) => {
                            format!(
                                "changes {:?} -> {:?} n={} done={}",
                                c.from, c.to, c.count, c.done
                            )
                        }
                        Ok(other) => format!("{other:?}").chars().take(160).collect(),
                        Err(e) => format!("{e:?}"),
                    };
                    eprintln!(
                        "[{:>6}ms] link {i} {} sends {what}",
                        now,
                        if from_client { "client" } else { "server" }
                    );
                }
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
                    let link = &mut self.links[i];
                    let wire = if from_client {
                        &mut link.to_server
                    } else {
                        &mut link.to_client
                    };
                    wire.push((at, self.seq, frame.clone()));
                }
            }
            self.drain_events(i, from_client);
        }
    }

    fn drain_events(&mut self, i: usize, client_side: bool) {
        let link = &mut self.links[i];
        let session = if client_side {
            link.client.as_mut()
        } else {
            link.server.as_mut()
        };
        let Some(session) = session else { return };
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
            if self.trace {
                eprintln!(
                    "[{:>6}ms] link {i} {} {event:?}",
                    self.now,
                    if client_side { "client" } else { "server" }
                );
            }
        }
        match closed {
            // A hello lost too often: the driver reconnects, as a real one does.
            Some((ErrorCode::Timeout, _)) => self.cut(i),
            Some((_, reason)) => panic!("link {i} closed on a protocol error: {reason}"),
            None => {}
        }
    }

    /// Every link's state, for a failure message.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (n, node) in self.nodes.iter().enumerate() {
            let missing = node
                .buckets()
                .missing(None, 8, n < self.servers)
                .expect("missing");
            if !missing.is_empty() {
                out += &format!("node {n} lacks blobs {missing:?}\n");
                for (m, other) in self.nodes.iter().enumerate() {
                    for hash in &missing {
                        if other.buckets().is_held(hash).expect("held")
                            || self.stores[m].size(hash).expect("size").is_some()
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
                l.client.as_ref().map(|s| s.status().clone()),
                l.server.as_ref().map(|s| s.status().clone()),
            );
        }
        out
    }

    /// Whether every link is up, idle and has seen equal digests, and every node holds the
    /// blobs it fetches.
    fn settled(&self) -> bool {
        let idle = |s: &Session| s.status().in_sync && !s.status().blobs.fetching;
        self.links.iter().all(|l| {
            l.to_client.is_empty()
                && l.to_server.is_empty()
                && l.client.as_ref().is_some_and(idle)
                && l.server.as_ref().is_some_and(idle)
        }) && self.blobs_complete()
    }
}

/// A session configuration for this network, which loses frames: resend on a timer.
fn lossy(role: Role) -> SessionConfig {
    let mut config = SessionConfig::new(role, DATABASE);
    config.resend_after_ms = Some(weft_core::sync::RESEND_AFTER_MS);
    config
}

fn table_rows(replica: &Replica) -> BTreeMap<String, Vec<String>> {
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

fn run_seed(seed: u64, topology: Topology) -> World {
    let mut world = World::new(seed, topology);
    for step in 0..CHAOS_STEPS {
        if world.rng.random_bool(0.3) {
            world.write();
        }
        if topology.restore > 0.0 {
            if step == CHAOS_STEPS / 4 {
                world.back_up();
            }
            if step > CHAOS_STEPS / 4 && world.rng.random_bool(topology.restore) {
                world.restore();
            }
        }
        world.step(&CHAOS);
    }
    let mut steps = 0;
    while !world.settled() {
        world.step(&CALM);
        steps += 1;
        assert!(
            steps < HEAL_STEPS_MAX,
            "seed {seed}: not settled after {HEAL_STEPS_MAX} calm steps (rerun with WEFT_SIM_SEED={seed} WEFT_SIM_TRACE=1)\n{}",
            world.describe()
        );
    }
    let server_digest = world.nodes[0].digest().expect("digest");
    for (s, server) in world.nodes[..world.servers].iter().enumerate() {
        assert_eq!(
            server.digest().expect("digest"),
            server_digest,
            "seed {seed}: server {s} and server 0 differ"
        );
        assert_eq!(
            server.digest().expect("digest"),
            server.digest_from_scratch().expect("digest"),
            "seed {seed}: server {s}'s maintained digest drifted"
        );
    }
    for (n, node) in world.nodes.iter().enumerate() {
        for bucket in ["files", "thumbs"] {
            if n == world.servers && bucket == "thumbs" {
                continue; // lazy there
            }
            for entry in node.buckets().list(bucket, "", None, 1000).expect("list") {
                let hash = entry.hash.expect("a settled entry has its hash");
                let bytes = world.stores[n]
                    .read_at(&hash, 0, entry.size as usize + 1)
                    .unwrap_or_else(|e| {
                        panic!("seed {seed}: node {n} lacks {bucket}/{}: {e}", entry.name)
                    });
                assert_eq!(
                    BlobHash::of(&bytes),
                    hash,
                    "seed {seed}: node {n}'s bytes of {bucket}/{}",
                    entry.name
                );
            }
        }
    }
    let expected = table_rows(&world.clients()[0]);
    for (i, client) in world.clients().iter().enumerate() {
        assert_eq!(
            client.digest().expect("digest"),
            server_digest,
            "seed {seed}: client {i} and the server differ"
        );
        assert_eq!(
            table_rows(client),
            expected,
            "seed {seed}: client {i}'s tables differ from client 0's"
        );
    }
    world
}

/// One server and its clients.
fn star(clients: usize) -> Topology {
    Topology {
        servers: 1,
        clients_per_server: clients,
        restore: 0.0,
        partition_max_ms: 200,
    }
}

/// Three servers in a mesh, each with clients; partitions and restored servers.
fn mesh(clients_per_server: usize) -> Topology {
    Topology {
        servers: 3,
        clients_per_server,
        restore: 0.01,
        partition_max_ms: 2_000,
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn every_seed_converges_through_a_faulty_network() {
    let clients = env_number("WEFT_SIM_CLIENTS").unwrap_or(3) as usize;
    if let Some(seed) = env_number("WEFT_SIM_SEED") {
        run_seed(seed, star(clients));
        return;
    }
    let seeds = env_number("WEFT_SIM_SEEDS").unwrap_or(200);
    let mut blobs = 0;
    for seed in 0..seeds {
        blobs += run_seed(seed, star(clients)).blobs_received;
    }
    eprintln!("{seeds} seeds: {blobs} blobs received and verified");
    assert!(seeds < 10 || blobs > 0, "blobs moved");
}

#[test]
fn three_servers_converge_through_partitions_and_restored_backups() {
    let clients = env_number("WEFT_SIM_CLIENTS").unwrap_or(2) as usize;
    if let Some(seed) = env_number("WEFT_SIM_SEED") {
        run_seed(seed, mesh(clients));
        return;
    }
    let seeds = env_number("WEFT_SIM_SEEDS").unwrap_or(200) / 4;
    let (mut restores, mut reconciled) = (0, 0);
    for seed in 0..seeds {
        let world = run_seed(seed, mesh(clients));
        restores += world.restores;
        reconciled += world.reconciled;
    }
    eprintln!("{seeds} seeds: {restores} servers restored, {reconciled} conversations reconciled");
    // The runs did restore servers and reconcile without cursors.
    assert!(
        seeds < 10 || (restores > 0 && reconciled > 0),
        "{restores} restores, {reconciled} reconciliations"
    );
}

#[test]
fn a_client_that_writes_nothing_converges_with_one_that_writes_everything() {
    // The simplest case, kept apart so a failure here is easy to read.
    let mut world = World::new(7, star(2));
    for _ in 0..50 {
        world.write();
    }
    let mut steps = 0;
    while !world.settled() {
        world.step(&CALM);
        steps += 1;
        assert!(steps < HEAL_STEPS_MAX, "not settled");
    }
    let clients = world.clients();
    assert_eq!(clients[0].digest().unwrap(), clients[1].digest().unwrap());
    assert_eq!(table_rows(&clients[0]), table_rows(&clients[1]));
    assert!(
        !table_rows(&clients[0])["item"].is_empty() || !table_rows(&clients[0])["pair"].is_empty(),
        "the writes made rows"
    );
}

/// The next frame `session` sends: a tick (where it reads what there is to send), then a poll.
fn next_frame(session: &mut Session, replica: &Replica, now_ms: u64) -> Option<Vec<u8>> {
    session
        .handle_tick(replica, now_ms)
        .expect("no local failure");
    session.poll_frame()
}
