//! Server peers with real processes: `weft serve` on 127.0.0.1 dialling its peers, clients as
//! `weft sync --once` processes on real SQLite files. A mesh of three with concurrent writes,
//! `kill -9` and restart, a link cut by a TCP proxy inside the test, a data directory
//! replaced by an older copy, and bad peers (client tokens, another secret, garbage).

use std::collections::BTreeMap;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::server::ServerProcess;
use support::{
    assert_synced, auth_args, digest, first_answer, free_port, mint_token, sql, sync_once,
    todo_client, wait_until, weft,
};
use weft_core::Replica;

mod support;

const SECRET: &str = "the secret of the peer tests, long enough";

/// The longest any one wait may take.
const WAIT: Duration = Duration::from_secs(60);

/// `--peer` arguments for each of `ports`.
fn peer_args(ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .flat_map(|p| ["--peer".to_owned(), format!("ws://127.0.0.1:{p}")])
        .collect()
}

/// Three servers, each dialling the other two.
fn mesh(dir: &Path) -> Vec<ServerProcess> {
    let ports = [free_port(), free_port(), free_port()];
    (0..3)
        .map(|i| {
            let others: Vec<u16> = (0..3).filter(|&j| j != i).map(|j| ports[j]).collect();
            let mut args = auth_args(SECRET);
            args.extend(peer_args(&others));
            ServerProcess::start(&dir.join(format!("server{i}")), ports[i], &args)
        })
        .collect()
}

fn token(args: &[&str]) -> String {
    mint_token(SECRET, args)
}

fn client_token() -> String {
    token(&["--db", "*"])
}

/// A client replica with the `todo` table.
fn client(dir: &Path, name: &str) -> PathBuf {
    todo_client(
        dir,
        name,
        "CREATE TABLE todo(id INTEGER PRIMARY KEY, title TEXT)",
    )
}

fn rows(db: &Path) -> BTreeMap<i64, String> {
    let replica = Replica::open(db).unwrap();
    let mut statement = replica
        .connection()
        .prepare("SELECT id, title FROM todo")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn assert_servers_converge(servers: &[&ServerProcess], database: &str) -> String {
    let mut last = Vec::new();
    let converged = wait_until(WAIT, || {
        last = servers.iter().map(|s| s.digest(database)).collect();
        last[0].is_some() && last.iter().all(|d| *d == last[0])
    });
    if !converged {
        let logs: Vec<String> = servers.iter().map(|s| s.log()).collect();
        panic!(
            "the servers did not converge on {database}: {last:?}\n{}",
            logs.join("\n-----\n")
        );
    }
    last[0].clone().unwrap()
}

/// Writes `count` new rows with ids from `first` (titled by `who`) and updates the shared
/// row 0, then syncs once with `url`. Whether the sync reached "in sync" under concurrent
/// peer traffic is not required here: the final syncs check it.
fn write_and_sync(db: &Path, url: &str, token: &str, who: &str, first: i64, count: i64) {
    let mut statements = String::from("BEGIN;");
    for id in first..first + count {
        statements.push_str(&format!("INSERT INTO todo VALUES ({id}, '{who} {id}');"));
    }
    statements.push_str(&format!(
        "INSERT INTO todo VALUES (0, '{who} was here') ON CONFLICT(id) DO UPDATE SET title = excluded.title; COMMIT;"
    ));
    sql(db, &statements);
    let output = sync_once(db, url, token);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() || stderr.contains("still differs"),
        "weft sync failed: {stderr}"
    );
}

/// Syncs every client with its server until all are in sync; then every client and server
/// holds one digest, and every client holds `expected` rows beside row 0.
fn assert_all_hold(
    servers: &[&ServerProcess],
    clients: &[(&Path, &ServerProcess)],
    database: &str,
    expected: &BTreeMap<i64, String>,
) {
    let server_digest = assert_servers_converge(servers, database);
    let token = client_token();
    for (db, server) in clients {
        assert_synced(&sync_once(db, &server.url(database), &token));
    }
    let server_digest_after = assert_servers_converge(servers, database);
    assert_eq!(server_digest, server_digest_after, "no writes were pending");
    for (db, _) in clients {
        assert_eq!(digest(db), server_digest, "{}", db.display());
        let mut held = rows(db);
        assert!(held.remove(&0).is_some(), "row 0 in {}", db.display());
        assert_eq!(&held, expected, "rows of {}", db.display());
    }
}

/// The rows [`write_and_sync`] writes.
fn expected_rows(into: &mut BTreeMap<i64, String>, who: &str, first: i64, count: i64) {
    for id in first..first + count {
        into.insert(id, format!("{who} {id}"));
    }
}

#[test]
fn three_servers_with_writes_on_all_at_once_converge_including_a_database_on_one_only() {
    let dir = tempfile::tempdir().unwrap();
    let servers = mesh(dir.path());
    let clients: Vec<PathBuf> = (0..3)
        .map(|i| client(dir.path(), &format!("client{i}")))
        .collect();
    let token = client_token();
    let mut expected = BTreeMap::new();
    for round in 0..3i64 {
        std::thread::scope(|scope| {
            for (i, (db, server)) in clients.iter().zip(&servers).enumerate() {
                let (token, url) = (&token, server.url("todos"));
                let who = format!("c{i}");
                let first = 1 + (i as i64) * 1_000 + round * 100;
                scope.spawn(move || write_and_sync(db, &url, token, &who, first, 20));
            }
        });
        for i in 0..3i64 {
            expected_rows(
                &mut expected,
                &format!("c{i}"),
                1 + i * 1_000 + round * 100,
                20,
            );
        }
    }
    // A database only server 0's clients write to reaches the other two.
    let solo = client(dir.path(), "solo");
    write_and_sync(&solo, &servers[0].url("solo"), &token, "solo", 1, 50);
    let refs: Vec<&ServerProcess> = servers.iter().collect();
    let pairs: Vec<(&Path, &ServerProcess)> = clients
        .iter()
        .map(|c| c.as_path())
        .zip(servers.iter())
        .collect();
    assert_all_hold(&refs, &pairs, "todos", &expected);
    let solo_digest = assert_servers_converge(&refs, "solo");
    assert_eq!(solo_digest, digest(&solo));
    // And a fresh client of server 2 gets the whole of it.
    let fresh = client(dir.path(), "fresh");
    assert_synced(&sync_once(&fresh, &servers[2].url("solo"), &token));
    assert_eq!(rows(&fresh).len(), 51);
}

#[test]
fn a_server_killed_and_restarted_catches_up_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = mesh(dir.path());
    let clients: Vec<PathBuf> = (0..3)
        .map(|i| client(dir.path(), &format!("client{i}")))
        .collect();
    let token = client_token();
    let mut expected = BTreeMap::new();
    for (i, (db, server)) in clients.iter().zip(&servers).enumerate() {
        let who = format!("c{i}");
        write_and_sync(
            db,
            &server.url("todos"),
            &token,
            &who,
            1 + i as i64 * 1_000,
            10,
        );
        expected_rows(&mut expected, &who, 1 + i as i64 * 1_000, 10);
    }
    assert_servers_converge(&servers.iter().collect::<Vec<_>>(), "todos");

    servers[2].kill9();
    // The other two keep taking writes; server 2's client writes offline.
    for round in 1..4i64 {
        for i in 0..2usize {
            let who = format!("c{i}");
            let first = 1 + i as i64 * 1_000 + round * 100;
            write_and_sync(
                &clients[i],
                &servers[i].url("todos"),
                &token,
                &who,
                first,
                10,
            );
            expected_rows(&mut expected, &who, first, 10);
        }
        sql(
            &clients[2],
            &format!(
                "INSERT INTO todo VALUES ({}, 'offline {round}')",
                5_000 + round
            ),
        );
        expected.insert(5_000 + round, format!("offline {round}"));
    }
    assert_servers_converge(&[&servers[0], &servers[1]], "todos");
    assert_ne!(servers[2].digest("todos"), servers[0].digest("todos"));

    servers[2].restart();
    assert_synced(&sync_once(&clients[2], &servers[2].url("todos"), &token));
    let refs: Vec<&ServerProcess> = servers.iter().collect();
    let pairs: Vec<(&Path, &ServerProcess)> = clients
        .iter()
        .map(|c| c.as_path())
        .zip(servers.iter())
        .collect();
    assert_all_hold(&refs, &pairs, "todos", &expected);
}

/// A TCP proxy on 127.0.0.1 that the test can cut (every connection dropped, new ones
/// refused) and heal. Counts the connections it accepted.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(runtime: &tokio::runtime::Runtime, target: u16) -> Proxy {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("the proxy binds");
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (is_cut, conns, count) = (cut.clone(), open.clone(), accepted.clone());
        runtime.spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                if is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(forward.abort_handle());
            }
        });
        Proxy {
            port,
            cut,
            open,
            accepted,
        }
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for connection in self.open.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[test]
fn a_cut_link_heals_and_the_servers_converge() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A line: A dials B through the proxy, B dials C. Cutting the proxy isolates A. What C's
    // clients write reaches A only if B's link to C, having merged it, wakes B's connection
    // with A: the relay.
    let (port_a, port_b, port_c) = (free_port(), free_port(), free_port());
    let c = ServerProcess::start(&dir.path().join("c"), port_c, &auth_args(SECRET));
    let mut args_b = auth_args(SECRET);
    args_b.extend(peer_args(&[port_c]));
    let b = ServerProcess::start(&dir.path().join("b"), port_b, &args_b);
    let proxy = Proxy::start(&runtime, port_b);
    let mut args_a = auth_args(SECRET);
    args_a.extend(peer_args(&[proxy.port]));
    let a = ServerProcess::start(&dir.path().join("a"), port_a, &args_a);
    let (client_a, client_c) = (client(dir.path(), "ca"), client(dir.path(), "cc"));
    let token = client_token();
    let mut expected = BTreeMap::new();
    write_and_sync(&client_a, &a.url("todos"), &token, "a", 1, 10);
    write_and_sync(&client_c, &c.url("todos"), &token, "c", 1_001, 10);
    expected_rows(&mut expected, "a", 1, 10);
    expected_rows(&mut expected, "c", 1_001, 10);
    assert_servers_converge(&[&a, &b, &c], "todos");

    proxy.cut();
    write_and_sync(&client_a, &a.url("todos"), &token, "a", 101, 10);
    write_and_sync(&client_c, &c.url("todos"), &token, "c", 1_101, 10);
    expected_rows(&mut expected, "a", 101, 10);
    expected_rows(&mut expected, "c", 1_101, 10);
    assert_servers_converge(&[&b, &c], "todos");
    std::thread::sleep(Duration::from_millis(1_500));
    assert_ne!(
        a.digest("todos"),
        b.digest("todos"),
        "the cut did not cut anything"
    );
    let during_cut = proxy.accepted();

    proxy.heal();
    assert_all_hold(
        &[&a, &b, &c],
        &[(&client_a, &a), (&client_c, &c)],
        "todos",
        &expected,
    );
    assert!(
        proxy.accepted() > during_cut,
        "A reconnected through the proxy"
    );
}

/// Copies the database files (with their WAL) of `from` into a fresh `to`.
fn copy_dbs(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_server_restored_from_an_older_copy_reconciles_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = mesh(dir.path());
    let clients: Vec<PathBuf> = (0..3)
        .map(|i| client(dir.path(), &format!("client{i}")))
        .collect();
    let token = client_token();
    let mut expected = BTreeMap::new();
    let write_round =
        |expected: &mut BTreeMap<i64, String>, servers: &[ServerProcess], round: i64| {
            for (i, (db, server)) in clients.iter().zip(servers).enumerate() {
                let who = format!("c{i}");
                let first = 1 + i as i64 * 1_000 + round * 100;
                write_and_sync(db, &server.url("todos"), &token, &who, first, 10);
                expected_rows(expected, &who, first, 10);
            }
        };
    write_round(&mut expected, &servers, 0);
    assert_servers_converge(&servers.iter().collect::<Vec<_>>(), "todos");

    // A backup of server 2, taken while it is stopped.
    let backup = dir.path().join("backup");
    servers[2].kill9();
    copy_dbs(&servers[2].data.join("dbs"), &backup);
    servers[2].restart();
    // Life goes on past the backup, on every server.
    write_round(&mut expected, &servers, 1);
    write_round(&mut expected, &servers, 2);
    assert_servers_converge(&servers.iter().collect::<Vec<_>>(), "todos");

    // Server 2's data directory is replaced by the older copy.
    servers[2].kill9();
    let dbs = servers[2].data.join("dbs");
    std::fs::remove_dir_all(&dbs).unwrap();
    copy_dbs(&backup, &dbs);
    servers[2].restart();
    let refs: Vec<&ServerProcess> = servers.iter().collect();
    let pairs: Vec<(&Path, &ServerProcess)> = clients
        .iter()
        .map(|c| c.as_path())
        .zip(servers.iter())
        .collect();
    assert_all_hold(&refs, &pairs, "todos", &expected);
    // And it takes new writes as ever.
    write_round(&mut expected, &servers, 3);
    assert_all_hold(&refs, &pairs, "todos", &expected);
}

fn peer_hello(database: &str) -> Vec<u8> {
    use weft_core::sync::{encode_frame, Hello, Message, Role, PROTOCOL_VERSION};
    encode_frame(&Message::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        site: weft_core::SiteId::random(),
        incarnation: weft_core::Incarnation::random(),
        role: Role::Peer,
        database: database.into(),
        db_version: 0,
        resume: vec![],
        reconcile: false,
    }))
}

/// `weft peers --json` of `server`, as JSON.
fn peers_status(server: &ServerProcess) -> serde_json::Value {
    let output = weft()
        .args(["peers", "--server", &server.ws(), "--json", "--token"])
        .arg(token(&["--peer"]))
        .output()
        .expect("weft peers");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

#[test]
fn a_client_token_cannot_speak_as_a_peer() {
    use weft_core::sync::{ErrorCode, Message};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("s"), free_port(), &auth_args(SECRET));
    let url = server.url("db");
    match first_answer(&runtime, &url, &client_token(), peer_hello("db"), WAIT) {
        Message::Error(error) => assert_eq!(error.code, ErrorCode::WrongRole, "{error:?}"),
        other => panic!("a client token was answered as a peer: {other:?}"),
    }
    // The same hello with a peer token is answered, as a peer.
    match first_answer(&runtime, &url, &token(&["--peer"]), peer_hello("db"), WAIT) {
        Message::Hello(hello) => assert_eq!(hello.role, weft_core::sync::Role::Peer),
        other => panic!("a peer token was refused: {other:?}"),
    }
    // The peer-only endpoints refuse a client token.
    let output = weft()
        .args(["peers", "--server", &server.ws(), "--token"])
        .arg(client_token())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("403"),
        "{stderr}"
    );
}

/// Waits `window` and returns how many connections `count` saw in it.
fn attempts_in(window: Duration, count: impl Fn() -> usize) -> usize {
    let before = count();
    std::thread::sleep(window);
    count() - before
}

#[test]
fn a_peer_with_another_secret_is_refused_and_dialled_ever_more_slowly() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let b = ServerProcess::start(
        &dir.path().join("b"),
        free_port(),
        &auth_args("a different secret of the other org"),
    );
    let proxy = Proxy::start(&runtime, b.port);
    // A holds a database, so it has something to dial B for.
    let data_a = dir.path().join("a");
    std::fs::create_dir_all(data_a.join("dbs")).unwrap();
    drop(Replica::open(data_a.join("dbs/notes.db")).unwrap());
    let mut args = auth_args(SECRET);
    args.extend(peer_args(&[proxy.port]));
    let a = ServerProcess::start(&data_a, free_port(), &args);
    assert!(
        wait_until(WAIT, || proxy.accepted() > 0),
        "A never dialled B"
    );
    std::thread::sleep(Duration::from_secs(3));
    // After the first seconds, back-off: a few attempts per link and listing, not hundreds.
    let attempts = attempts_in(Duration::from_secs(8), || proxy.accepted());
    assert!(attempts <= 10, "{attempts} connections in 8 s: no back-off");
    let status = peers_status(&a);
    let link = &status["peers"][0]["databases"][0];
    assert_eq!(link["database"], "notes");
    assert_eq!(link["connected"], false);
    let error = link["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("401") && error.contains("signature"),
        "{status}"
    );
    assert!(
        status["peers"][0]["listing_error"]
            .as_str()
            .unwrap_or_default()
            .contains("401"),
        "{status}"
    );
    assert!(!b.db("notes").exists(), "B opened nothing for A");
    // A says why no retry will help, and says it once, not at every retry.
    let hint = "peers must share the organisation's secret";
    assert!(error.contains(hint), "{status}");
    let listing_error = status["peers"][0]["listing_error"]
        .as_str()
        .unwrap_or_default();
    assert!(listing_error.contains(hint), "{status}");
    let log = a.log();
    let warnings = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("signature"))
        .count();
    assert!(warnings <= 2, "{warnings} warnings:\n{log}");
}

#[test]
fn a_peer_that_answers_garbage_is_dropped_and_retried_with_back_off() {
    use futures_util::{SinkExt, StreamExt};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A WebSocket server that answers every hello with bytes that are no frame.
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let fake_port = listener.local_addr().unwrap().port();
    let upgrades = Arc::new(AtomicUsize::new(0));
    let counted = upgrades.clone();
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                // The listing GET is no upgrade: it fails here and is dropped.
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let _ = socket.next().await;
                let garbage = vec![0xc1, 0xff, 0x00, 0x13, 0x37];
                let _ = socket
                    .send(tokio_tungstenite::tungstenite::Message::Binary(
                        garbage.into(),
                    ))
                    .await;
                while let Some(Ok(_)) = socket.next().await {}
            });
        }
    });
    let data = dir.path().join("a");
    std::fs::create_dir_all(data.join("dbs")).unwrap();
    drop(Replica::open(data.join("dbs/notes.db")).unwrap());
    let mut args = auth_args(SECRET);
    args.extend(peer_args(&[fake_port]));
    let a = ServerProcess::start(&data, free_port(), &args);
    assert!(
        wait_until(WAIT, || upgrades.load(Ordering::SeqCst) > 0),
        "A never dialled"
    );
    std::thread::sleep(Duration::from_secs(3));
    let attempts = attempts_in(Duration::from_secs(8), || upgrades.load(Ordering::SeqCst));
    assert!(attempts <= 6, "{attempts} connections in 8 s: no back-off");
    let status = peers_status(&a);
    let link = &status["peers"][0]["databases"][0];
    let error = link["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("undecodable_frame"), "{status}");
    // A still serves its clients.
    let c = client(dir.path(), "c");
    sql(&c, "INSERT INTO todo VALUES (1, 'still served')");
    assert_synced(&sync_once(&c, &a.url("notes"), &client_token()));
}

#[test]
fn sigterm_closes_the_peer_links_and_the_server_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let b = ServerProcess::start(&dir.path().join("b"), free_port(), &auth_args(SECRET));
    let mut args = auth_args(SECRET);
    args.extend(peer_args(&[b.port]));
    let mut a = ServerProcess::start(&dir.path().join("a"), free_port(), &args);
    let c = client(dir.path(), "c");
    sql(&c, "INSERT INTO todo VALUES (1, 'x')");
    assert_synced(&sync_once(&c, &a.url("notes"), &client_token()));
    assert_servers_converge(&[&a, &b], "notes");
    let mut child = a.take_child();
    let stopping = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(stopping.elapsed() < WAIT, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the stop took {:?}",
        stopping.elapsed()
    );
    let log = a.log();
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("still open"), "{log}");
}

#[test]
fn peers_on_a_server_that_others_dial_shows_their_links() {
    let dir = tempfile::tempdir().unwrap();
    let b = ServerProcess::start(&dir.path().join("b"), free_port(), &auth_args(SECRET));
    let mut args = auth_args(SECRET);
    args.extend(peer_args(&[b.port]));
    let a = ServerProcess::start(&dir.path().join("a"), free_port(), &args);
    let c = client(dir.path(), "c");
    sql(&c, "INSERT INTO todo VALUES (1, 'x')");
    assert_synced(&sync_once(&c, &a.url("notes"), &client_token()));
    assert_servers_converge(&[&a, &b], "notes");
    // B dials no one: all it knows of A is the link A opened.
    let status = peers_status(&b);
    assert_eq!(status["peers"], serde_json::json!([]), "{status}");
    assert_eq!(status["incoming"][0]["database"], "notes", "{status}");
    let output = weft()
        .args(["peers", "--server", &b.ws(), "--token"])
        .arg(token(&["--peer"]))
        .output()
        .expect("weft peers");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        table
            .lines()
            .any(|line| line.contains("(incoming)") && line.contains("notes")),
        "{table}"
    );
}
