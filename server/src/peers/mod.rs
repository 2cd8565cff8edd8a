//! Server peers: other servers of the same organisation that this one dials and syncs every
//! database with, in the protocol's peer role. There is no leader: each server accepts
//! writes, and every change a peer link merges wakes the database's other connections
//! (clients and other peers), which push it on at once.
//!
//! For each configured peer one task follows the databases: those in the local data
//! directory and those the peer lists at `GET /v1/databases`, looked at every few seconds
//! and whenever a database is opened here. Each database gets one link task: an initiator
//! session on the local file, driven over a WebSocket to the peer's `/v1/sync/{database}`,
//! reconnecting with exponential back-off and jitter. Everything is bounded: databases per
//! peer ([`DATABASES_PER_PEER_MAX`]), the wait between attempts ([`PEER_BACKOFF_MAX`]), answer
//! sizes and times.

mod fetch;
pub(crate) mod incoming;
mod link;
mod status;
pub(crate) mod url;

pub use fetch::{get_json, FetchError, REQUEST_TIMEOUT};
pub use status::{IncomingLinkStatus, LinkStatus, PeerStatus, PeersStatus};
pub use url::{InvalidPeerUrl, PeerUrl};

use crate::config::AuthMode;
use crate::limits::DATABASES_PER_PEER_MAX;
use crate::limits::PEER_BACKOFF_MAX;
use crate::names::DatabaseName;
use crate::state::ServerState;
use crate::token::{self, Grant, PEER_SUBJECT, PEER_TOKEN_TTL};
use serde::{Deserialize, Serialize};
use status::LinkState;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::task::JoinSet;

/// How often the databases of a peer (and the local directory) are listed again.
pub const LISTING_EVERY: Duration = Duration::from_secs(3);

/// The first wait before a link reconnects; it doubles, with jitter, up to [`PEER_BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);

/// What this server says when a peer refuses its token for its signature: the peer holds
/// another secret, so no retry will ever get in.
pub(crate) const OTHER_SECRET: &str =
    "peers must share the organisation's secret (start every server with the same --auth-secret)";

/// Whether a peer's refusal (`status`, `reason`) says this server's token was signed with
/// another secret than the peer's.
pub(crate) fn refused_for_our_secret(status: u16, reason: &str) -> bool {
    status == 401 && reason.contains(token::BAD_SIGNATURE)
}

/// The path of the database list.
pub const DATABASES_PATH: &str = "/v1/databases";

/// The path of the peer status.
pub const PEERS_PATH: &str = "/v1/peers";

/// The answer of `GET /v1/databases`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseList {
    /// Database names, sorted, at most [`DATABASES_PER_PEER_MAX`].
    pub databases: Vec<String>,
    /// Whether there are more than listed.
    pub truncated: bool,
}

/// The peers of one server and the live state of their links.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    peers: Vec<Arc<PeerState>>,
}

/// One peer: its address, its listing state, and its links by database.
#[derive(Debug)]
struct PeerState {
    url: PeerUrl,
    listing_error: Mutex<Option<(String, SystemTime)>>,
    not_followed: Mutex<bool>,
    links: Mutex<BTreeMap<DatabaseName, Arc<Mutex<LinkState>>>>,
}

impl Peers {
    /// The peers at `urls` (duplicates dropped), none dialled yet.
    pub(crate) fn new(urls: &[PeerUrl]) -> Peers {
        let mut peers: Vec<Arc<PeerState>> = Vec::new();
        for url in urls {
            if !peers.iter().any(|p| &p.url == url) {
                peers.push(Arc::new(PeerState {
                    url: url.clone(),
                    listing_error: Mutex::new(None),
                    not_followed: Mutex::new(false),
                    links: Mutex::new(BTreeMap::new()),
                }));
            }
        }
        Peers { peers }
    }

    /// Starts following every peer; the tasks end when the server stops.
    pub(crate) fn start(&self, shared: &Arc<ServerState>) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        for peer in &self.peers {
            tracing::info!(peer = %peer.url, "dialling peer");
            tasks.spawn(follow(shared.clone(), peer.clone()));
        }
        tasks
    }

    /// What `GET /v1/peers` answers.
    pub(crate) fn status(&self) -> PeersStatus {
        PeersStatus {
            peers: self.peers.iter().map(|p| p.report()).collect(),
            incoming: Vec::new(),
        }
    }
}

impl PeerState {
    fn report(&self) -> PeerStatus {
        let listing = lock(&self.listing_error).clone();
        let links: Vec<Arc<Mutex<LinkState>>> = lock(&self.links).values().cloned().collect();
        PeerStatus {
            url: self.url.to_string(),
            listing_error: listing.as_ref().map(|(e, _)| e.clone()),
            listing_error_at: listing.as_ref().map(|(_, at)| status::rfc3339(*at)),
            databases_not_followed: *lock(&self.not_followed),
            databases: links.iter().map(|l| lock(l).report()).collect(),
        }
    }
}

/// Locks `mutex`, taking the data even if a panicking thread poisoned it (status only).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A peer token for one dial (none with auth off).
fn peer_token(auth: &AuthMode) -> Result<Option<String>, token::TokenError> {
    match auth {
        AuthMode::Disabled => Ok(None),
        AuthMode::Token(secret) => {
            token::mint(secret, &Grant::peer(PEER_SUBJECT, PEER_TOKEN_TTL)).map(Some)
        }
    }
}

/// A fresh back-off schedule: [`BACKOFF_MIN`] doubling to [`PEER_BACKOFF_MAX`], with jitter.
fn backoff() -> backon::ExponentialBackoff {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(BACKOFF_MIN)
        .with_max_delay(PEER_BACKOFF_MAX)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Follows one peer until the server stops: lists the databases on both sides and keeps one
/// link per database.
async fn follow(shared: Arc<ServerState>, peer: Arc<PeerState>) {
    let mut shutdown = shared.shutdown.clone();
    let mut opened = shared.registry.subscribe_opened();
    let mut links = JoinSet::new();
    let mut remote: BTreeSet<DatabaseName> = BTreeSet::new();
    let mut listing_delays = backoff();
    let mut next_listing = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            break;
        }
        if tokio::time::Instant::now() >= next_listing {
            let wait = match list_remote(&shared, &peer.url).await {
                Ok(names) => {
                    remote = names;
                    *lock(&peer.listing_error) = None;
                    listing_delays = backoff();
                    LISTING_EVERY
                }
                Err(error) => {
                    // Said once, not at every retry: the same refusal every few seconds
                    // buries the logs and says nothing new.
                    let repeated = lock(&peer.listing_error)
                        .as_ref()
                        .is_some_and(|(last, _)| *last == error);
                    if repeated {
                        tracing::debug!(peer = %peer.url, "cannot list the peer's databases: {error}");
                    } else {
                        tracing::warn!(peer = %peer.url, "cannot list the peer's databases: {error}");
                    }
                    *lock(&peer.listing_error) = Some((error, SystemTime::now()));
                    listing_delays
                        .next()
                        .unwrap_or(PEER_BACKOFF_MAX)
                        .max(LISTING_EVERY)
                }
            };
            next_listing = tokio::time::Instant::now() + wait;
        }
        let local = list_local(&shared).await;
        follow_new(
            &shared,
            &peer,
            local.into_iter().chain(remote.iter().cloned()),
            &mut links,
        );
        let next_local = tokio::time::Instant::now() + LISTING_EVERY;
        tokio::select! {
            _ = tokio::time::sleep_until(next_listing.min(next_local)) => {}
            changed = opened.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    // Each link watches the shutdown too and closes its connection.
    while links.join_next().await.is_some() {}
}

/// Starts a link for each of `names` not followed yet, up to the bound.
fn follow_new(
    shared: &Arc<ServerState>,
    peer: &Arc<PeerState>,
    names: impl Iterator<Item = DatabaseName>,
    links: &mut JoinSet<()>,
) {
    let mut followed = lock(&peer.links);
    for name in names {
        if followed.contains_key(&name) {
            continue;
        }
        if followed.len() >= DATABASES_PER_PEER_MAX {
            let mut not_followed = lock(&peer.not_followed);
            if !*not_followed {
                tracing::warn!(
                    peer = %peer.url,
                    "more than {DATABASES_PER_PEER_MAX} databases: the others are not synced with this peer"
                );
            }
            *not_followed = true;
            break;
        }
        let state = Arc::new(Mutex::new(LinkState::new(name.as_str())));
        followed.insert(name.clone(), state.clone());
        links.spawn(link::run(shared.clone(), peer.url.clone(), name, state));
    }
}

/// The local databases (none if the directory cannot be read: logged).
async fn list_local(shared: &Arc<ServerState>) -> Vec<DatabaseName> {
    let listing = {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || shared.registry.list(DATABASES_PER_PEER_MAX)).await
    };
    match listing {
        Ok(Ok((names, _truncated))) => names,
        Ok(Err(error)) => {
            tracing::error!("cannot list the data directory: {error}");
            Vec::new()
        }
        Err(error) => {
            tracing::error!("listing the data directory failed: {error}");
            Vec::new()
        }
    }
}

/// The peer's databases, from its `GET /v1/databases`.
async fn list_remote(
    shared: &ServerState,
    url: &PeerUrl,
) -> Result<BTreeSet<DatabaseName>, String> {
    let token = peer_token(&shared.auth).map_err(|e| e.to_string())?;
    let list: DatabaseList = get_json(url, DATABASES_PATH, token.as_deref())
        .await
        .map_err(|error| match &error {
            FetchError::Refused { status, reason, .. }
                if refused_for_our_secret(*status, reason) =>
            {
                format!("{error}: {OTHER_SECRET}")
            }
            _ => error.to_string(),
        })?;
    let mut names = BTreeSet::new();
    for name in list.databases.iter().take(DATABASES_PER_PEER_MAX) {
        match DatabaseName::new(name) {
            Ok(name) => {
                names.insert(name);
            }
            Err(_) => return Err(format!("the peer listed an invalid database name {name:?}")),
        }
    }
    Ok(names)
}
