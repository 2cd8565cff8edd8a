//! `weft serve`: run the sync server until SIGINT or SIGTERM.

use anyhow::Context;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use weft_server::blobs::BlobsUrl;
use weft_server::config::{DEFAULT_DATA_DIR, DEFAULT_LISTEN};
use weft_server::events::nats::DEFAULT_SUBJECT as NATS_DEFAULT_SUBJECT;
use weft_server::events::{NatsConfig, WebhookConfig};
use weft_server::limits::PEERS_MAX;
use weft_server::secret::SECRET_FILE_NAME;
use weft_server::{
    AuthMode, ConfigFile, DefaultChangeAuthorizer, PeerUrl, Secret, Server, ServerConfig,
};

/// The command line of `weft serve`, before the config file is merged in.
#[derive(clap::Args, Debug)]
pub(super) struct Flags {
    /// A TOML configuration file (keys: data, listen, auth_secret_file, no_auth, blobs,
    /// [[peers]] url, [[webhooks]] url secret_file, [nats] url subject); the flags below override it.
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// The data directory (created if missing) [default: ./weft-data].
    #[arg(long, value_name = "DIR")]
    pub(super) data: Option<PathBuf>,
    /// The address to listen on; port 0 picks a free one [default: 127.0.0.1:7400].
    #[arg(long, value_name = "ADDR")]
    pub(super) listen: Option<String>,
    /// The secret tokens are signed with (at least 16 bytes). Other users of this machine
    /// can see it in the process list: prefer --auth-secret-file.
    #[arg(long, value_name = "SECRET", conflicts_with_all = ["auth_secret_file", "no_auth"])]
    pub(super) auth_secret: Option<String>,
    /// A file holding the secret (surrounding whitespace ignored).
    #[arg(long, value_name = "FILE", conflicts_with = "no_auth")]
    pub(super) auth_secret_file: Option<PathBuf>,
    /// No tokens: everyone who can reach the server may read and write every database.
    #[arg(long)]
    pub(super) no_auth: bool,
    /// Another server of the organisation to sync every database with, ws://HOST:PORT
    /// (repeatable; replaces the config file's [[peers]]). Peers must share the secret.
    #[arg(long = "peer", value_name = "URL")]
    pub(super) peers: Vec<String>,
    /// POST every database's change events to this URL, http://HOST:PORT/PATH
    /// (repeatable; replaces the config file's [[webhooks]]). Signed with the auth secret.
    #[arg(long = "webhook", value_name = "URL")]
    pub(super) webhooks: Vec<String>,
    /// Publish every change event to this NATS server, nats://HOST:PORT.
    #[arg(long, value_name = "URL")]
    pub(super) nats: Option<String>,
    /// The NATS subject; {database} is replaced by the database name [default: weft.{database}].
    #[arg(long, value_name = "SUBJECT", requires = "nats")]
    pub(super) nats_subject: Option<String>,
    /// Where blob bytes are stored: s3://BUCKET/PREFIX (credentials, region and endpoint from
    /// AWS_* variables, see docs/server.md), file:///DIR or a directory [default: DATA/blobs].
    #[arg(long, value_name = "URL")]
    pub(super) blobs: Option<String>,
}

/// What to run with: the flags over the config file over the defaults.
struct Settings {
    data: PathBuf,
    listen: String,
    secret: SecretSource,
    peers: Vec<PeerUrl>,
    webhooks: Vec<WebhookConfig>,
    nats: Option<NatsConfig>,
    blobs: Option<BlobsUrl>,
}

impl Flags {
    fn settings(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let secret = if self.no_auth {
            SecretSource::None
        } else if let Some(text) = self.auth_secret {
            SecretSource::Given(text)
        } else if let Some(path) = self.auth_secret_file {
            SecretSource::File(path)
        } else if file.no_auth {
            SecretSource::None
        } else if let Some(path) = file.auth_secret_file.clone() {
            SecretSource::File(path)
        } else {
            SecretSource::DataDir
        };
        let peers = if self.peers.is_empty() {
            file.peer_urls()
                .map_err(anyhow::Error::msg)
                .with_context(|| {
                    format!(
                        "--config {}",
                        self.config.as_deref().unwrap_or(Path::new("")).display()
                    )
                })?
        } else {
            if self.peers.len() > PEERS_MAX {
                anyhow::bail!("more than {PEERS_MAX} --peer");
            }
            self.peers
                .iter()
                .map(|url| PeerUrl::parse(url).context("--peer"))
                .collect::<anyhow::Result<_>>()?
        };
        let webhooks = if self.webhooks.is_empty() {
            file.webhooks
                .iter()
                .map(|entry| {
                    let secret = match &entry.secret_file {
                        Some(path) => Some(webhook_secret(path)?),
                        None => None,
                    };
                    Ok(WebhookConfig {
                        url: entry.url.clone(),
                        secret,
                    })
                })
                .collect::<anyhow::Result<_>>()?
        } else {
            self.webhooks
                .iter()
                .map(|url| WebhookConfig {
                    url: url.clone(),
                    secret: None,
                })
                .collect()
        };
        let blobs = match &self.blobs {
            Some(text) => Some(BlobsUrl::parse(text)?),
            None => file.blobs_url().map_err(anyhow::Error::msg)?,
        };
        let nats = match (self.nats, file.nats) {
            (Some(url), _) => Some(NatsConfig {
                url,
                subject: self
                    .nats_subject
                    .unwrap_or_else(|| NATS_DEFAULT_SUBJECT.into()),
            }),
            (None, Some(entry)) => Some(NatsConfig {
                url: entry.url,
                subject: entry.subject.unwrap_or_else(|| NATS_DEFAULT_SUBJECT.into()),
            }),
            (None, None) => None,
        };
        Ok(Settings {
            webhooks,
            nats,
            blobs,
            data: self
                .data
                .or(file.data)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.into()),
            secret,
            peers,
        })
    }
}

/// The HMAC key in a webhook's `secret_file` (surrounding whitespace ignored).
fn webhook_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("webhook secret_file {}", path.display()))?;
    let key = text.trim();
    if key.is_empty() {
        anyhow::bail!("webhook secret_file {} is empty", path.display());
    }
    Ok(key.as_bytes().to_vec())
}

/// Where the signing secret comes from.
pub(super) enum SecretSource {
    /// `--auth-secret`.
    Given(String),
    /// `--auth-secret-file`.
    File(PathBuf),
    /// Neither: `DATA/auth-secret`, generated on first start.
    DataDir,
    /// `--no-auth`.
    None,
}

/// How long, after the server stopped, blocking work may take to finish.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(5);

/// Runs `weft serve`.
pub(super) fn run(flags: Flags) -> anyhow::Result<()> {
    init_logs();
    let Settings {
        data,
        listen,
        secret,
        peers,
        webhooks,
        nats,
        blobs,
    } = flags.settings()?;
    let auth = auth_mode(&data, secret)?;
    let mut config = ServerConfig::new(data, auth);
    config.listen = listen;
    config.peers = peers;
    config.webhooks = webhooks;
    config.nats = nats;
    config.blobs = blobs;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let data_dir = config.data_dir.clone();
        let server = Server::bind(config, Arc::new(DefaultChangeAuthorizer)).await?;
        // On stdout, for scripts and tests to read the port from (with --listen HOST:0).
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on {}", server.local_addr())
            .and_then(|()| stdout.flush())
            .context("writing to stdout")?;
        tracing::info!(
            addr = %server.local_addr(),
            data = %data_dir.display(),
            "serving ws://{}/v1/sync/{{database}}",
            server.local_addr()
        );
        server
            .run_until(weft_server::shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result
}

/// Structured logs on stderr; `RUST_LOG` filters them (default: info).
fn init_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The auth mode `source` asks for, reading or generating the secret.
fn auth_mode(data: &Path, source: SecretSource) -> anyhow::Result<AuthMode> {
    let secret = match source {
        SecretSource::None => return Ok(AuthMode::Disabled),
        SecretSource::Given(text) => Secret::new(&text).context("--auth-secret")?,
        SecretSource::File(path) => {
            let secret = Secret::read_file(&path)?;
            tracing::info!("tokens are checked with the secret in {}", path.display());
            secret
        }
        SecretSource::DataDir => {
            let path = data.join(SECRET_FILE_NAME);
            let (secret, generated) = Secret::load_or_generate(&path)?;
            if generated {
                tracing::info!(
                    "generated a new auth secret in {} (keep it private); mint a token with: \
                     weft token --secret-file {} --db NAME",
                    path.display(),
                    path.display()
                );
            } else {
                tracing::info!("tokens are checked with the secret in {}", path.display());
            }
            secret
        }
    };
    Ok(AuthMode::Token(secret))
}
