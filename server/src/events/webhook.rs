//! Webhooks: batches of events POSTed as a JSON array to `http://HOST:PORT/PATH`.
//!
//! Each request carries `X-Weft-Signature: sha256=HEX`, the HMAC-SHA256 of the exact body
//! bytes keyed with the webhook's secret (by default the server's auth secret), and
//! `X-Weft-Database`. Any 2xx answer acknowledges the batch; anything else, no answer within
//! [`WEBHOOK_TIMEOUT`], or no connection, is retried by the sink that delivers it (the `sinks` module, with back-off).

use super::short_hash;
use crate::limits::WEBHOOK_ANSWER_BYTES_MAX;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use std::time::Duration;
use weft_core::events::Event;

/// How long one POST may take, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-weft-signature";

/// One webhook as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `http://HOST:PORT/PATH`.
    pub url: String,
    /// The HMAC key; `None`: the server's auth secret (and no signature without auth).
    pub secret: Option<Vec<u8>>,
}

/// A webhook URL that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid webhook URL {url:?}: {reason}")]
pub struct InvalidWebhookUrl {
    /// The URL given.
    pub url: String,
    /// Why.
    pub reason: &'static str,
}

/// Where a webhook posts: host, port and path of an `http://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WebhookUrl {
    url: String,
    authority: String,
    path: String,
}

impl WebhookUrl {
    /// Parses `http://HOST[:PORT][/PATH]` (https is not supported yet).
    pub(crate) fn parse(url: &str) -> Result<WebhookUrl, InvalidWebhookUrl> {
        let invalid = |reason| InvalidWebhookUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| invalid("only http:// webhooks are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return Err(invalid("expected http://HOST[:PORT]/PATH"));
        }
        if path.contains([' ', '#']) || path.len() > 2048 {
            return Err(invalid("the path has spaces, a fragment, or is too long"));
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(WebhookUrl {
            url: url.to_owned(),
            authority,
            path: path.to_owned(),
        })
    }
}

/// A webhook ready to post.
pub(crate) struct WebhookSink {
    url: WebhookUrl,
    secret: Option<Vec<u8>>,
}

impl WebhookSink {
    /// A sink for `url`, signing with `secret` if any.
    pub(crate) fn new(url: WebhookUrl, secret: Option<Vec<u8>>) -> WebhookSink {
        WebhookSink { url, secret }
    }

    pub(crate) fn id(&self) -> String {
        format!("webhook-{}", short_hash(&self.url.url))
    }

    pub(crate) fn url(&self) -> &str {
        &self.url.url
    }

    /// POSTs `events` once.
    pub(crate) async fn deliver(&self, database: &str, events: &[Event]) -> Result<(), String> {
        let body = serde_json::to_vec(events).map_err(|e| e.to_string())?;
        let signature = self.secret.as_deref().map(|key| sign(key, &body));
        tokio::time::timeout(WEBHOOK_TIMEOUT, self.post(database, body, signature))
            .await
            .map_err(|_| format!("no answer within {WEBHOOK_TIMEOUT:?}"))?
    }

    async fn post(
        &self,
        database: &str,
        body: Vec<u8>,
        signature: Option<String>,
    ) -> Result<(), String> {
        let stream = tokio::net::TcpStream::connect(&self.url.authority)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let connection = tokio::spawn(connection);
        let mut request = Request::post(&self.url.path)
            .header(HOST, &self.url.authority)
            .header(CONTENT_TYPE, "application/json")
            .header("x-weft-database", database);
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string());
        let result = match response {
            Ok(response) => {
                let status = response.status();
                let _ = Limited::new(response.into_body(), WEBHOOK_ANSWER_BYTES_MAX)
                    .collect()
                    .await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("answered {status}"))
                }
            }
            Err(error) => Err(error),
        };
        connection.abort();
        result
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` keyed with `key`.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_signatures() {
        let url = WebhookUrl::parse("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!(url.authority, "127.0.0.1:9000");
        assert_eq!(url.path, "/hook?x=1");
        assert_eq!(WebhookUrl::parse("http://h").unwrap().authority, "h:80");
        assert!(WebhookUrl::parse("https://h/x").is_err());
        assert!(WebhookUrl::parse("http:///x").is_err());
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
