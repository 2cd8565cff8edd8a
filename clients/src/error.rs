//! The client's errors: each says what the user can do about it.

/// What can go wrong when syncing.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not a sync URL.
    #[error("bad sync URL {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The token cannot be sent.
    #[error("bad token: {0}")]
    BadToken(String),
    /// The server answered with an HTTP refusal (401, 403, 400...).
    #[error("the server refused the connection ({status}): {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's reason.
        reason: String,
    },
    /// The server could not be reached, or the connection failed.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
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
    /// Anything else below the protocol (a failed step, the socket).
    #[error("{0}")]
    Drive(#[from] weft_net::DriveError),
}

impl From<weft_net::DialError> for ClientError {
    fn from(error: weft_net::DialError) -> ClientError {
        match error {
            weft_net::DialError::BadUrl { url, reason } => ClientError::BadUrl { url, reason },
            weft_net::DialError::BadToken(reason) => ClientError::BadToken(reason),
            weft_net::DialError::Refused { status, reason } => {
                ClientError::Refused { status, reason }
            }
            weft_net::DialError::Unreachable { url, reason } => {
                ClientError::Unreachable { url, reason }
            }
        }
    }
}

impl ClientError {
    /// Whether trying again later may succeed (the network, the server restarting), as
    /// opposed to a refusal or a local problem that retrying cannot fix.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } | ClientError::Closed => true,
            ClientError::Drive(weft_net::DriveError::Transport(_)) => true,
            ClientError::Refused { status, .. } => *status >= 500,
            ClientError::Protocol { code, .. } => matches!(
                code,
                weft_core::sync::ErrorCode::Timeout | weft_core::sync::ErrorCode::Internal
            ),
            _ => false,
        }
    }
}
