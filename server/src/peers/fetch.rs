//! Plain HTTP GETs to another server: its database list (`/v1/databases`) for the dialer,
//! and its peer status (`/v1/peers`) for `weft peers`. Bounded in time and size.

use super::url::PeerUrl;
use crate::limits::PEER_ANSWER_BYTES_MAX;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a GET failed. Each message fits on one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No TCP connection, or the exchange broke.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The server.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer in [`REQUEST_TIMEOUT`].
    #[error("{url} did not answer within {REQUEST_TIMEOUT:?}")]
    Timeout {
        /// The server.
        url: String,
    },
    /// An answer other than 200.
    #[error("{url} refused ({status}): {reason}")]
    Refused {
        /// The server.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Its one-line reason.
        reason: String,
    },
    /// A 200 whose body is not what was asked for (or over [`PEER_ANSWER_BYTES_MAX`]).
    #[error("{url} answered something unexpected: {reason}")]
    BadAnswer {
        /// The server.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

/// GETs `path` from `server` with `token` as bearer, and decodes the JSON answer.
pub async fn get_json<T: DeserializeOwned>(
    server: &PeerUrl,
    path: &str,
    token: Option<&str>,
) -> Result<T, FetchError> {
    let url = url_of(server, path);
    let body = tokio::time::timeout(REQUEST_TIMEOUT, get(server, path, token))
        .await
        .map_err(|_| FetchError::Timeout { url: url.clone() })??;
    serde_json::from_slice(&body).map_err(|e| FetchError::BadAnswer {
        url,
        reason: e.to_string(),
    })
}

/// `http://AUTHORITY/PATH`, as errors name it.
fn url_of(server: &PeerUrl, path: &str) -> String {
    format!("http://{}{path}", server.authority())
}

async fn get(server: &PeerUrl, path: &str, token: Option<&str>) -> Result<Bytes, FetchError> {
    let url = url_of(server, path);
    let unreachable = |reason: String| FetchError::Unreachable {
        url: url.clone(),
        reason,
    };
    let stream = tokio::net::TcpStream::connect(server.authority())
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    // The connection task ends when the answer is read and the sender dropped.
    let connection = tokio::spawn(connection);
    let mut request = Request::get(path).header(HOST, server.authority());
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), PEER_ANSWER_BYTES_MAX)
        .collect()
        .await
        .map(|collected| collected.to_bytes());
    drop(sender);
    connection.abort();
    let body = body.map_err(|e| FetchError::BadAnswer {
        url: url.clone(),
        reason: format!("reading the body: {e}"),
    })?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        let line = text.lines().next().unwrap_or_default();
        return Err(FetchError::Refused {
            url,
            status: status.as_u16(),
            reason: line.chars().take(200).collect(),
        });
    }
    Ok(body)
}
