//! A connection to a replica's file as the library hands it out: opened with its pragmas, the
//! SQL functions and hooks ([`crate::storage::sql_functions`]) and the commit notices
//! installed, a bounded wait for the write lock, and the way every transaction ends
//! ([`finish`]).

use crate::error::Result;
use crate::limits::LOCK_WAIT_MAX;
use crate::storage::commit_notices;
use crate::storage::sql_functions;
use crate::storage::transaction_state::ConnectionContext;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A connection to a replica, with the SQL functions the triggers call and the hooks that keep
/// db_version exact. It dereferences to rusqlite's [`Connection`].
///
/// Dropping it rolls back a transaction left open and removes the hooks before SQLite closes
/// the connection: otherwise SQLite's close calls the rollback hook after rusqlite (0.41) has
/// freed it, which crashes (a regression test guards this).
pub struct ReplicaConnection(Connection);

impl ReplicaConnection {
    pub(crate) fn new(conn: Connection) -> Self {
        ReplicaConnection(conn)
    }
}

impl std::ops::Deref for ReplicaConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl std::ops::DerefMut for ReplicaConnection {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.0
    }
}

impl Drop for ReplicaConnection {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            // Nothing to report to: the transaction was abandoned; SQLite would roll it back too.
            let _ = self.0.execute_batch("ROLLBACK");
        }
        let _ = self.0.commit_hook(None::<fn() -> bool>);
        let _ = self.0.rollback_hook(None::<fn()>);
        commit_notices::uninstall(&mut self.0);
    }
}

/// Ends the caller's transaction: commits it after `result` succeeded, rolls it back after it
/// failed or when the commit itself is refused.
pub(crate) fn finish<T>(conn: &Connection, result: Result<T>) -> Result<T> {
    match result {
        Ok(value) => {
            // Cached: a transaction per write is common, and COMMIT is the same text each time.
            let committed = conn
                .prepare_cached("COMMIT")
                .and_then(|mut commit| commit.execute([]));
            if let Err(error) = committed {
                // A refused COMMIT (a deferred foreign key) leaves the transaction open: never
                // leave it to whoever uses the connection next.
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                return Err(error.into());
            }
            Ok(value)
        }
        Err(error) => {
            // The rollback's own failure would hide the error that caused it.
            let _ = conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Opens a connection with the functions and hooks installed. `recursive_triggers` is on so
/// that `INSERT OR REPLACE` over an existing row fires the DELETE trigger, as SQLite performs
/// it: a delete, then an insert (a new incarnation of the row).
pub(crate) fn open_connection(
    path: &Path,
    context: &ConnectionContext,
) -> Result<(
    ReplicaConnection,
    Arc<commit_notices::Listeners>,
    commit_notices::Origin,
)> {
    // NO_MUTEX: a rusqlite Connection is not Sync, so SQLite need not lock on every call.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_handler(Some(wait_for_lock))?;
    conn.set_prepared_statement_cache_capacity(256);
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA recursive_triggers = ON;")?;
    sql_functions::install(&mut conn, context)?;
    let listeners = commit_notices::listeners_for(path);
    let origin = commit_notices::next_id();
    commit_notices::install(&mut conn, listeners.clone(), origin)?;
    Ok((ReplicaConnection::new(conn), listeners, origin))
}

/// How often a waiting connection retries the lock. SQLite's default handler backs off to
/// 100 ms sleeps and so rarely lands in the short gaps between a merge's transactions.
const LOCK_POLL: Duration = Duration::from_micros(500);

/// SQLite's busy handler: retries every [`LOCK_POLL`] until [`LOCK_WAIT_MAX`] has passed.
pub(crate) fn wait_for_lock(attempt: i32) -> bool {
    let waited = LOCK_POLL * attempt.max(0) as u32;
    if waited >= LOCK_WAIT_MAX {
        return false;
    }
    std::thread::sleep(LOCK_POLL);
    true
}

/// How long a caller applying many batches back to back should pause between them, so that
/// other writers waiting for the lock (which retry every `LOCK_POLL`) get their turn.
pub const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(2);
