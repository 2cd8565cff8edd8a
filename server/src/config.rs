//! How a server is set up.

use crate::secret::Secret;
use std::path::PathBuf;
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
}

impl ServerConfig {
    /// A configuration with the default address and shutdown grace.
    pub fn new(data_dir: impl Into<PathBuf>, auth: AuthMode) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            listen: DEFAULT_LISTEN.into(),
            auth,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}
