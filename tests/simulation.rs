//! A deterministic simulation of sync: servers and clients in one process, each a real SQLite
//! replica, talking through the sans-I/O `Session` over a seeded network that drops,
//! duplicates, delays (and so reorders) frames and cuts connections. Clients write at random
//! throughout. Then the network heals and writes stop: every seed must end with equal digests
//! everywhere and equal tables on every client. The world itself is in the harness
//! (`support/world.rs`); its clock, site ids and incarnations come from the seed too, so one
//! seed is one run, every time.
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

use rand::Rng;
use weft_core::blobs::{BlobHash, BlobStore};
use weft_core::Digest;
use weft_tests::world::{mesh, star, table_rows, Topology, TraceMode, World, CALM, CHAOS};

/// Steps of chaos (writes, faults); each step is 1-10 virtual milliseconds.
const CHAOS_STEPS: usize = 400;
/// Steps allowed after healing before the run counts as stuck.
const HEAL_STEPS_MAX: usize = 20_000;

fn run_seed(seed: u64, topology: Topology, trace: TraceMode) -> World {
    let mut world = World::new(seed, topology, trace);
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
    let server_digest = world.nodes[0].replica.digest().expect("digest");
    for (s, server) in world.nodes[..world.servers].iter().enumerate() {
        let server = &server.replica;
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
            for entry in node
                .replica
                .buckets()
                .list(bucket, "", None, 1000)
                .expect("list")
            {
                let hash = entry.hash.expect("a settled entry has its hash");
                let bytes = node
                    .store
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
    let expected = table_rows(&world.clients()[0].replica);
    for (i, client) in world.clients().iter().enumerate() {
        assert_eq!(
            client.replica.digest().expect("digest"),
            server_digest,
            "seed {seed}: client {i} and the server differ"
        );
        assert_eq!(
            table_rows(&client.replica),
            expected,
            "seed {seed}: client {i}'s tables differ from client 0's"
        );
    }
    world
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn every_seed_converges_through_a_faulty_network() {
    let clients = env_number("WEFT_SIM_CLIENTS").unwrap_or(3) as usize;
    if let Some(seed) = env_number("WEFT_SIM_SEED") {
        run_seed(seed, star(clients), TraceMode::from_env());
        return;
    }
    let seeds = env_number("WEFT_SIM_SEEDS").unwrap_or(200);
    let mut blobs = 0;
    for seed in 0..seeds {
        blobs += run_seed(seed, star(clients), TraceMode::Off).blobs_received;
    }
    eprintln!("{seeds} seeds: {blobs} blobs received and verified");
    assert!(seeds < 10 || blobs > 0, "blobs moved");
}

#[test]
fn three_servers_converge_through_partitions_and_restored_backups() {
    let clients = env_number("WEFT_SIM_CLIENTS").unwrap_or(2) as usize;
    if let Some(seed) = env_number("WEFT_SIM_SEED") {
        run_seed(seed, mesh(clients), TraceMode::from_env());
        return;
    }
    let seeds = env_number("WEFT_SIM_SEEDS").unwrap_or(200) / 4;
    let (mut restores, mut reconciled) = (0, 0);
    for seed in 0..seeds {
        let world = run_seed(seed, mesh(clients), TraceMode::Off);
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

/// What a finished run leaves that a second run of its seed must repeat: every node's
/// digest, and the trace.
struct Outcome {
    digests: Vec<Digest>,
    trace_lines: Vec<String>,
    trace_lines_total: u64,
    trace_hash: u64,
}

fn outcome(world: &World) -> Outcome {
    Outcome {
        digests: world
            .nodes
            .iter()
            .map(|n| n.replica.digest().expect("digest"))
            .collect(),
        trace_lines: world.trace.lines.clone(),
        trace_lines_total: world.trace.lines_total,
        trace_hash: world.trace.hash(),
    }
}

/// Panics, naming the first line where two traces part, unless they are the same.
fn assert_same_trace(seed: u64, first: &Outcome, second: &Outcome) {
    if let Some(at) = (0..first.trace_lines.len().max(second.trace_lines.len()))
        .find(|&i| first.trace_lines.get(i) != second.trace_lines.get(i))
    {
        panic!(
            "seed {seed}: the runs part at trace line {at}:\n  first:  {:?}\n  second: {:?}",
            first.trace_lines.get(at),
            second.trace_lines.get(at)
        );
    }
    assert_eq!(
        (first.trace_lines_total, first.trace_hash),
        (second.trace_lines_total, second.trace_hash),
        "seed {seed}: the traces differ past the lines kept"
    );
}

#[test]
fn the_same_seed_twice_gives_the_same_run_and_the_same_digests() {
    for (seed, topology) in [(3, star(3)), (5, mesh(2))] {
        let first = outcome(&run_seed(seed, topology, TraceMode::Record));
        let second = outcome(&run_seed(seed, topology, TraceMode::Record));
        assert!(
            first.trace_lines_total > 500,
            "seed {seed}: a trace of {} lines recorded little",
            first.trace_lines_total
        );
        assert_same_trace(seed, &first, &second);
        assert_eq!(
            first.digests, second.digests,
            "seed {seed}: the final digests differ"
        );
    }
    // And a different seed is a different run (the seed is not ignored somewhere).
    let other = outcome(&run_seed(4, star(3), TraceMode::Record));
    let third = outcome(&run_seed(3, star(3), TraceMode::Record));
    assert_ne!(other.trace_hash, third.trace_hash);
    assert_ne!(other.digests, third.digests);
}

#[test]
fn a_client_that_writes_nothing_converges_with_one_that_writes_everything() {
    // The simplest case, kept apart so a failure here is easy to read.
    let mut world = World::new(7, star(2), TraceMode::from_env());
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
    let (first, second) = (&clients[0].replica, &clients[1].replica);
    assert_eq!(first.digest().unwrap(), second.digest().unwrap());
    assert_eq!(table_rows(first), table_rows(second));
    assert!(
        !table_rows(first)["item"].is_empty() || !table_rows(first)["pair"].is_empty(),
        "the writes made rows"
    );
}
