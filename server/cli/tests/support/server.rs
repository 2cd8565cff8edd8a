//! A real `weft serve` process on a fixed loopback port (so it can come back on it after a
//! kill), killed when dropped. Its log (`RUST_LOG=info`) goes to `DATA.log`, which a test
//! reads to check what the server said, or shows when a wait fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use weft_core::Replica;

/// A running (or killed, until [`ServerProcess::restart`]) `weft serve`.
pub struct ServerProcess {
    child: Option<Child>,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Its data directory.
    pub data: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServerProcess {
    /// `weft serve --listen 127.0.0.1:PORT --data DATA ARGS`, once it prints its address.
    pub fn start(data: &Path, port: u16, args: &[String]) -> ServerProcess {
        ServerProcess::start_with_env(data, port, args, &[])
    }

    /// [`ServerProcess::start`] with more environment variables (the S3 ones).
    pub fn start_with_env(
        data: &Path,
        port: u16,
        args: &[String],
        env: &[(&str, String)],
    ) -> ServerProcess {
        let mut server = ServerProcess {
            child: None,
            port,
            data: data.to_owned(),
            args: args.to_vec(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        server.restart();
        server
    }

    /// Starts it again after [`ServerProcess::kill9`], on the same port and data.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("a log file");
        let mut child = super::weft()
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data")
            .arg(&self.data)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("weft serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the listening line");
        if !line.starts_with("listening on ") {
            let _ = child.kill();
            let _ = child.wait();
            panic!("weft serve printed {line:?}; its log:\n{}", self.log());
        }
        self.child = Some(child);
    }

    /// Kills it (SIGKILL) and waits for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The running process, taken over by the caller (to signal it and wait for it).
    pub fn take_child(&mut self) -> Child {
        self.child.take().expect("running")
    }

    /// `ws://127.0.0.1:PORT`, what a peer's `--peer` names.
    pub fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// The sync URL of `database`.
    pub fn url(&self, database: &str) -> String {
        format!("{}/v1/sync/{database}", self.ws())
    }

    /// The change feed URL of `database`.
    pub fn feed_url(&self, database: &str) -> String {
        format!("http://127.0.0.1:{}/v1/changes/{database}", self.port)
    }

    /// The file of its replica of `database`.
    pub fn db(&self, database: &str) -> PathBuf {
        self.data.join("dbs").join(format!("{database}.db"))
    }

    /// Its replica of `database`, opened directly.
    pub fn replica(&self, database: &str) -> Replica {
        Replica::open(self.db(database)).expect("server db")
    }

    /// The digest of its replica of `database`, if it has one yet.
    pub fn digest(&self, database: &str) -> Option<String> {
        let path = self.db(database);
        if !path.exists() {
            return None;
        }
        let replica = Replica::open(&path).ok()?;
        replica.digest().ok().map(|d| d.to_hex())
    }

    fn log_path(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    /// Everything it has logged so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
