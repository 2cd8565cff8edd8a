//! The client's errors: each says what the user can do about it.

use weft_net::DialError;

/// What can go wrong when syncing.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be opened: a bad URL or token, an HTTP refusal (bad token,
    /// unknown database), or the server out of reach.
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The conversation ended on a protocol error.
    #[error("sync failed ({code}): {message}")]
    Protocol {
        /// The protocol's error code.
        code: weft_core::sync::ErrorCode,
        /// In words.
        message: String,
    },
    /// The server closed the connection before the sync finished.
    #[error("the server closed the connection before the sync finished")]
    Closed,
    /// The local replica failed.
    #[error("local replica: {0}")]
    Replica(#[from] weft_core::Error),
    /// The app's credentials callback gave no token.
    #[error("credentials: {0}")]
    Credentials(String),
    /// Anything else below the protocol (a failed step, the socket).
    #[error("{0}")]
    Drive(#[from] weft_net::DriveError),
}

impl ClientError {
    /// Whether the server refused the token (HTTP 401 or 403): a new token may get in.
    pub fn is_auth_refusal(&self) -> bool {
        matches!(self, ClientError::Dial(DialError::Refused { status, .. }) if *status == 401 || *status == 403)
    }

    /// Whether trying again later may succeed (the network, the server restarting), as
    /// opposed to a refusal or a local problem that retrying cannot fix.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Dial(DialError::Unreachable { .. }) | ClientError::Closed => true,
            ClientError::Drive(weft_net::DriveError::Transport(_)) => true,
            ClientError::Dial(DialError::Refused { status, .. }) => *status >= 500,
            // A refused certificate or an unusable CA file stays so until someone changes it.
            ClientError::Dial(DialError::Tls { .. } | DialError::BadCaFile { .. }) => false,
            ClientError::Protocol { code, .. } => matches!(
                code,
                weft_core::sync::ErrorCode::Timeout | weft_core::sync::ErrorCode::Internal
            ),
            _ => false,
        }
    }
}
