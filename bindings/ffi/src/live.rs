//! Live sync from apps: started with a URL and a credentials callback, observed through a
//! status, stopped cleanly.

use crate::database::Database;
use crate::error::{Result, WeftError};
use crate::handles::Stoppable;
use crate::runtime::runtime;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use weft_client::{LiveEvent, LiveOptions};
use weft_core::sync::SessionEvent;

/// Refused-write records a live sync keeps (the oldest go first).
const REFUSED_WRITES_KEPT_MAX: usize = 100;

/// The app's sign-in, asked for a token before every connection: on start, on each
/// reconnection, and after the server refused the last token (expired, revoked), so the app
/// can refresh it. Called on a Weft thread; it may block.
#[uniffi::export(callback_interface)]
pub trait CredentialsProvider: Send + Sync {
    /// The token for the next connection, or `None` for none. An error is shown in the
    /// status and the attempt retried after the back-off.
    fn token(&self) -> Result<Option<String>>;
}

/// Hears every change of a live sync's status, on a Weft thread, in order.
#[uniffi::export(callback_interface)]
pub trait SyncStatusListener: Send + Sync {
    /// The status changed to `status`. Must not block for long; must not throw.
    fn on_status(&self, status: SyncStatus);
}

/// Where a live sync stands.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum SyncStatus {
    /// Opening a connection.
    Connecting,
    /// Connected, exchanging what each side lacks.
    CatchingUp {
        /// Changes received and merged on this connection.
        received: u64,
        /// Changes sent and acknowledged on this connection.
        sent: u64,
    },
    /// Caught up: changes flow both ways as they are made.
    Live,
    /// Not connected; it tries again at `retry_at_ms`.
    Offline {
        /// Why the last connection ended or failed.
        error: String,
        /// When it tries again, in milliseconds since the Unix epoch.
        retry_at_ms: u64,
    },
    /// Stopped for a reason that retrying cannot fix (a bad URL, an unknown database).
    Error {
        /// Why.
        message: String,
    },
    /// Stopped by the app (or the database closed).
    Stopped,
}

/// A write the server refused: it stays in the local database, and does not reach others.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct RefusedWrite {
    /// How many changes.
    pub count: u64,
    /// The server's reason.
    pub reason: String,
    /// When it was refused, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A running live sync. `stop` (or closing its database) ends it; dropping the handle does
/// too.
#[derive(uniffi::Object)]
pub struct LiveSync {
    sync: Mutex<Option<weft_client::LiveSync>>,
    shared: Arc<Shared>,
    reporter: Mutex<Option<JoinHandle<()>>>,
}

/// What the sync and its reporter thread share with the handle.
#[derive(Default)]
struct Shared {
    status: Mutex<Option<SyncStatus>>,
    refused: Mutex<VecDeque<RefusedWrite>>,
}

/// Asks the app's provider, as weft-client wants it.
struct AskApp(Box<dyn CredentialsProvider>);

impl weft_client::Credentials for AskApp {
    fn token(&self) -> std::result::Result<Option<String>, String> {
        self.0.token().map_err(|e| e.to_string())
    }
}

#[uniffi::export]
impl Database {
    /// Starts syncing with the server database at `url` in the background, asking
    /// `credentials` for the token before each connection; `listener` hears every status
    /// change (an app that only polls `status()` passes one that does nothing; it is not
    /// optional because the Dart generator cannot take an optional callback). It reconnects with back-off until stopped; the database stops it when
    /// it closes.
    pub fn start_sync(
        &self,
        url: String,
        credentials: Box<dyn CredentialsProvider>,
        listener: Box<dyn SyncStatusListener>,
    ) -> Result<Arc<LiveSync>> {
        self.opened()?;
        let target = self.target(url, None);
        target.database().map_err(|e| WeftError::InvalidArgument {
            message: e.to_string(),
        })?;
        let path = self.file().to_owned();
        let credentials = Arc::new(AskApp(credentials));
        let sync = {
            let _entered = runtime().enter();
            weft_client::LiveSync::start_with_credentials(
                path,
                target,
                credentials,
                LiveOptions::default(),
            )
        };
        let events = sync.subscribe();
        let shared = Arc::new(Shared::default());
        let reporter = std::thread::Builder::new()
            .name("weft-sync-status".into())
            .spawn({
                let shared = shared.clone();
                move || report(events, &shared, listener)
            })?;
        let live = Arc::new(LiveSync {
            sync: Mutex::new(Some(sync)),
            shared,
            reporter: Mutex::new(Some(reporter)),
        });
        self.handles.add(live.clone());
        Ok(live)
    }
}

#[uniffi::export]
impl LiveSync {
    /// The status now.
    pub fn status(&self) -> SyncStatus {
        self.shared
            .status
            .lock()
            .clone()
            .unwrap_or(SyncStatus::Connecting)
    }

    /// The writes the server refused since the sync started (the latest 100), oldest first.
    pub fn refused_writes(&self) -> Vec<RefusedWrite> {
        self.shared.refused.lock().iter().cloned().collect()
    }

    /// Stops the sync and waits until its connection is closed and its threads are gone.
    /// Stopping twice is fine.
    pub fn stop(&self) {
        let sync = self.sync.lock().take();
        if let Some(sync) = sync {
            runtime().block_on(sync.stop());
        }
        // The reporter ends once the sync's events are closed (its task and handle gone).
        let reporter = self.reporter.lock().take();
        if let Some(reporter) = reporter {
            if reporter.thread().id() != std::thread::current().id() {
                let _ = reporter.join();
            }
        }
    }

    /// Whether it was stopped.
    pub fn is_stopped(&self) -> bool {
        self.sync.lock().is_none()
    }
}

impl Stoppable for LiveSync {
    fn stop_now(&self) {
        self.stop();
    }
}

impl Drop for LiveSync {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Turns the sync's events into statuses, until the sync is gone.
fn report(
    mut events: broadcast::Receiver<LiveEvent>,
    shared: &Shared,
    listener: Box<dyn SyncStatusListener>,
) {
    let mut status = SyncStatus::Connecting;
    let publish = |status: &SyncStatus| {
        let changed = {
            let mut current = shared.status.lock();
            let changed = current.as_ref() != Some(status);
            *current = Some(status.clone());
            changed
        };
        if changed {
            listener.on_status(status.clone());
        }
    };
    publish(&status);
    loop {
        let event = match events.blocking_recv() {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if let LiveEvent::Sync(SessionEvent::Rejected { count, reason }) = &event {
            let mut refused = shared.refused.lock();
            if refused.len() == REFUSED_WRITES_KEPT_MAX {
                refused.pop_front();
            }
            refused.push_back(RefusedWrite {
                count: *count,
                reason: reason.clone(),
                at_ms: now_ms(),
            });
        }
        if let Some(next) = next_status(&status, &event) {
            status = next;
            publish(&status);
        }
    }
    publish(&SyncStatus::Stopped);
}

/// The status after `event`, if it changes.
fn next_status(status: &SyncStatus, event: &LiveEvent) -> Option<SyncStatus> {
    let counts = match status {
        SyncStatus::CatchingUp { received, sent } => (*received, *sent),
        _ => (0, 0),
    };
    Some(match event {
        LiveEvent::Connecting => SyncStatus::Connecting,
        LiveEvent::Sync(SessionEvent::Connected { .. }) => SyncStatus::CatchingUp {
            received: 0,
            sent: 0,
        },
        LiveEvent::Sync(SessionEvent::Applied { changes, .. })
            if matches!(status, SyncStatus::CatchingUp { .. }) =>
        {
            SyncStatus::CatchingUp {
                received: counts.0 + *changes as u64,
                sent: counts.1,
            }
        }
        LiveEvent::Sync(SessionEvent::Acknowledged { changes })
            if matches!(status, SyncStatus::CatchingUp { .. }) =>
        {
            SyncStatus::CatchingUp {
                received: counts.0,
                sent: counts.1 + *changes as u64,
            }
        }
        LiveEvent::Sync(
            SessionEvent::InSync { .. }
            | SessionEvent::DigestMismatch { .. }
            | SessionEvent::CaughtUp,
        ) => SyncStatus::Live,
        LiveEvent::Disconnected {
            error,
            retry_in: Some(wait),
        } => SyncStatus::Offline {
            error: error.clone(),
            retry_at_ms: now_ms().saturating_add(duration_ms(*wait)),
        },
        LiveEvent::Disconnected {
            error,
            retry_in: None,
        } => SyncStatus::Error {
            message: error.clone(),
        },
        LiveEvent::Sync(_) => return None,
    })
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(duration_ms)
        .unwrap_or(0)
}
