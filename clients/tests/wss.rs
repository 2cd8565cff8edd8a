//! `wss://`: the client through a TLS-terminating proxy made in the test (a fresh CA, a
//! server certificate for 127.0.0.1) in front of a plain sync server on 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::server::serve;
use support::tls::{TestCa, TlsProxy};
use weft_client::{sync_once, ClientError, DialError, SyncReport, SyncTarget};
use weft_core::Replica;

/// Longest a sync through the proxy may take before the test fails instead of hanging.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// A plain server, and a TLS proxy in front of it.
async fn tls_server(dir: &Path, ca: &TestCa) -> TlsProxy {
    let url = serve(dir.join("server.db"), false).await;
    let address: SocketAddr = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.parse().ok())
        .expect("the server's address");
    TlsProxy::start(ca, address)
}

fn client(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(format!("{name}.db"));
    let replica = Replica::open(&path).unwrap();
    let connection = replica.connection();
    connection
        .execute_batch("CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)")
        .unwrap();
    replica.enable_crr("note").unwrap();
    connection.execute_batch(sql).unwrap();
    path
}

async fn sync(db: &Path, target: &SyncTarget) -> Result<SyncReport, ClientError> {
    tokio::time::timeout(SYNC_WAIT, sync_once(db, target, |_, _| {}))
        .await
        .expect("the sync ends within its wait, not hangs")
}

fn digest(db: &Path) -> String {
    Replica::open(db).unwrap().digest().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_converge_over_wss_with_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let proxy = tls_server(dir.path(), &ca).await;
    let target = SyncTarget::new(proxy.wss_url("test"), None).with_ca_file(&ca_file);
    let a = client(dir.path(), "a", "INSERT INTO note VALUES (1, 'from a')");
    let b = client(dir.path(), "b", "INSERT INTO note VALUES (2, 'from b')");
    for db in [&a, &b, &a] {
        let report = sync(db, &target).await.expect("a sync over wss://");
        assert!(report.in_sync, "{report:?}");
    }
    assert_eq!(digest(&a), digest(&b));
    let rows: i64 = Replica::open(&b)
        .unwrap()
        .connection()
        .query_row("SELECT count(*) FROM note", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_file_the_certificate_is_refused_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let proxy = tls_server(dir.path(), &ca).await;
    let a = client(dir.path(), "a", "INSERT INTO note VALUES (1, 'from a')");
    let error = sync(&a, &SyncTarget::new(proxy.wss_url("test"), None))
        .await
        .expect_err("an unknown CA is refused");
    assert!(
        matches!(error, ClientError::Dial(DialError::Tls { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("certificate") && message.contains("TLS"),
        "{message}"
    );
    assert!(
        !error.is_transient(),
        "retrying cannot fix a refused certificate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_that_is_not_pem_is_named_in_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let proxy = tls_server(dir.path(), &ca).await;
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    let a = client(dir.path(), "a", "");
    let target = SyncTarget::new(proxy.wss_url("test"), None).with_ca_file(&not_pem);
    let error = sync(&a, &target).await.expect_err("the CA file is refused");
    assert!(
        matches!(&error, ClientError::Dial(DialError::BadCaFile { path, .. }) if path == &not_pem),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("ca.txt") && error.to_string().contains("no PEM certificate"),
        "{error}"
    );
    assert!(!error.is_transient());
}
