//! Helpers the real-process tests of `weft` share: the binary, ports, tokens, one-shot syncs,
//! digests and a raw first exchange over the sync WebSocket; [`s3`], a real S3-compatible
//! server. Each test file uses some.
#![allow(dead_code)]

pub mod s3;
pub mod server;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use weft_core::Replica;

/// The `weft` binary under test.
pub fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

/// The `weft` binary under test, for `assert_cmd`'s assertions.
pub fn weft_assert() -> assert_cmd::Command {
    assert_cmd::Command::new(env!("CARGO_BIN_EXE_weft"))
}

/// What an `assert_cmd` run printed on stdout.
pub fn stdout(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

/// A temporary directory, removed when dropped.
pub struct Dir(pub tempfile::TempDir);

impl Dir {
    /// A new empty one.
    pub fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    /// `name` inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// `--auth-secret SECRET`, for `weft serve`.
pub fn auth_args(secret: &str) -> Vec<String> {
    vec!["--auth-secret".into(), secret.into()]
}

/// A client replica `DIR/NAME.db` with one replicated table `todo`, made by `create` (a
/// `CREATE TABLE todo(...)`).
pub fn todo_client(dir: &Path, name: &str, create: &str) -> PathBuf {
    let path = dir.join(format!("{name}.db"));
    let replica = Replica::open(&path).unwrap();
    replica.connection().execute_batch(create).unwrap();
    replica.enable_crr("todo").unwrap();
    path
}

/// Runs `statements` on the replica `db`.
pub fn sql(db: &Path, statements: &str) {
    Replica::open(db)
        .unwrap()
        .connection()
        .execute_batch(statements)
        .unwrap();
}

/// Waits until `done()`, at most `wait`; true if it happened.
pub fn wait_until(wait: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Asserts that a `weft sync --once` succeeded and said it is in sync.
pub fn assert_synced(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.contains("in sync: "),
        "weft sync failed: {stderr}"
    );
}

/// A port free on 127.0.0.1 right now (a server binds it a moment later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `weft token --secret SECRET ARGS...`, trimmed.
pub fn mint_token(secret: &str, args: &[&str]) -> String {
    let output = weft()
        .args(["token", "--secret", secret])
        .args(args)
        .output()
        .expect("weft token");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("a token is text")
        .trim()
        .to_owned()
}

/// `weft sync DB URL --token TOKEN --once`, run to the end.
pub fn sync_once(db: &Path, url: &str, token: &str) -> Output {
    weft()
        .arg("sync")
        .arg(db)
        .arg(url)
        .args(["--token", token, "--once"])
        .output()
        .expect("weft sync runs")
}

/// A replica file's state digest, in hex.
pub fn digest(db: &Path) -> String {
    Replica::open(db).unwrap().digest().unwrap().to_hex()
}

/// Opens the sync WebSocket at `url` with `token`, sends `frame`, and decodes the first
/// binary message that comes back (within `wait`).
pub fn first_answer(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    token: &str,
    frame: Vec<u8>,
    wait: Duration,
) -> weft_core::sync::Message {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    runtime.block_on(async {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        socket.send(Message::Binary(frame.into())).await.unwrap();
        let answer = tokio::time::timeout(wait, async {
            loop {
                match socket.next().await {
                    Some(Ok(Message::Binary(bytes))) => return bytes.to_vec(),
                    Some(Ok(_)) => continue,
                    other => panic!("no answer: {other:?}"),
                }
            }
        })
        .await
        .expect("an answer in time");
        weft_core::sync::decode_frame(&answer).unwrap()
    })
}

/// A plain HTTP/1.1 GET: the status and the body.
pub fn http_get(
    addr: impl std::net::ToSocketAddrs + std::fmt::Display,
    path: &str,
) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("a response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
