//! What can stop a server from starting or running.

use std::path::PathBuf;

/// A server failure.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A directory or file of the data directory could not be made or used.
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A setting cannot be used (a webhook URL, the NATS subject).
    #[error("{0}")]
    Config(String),
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
}
