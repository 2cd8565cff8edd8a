//! `wss://` through the bindings' surface: two databases sync through a TLS-terminating proxy
//! (a CA and a certificate made in the test) in front of a sync server on 127.0.0.1, trusting
//! the CA with `set_ca_file`; without it the certificate is refused with a typed error.

#[path = "../../../clients/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use support::server::serve;
use support::tls::{TestCa, TlsProxy};
use weft_ffi::{Database, SqlValue, WeftError};

#[test]
fn databases_sync_over_wss_trusting_the_organisation_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_runtime = tokio::runtime::Runtime::new().unwrap();
    let url = server_runtime.block_on(serve(dir.path().join("server.db"), false));
    let upstream: SocketAddr = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.parse().ok())
        .expect("the server's address");
    let ca = TestCa::new();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    let proxy = TlsProxy::start(&ca, upstream);
    let wss = proxy.wss_url("test");

    let open = |name: &str, id: i64| {
        let db = Database::open(dir.path().join(name).display().to_string()).unwrap();
        db.execute_batch("CREATE TABLE note(id INTEGER PRIMARY KEY, body TEXT)".into())
            .unwrap();
        db.enable_crr("note".into()).unwrap();
        db.execute(
            "INSERT INTO note VALUES (?, ?)".into(),
            vec![
                SqlValue::Integer { value: id },
                SqlValue::Text { value: name.into() },
            ],
        )
        .unwrap();
        db
    };
    let (a, b) = (open("a.db", 1), open("b.db", 2));

    let refused = a.sync_once(wss.clone(), None);
    assert!(
        matches!(&refused, Err(WeftError::SyncRefused { message }) if message.contains("certificate")),
        "{refused:?}"
    );

    for db in [&a, &b] {
        db.set_ca_file(Some(ca_file.display().to_string()));
    }
    for db in [&a, &b, &a] {
        let report = db.sync_once(wss.clone(), None).unwrap();
        assert!(report.in_sync, "{report:?}");
    }
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    let count = b.query("SELECT count(*) FROM note".into(), vec![]).unwrap();
    assert_eq!(count.rows, vec![vec![SqlValue::Integer { value: 2 }]]);
}
