//! The HTTP surface: `GET /healthz`; `GET /v1/sync/{database}`, which checks the name and
//! the token before it upgrades to a WebSocket; `GET /v1/changes/{database}`, the change feed
//! (Server-Sent Events); and, for peer tokens, `GET /v1/databases` and `GET /v1/peers`. Every
//! refusal is a status and a one-line body.

use crate::auth::{self, AuthError};
use crate::config::AuthMode;
use crate::connection::{self, Connection};
use crate::events::feed::{self, CHANGES_PATH};
use crate::limits::DATABASES_PER_PEER_MAX;
use crate::names::DatabaseName;
use crate::peers::{DatabaseList, Peers, DATABASES_PATH, PEERS_PATH};
use crate::state::ServerState;
use crate::token::TokenRole;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use weft_core::sync::FRAME_BYTES_MAX;

/// The path prefix of the sync endpoint.
pub const SYNC_PATH: &str = "/v1/sync";

/// What the request handlers share: the server's state, and its peers for `GET /v1/peers`.
pub(crate) struct RouteState {
    /// The state every task of the server shares.
    pub(crate) server: Arc<ServerState>,
    /// The servers this one dials, and the state of their links.
    pub(crate) peers: Arc<Peers>,
}

/// The server's routes.
pub(crate) fn router(routes: Arc<RouteState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(DATABASES_PATH, get(databases))
        .route(PEERS_PATH, get(peers))
        .route(SYNC_PATH, get(sync))
        .route("/v1/sync/", get(sync))
        .route("/v1/sync/{*rest}", get(sync))
        .route(CHANGES_PATH, get(changes))
        .route("/v1/changes/", get(changes))
        .route("/v1/changes/{*rest}", get(changes))
        .fallback(not_found)
        .with_state(routes)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn not_found() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "not found: this server answers GET /healthz, GET /v1/databases, GET /v1/peers, GET /v1/changes/{database} and WebSocket /v1/sync/{database}",
    )
}

/// `GET /v1/databases`, for peers: the names of the databases this server holds.
async fn databases(
    State(routes): State<Arc<RouteState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_unless_peer(&routes.server, peer, &uri, &headers, DATABASES_PATH)
    {
        return refused;
    }
    let listed = {
        let server = routes.server.clone();
        tokio::task::spawn_blocking(move || server.registry.list(DATABASES_PER_PEER_MAX)).await
    };
    match listed {
        Ok(Ok((names, truncated))) => Json(DatabaseList {
            databases: names.iter().map(|n| n.as_str().to_owned()).collect(),
            truncated,
        })
        .into_response(),
        Ok(Err(error)) => {
            tracing::error!("cannot list the data directory: {error}");
            refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot list the databases: {error}"),
            )
        }
        Err(error) => refusal(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

/// `GET /v1/peers`: the state of every peer link of this server.
async fn peers(
    State(routes): State<Arc<RouteState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_unless_peer(&routes.server, peer, &uri, &headers, PEERS_PATH) {
        return refused;
    }
    let mut status = routes.peers.status();
    status.incoming = routes.server.incoming.report();
    Json(status).into_response()
}

/// The refusal of a request to an endpoint only peer tokens may use, unless it carries one.
fn refuse_unless_peer(
    server: &ServerState,
    peer: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
    endpoint: &'static str,
) -> Option<Response> {
    let checked = bearer_token(uri, headers)
        .and_then(|token| auth::authenticate_peer(&server.auth, token.as_deref(), endpoint));
    match checked {
        Ok(_) => None,
        Err(error) => {
            tracing::info!(%peer, endpoint, "refused ({}): {error}", error.status());
            Some(auth_refusal(&error))
        }
    }
}

/// The answer to a refused token: its status, its reason, and for a 401 the header that says
/// a bearer token is wanted.
fn auth_refusal(error: &AuthError) -> Response {
    let status = error.status();
    let mut response = refusal(
        StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED),
        &error.to_string(),
    );
    if status == 401 {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The sync endpoint: name, then token, then the upgrade. Nothing touches the disk before
/// all three pass.
async fn sync(
    State(routes): State<Arc<RouteState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // The raw path, before any percent-decoding: a valid name needs none.
    let raw = uri
        .path()
        .strip_prefix(SYNC_PATH)
        .unwrap_or_default()
        .strip_prefix('/')
        .unwrap_or_default();
    let name = match DatabaseName::new(raw) {
        Ok(name) => name,
        Err(error) => {
            tracing::info!(%peer, "refused (400): {error}");
            return refusal(StatusCode::BAD_REQUEST, &error.to_string());
        }
    };
    let principal = match bearer_token(&uri, &headers)
        .and_then(|token| auth::authenticate(&routes.server.auth, token.as_deref(), &name))
    {
        Ok(principal) => principal,
        Err(error) => {
            let status = error.status();
            tracing::info!(%peer, database = %name, "refused ({status}): {error}");
            return auth_refusal(&error);
        }
    };
    let accept_peer =
        matches!(routes.server.auth, AuthMode::Disabled) || principal.role == TokenRole::Peer;
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            let message = format!(
                "expected a WebSocket upgrade: {}",
                rejection.body_text().trim()
            );
            tracing::info!(%peer, database = %name, "refused: {message}");
            return refusal(rejection.status(), &message);
        }
    };
    if *routes.server.shutdown.borrow() {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    let database = match routes.server.registry.open(&name).await {
        Ok(database) => database,
        Err(error) => {
            tracing::error!(database = %name, "{error}");
            return refusal(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string());
        }
    };
    let connection = Connection {
        database,
        principal,
        authorizer: routes.server.authorizer.clone(),
        peer,
        shutdown: routes.server.shutdown.clone(),
        incoming: routes.server.incoming.clone(),
        accept_peer,
    };
    let counter = routes.server.connections.clone();
    upgrade
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .max_message_size(FRAME_BYTES_MAX)
        .max_frame_size(FRAME_BYTES_MAX)
        .on_failed_upgrade(move |error| tracing::info!(%peer, "WebSocket upgrade failed: {error}"))
        .on_upgrade(move |socket| async move {
            counter.send_modify(|open| *open += 1);
            let _open = OpenConnection(counter);
            connection::run(socket, connection).await;
        })
}

/// What each WebSocket connection allocates to read into, for as long as it is open (the
/// library's default is 128 KiB). Frames larger than this arrive in several reads; at 1,000
/// idle clients, the default alone was a quarter of the server's memory (docs/benchmarks.md).
const WS_READ_BUFFER_BYTES: usize = 16 * 1024;

/// The change feed of a database (Server-Sent Events): name, then token (any token that
/// opens the database may read its events), then the cursor; a database that does not exist
/// is 404 (the feed creates no file).
async fn changes(
    State(routes): State<Arc<RouteState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let raw = uri
        .path()
        .strip_prefix(CHANGES_PATH)
        .unwrap_or_default()
        .strip_prefix('/')
        .unwrap_or_default();
    let name = match DatabaseName::new(raw) {
        Ok(name) => name,
        Err(error) => return refusal(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    if let Err(error) = bearer_token(&uri, &headers)
        .and_then(|token| auth::authenticate(&routes.server.auth, token.as_deref(), &name))
    {
        let status = error.status();
        tracing::info!(%peer, database = %name, "feed refused ({status}): {error}");
        return auth_refusal(&error);
    }
    let since = match feed_since(&uri, &headers) {
        Ok(since) => since,
        Err(message) => return refusal(StatusCode::BAD_REQUEST, &message),
    };
    if *routes.server.shutdown.borrow() {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    if !name.file_in(routes.server.registry.data_dir()).exists() {
        return refusal(
            StatusCode::NOT_FOUND,
            &format!("no database {:?} on this server", name.as_str()),
        );
    }
    let database = match routes.server.registry.open(&name).await {
        Ok(database) => database,
        Err(error) => {
            tracing::error!(database = %name, "{error}");
            return refusal(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string());
        }
    };
    tracing::info!(%peer, database = %name, since, "feed opened");
    feed::respond(database, since, routes.server.shutdown.clone())
}

/// Where a feed starts: `Last-Event-ID` (a reconnecting EventSource), else `?since=N`, else 0.
fn feed_since(uri: &Uri, headers: &HeaderMap) -> Result<u64, String> {
    if let Some(value) = headers.get("last-event-id") {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "Last-Event-ID must be a db_version (an integer)".to_owned());
    }
    let query: Query<Vec<(String, String)>> =
        Query::try_from_uri(uri).map_err(|e| e.to_string())?;
    match query.0.iter().find(|(key, _)| key == "since") {
        Some((_, value)) => value
            .parse()
            .map_err(|_| format!("since must be a db_version (an integer), not {value:?}")),
        None => Ok(0),
    }
}

/// Counts one open connection until dropped (a panicking connection included).
struct OpenConnection(Arc<watch::Sender<usize>>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.send_modify(|open| *open = open.saturating_sub(1));
    }
}

/// The bearer token from `Authorization: Bearer T`, else from the `token` query parameter.
fn bearer_token(uri: &Uri, headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| AuthError::BadHeader)?.trim();
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::BadHeader)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AuthError::BadHeader);
        }
        return Ok(Some(token.to_owned()));
    }
    let query: Query<Vec<(String, String)>> = match Query::try_from_uri(uri) {
        Ok(query) => query,
        Err(_) => return Ok(None),
    };
    Ok(query
        .0
        .into_iter()
        .find(|(key, value)| key == "token" && !value.is_empty())
        .map(|(_, value)| value))
}

/// A refusal: `status` with `message` as a one-line plain-text body.
fn refusal(status: StatusCode, message: &str) -> Response {
    let line = message.replace(['\r', '\n'], " ");
    (
        status,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{line}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    #[test]
    fn tokens_come_from_the_header_first() {
        let uri: Uri = "/v1/sync/a?token=from-query".parse().unwrap();
        assert_eq!(
            bearer_token(&uri, &headers("Bearer abc")),
            Ok(Some("abc".into()))
        );
        assert_eq!(
            bearer_token(&uri, &headers("bearer  abc ")),
            Ok(Some("abc".into()))
        );
        assert_eq!(
            bearer_token(&uri, &HeaderMap::new()),
            Ok(Some("from-query".into()))
        );
        assert_eq!(
            bearer_token(&uri, &headers("Basic abc")),
            Err(AuthError::BadHeader)
        );
        assert_eq!(
            bearer_token(&uri, &headers("Bearer")),
            Err(AuthError::BadHeader)
        );
        let bare: Uri = "/v1/sync/a?other=1".parse().unwrap();
        assert_eq!(bearer_token(&bare, &HeaderMap::new()), Ok(None));
    }
}
