//! Following every database for a sink (a webhook, NATS): one task per sink lists the
//! databases (at start, whenever one is opened, and every few seconds) and runs one follower
//! per database. A follower reads events after its durable cursor, hands them to the sink in
//! bounded batches, retries a failed batch with exponential back-off and jitter until it is
//! acknowledged, and only then moves the cursor, stored in `DATA/events/SINK.json`. A
//! restart therefore loses nothing and repeats at most the batch that was unacknowledged.

use super::nats::NatsSink;
use super::webhook::WebhookSink;
use super::REGISTERS_PER_READ;
use crate::limits::BATCH_EVENTS_MAX;
use crate::limits::DATABASES_PER_PEER_MAX;
use crate::limits::RETRY_BACKOFF_MAX;
use crate::names::DatabaseName;
use crate::peers::LISTING_EVERY;
use crate::registry::Database;
use crate::state::ServerState;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use weft_core::events::{Event, EventReader};
use weft_core::Replica;

/// The first wait before a failed batch is sent again; it doubles, with jitter, up to
/// [`RETRY_BACKOFF_MAX`].
pub const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(250);

/// Where a sink delivers.
pub(crate) enum Sink {
    /// A webhook.
    Webhook(WebhookSink),
    /// A NATS subject.
    Nats(NatsSink),
}

impl Sink {
    /// Its name in logs, and the stem of its cursor file.
    pub(crate) fn id(&self) -> String {
        match self {
            Sink::Webhook(sink) => sink.id(),
            Sink::Nats(sink) => sink.id(),
        }
    }

    /// What it sends to, for logs.
    fn target(&self) -> String {
        match self {
            Sink::Webhook(sink) => sink.url().to_owned(),
            Sink::Nats(sink) => sink.url().to_owned(),
        }
    }

    async fn deliver(&self, database: &str, events: &[Event]) -> Result<(), String> {
        match self {
            Sink::Webhook(sink) => sink.deliver(database, events).await,
            Sink::Nats(sink) => sink.deliver(database, events).await,
        }
    }
}

/// The durable cursors of one sink: database name to the db_version delivered through.
pub(crate) struct Cursors {
    path: PathBuf,
    through: Mutex<BTreeMap<String, u64>>,
}

impl Cursors {
    /// Loads `path` (no file: every database from the start).
    pub(crate) fn load(path: PathBuf) -> std::io::Result<Cursors> {
        let through = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error),
        };
        Ok(Cursors {
            path,
            through: Mutex::new(through),
        })
    }

    fn get(&self, database: &str) -> u64 {
        self.lock().get(database).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.through.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `database` is delivered through `db_version`, durably (write a temporary
    /// file, sync it, rename it over the old one).
    fn store(&self, database: &str, db_version: u64) -> std::io::Result<()> {
        let text = {
            let mut through = self.lock();
            let entry = through.entry(database.to_owned()).or_insert(0);
            assert!(db_version >= *entry, "a sink cursor never moves backwards");
            *entry = db_version;
            serde_json::to_vec_pretty(&*through).map_err(std::io::Error::other)?
        };
        write_atomically(&self.path, &text)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Starts one task per sink; they end when the server stops.
pub(crate) fn start(shared: &Arc<ServerState>, sinks: Vec<(Sink, Arc<Cursors>)>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    for (sink, cursors) in sinks {
        tasks.spawn(follow_databases(shared.clone(), Arc::new(sink), cursors));
    }
    tasks
}

async fn follow_databases(shared: Arc<ServerState>, sink: Arc<Sink>, cursors: Arc<Cursors>) {
    tracing::info!(sink = %sink.id(), target = %sink.target(), "delivering change events");
    let mut shutdown = shared.shutdown.clone();
    let mut opened = shared.registry.subscribe_opened();
    let mut followers: HashMap<DatabaseName, ()> = HashMap::new();
    let mut tasks = JoinSet::new();
    loop {
        opened.borrow_and_update();
        let listed = {
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || shared.registry.list(DATABASES_PER_PEER_MAX)).await
        };
        match listed {
            Ok(Ok((names, _))) => {
                for name in names {
                    if followers.insert(name.clone(), ()).is_none() {
                        tasks.spawn(follow(shared.clone(), sink.clone(), cursors.clone(), name));
                    }
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot list the databases for events"),
            Err(_) => return,
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            _ = opened.changed() => {}
            _ = tokio::time::sleep(LISTING_EVERY) => {}
        }
    }
    // Unacknowledged batches are sent again after a restart, from the stored cursor.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// Delivers the events of one database to one sink, for as long as the server runs.
async fn follow(
    shared: Arc<ServerState>,
    sink: Arc<Sink>,
    cursors: Arc<Cursors>,
    name: DatabaseName,
) {
    let database = match shared.registry.open(&name).await {
        Ok(database) => database,
        Err(error) => {
            tracing::error!(database = %name, sink = %sink.id(), "{error}");
            return;
        }
    };
    // Only a broken database (read errors, a cursor that cannot be stored) ends a run; it
    // starts over from the stored cursor after a pause.
    loop {
        let since = cursors.get(name.as_str());
        if let Err(error) = deliver_from(database.clone(), &sink, &cursors, since).await {
            tracing::error!(
                database = %name, sink = %sink.id(),
                "events stopped: {error}; starting over in {RETRY_BACKOFF_MAX:?}"
            );
        }
        tokio::time::sleep(RETRY_BACKOFF_MAX).await;
    }
}

async fn deliver_from(
    database: Arc<Database>,
    sink: &Sink,
    cursors: &Arc<Cursors>,
    since: u64,
) -> Result<(), String> {
    let name = database.name().as_str().to_owned();
    let mut commits = database.subscribe();
    let path = database.path().to_owned();
    let replica = tokio::task::spawn_blocking(move || Replica::open(path))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut state = Some((replica, EventReader::new(name.clone(), since)));
    let mut delivered_through = since;
    loop {
        commits.borrow_and_update();
        loop {
            let (replica, mut reader) = state.take().ok_or("no reader")?;
            let (replica, reader, batch) = tokio::task::spawn_blocking(move || {
                let batch = reader.read(&replica, REGISTERS_PER_READ);
                (replica, reader, batch)
            })
            .await
            .map_err(|e| e.to_string())?;
            let batch = batch.map_err(|e| e.to_string())?;
            let through = reader.through();
            state = Some((replica, reader));
            for chunk in batch.events.chunks(BATCH_EVENTS_MAX) {
                deliver_with_retries(sink, &name, chunk).await;
                let complete = chunk
                    .iter()
                    .filter(|e| !e.partial)
                    .map(|e| e.db_version)
                    .max();
                if let Some(db_version) = complete {
                    delivered_through = db_version.max(delivered_through);
                    store(cursors, &name, delivered_through).await?;
                }
            }
            if through > delivered_through {
                delivered_through = through;
                store(cursors, &name, delivered_through).await?;
            }
            if batch.caught_up {
                break;
            }
        }
        commits.changed().await.map_err(|e| e.to_string())?;
    }
}

async fn store(cursors: &Arc<Cursors>, database: &str, db_version: u64) -> Result<(), String> {
    let cursors = cursors.clone();
    let database = database.to_owned();
    tokio::task::spawn_blocking(move || cursors.store(&database, db_version))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot store the cursor: {e}"))
}

/// Sends `events` until the sink acknowledges them.
async fn deliver_with_retries(sink: &Sink, database: &str, events: &[Event]) {
    let mut wait = RETRY_BACKOFF_MIN;
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        match sink.deliver(database, events).await {
            Ok(()) => {
                if attempts > 1 {
                    tracing::info!(sink = %sink.id(), database, attempts, "delivered after retries");
                }
                return;
            }
            Err(error) => {
                let jittered = wait.mul_f64(rand::random_range(0.5..1.0));
                tracing::warn!(
                    sink = %sink.id(), database, attempts,
                    "delivery failed ({error}); retrying in {jittered:?}"
                );
                tokio::time::sleep(jittered).await;
                wait = (wait * 2).min(RETRY_BACKOFF_MAX);
            }
        }
    }
}
