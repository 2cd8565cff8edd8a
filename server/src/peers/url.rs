//! A peer's address: `ws://HOST:PORT`, from which its sync and listing URLs are made.

use std::fmt;

/// A server's base address, `ws://HOST:PORT` (an `http://` base is taken as the same
/// server). TLS (`wss://`) is not supported by the dialer yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerUrl {
    host: String,
    port: u16,
}

/// A peer address that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad peer URL {url:?}: {reason}")]
pub struct InvalidPeerUrl {
    /// The text given.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

impl PeerUrl {
    /// Parses `ws://HOST:PORT` or `http://HOST:PORT` (a trailing `/` is allowed; a missing
    /// port is 80).
    pub fn parse(text: &str) -> Result<PeerUrl, InvalidPeerUrl> {
        let invalid = |reason: &str| InvalidPeerUrl {
            url: text.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: axum::http::Uri = text
            .parse()
            .map_err(|_| invalid("expected ws://HOST:PORT"))?;
        match uri.scheme_str() {
            Some("ws" | "http") => {}
            Some("wss" | "https") => {
                return Err(invalid(
                    "TLS is not supported for peers yet: use ws:// on a private network",
                ))
            }
            _ => return Err(invalid("expected ws://HOST:PORT")),
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "give the server's address only (ws://HOST:PORT), without a path",
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| invalid("expected ws://HOST:PORT"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("no user name or password in a peer URL"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        Ok(PeerUrl {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
        })
    }

    /// `HOST:PORT`, for the TCP connection and the `Host` header.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The sync URL of `database` on this peer.
    pub fn sync_url(&self, database: &str) -> String {
        format!("ws://{}/v1/sync/{database}", self.authority())
    }
}

impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}", self.authority())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_a_scheme_a_host_and_a_port() {
        let url = PeerUrl::parse("ws://10.0.0.2:7400").unwrap();
        assert_eq!(url.to_string(), "ws://10.0.0.2:7400");
        assert_eq!(url.sync_url("notes"), "ws://10.0.0.2:7400/v1/sync/notes");
        assert_eq!(
            PeerUrl::parse("http://dc2:7400/").unwrap().authority(),
            "dc2:7400"
        );
        assert_eq!(PeerUrl::parse("ws://dc2").unwrap().authority(), "dc2:80");
        for bad in [
            "dc2:7400",
            "ftp://dc2:1",
            "wss://dc2:1",
            "ws://dc2:1/v1/sync/x",
            "ws://u:p@dc2:1",
            "ws://dc2:1?x=1",
            "",
        ] {
            assert!(PeerUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
