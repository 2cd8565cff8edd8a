//! The one error type every language sees, as typed exceptions (Kotlin `WeftException.Sql`,
//! Swift `WeftError.sql`, Python `weft.WeftError.Sql`), each with the engine's message.

use weft_client::{ClientError, DialError};

/// What went wrong, by what the app can do about it.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum WeftError {
    /// SQLite refused a statement (syntax, constraint, type): the statement did nothing and
    /// the database stays usable.
    #[error("{message}")]
    Sql {
        /// The engine's message.
        message: String,
    },
    /// A table cannot be made replicated (no primary key, nullable key column, ...).
    #[error("{message}")]
    NotReplicable {
        /// The engine's message.
        message: String,
    },
    /// The server refused the sync (unknown database, a protocol error, a read-only token
    /// writing): retrying as is will not help.
    #[error("{message}")]
    SyncRefused {
        /// The server's message.
        message: String,
    },
    /// The server refused the token (expired, wrong secret, no access to the database).
    #[error("{message}")]
    Auth {
        /// The server's message.
        message: String,
    },
    /// The server could not be reached or the connection broke: trying later may work.
    #[error("{message}")]
    Network {
        /// Why.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{message}")]
    Io {
        /// Why.
        message: String,
    },
    /// No such blob entry, or its bytes are not on this device yet.
    #[error("{message}")]
    NotFound {
        /// What is missing.
        message: String,
    },
    /// An argument breaks a rule (a bucket name, a URL, a limit).
    #[error("{message}")]
    InvalidArgument {
        /// The rule broken.
        message: String,
    },
    /// The database was closed; open it again.
    #[error("{message}")]
    Closed {
        /// Which database.
        message: String,
    },
    /// Anything else the engine reports (a damaged or newer-format file, an app callback
    /// that threw).
    #[error("{message}")]
    Internal {
        /// The engine's message.
        message: String,
    },
}

impl From<weft_core::Error> for WeftError {
    fn from(error: weft_core::Error) -> WeftError {
        use weft_core::Error as E;
        let message = error.to_string();
        match error {
            E::Sqlite(_) | E::WriteRolledBack(_) => WeftError::Sql { message },
            E::NotReplicable { .. } => WeftError::NotReplicable { message },
            E::Io(_) => WeftError::Io { message },
            E::NoSuchEntry { .. } | E::BlobNotHere { .. } => WeftError::NotFound { message },
            E::InvalidName(_) | E::LimitExceeded { .. } | E::InvalidKey(_) => {
                WeftError::InvalidArgument { message }
            }
            _ => WeftError::Internal { message },
        }
    }
}

impl From<weft_core::rusqlite::Error> for WeftError {
    fn from(error: weft_core::rusqlite::Error) -> WeftError {
        WeftError::Sql {
            message: format!("sqlite: {error}"),
        }
    }
}

impl From<std::io::Error> for WeftError {
    fn from(error: std::io::Error) -> WeftError {
        WeftError::Io {
            message: error.to_string(),
        }
    }
}

impl From<ClientError> for WeftError {
    fn from(error: ClientError) -> WeftError {
        let message = error.to_string();
        match error {
            ClientError::Dial(DialError::Refused { status, .. })
                if status == 401 || status == 403 =>
            {
                WeftError::Auth { message }
            }
            ClientError::Dial(DialError::Refused { .. }) | ClientError::Protocol { .. } => {
                WeftError::SyncRefused { message }
            }
            ClientError::Dial(
                DialError::BadUrl { .. } | DialError::BadToken(_) | DialError::BadCaFile { .. },
            ) => WeftError::InvalidArgument { message },
            // The server's certificate was refused: retrying will not change it.
            ClientError::Dial(DialError::Tls { .. }) => WeftError::SyncRefused { message },
            ClientError::Replica(error) => error.into(),
            error if error.is_transient() => WeftError::Network { message },
            _ => WeftError::SyncRefused { message },
        }
    }
}

impl From<uniffi::UnexpectedUniFFICallbackError> for WeftError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> WeftError {
        WeftError::Internal {
            message: format!("an app callback failed: {}", error.reason),
        }
    }
}

/// The result type of every call.
pub(crate) type Result<T, E = WeftError> = std::result::Result<T, E>;
