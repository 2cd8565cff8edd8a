//! What the server's routes, connections and background tasks (peer links, event sinks)
//! share: how requests are authenticated, the open databases, and the shutdown signal.

use crate::auth::ChangeAuthorizer;
use crate::config::AuthMode;
use crate::peers::incoming::IncomingLinks;
use crate::registry::Registry;
use std::sync::Arc;
use tokio::sync::watch;

/// The state one running server shares between its tasks.
pub(crate) struct ServerState {
    /// How requests are authenticated.
    pub(crate) auth: AuthMode,
    /// The app's per-change authorizer.
    pub(crate) authorizer: Arc<dyn ChangeAuthorizer>,
    /// The open databases.
    pub(crate) registry: Registry,
    /// Turns true when the server stops.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Counts open WebSocket connections, so that shutdown can wait for them.
    pub(crate) connections: Arc<watch::Sender<usize>>,
    /// The links other servers have open to this one.
    pub(crate) incoming: Arc<IncomingLinks>,
}
