//! `wss://` in a test: a CA and a server certificate for 127.0.0.1 and localhost made fresh
//! (rcgen), and a TLS-terminating proxy on 127.0.0.1 that forwards the bytes to a plain
//! server, as a reverse proxy in front of `weft serve` does. Used by `weft-client`'s tests
//! and, through `#[path]`, by `weft-cli`'s.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// How long one client may take over its handshake before the proxy drops it.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(10);

/// A fresh CA and a server certificate it signed, for `127.0.0.1` and `localhost`.
pub struct TestCa {
    /// The CA's certificate, PEM: what a client's CA file holds.
    pub ca_pem: String,
    server_cert: CertificateDer<'static>,
    server_key_pkcs8: Vec<u8>,
}

impl TestCa {
    /// Makes the CA and the server certificate.
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "weft test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("a server key");
        let server_params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("the server certificate");
        TestCa {
            ca_pem: ca_cert.pem(),
            server_cert: server_cert.der().clone(),
            server_key_pkcs8: server_key.serialize_der(),
        }
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key_pkcs8.clone()));
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.server_cert.clone()], key)
            .expect("the server certificate and key match");
        Arc::new(config)
    }
}

/// A TLS-terminating proxy on 127.0.0.1, on its own thread and runtime (so it serves sync
/// and async tests alike); stopped when dropped.
pub struct TlsProxy {
    /// The port it listens on.
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TlsProxy {
    /// Starts a proxy presenting `ca`'s server certificate and forwarding each connection's
    /// decrypted bytes to `upstream`.
    pub fn start(ca: &TestCa, upstream: SocketAddr) -> TlsProxy {
        let listener = StdTcpListener::bind("127.0.0.1:0").expect("a port for the proxy");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener.local_addr().expect("the proxy's address").port();
        let acceptor = TlsAcceptor::from(ca.server_config());
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the proxy's runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a tokio listener");
                tokio::select! {
                    _ = stopped => {}
                    () = accept_loop(listener, acceptor, upstream) => {}
                }
            });
            // Dropping the runtime here ends the connections still being forwarded.
        });
        TlsProxy {
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `wss://127.0.0.1:PORT/v1/sync/DATABASE` through this proxy.
    pub fn wss_url(&self, database: &str) -> String {
        format!("wss://127.0.0.1:{}/v1/sync/{database}", self.port)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, upstream: SocketAddr) {
    while let Ok((client, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // A client that refuses the certificate ends its handshake here: nothing to forward.
            let Ok(Ok(mut client)) =
                tokio::time::timeout(HANDSHAKE_WAIT, acceptor.accept(client)).await
            else {
                return;
            };
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
