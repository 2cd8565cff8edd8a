//! End-to-end sync with real processes: `weft serve` on 127.0.0.1 with auth on, clients as
//! `weft sync` processes on real SQLite files; offline writes on both sides, `kill -9` of the
//! server and of a client in the middle of a large sync, read-only tokens.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use support::server::ServerProcess;
use support::{
    assert_synced, auth_args, digest, first_answer, free_port, mint_token, sql, sync_once,
    todo_client, wait_until, weft,
};
use weft_core::Replica;

mod support;
// The TLS proxy and test CA that weft-client's wss:// tests use.
#[path = "../../../clients/tests/support/tls.rs"]
mod tls;

const SECRET: &str = "the secret of the sync tests, long enough";
const WAIT: Duration = Duration::from_secs(60);

/// `weft serve` with the tests' secret on `port`.
fn serve(data: &Path, port: u16) -> ServerProcess {
    ServerProcess::start(data, port, &auth_args(SECRET))
}

fn token(database: &str, read_only: bool) -> String {
    let mut args = vec!["--db", database];
    if read_only {
        args.push("--read-only");
    }
    mint_token(SECRET, &args)
}

const TODO: &str = "CREATE TABLE todo(id INTEGER PRIMARY KEY, title TEXT, done INTEGER)";

fn client(dir: &Path, name: &str) -> PathBuf {
    todo_client(dir, name, TODO)
}

fn rows(db: &Path) -> Vec<(i64, String, i64)> {
    let replica = Replica::open(db).unwrap();
    let mut statement = replica
        .connection()
        .prepare("SELECT id, title, done FROM todo ORDER BY id")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn two_clients_with_offline_writes_converge_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port());
    let (url, token) = (server.url("todos"), token("todos", false));
    let (a, b) = (client(dir.path(), "a"), client(dir.path(), "b"));
    sql(
        &a,
        "INSERT INTO todo VALUES (1, 'milk', 0), (2, 'eggs', 0), (3, 'bread', 0)",
    );
    assert_synced(&sync_once(&a, &url, &token));
    assert_synced(&sync_once(&b, &url, &token));
    assert_eq!(rows(&a), rows(&b));
    // Offline on both: concurrent updates of one cell, a delete against an update, a
    // re-insert after a delete, and new rows.
    sql(
        &a,
        "UPDATE todo SET title = 'oat milk' WHERE id = 1; DELETE FROM todo WHERE id = 2",
    );
    sql(
        &b,
        "UPDATE todo SET title = 'soy milk', done = 1 WHERE id = 1",
    );
    sql(
        &b,
        "UPDATE todo SET done = 1 WHERE id = 2; INSERT INTO todo VALUES (4, 'tea', 0)",
    );
    sql(
        &b,
        "DELETE FROM todo WHERE id = 3; INSERT INTO todo VALUES (3, 'rye bread', 1)",
    );
    for db in [&a, &b, &a] {
        assert_synced(&sync_once(db, &url, &token));
    }
    assert_eq!(rows(&a), rows(&b));
    let by_id: std::collections::BTreeMap<i64, (String, i64)> =
        rows(&a).into_iter().map(|(i, t, d)| (i, (t, d))).collect();
    assert!(
        !by_id.contains_key(&2),
        "the delete beats the concurrent update"
    );
    assert_eq!(
        by_id[&3],
        ("rye bread".to_owned(), 1),
        "the re-insert beats the delete"
    );
    assert_eq!(by_id[&4], ("tea".to_owned(), 0));
    assert_eq!(
        by_id[&1].1, 1,
        "B's done=1 on row 1 is kept beside the title's winner"
    );
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(
        digest(&a),
        server.replica("todos").digest().unwrap().to_hex()
    );
}

#[test]
fn a_read_only_token_is_refused_writes_that_stay_local() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port());
    let url = server.url("shared");
    let writer = client(dir.path(), "writer");
    sql(&writer, "INSERT INTO todo VALUES (1, 'from the writer', 0)");
    assert_synced(&sync_once(&writer, &url, &token("shared", false)));
    let reader = client(dir.path(), "reader");
    sql(&reader, "INSERT INTO todo VALUES (2, 'not allowed', 0)");
    let output = sync_once(&reader, &url, &token("shared", true));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused 3 local changes") && stderr.contains("read-only"),
        "{stderr}"
    );
    // It still received the writer's row, and kept its own.
    assert_eq!(
        rows(&reader),
        vec![
            (1, "from the writer".to_owned(), 0),
            (2, "not allowed".to_owned(), 0)
        ]
    );
    let server_rows: i64 = server
        .replica("shared")
        .connection()
        .query_row("SELECT count(DISTINCT pk) FROM weft_relay", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(server_rows, 1, "the refused row never reached the server");
}

fn big_client(dir: &Path, name: &str, rows: i64) -> PathBuf {
    let path = client(dir, name);
    Replica::open(&path)
        .unwrap()
        .connection()
        .execute(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1) \
             INSERT INTO todo SELECT i, 'task number ' || i, i % 2 FROM k",
            [rows],
        )
        .unwrap();
    path
}

fn server_registers(data: &Path, database: &str) -> i64 {
    let path = data.join("dbs").join(format!("{database}.db"));
    if !path.exists() {
        return 0;
    }
    rusqlite_count(&path, "SELECT count(*) FROM weft_relay")
}

fn rusqlite_count(path: &Path, query: &str) -> i64 {
    let conn = weft_core::rusqlite::Connection::open_with_flags(
        path,
        weft_core::rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    );
    conn.and_then(|c| c.query_row(query, [], |r| r.get(0)))
        .unwrap_or(0)
}

#[test]
fn a_server_killed_mid_upload_comes_back_and_loses_nothing() {
    const ROWS: i64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let mut server = serve(&data, port);
    let (url, token) = (server.url("big"), token("big", false));
    let a = big_client(dir.path(), "a", ROWS);
    let upload = weft()
        .arg("sync")
        .arg(&a)
        .arg(&url)
        .args(["--token", &token, "--once"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once part of the upload has landed.
    assert!(
        wait_until(WAIT, || server_registers(&data, "big") > 0),
        "nothing arrived"
    );
    server.kill9();
    let landed = server_registers(&data, "big");
    assert!(landed < ROWS * 3, "the kill came too late to test anything");
    // Back on the same port: the client's retries find it and resume.
    let server = serve(&data, port);
    let output = upload.wait_with_output().unwrap();
    assert_synced(&output);
    assert_eq!(
        server_registers(&data, "big"),
        ROWS * 3,
        "every register, once"
    );
    assert_eq!(digest(&a), server.replica("big").digest().unwrap().to_hex());
    assert_eq!(
        server.replica("big").digest().unwrap(),
        server.replica("big").digest_from_scratch().unwrap()
    );
}

#[test]
fn a_client_killed_mid_download_resumes_without_starting_over() {
    const ROWS: i64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = serve(&data, free_port());
    let (url, token) = (server.url("big"), token("big", false));
    let a = big_client(dir.path(), "a", ROWS);
    assert_synced(&sync_once(&a, &url, &token));
    let b = client(dir.path(), "b");
    let mut download = weft()
        .arg("sync")
        .arg(&b)
        .arg(&url)
        .args(["--token", &token, "--once"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(WAIT, || rusqlite_count(&b, "SELECT count(*) FROM todo") > 0),
        "nothing arrived"
    );
    let _ = download.kill();
    let _ = download.wait();
    let before = rusqlite_count(&b, "SELECT count(*) FROM todo");
    assert!(before < ROWS, "the kill came too late to test anything");
    let output = sync_once(&b, &url, &token);
    assert_synced(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let received: i64 = stderr
        .split("received ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    assert!(
        received < ROWS * 3,
        "the second run took everything again ({received} changes)"
    );
    assert_eq!(rows(&a), rows(&b));
    assert_eq!(digest(&a), digest(&b));
}

#[test]
fn a_wrong_protocol_version_or_database_is_a_clear_error_and_others_sync_on() {
    use weft_core::sync::{encode_frame, ErrorCode, Hello, Message, Role};
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port());
    let (url, token) = (server.url("db1"), token("db1", false));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hello = |protocol: u32, database: &str| {
        encode_frame(&Message::Hello(Hello {
            protocol,
            site: weft_core::SiteId::random(),
            incarnation: weft_core::Incarnation::random(),
            role: Role::Client,
            database: database.into(),
            db_version: 0,
            resume: vec![],
            reconcile: false,
        }))
    };
    for (frame, code) in [
        (hello(99, "db1"), ErrorCode::UnsupportedProtocol),
        (
            hello(weft_core::sync::PROTOCOL_VERSION, "another"),
            ErrorCode::WrongDatabase,
        ),
    ] {
        match first_answer(&runtime, &url, &token, frame, WAIT) {
            Message::Error(error) => {
                assert_eq!(error.code, code, "{}", error.message);
                assert!(!error.message.is_empty());
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
    // A client with the right hello is served as ever.
    let a = client(dir.path(), "a");
    sql(&a, "INSERT INTO todo VALUES (1, 'still served', 0)");
    assert_synced(&sync_once(&a, &url, &token));
}

#[test]
fn server_connections_carry_tcp_keepalive_so_vanished_clients_are_dropped() {
    // /proc/net/tcp lists each socket with its timer: 02 is the keepalive timer.
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port());
    let _client = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let local = format!(":{:04X} ", server.port);
    let keepalive = wait_until(WAIT, || {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, remote address, state 01 (established), timer "02:..."
            fields.len() > 5
                && format!("{} ", fields[1]).ends_with(&local)
                && fields[3] == "01"
                && fields[5].starts_with("02:")
        })
    });
    assert!(
        keepalive,
        "the server's end of the connection has no keepalive timer"
    );
}

/// The counts `weft sync` reports: (changes received, changes sent).
fn reported_counts(output: &Output) -> (u64, u64) {
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("received "))
        .unwrap_or_else(|| panic!("no summary line in {text}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[2])
}

#[test]
fn a_client_restored_from_a_backup_compares_rows_and_exchanges_only_the_difference() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port());
    let token = token("notes", false);
    let a = client(dir.path(), "a");
    sql(
        &a,
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < 200) \
         INSERT INTO todo SELECT i, 'task ' || i, 0 FROM k",
    );
    assert_synced(&sync_once(&a, &server.url("notes"), &token));
    let backup = dir.path().join("a-backup.db");
    sql(&a, &format!("VACUUM INTO '{}'", backup.display()));
    // After the backup: 10 more rows, synced; then the file is lost and the backup restored.
    sql(
        &a,
        "WITH RECURSIVE k(i) AS (SELECT 201 UNION ALL SELECT i + 1 FROM k WHERE i < 210) \
         INSERT INTO todo SELECT i, 'late ' || i, 0 FROM k",
    );
    assert_synced(&sync_once(&a, &server.url("notes"), &token));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", a.display()));
    }
    std::fs::copy(&backup, &a).unwrap();
    let renewed = weft().arg("renew-incarnation").arg(&a).output().unwrap();
    assert!(renewed.status.success(), "{renewed:?}");
    sql(
        &a,
        "INSERT INTO todo VALUES (300, 'after the restore', 0), (301, 'and another', 1)",
    );
    // No cursor either way now: the two compare rows and send only what differs.
    let output = sync_once(&a, &server.url("notes"), &token);
    assert_synced(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("compared rows with the server"), "{stderr}");
    let (received, sent) = reported_counts(&output);
    // 10 rows of 3 registers came back, 2 rows went up: not the 212 rows of a full exchange.
    assert_eq!((received, sent), (30, 6), "{stderr}");
    assert_eq!(rows(&a).len(), 212);
    assert_eq!(digest(&a), {
        let replica = server.replica("notes");
        replica.digest().unwrap().to_hex()
    });
}

#[test]
fn a_sync_without_a_token_says_how_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port());
    let db = client(dir.path(), "a");
    // No WEFT_TOKEN at all, and an empty one (what `export WEFT_TOKEN=$(weft token ...)`
    // leaves when `weft token` fails).
    for empty in [None, Some("")] {
        let mut command = weft();
        command
            .arg("sync")
            .arg(&db)
            .arg(server.url("todos"))
            .arg("--once")
            .env_remove("WEFT_TOKEN");
        if let Some(value) = empty {
            command.env("WEFT_TOKEN", value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains("--token") && stderr.contains("WEFT_TOKEN"),
            "{stderr}"
        );
        assert!(stderr.contains("401"), "{stderr}");
    }
}

#[test]
fn clients_that_close_when_done_are_not_logged_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port());
    let (url, token) = (server.url("todos"), token("todos", false));
    let a = client(dir.path(), "a");
    sql(&a, "INSERT INTO todo VALUES (1, 'milk', 0)");
    for _ in 0..5 {
        assert_synced(&sync_once(&a, &url, &token));
    }
    let closed = |log: &str| log.matches("disconnected").count();
    assert!(
        wait_until(WAIT, || closed(&server.log()) >= 5),
        "{}",
        server.log()
    );
    let log = server.log();
    for error in [
        "connection lost",
        "Sending after closing",
        "Broken pipe",
        "ERROR",
    ] {
        assert!(!log.contains(error), "{error}: {log}");
    }
}

#[test]
fn live_sync_says_in_sync_once_per_state_and_what_it_sent() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port());
    let (url, token) = (server.url("todos"), token("todos", false));
    let a = client(dir.path(), "a");
    sql(&a, "INSERT INTO todo VALUES (1, 'milk', 0)");
    let said = dir.path().join("live.log");
    let mut live = weft()
        .arg("sync")
        .arg(&a)
        .arg(&url)
        .args(["--token", &token])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&said).unwrap())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&said).unwrap_or_default();
    let in_sync = |text: &str| text.lines().filter(|l| l.starts_with("in sync: ")).count();
    assert!(wait_until(WAIT, || in_sync(&read()) >= 1), "{}", read());
    // Idle for a while (the sides compare digests again), then a second state.
    std::thread::sleep(Duration::from_secs(2));
    sql(&a, "INSERT INTO todo VALUES (2, 'eggs', 0)");
    assert!(wait_until(WAIT, || in_sync(&read()) >= 2), "{}", read());
    std::thread::sleep(Duration::from_secs(2));
    let _ = live.kill();
    let _ = live.wait();
    let text = read();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("in sync: "))
        .collect();
    let distinct: std::collections::BTreeSet<&&str> = lines.iter().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(distinct.len(), 2, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("sent ") && l.ends_with(" changes")),
        "{text}"
    );
}

/// `weft sync URL --once` with `args`, stopped after `WAIT` if it hangs.
fn sync_with(db: &Path, url: &str, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = support::weft_assert();
    command
        .arg("sync")
        .arg(db)
        .arg(url)
        .arg("--once")
        .args(args);
    command.env_remove("WEFT_CA_FILE");
    for (name, value) in env {
        command.env(name, value);
    }
    command.timeout(WAIT).output().expect("weft sync runs")
}

#[test]
fn weft_sync_over_wss_trusts_the_ca_file_and_refuses_an_unknown_ca_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), free_port());
    let ca = tls::TestCa::new();
    let ca_file = dir.path().join("org-ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let proxy = tls::TlsProxy::start(&ca, ([127, 0, 0, 1], server.port).into());
    let (url, token) = (proxy.wss_url("todos"), token("todos", false));
    let (a, b) = (client(dir.path(), "a"), client(dir.path(), "b"));
    sql(&a, "INSERT INTO todo VALUES (1, 'milk', 0)");
    sql(&b, "INSERT INTO todo VALUES (2, 'eggs', 0)");
    let with_ca_flag = ["--token", &token, "--ca-file", ca_file.to_str().unwrap()];
    let ca_by_env = [("WEFT_CA_FILE", ca_file.as_path())];
    assert_synced(&sync_with(&a, &url, &with_ca_flag, &[]));
    assert_synced(&sync_with(&b, &url, &["--token", &token], &ca_by_env));
    assert_synced(&sync_with(&a, &url, &with_ca_flag, &[]));
    assert_eq!(digest(&a), digest(&b));
    assert_eq!(server.digest("todos"), Some(digest(&a)));

    let refused = sync_with(&b, &url, &["--token", &token], &[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("certificate") && stderr.contains("TLS"),
        "{stderr}"
    );
}
