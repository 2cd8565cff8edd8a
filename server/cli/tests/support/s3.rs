//! A real S3-compatible server for the tests: moto's server mode (`moto_server`, from PyPI),
//! installed by `scripts/install-test-deps` into the project's `.venv-test/`, started on
//! 127.0.0.1 with a free port, killed when dropped.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to start answering.
const START_WAIT: Duration = Duration::from_secs(60);

/// The bucket every [`Moto`] creates.
pub const BUCKET: &str = "weft-test";

/// The credentials and region the tests give (moto accepts any).
const ACCESS_KEY: &str = "weft-test-key";
const SECRET_KEY: &str = "weft-test-secret";
const REGION: &str = "us-east-1";

/// A running `moto_server` holding the bucket [`BUCKET`].
pub struct Moto {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// `moto_server` in the project's test venv (or `$WEFT_MOTO_SERVER`).
fn moto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WEFT_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/moto_server")
}

impl Moto {
    /// Starts moto on a free port of 127.0.0.1, waits (bounded) until it answers, and creates
    /// [`BUCKET`]. Panics, saying to run `scripts/install-test-deps`, if moto is missing.
    pub fn start() -> Moto {
        let binary = moto_binary();
        assert!(
            binary.is_file(),
            "moto_server is not installed at {}: run scripts/install-test-deps \
             (it installs moto[server] from PyPI into .venv-test/)",
            binary.display()
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("moto.log");
        let port = super::free_port();
        let log_file = std::fs::File::create(&log).expect("moto's log file");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("the log file again"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{} does not start ({e}): run scripts/install-test-deps",
                    binary.display()
                )
            });
        let mut moto = Moto {
            child,
            port,
            log,
            _dir: dir,
        };
        moto.wait_until_it_answers();
        let status = moto.request("PUT", &format!("/{BUCKET}"));
        assert_eq!(
            status,
            200,
            "creating the bucket; moto's log:\n{}",
            moto.log()
        );
        moto
    }

    /// Polls `GET /` until moto answers it with an HTTP status, for at most [`START_WAIT`].
    /// A port that accepts connections is not enough: a CI run saw the first request after a
    /// bare connect come back empty.
    fn wait_until_it_answers(&mut self) {
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("moto_server exited ({status}); its log:\n{}", self.log());
            }
            if self.try_request("GET", "/").is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within {START_WAIT:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A plain unsigned HTTP/1.1 request without a body: the status.
    fn request(&self, method: &str, path: &str) -> u16 {
        self.try_request(method, path).unwrap_or_else(|| {
            panic!(
                "no HTTP status from moto for {method} {path}; its log:\n{}",
                self.log()
            )
        })
    }

    /// [`Moto::request`], or `None` if no HTTP status came back.
    fn try_request(&self, method: &str, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(START_WAIT)).ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .ok()?;
        let mut response = String::new();
        let _ = stream.take(1 << 20).read_to_string(&mut response);
        response.split(' ').nth(1).and_then(|s| s.parse().ok())
    }

    /// What moto logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `AWS_*` variables that point `object_store`'s `AmazonS3Builder::from_env` (so
    /// `weft serve --blobs s3://…` and `weft gc`) at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
        ]
    }

    /// An `object_store` client of [`BUCKET`] on this server.
    pub fn store(&self) -> AmazonS3 {
        weft_server::blobs::install_tls_provider();
        AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_region(REGION)
            .with_bucket_name(BUCKET)
            .build()
            .expect("an S3 client of moto")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
