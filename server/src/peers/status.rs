//! What `GET /v1/peers` reports: per configured peer and database, whether the link is up,
//! how far behind it is, and its last error. The live state is kept per link and turned into
//! these serialisable records on request.

use serde::{Deserialize, Serialize};
use std::time::{Instant, SystemTime};
use weft_core::sync::{SessionEvent, Status};

/// The answer of `GET /v1/peers`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeersStatus {
    /// One entry per configured peer, in the order configured.
    pub peers: Vec<PeerStatus>,
    /// The links other servers have open to this one now, oldest first.
    #[serde(default)]
    pub incoming: Vec<IncomingLinkStatus>,
}

/// One inbound link: a peer server syncing one database with this one over a connection it
/// opened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncomingLinkStatus {
    /// The address the peer connected from.
    pub from: String,
    /// The database.
    pub database: String,
    /// The peer's site id, in hex.
    pub site: String,
    /// When the link opened, RFC 3339.
    pub connected_since: String,
    /// Whether everything the peer held at its last message is applied here.
    pub pulled_all: bool,
    /// Whether the peer has acknowledged everything this server holds.
    pub pushed_all: bool,
}

/// One configured peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its address.
    pub url: String,
    /// The last error listing its databases (`GET /v1/databases`), if the last try failed.
    pub listing_error: Option<String>,
    /// When that error happened, RFC 3339.
    pub listing_error_at: Option<String>,
    /// Databases it has beyond those followed (the per-peer bound was reached).
    pub databases_not_followed: bool,
    /// One link per database followed, by name.
    pub databases: Vec<LinkStatus>,
}

/// One outbound link: this server and the peer syncing one database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// The database.
    pub database: String,
    /// Whether the link is connected (the peer answered our hello).
    pub connected: bool,
    /// How many of the peer's db_versions are not applied here yet, as far as this server
    /// knows (0 when it has everything the peer held at its last message).
    pub db_versions_behind: u64,
    /// Seconds since the link was last caught up both ways; 0 while it is.
    pub seconds_behind: f64,
    /// Whether everything the peer held at its last message is applied here.
    pub pulled_all: bool,
    /// Whether the peer has acknowledged everything this server holds.
    pub pushed_all: bool,
    /// Connection attempts so far.
    pub attempts: u64,
    /// The last error that ended (or prevented) a connection, if any.
    pub last_error: Option<String>,
    /// When that was, RFC 3339.
    pub last_error_at: Option<String>,
}

/// The live state of one link, updated by its task.
#[derive(Debug)]
pub(crate) struct LinkState {
    database: String,
    started: Instant,
    connected: bool,
    peer_db_version: u64,
    received_through: u64,
    pulled_all: bool,
    pushed_all: bool,
    caught_up_at: Option<Instant>,
    attempts: u64,
    last_error: Option<(String, SystemTime)>,
}

impl LinkState {
    /// A link not yet tried.
    pub(crate) fn new(database: &str) -> LinkState {
        LinkState {
            database: database.to_owned(),
            started: Instant::now(),
            connected: false,
            peer_db_version: 0,
            received_through: 0,
            pulled_all: false,
            pushed_all: false,
            caught_up_at: None,
            attempts: 0,
            last_error: None,
        }
    }

    /// A connection attempt starts.
    pub(crate) fn attempt(&mut self) {
        self.attempts += 1;
    }

    /// The session reported `event`; `status` is where it stands now.
    pub(crate) fn on_event(&mut self, event: &SessionEvent, status: &Status) {
        if matches!(event, SessionEvent::Connected { .. }) {
            self.connected = true;
        }
        self.peer_db_version = status.peer_db_version;
        self.received_through = status.received_through;
        self.pulled_all = status.pulled_all;
        self.pushed_all = status.pushed_all;
        if self.connected && self.pulled_all && self.pushed_all {
            self.caught_up_at = Some(Instant::now());
        }
    }

    /// Whether the link is connected and caught up both ways.
    pub(crate) fn caught_up(&self) -> bool {
        self.connected && self.pulled_all && self.pushed_all
    }

    /// The error that ended the last connection, if any.
    pub(crate) fn last_error(&self) -> Option<&str> {
        self.last_error.as_ref().map(|(error, _)| error.as_str())
    }

    /// The connection ended (or could not be made) because of `error`.
    pub(crate) fn disconnected(&mut self, error: String) {
        if self.caught_up() {
            // It was caught up until now: count the time behind from here.
            self.caught_up_at = Some(Instant::now());
        }
        self.connected = false;
        self.last_error = Some((error, SystemTime::now()));
    }

    /// The record `GET /v1/peers` shows.
    pub(crate) fn report(&self) -> LinkStatus {
        let seconds_behind = if self.caught_up() {
            0.0
        } else {
            self.caught_up_at
                .unwrap_or(self.started)
                .elapsed()
                .as_secs_f64()
        };
        let db_versions_behind = if self.pulled_all {
            0
        } else {
            self.peer_db_version.saturating_sub(self.received_through)
        };
        LinkStatus {
            database: self.database.clone(),
            connected: self.connected,
            db_versions_behind,
            seconds_behind,
            pulled_all: self.pulled_all,
            pushed_all: self.pushed_all,
            attempts: self.attempts,
            last_error: self.last_error.as_ref().map(|(e, _)| e.clone()),
            last_error_at: self.last_error.as_ref().map(|(_, at)| rfc3339(*at)),
        }
    }
}

/// `at` as RFC 3339 with seconds, UTC.
pub(crate) fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_behind_until_caught_up_both_ways() {
        let mut link = LinkState::new("notes");
        link.attempt();
        let mut status = Status {
            peer_db_version: 10,
            received_through: 4,
            ..Status::default()
        };
        let connected = SessionEvent::Connected {
            site: weft_core::SiteId::random(),
            role: weft_core::sync::Role::Peer,
            db_version: 10,
            resume_from: 0,
        };
        link.on_event(&connected, &status);
        let report = link.report();
        assert!(report.connected);
        assert_eq!(report.db_versions_behind, 6);
        assert!(report.seconds_behind >= 0.0);
        status.received_through = 10;
        status.pulled_all = true;
        status.pushed_all = true;
        link.on_event(&SessionEvent::CaughtUp, &status);
        let report = link.report();
        assert_eq!((report.db_versions_behind, report.seconds_behind), (0, 0.0));
        link.disconnected("connection: reset".into());
        std::thread::sleep(std::time::Duration::from_millis(20));
        let report = link.report();
        assert!(!report.connected);
        assert!(report.seconds_behind > 0.0);
        assert_eq!(report.last_error.as_deref(), Some("connection: reset"));
        assert_eq!(report.attempts, 1);
    }
}
