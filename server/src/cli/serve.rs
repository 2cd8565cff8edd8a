//! `weft serve`: run the sync server until SIGINT or SIGTERM.

use anyhow::Context;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use weft_server::secret::SECRET_FILE_NAME;
use weft_server::{AuthMode, DefaultAuthorizer, Secret, Server, ServerConfig};

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
pub(super) fn run(data: PathBuf, listen: String, secret: SecretSource) -> anyhow::Result<()> {
    init_logs();
    let auth = auth_mode(&data, secret)?;
    let mut config = ServerConfig::new(data, auth);
    config.listen = listen;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async {
        let data_dir = config.data_dir.clone();
        let server = Server::bind(config, Arc::new(DefaultAuthorizer)).await?;
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
