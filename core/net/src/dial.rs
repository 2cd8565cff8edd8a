//! Opening a WebSocket to a server's sync endpoint, as a stream and sink of frames.
//!
//! `ws://` is plain TCP; `wss://` is TLS through rustls, trusting the bundled Mozilla roots
//! plus an optional CA file ([`SyncTarget::ca_file`]).

use crate::tls;
use futures_util::{future, Sink, SinkExt, Stream, StreamExt};
use std::path::PathBuf;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::Connector;
use weft_core::sync::FRAME_BYTES_MAX;

/// Where to sync: a server's database URL and the token that opens it.
#[derive(Clone, Debug)]
pub struct SyncTarget {
    /// `ws://HOST:PORT/v1/sync/DATABASE` (or `wss://`).
    pub url: String,
    /// A bearer token, if the server wants one.
    pub token: Option<String>,
    /// For `wss://`: a PEM file of CA certificates trusted besides the bundled Mozilla roots
    /// (an organisation's own CA). Read on every connect; unused for `ws://`.
    pub ca_file: Option<PathBuf>,
}

impl SyncTarget {
    /// A target with a URL and an optional token, trusting the bundled roots only.
    pub fn new(url: impl Into<String>, token: Option<String>) -> SyncTarget {
        SyncTarget {
            url: url.into(),
            token,
            ca_file: None,
        }
    }

    /// The same target, also trusting the CA certificates in the PEM file at `path`.
    pub fn with_ca_file(self, path: impl Into<PathBuf>) -> SyncTarget {
        SyncTarget {
            ca_file: Some(path.into()),
            ..self
        }
    }

    /// The database the URL names: the segment after `/v1/sync/`.
    pub fn database(&self) -> Result<String, DialError> {
        let bad = || DialError::BadUrl {
            url: self.url.clone(),
            reason: "expected ws://HOST:PORT/v1/sync/DATABASE".into(),
        };
        let rest = self
            .url
            .strip_prefix("ws://")
            .or_else(|| self.url.strip_prefix("wss://"))
            .ok_or_else(bad)?;
        let path = rest.split(['?', '#']).next().unwrap_or_default();
        let (_, database) = path.split_once("/v1/sync/").ok_or_else(bad)?;
        if database.is_empty() || database.contains('/') {
            return Err(bad());
        }
        Ok(database.to_owned())
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
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
    /// The CA file cannot be used: unreadable, too large, not PEM, or no usable certificate.
    #[error("cannot use the CA file {}: {reason}", path.display())]
    BadCaFile {
        /// The file given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS handshake failed: the server's certificate was refused (not signed by a
    /// trusted CA, issued for another name, expired) or the two sides could not agree. Trying
    /// again cannot help until the certificate or the trusted roots change.
    #[error("TLS with {url} failed (a certificate or TLS problem): {reason}")]
    Tls {
        /// The URL.
        url: String,
        /// rustls's reason, with a hint where there is one.
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
}

/// A connection as frames: binary messages in and out; pings, pongs and text are skipped.
pub trait FrameSocket:
    Stream<Item = Result<Vec<u8>, WsError>> + Sink<Vec<u8>, Error = WsError> + Unpin + Send
{
}

impl<T> FrameSocket for T where
    T: Stream<Item = Result<Vec<u8>, WsError>> + Sink<Vec<u8>, Error = WsError> + Unpin + Send
{
}

/// Connects to `target`; an HTTP refusal (bad token, unknown database) becomes
/// [`DialError::Refused`] with the server's reason, a refused certificate
/// [`DialError::Tls`].
pub async fn connect(target: &SyncTarget) -> Result<impl FrameSocket, DialError> {
    target.database()?;
    let mut request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| DialError::BadUrl {
            url: target.url.clone(),
            reason: e.to_string(),
        })?;
    if let Some(token) = &target.token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            DialError::BadToken("the token holds characters a header cannot carry".into())
        })?;
        request.headers_mut().insert(AUTHORIZATION, value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(FRAME_BYTES_MAX))
        .max_frame_size(Some(FRAME_BYTES_MAX));
    let connector = if request.uri().scheme_str() == Some("wss") {
        Connector::Rustls(tls::client_config(&target.url, target.ca_file.as_deref())?)
    } else {
        Connector::Plain
    };
    let (socket, _response) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    )
    .await
    .map_err(|error| dial_error(&target.url, error))?;
    let frames = socket
        .filter_map(|message| {
            future::ready(match message {
                Ok(Message::Binary(bytes)) => Some(Ok(bytes.to_vec())),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
        })
        .with(|frame: Vec<u8>| future::ready(Ok::<_, WsError>(Message::Binary(frame.into()))));
    Ok(frames)
}

/// Sorts a failed handshake: an HTTP refusal, a TLS failure, or the server out of reach.
fn dial_error(url: &str, error: WsError) -> DialError {
    let tls_failure = |reason: String| DialError::Tls {
        url: url.to_owned(),
        reason,
    };
    match error {
        WsError::Io(io) => match tls::handshake_failure(&io) {
            Some(refused) => tls_failure(tls::explain(refused)),
            None => DialError::Unreachable {
                url: url.to_owned(),
                reason: io.to_string(),
            },
        },
        WsError::Tls(refused) => tls_failure(refused.to_string()),
        WsError::Http(response) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .unwrap_or_default();
            DialError::Refused {
                status,
                reason: if body.is_empty() {
                    response
                        .status()
                        .canonical_reason()
                        .unwrap_or("refused")
                        .to_owned()
                } else {
                    body
                },
            }
        }
        other => DialError::Unreachable {
            url: url.to_owned(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_the_last_segment() {
        let target = SyncTarget::new("ws://127.0.0.1:7400/v1/sync/notes?token=x", None);
        assert_eq!(target.database().unwrap(), "notes");
        for bad in [
            "http://h/v1/sync/a",
            "ws://h/v2/a",
            "ws://h/v1/sync/",
            "ws://h/v1/sync/a/b",
        ] {
            assert!(SyncTarget::new(bad, None).database().is_err(), "{bad}");
        }
    }
}
