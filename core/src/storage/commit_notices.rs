//! Commit notices within one process: every connection the library hands out tells the
//! listeners of its database file when one of its transactions has committed, so a background
//! sync pushes an app's write at once instead of finding it on its next poll.
//!
//! The notice comes from SQLite's WAL hook, which runs after the commit is in the log and the
//! write lock is released: a listener that reads at once sees the new data.
//!
//! Installing a WAL hook replaces SQLite's automatic checkpoint, so the hook checkpoints too.
//! SQLite's own runs on the committing thread once the log holds 1,000 pages, and its copy and
//! fsyncs made every few hundredth small commit take 15-30 ms (measured: the whole p99 of
//! write-to-visible latency). This hook hands that checkpoint to a short-lived thread with its
//! own connection instead, and only a log grown to [`INLINE_CHECKPOINT_PAGES`] (the background
//! checkpoints cannot keep up, or cannot finish because writes never pause) is checkpointed on
//! the committing thread as before, which bounds the log.
//!
//! Commits made by other processes are not noticed here; syncs poll for those.

use crate::limits::CHECKPOINT_WAIT_MAX;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, Weak};

/// SQLite's default `wal_autocheckpoint`: the log size, in pages, at which a commit asks for a
/// checkpoint in the background.
pub(crate) const AUTOCHECKPOINT_PAGES: i32 = 1000;

/// The log size, in pages, at which a commit checkpoints on its own thread (16 MiB of 4 KiB
/// pages): the bound on the log while writes outrun the background checkpoints.
pub(crate) const INLINE_CHECKPOINT_PAGES: i32 = 4 * AUTOCHECKPOINT_PAGES;

/// A callback run after a commit on any connection to the file (other than the subscriber's
/// own). It runs on the committing thread, inside SQLite's hook: it must be quick and must not
/// use the committing connection.
type Callback = Arc<dyn Fn() + Send + Sync>;

/// Identifies the connection a commit came from.
pub(crate) type Origin = u64;

/// The listeners of one database file, and its checkpoints.
pub(crate) struct Listeners {
    /// The file (canonical when it could be made so), for the checkpoint's connection.
    path: PathBuf,
    subscribers: Mutex<Vec<Subscriber>>,
    /// A checkpoint of this file started by this process is running (in the background or
    /// inline): SQLite runs one checkpoint at a time and a second one would just fail.
    checkpointing: Mutex<bool>,
    checkpoint_done: Condvar,
    /// The background checkpoints' connection, kept between them: opening one and loading the
    /// schema for its `PRAGMA` cost more than the checkpoint itself in a run of small commits
    /// (a tenth of the process's CPU, measured). Closed when the file's last connection with
    /// the hook closes, before it: the last connection to close removes the log, and a file
    /// made again at the same path later gets a connection of its own.
    checkpointer: Mutex<Option<Connection>>,
    /// How many connections have the hook installed.
    connections: AtomicUsize,
}

struct Subscriber {
    id: u64,
    /// Commits from this connection are the subscriber's own: not news to it.
    own: Origin,
    callback: Callback,
}

impl Listeners {
    fn new(path: PathBuf) -> Self {
        Listeners {
            path,
            subscribers: Mutex::default(),
            checkpointing: Mutex::new(false),
            checkpoint_done: Condvar::new(),
            checkpointer: Mutex::default(),
            connections: AtomicUsize::new(0),
        }
    }

    fn subscribers(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        // A panicking callback poisons nothing we rely on: the list stays consistent.
        self.subscribers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn checkpointing(&self) -> MutexGuard<'_, bool> {
        self.checkpointing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn checkpoint_ended(&self) {
        *self.checkpointing() = false;
        self.checkpoint_done.notify_all();
    }

    /// Starts a passive checkpoint of the file on a thread of its own, unless one is running.
    fn checkpoint_in_background(self: &Arc<Self>) {
        {
            let mut running = self.checkpointing();
            if *running {
                return;
            }
            *running = true;
        }
        let listeners = self.clone();
        let spawned = std::thread::Builder::new()
            .name("weft-checkpoint".to_owned())
            .spawn(move || {
                if let Err(error) = listeners.checkpoint_passive() {
                    // As with SQLite's own: a checkpoint that cannot run now runs on a later
                    // commit, and the inline bound keeps the log from growing without end.
                    tracing::debug!(%error, path = %listeners.path.display(), "background checkpoint failed");
                }
                listeners.checkpoint_ended();
            });
        if spawned.is_err() {
            self.checkpoint_ended();
        }
    }

    /// A passive checkpoint on the kept connection, opened if there is none (or the last one
    /// failed: it is opened again next time).
    fn checkpoint_passive(&self) -> rusqlite::Result<()> {
        let mut kept = self
            .checkpointer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let conn = match kept.take() {
            Some(conn) => conn,
            // The file's last connection closed after this checkpoint was asked for: a new
            // connection now would outlive it (and keep the log).
            None if self.connections.load(Ordering::SeqCst) == 0 => return Ok(()),
            None => open_checkpointer(&self.path)?,
        };
        conn.prepare_cached("PRAGMA wal_checkpoint(PASSIVE)")?
            .query_row([], |_| Ok(()))?;
        if self.connections.load(Ordering::SeqCst) > 0 {
            *kept = Some(conn);
        }
        Ok(())
    }

    fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    /// The last connection with the hook closes the kept checkpoint connection (waiting for a
    /// running checkpoint to end).
    fn connection_closed(&self) {
        if self.connections.fetch_sub(1, Ordering::SeqCst) == 1 {
            let kept = self
                .checkpointer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            drop(kept);
        }
    }

    /// Checkpoints on the committing thread, after any background checkpoint has ended: it
    /// runs with no writer appending (this connection's commit is done and holds no lock), so
    /// it copies the whole log and the next write starts the log over.
    fn checkpoint_inline(&self, wal: &mut rusqlite::hooks::Wal) {
        {
            let mut running = self.checkpointing();
            let deadline = std::time::Instant::now() + CHECKPOINT_WAIT_MAX;
            while *running {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                running = self
                    .checkpoint_done
                    .wait_timeout(running, left)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            *running = true;
        }
        // As SQLite's own hook: a passive checkpoint, whose failure (a reader in the way) is
        // not the commit's; a later commit tries again.
        let _ = wal.checkpoint();
        self.checkpoint_ended();
    }

    /// Tells every subscriber but the committing connection's own.
    pub(crate) fn committed(&self, origin: Origin) {
        let callbacks: Vec<Callback> = self
            .subscribers()
            .iter()
            .filter(|s| s.own != origin)
            .map(|s| s.callback.clone())
            .collect();
        for callback in callbacks {
            callback();
        }
    }
}

/// A subscription to a file's commits; dropping it unsubscribes.
#[must_use = "dropping the subscription unsubscribes at once"]
pub struct CommitSubscription {
    listeners: Arc<Listeners>,
    id: u64,
}

impl Drop for CommitSubscription {
    fn drop(&mut self) {
        self.listeners.subscribers().retain(|s| s.id != self.id);
    }
}

impl std::fmt::Debug for CommitSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitSubscription")
            .field("id", &self.id)
            .finish()
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A new identity for a connection or a subscription.
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The files with listeners, by canonical path; entries die with their last connection.
static FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<Listeners>>>> = LazyLock::new(Mutex::default);

/// The listeners of the file at `path` (which must exist), shared by every connection to it in
/// this process, however the path was spelled.
pub(crate) fn listeners_for(path: &Path) -> Arc<Listeners> {
    // A path that cannot be canonicalised (a URI) is keyed as given.
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut files = FILES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(listeners) = files.get(&key).and_then(Weak::upgrade) {
        return listeners;
    }
    files.retain(|_, weak| weak.strong_count() > 0);
    let listeners = Arc::new(Listeners::new(key.clone()));
    files.insert(key, Arc::downgrade(&listeners));
    listeners
}

/// Subscribes `callback` to the commits of every connection to the file but `own`.
pub(crate) fn subscribe(
    listeners: &Arc<Listeners>,
    own: Origin,
    callback: impl Fn() + Send + Sync + 'static,
) -> CommitSubscription {
    let id = next_id();
    listeners.subscribers().push(Subscriber {
        id,
        own,
        callback: Arc::new(callback),
    });
    CommitSubscription {
        listeners: listeners.clone(),
        id,
    }
}

/// A passive checkpoint through a connection of its own: copies what it can of the log into
/// the file without waiting for readers or writers.
fn open_checkpointer(path: &Path) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags;
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// Installs the WAL hook that tells `listeners` of this connection's commits and keeps the log
/// checkpointed (see the module's documentation).
pub(crate) fn install(
    conn: &mut Connection,
    listeners: Arc<Listeners>,
    origin: Origin,
) -> rusqlite::Result<()> {
    listeners.connection_opened();
    let registration = Registration(listeners.clone());
    conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, pages| {
        let listeners = &registration.0;
        if pages >= INLINE_CHECKPOINT_PAGES {
            listeners.checkpoint_inline(wal);
        } else if pages >= AUTOCHECKPOINT_PAGES {
            listeners.checkpoint_in_background();
        }
        listeners.committed(origin);
        Ok(())
    }))
}

/// One connection's hook, counted by its listeners while the hook is installed.
struct Registration(Arc<Listeners>);

impl Drop for Registration {
    fn drop(&mut self) {
        self.0.connection_closed();
    }
}

/// Removes the hook before the connection closes.
pub(crate) fn uninstall(conn: &mut Connection) {
    let _ = conn.wal_hook(None::<fn(&mut rusqlite::hooks::Wal, i32) -> rusqlite::Result<()>>);
}
