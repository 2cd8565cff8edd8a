//! Syncing in the background: connect, resume, stay live, and reconnect with back-off.

use crate::error::ClientError;
use crate::limits::EVENTS_BUFFERED_MAX;
use backon::BackoffBuilder;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use weft_core::blobs::LocalBlobs;
use weft_core::sync::{Role, Session, SessionConfig, SessionEvent};
use weft_core::Replica;
use weft_net::{connect, drive, Outcome, SyncTarget, Wakeups};

/// How a background sync behaves.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// How often to look for local commits made by other processes. Commits through any
    /// [`Replica`] of the file in this process wake the sync at once, without waiting for this.
    pub poll_every: Duration,
    /// The first wait before reconnecting; it doubles (with jitter) up to `backoff_max`.
    pub backoff_min: Duration,
    /// The longest wait between reconnection attempts.
    pub backoff_max: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            poll_every: Duration::from_millis(100),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Where a background sync gets the token of each connection: an app's sign-in, which can
/// refresh an expired token.
pub trait Credentials: Send + Sync + 'static {
    /// The token for the next connection (`None`: no token). Called before every connection
    /// attempt, on a thread where it may block (to refresh a token over the network, say);
    /// an error is reported and the attempt retried after the back-off.
    fn token(&self) -> Result<Option<String>, String>;
}

/// What a background sync reports.
#[derive(Clone, Debug)]
pub enum LiveEvent {
    /// A connection attempt begins (the first, or a reconnection).
    Connecting,
    /// A protocol event of the current connection.
    Sync(SessionEvent),
    /// The connection ended; the sync reconnects after `retry_in`, unless the error is one
    /// that retrying cannot fix (then `retry_in` is `None` and the sync has stopped).
    Disconnected {
        /// Why, in words.
        error: String,
        /// When it tries again.
        retry_in: Option<Duration>,
    },
}

/// How a live sync gets its token: fixed, or asked for before each connection.
#[derive(Clone)]
enum TokenSource {
    Fixed,
    Asked(Arc<dyn Credentials>),
}

/// A running background sync. Dropping it stops the sync.
pub struct LiveSync {
    events: broadcast::Sender<LiveEvent>,
    /// Subscribed before the sync started, for the first [`LiveSync::subscribe`]: it misses
    /// nothing, not even a refusal on the first connection attempt.
    first_subscriber: std::sync::Mutex<Option<broadcast::Receiver<LiveEvent>>>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LiveSync {
    /// Starts syncing the replica at `db_path` with `target` (and its fixed token) on the
    /// current tokio runtime. A refused token stops it: retrying the same token cannot help.
    pub fn start(
        db_path: impl Into<PathBuf>,
        target: SyncTarget,
        options: LiveOptions,
    ) -> LiveSync {
        LiveSync::spawn(db_path.into(), target, TokenSource::Fixed, options)
    }

    /// Starts syncing the replica at `db_path` with `target`, asking `credentials` for the
    /// token before every connection (`target.token` is ignored). A refused token (HTTP 401
    /// or 403) is retried after the back-off with whatever token `credentials` gives next.
    pub fn start_with_credentials(
        db_path: impl Into<PathBuf>,
        target: SyncTarget,
        credentials: Arc<dyn Credentials>,
        options: LiveOptions,
    ) -> LiveSync {
        let source = TokenSource::Asked(credentials);
        LiveSync::spawn(db_path.into(), target, source, options)
    }

    fn spawn(
        db_path: PathBuf,
        target: SyncTarget,
        tokens: TokenSource,
        options: LiveOptions,
    ) -> LiveSync {
        let (events, first_subscriber) = broadcast::channel(EVENTS_BUFFERED_MAX);
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            db_path,
            target,
            tokens,
            options,
            events.clone(),
            stopped,
        ));
        LiveSync {
            events,
            first_subscriber: std::sync::Mutex::new(Some(first_subscriber)),
            stop,
            task: Some(task),
        }
    }

    /// Subscribes to what the sync reports: the first call gets everything since the start
    /// (up to the channel's bound), later ones what comes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        let first = match self.first_subscriber.lock() {
            Ok(mut first) => first.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        first.unwrap_or_else(|| self.events.subscribe())
    }

    /// Stops the sync and waits for it to close its connection.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LiveSync {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn run(
    db_path: PathBuf,
    mut target: SyncTarget,
    tokens: TokenSource,
    options: LiveOptions,
    events: broadcast::Sender<LiveEvent>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut delays = backoff(&options);
    loop {
        let _ = events.send(LiveEvent::Connecting);
        let attempt = async {
            if let TokenSource::Asked(credentials) = &tokens {
                target.token = ask_token(credentials.clone())
                    .await
                    .map_err(|e| (e, false))?;
            }
            one_connection(&db_path, &target, &options, &events).await
        };
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let (error, made_progress) = match outcome {
            Ok(progress) => (ClientError::Closed, progress),
            Err((error, progress)) => (error, progress),
        };
        if made_progress {
            delays = backoff(&options);
        }
        let refreshable = matches!(tokens, TokenSource::Asked(_))
            && (error.is_auth_refusal() || matches!(error, ClientError::Credentials(_)));
        let retry_in = (error.is_transient() || refreshable)
            .then(|| delays.next().unwrap_or(options.backoff_max));
        tracing::warn!(%error, ?retry_in, "sync connection ended");
        let _ = events.send(LiveEvent::Disconnected {
            error: error.to_string(),
            retry_in,
        });
        let Some(wait) = retry_in else { return };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// Asks the app's credentials for a token, on a thread where the app's code may block.
async fn ask_token(credentials: Arc<dyn Credentials>) -> Result<Option<String>, ClientError> {
    match tokio::task::spawn_blocking(move || credentials.token()).await {
        Ok(Ok(token)) => Ok(token),
        Ok(Err(reason)) => Err(ClientError::Credentials(reason)),
        Err(panicked) => Err(ClientError::Credentials(format!(
            "the credentials callback failed: {panicked}"
        ))),
    }
}

fn backoff(options: &LiveOptions) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(options.backoff_min)
        .with_max_delay(options.backoff_max)
        .with_jitter()
        .without_max_times()
        .build()
}

/// One connection, until it ends. Returns whether it got as far as a hello (to reset the
/// back-off).
async fn one_connection(
    db_path: &std::path::Path,
    target: &SyncTarget,
    options: &LiveOptions,
    events: &broadcast::Sender<LiveEvent>,
) -> Result<bool, (ClientError, bool)> {
    let database = target.database().map_err(|e| (e.into(), false))?;
    let socket = connect(target).await.map_err(|e| (e.into(), false))?;
    let replica = Replica::open(db_path).map_err(|e| (e.into(), false))?;
    let store =
        LocalBlobs::beside(db_path).map_err(|e| (weft_core::Error::from(e).into(), false))?;
    let mut config = SessionConfig::new(Role::Client, database);
    config.blobs = Some(Arc::new(store));
    let session = Session::initiator(&replica, config).map_err(|e| (e.into(), false))?;
    replica
        .buckets()
        .remember_source(&target.url)
        .map_err(|e| (e.into(), false))?;
    let mut connected = false;
    let (commit_notices, commits) = watch::channel(0u64);
    // Commits through the app's replicas wake the driver; its own merges are not news to it.
    let _subscription = replica.on_commit(move || {
        commit_notices.send_modify(|n| *n = n.wrapping_add(1));
    });
    let wakeups = Wakeups {
        commits: Some(commits),
        poll_every: Some(options.poll_every),
    };
    let driven = drive(socket, replica, session, wakeups, |event, _| {
        connected |= matches!(event, SessionEvent::Connected { .. });
        let _ = events.send(LiveEvent::Sync(event.clone()));
        ControlFlow::Continue(())
    })
    .await;
    match driven.result {
        Ok(Outcome::PeerClosed) | Ok(Outcome::Stopped) => Err((ClientError::Closed, connected)),
        Ok(Outcome::SessionClosed { code, message }) => {
            Err((ClientError::Protocol { code, message }, connected))
        }
        Err(error) => Err((error.into(), connected)),
    }
}
