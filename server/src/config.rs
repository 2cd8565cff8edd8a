//! How a server is set up.

use crate::blobs::BlobsUrl;
use crate::events::nats::NatsConfig;
use crate::events::webhook::WebhookConfig;
use crate::limits::CONFIG_FILE_BYTES_MAX;
use crate::limits::PEERS_MAX;
use crate::peers::url::PeerUrl;
use crate::secret::Secret;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The data directory when none is given.
pub const DEFAULT_DATA_DIR: &str = "./weft-data";

/// The address a server listens on when none is given.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";

/// How long a stopping server waits for open connections to finish.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Whether and how requests are authenticated.
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// A bearer token (JWT, HS256) signed with this secret is required.
    Token(Secret),
    /// No token needed: everyone may read and write every database.
    Disabled,
}

/// A server's settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The data directory: `dbs/NAME.db` per database (and, by default, `auth-secret`).
    pub data_dir: PathBuf,
    /// The address to listen on, `HOST:PORT` (port 0 picks a free one).
    pub listen: String,
    /// How requests are authenticated.
    pub auth: AuthMode,
    /// How long shutdown waits for open connections before it gives up on them.
    pub shutdown_grace: Duration,
    /// Other servers of the same organisation to dial and sync every database with.
    pub peers: Vec<PeerUrl>,
    /// Webhooks that receive every database's change events.
    pub webhooks: Vec<WebhookConfig>,
    /// The NATS server and subject change events are published to.
    pub nats: Option<NatsConfig>,
    /// Where blob bytes are stored; `None`: the directory `DATA/blobs`.
    pub blobs: Option<BlobsUrl>,
}

impl ServerConfig {
    /// A configuration with the default address and shutdown grace.
    pub fn new(data_dir: impl Into<PathBuf>, auth: AuthMode) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            listen: DEFAULT_LISTEN.into(),
            auth,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            peers: Vec::new(),
            webhooks: Vec::new(),
            nats: None,
            blobs: None,
        }
    }

    /// Where blob bytes are stored: [`ServerConfig::blobs`], or `DATA/blobs`.
    pub fn blobs_url(&self) -> BlobsUrl {
        self.blobs
            .clone()
            .unwrap_or_else(|| BlobsUrl::default_in(&self.data_dir))
    }
}

/// The TOML file `weft serve --config FILE` reads. Every key is optional; command-line flags
/// override it. Relative paths are relative to the file's directory.
///
/// ```toml
/// data = "/var/lib/weft"
/// listen = "0.0.0.0:7400"
/// auth_secret_file = "/etc/weft/auth-secret"
/// blobs = "s3://my-bucket/weft"   # default: the directory DATA/blobs
/// # no_auth = true
///
/// [[peers]]
/// url = "ws://dc2.internal:7400"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The data directory.
    pub data: Option<PathBuf>,
    /// The address to listen on.
    pub listen: Option<String>,
    /// A file holding the auth secret.
    pub auth_secret_file: Option<PathBuf>,
    /// No tokens at all.
    #[serde(default)]
    pub no_auth: bool,
    /// The peers to dial.
    #[serde(default)]
    pub peers: Vec<PeerEntry>,
    /// The webhooks to post change events to.
    #[serde(default)]
    pub webhooks: Vec<WebhookEntry>,
    /// The NATS server to publish change events to.
    pub nats: Option<NatsEntry>,
    /// Where blob bytes are stored: `s3://BUCKET/PREFIX`, `file:///DIR` or a directory.
    pub blobs: Option<String>,
}

/// One `[[webhooks]]` table of a [`ConfigFile`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    /// `http://HOST:PORT/PATH`.
    pub url: String,
    /// A file holding this webhook's HMAC key (surrounding whitespace ignored); default: the
    /// server's auth secret.
    pub secret_file: Option<PathBuf>,
}

/// The `[nats]` table of a [`ConfigFile`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsEntry {
    /// `nats://HOST:PORT`.
    pub url: String,
    /// The subject template (default `weft.{database}`).
    pub subject: Option<String>,
}

/// One `[[peers]]` table of a [`ConfigFile`].
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerEntry {
    /// The peer's address, `ws://HOST:PORT`.
    pub url: String,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is larger than [`CONFIG_FILE_BYTES_MAX`].
    #[error("{} is larger than {CONFIG_FILE_BYTES_MAX} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// It is not valid TOML, or holds a key this server does not know.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its line.
        message: String,
    },
    /// A value is wrong.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ConfigFile {
    /// Reads and checks `path`; relative paths in it are made relative to its directory.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        use std::io::Read;
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(CONFIG_FILE_BYTES_MAX + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > CONFIG_FILE_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        let mut config = ConfigFile::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let webhook_secrets = config.webhooks.iter_mut().map(|w| &mut w.secret_file);
        for relative in [&mut config.data, &mut config.auth_secret_file]
            .into_iter()
            .chain(webhook_secrets)
            .flatten()
        {
            if relative.is_relative() {
                *relative = base.join(&*relative);
            }
        }
        config.peer_urls().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        if let Some(url) = config.blobs_url().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })? {
            if let BlobsUrl::Local(dir) = url.relative_to(base) {
                // A plain path: what `BlobsUrl::parse` reads back as this directory.
                config.blobs = Some(dir.display().to_string());
            }
        }
        if config.no_auth && config.auth_secret_file.is_some() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                message: "no_auth and auth_secret_file exclude each other".into(),
            });
        }
        Ok(config)
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
    }

    /// The `blobs` key, checked (a relative directory is left relative).
    pub fn blobs_url(&self) -> Result<Option<BlobsUrl>, String> {
        self.blobs
            .as_deref()
            .map(|text| BlobsUrl::parse(text).map_err(|e| format!("blobs: {e}")))
            .transpose()
    }

    /// The peers' URLs, checked; at most [`PEERS_MAX`].
    pub fn peer_urls(&self) -> Result<Vec<PeerUrl>, String> {
        if self.peers.len() > PEERS_MAX {
            return Err(format!("more than {PEERS_MAX} peers"));
        }
        self.peers
            .iter()
            .map(|p| PeerUrl::parse(&p.url).map_err(|e| format!("peers: {e}")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_file_names_everything_and_nothing_else() {
        let config = ConfigFile::parse(
            "data = \"d\"\nlisten = \"127.0.0.1:1\"\n[[peers]]\nurl = \"ws://a:1\"\n[[peers]]\nurl = \"ws://b:2/\"\n",
        )
        .unwrap();
        assert_eq!(config.data, Some(PathBuf::from("d")));
        assert_eq!(config.listen.as_deref(), Some("127.0.0.1:1"));
        let urls = config.peer_urls().unwrap();
        assert_eq!(urls[1].to_string(), "ws://b:2");
        let unknown = ConfigFile::parse("dta = \"x\"").unwrap_err();
        assert!(unknown.contains("unknown field"), "{unknown}");
        let bad = ConfigFile {
            peers: vec![PeerEntry {
                url: "http//x".into(),
            }],
            ..ConfigFile::default()
        };
        assert!(bad.peer_urls().is_err());
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weft.toml");
        std::fs::write(
            &path,
            "data = \"d\"\nauth_secret_file = \"/abs/s\"\nblobs = \"b\"\n",
        )
        .unwrap();
        let config = ConfigFile::load(&path).unwrap();
        assert_eq!(config.data, Some(dir.path().join("d")));
        assert_eq!(
            config.blobs_url().unwrap(),
            Some(BlobsUrl::Local(dir.path().join("b")))
        );
        std::fs::write(&path, "blobs = \"gs://elsewhere\"\n").unwrap();
        let error = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("unsupported scheme"), "{error}");
        assert_eq!(config.auth_secret_file, Some(PathBuf::from("/abs/s")));
        std::fs::write(&path, "no_auth = true\nauth_secret_file = \"s\"\n").unwrap();
        assert!(matches!(
            ConfigFile::load(&path),
            Err(ConfigError::Invalid { .. })
        ));
    }
}
