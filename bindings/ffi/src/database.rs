//! [`Database`]: a replica file opened by an app: statements, queries, the replicated tables,
//! its digest and its state.

use crate::error::{Result, WeftError};
use crate::handles::Handles;
use crate::statement::{execute_many_on, execute_on, query_on};
use crate::value::{QueryResult, SqlValue};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use weft_core::blobs::LocalBlobs;
use weft_core::rusqlite::{Connection, OpenFlags};
use weft_core::Replica;

/// How long a write waits for another write transaction of this database (another thread's,
/// or one left open) before failing: long enough for any sane transaction, short enough that
/// a transaction forgotten open shows up as an error, not a hang.
pub(crate) const WRITER_WAIT_MAX: Duration = Duration::from_secs(10);

/// A replica file, opened (and created if missing). Every write goes through the engine's
/// recorded-write path (`Replica::write`); reads run on a connection of their own and never
/// wait for a write or a sync in progress. Safe to share between threads.
#[derive(uniffi::Object)]
pub struct Database {
    path: PathBuf,
    open: Mutex<Option<Arc<OpenDatabase>>>,
    /// Live syncs and listeners started from this database, stopped when it closes.
    pub(crate) handles: Handles,
    /// A CA certificate file trusted for `wss://` syncs besides the bundled roots.
    ca_file: Mutex<Option<PathBuf>>,
}

/// What an open database holds.
pub(crate) struct OpenDatabase {
    /// The replica, for writes; one write transaction at a time.
    pub(crate) writer: Arc<Mutex<Replica>>,
    /// A read-only connection for queries.
    reader: Mutex<Connection>,
    /// The blob store beside the file.
    pub(crate) blobs: LocalBlobs,
}

impl OpenDatabase {
    /// The replica, once no other write transaction of this database holds it.
    pub(crate) fn writer(&self) -> Result<parking_lot::MutexGuard<'_, Replica>> {
        lock_writer(&self.writer)
    }

    /// The read-only connection.
    pub(crate) fn reader(&self) -> parking_lot::MutexGuard<'_, Connection> {
        self.reader.lock()
    }
}

/// Locks `writer` once no other write transaction of its database holds it, waiting at most
/// [`WRITER_WAIT_MAX`]; then a `Sql` "busy" error.
pub(crate) fn lock_writer(writer: &Mutex<Replica>) -> Result<parking_lot::MutexGuard<'_, Replica>> {
    writer.try_lock_for(WRITER_WAIT_MAX).ok_or_else(|| WeftError::Sql {
        message: format!(
            "the database is busy: another write transaction held it for {} s (one left open? commit or roll it back)",
            WRITER_WAIT_MAX.as_secs()
        ),
    })
}

/// Opens the replica at `path`, creating the file (and its folder's blob store) if missing.
#[uniffi::export]
pub fn open(path: String) -> Result<Arc<Database>> {
    Database::open(path)
}

#[uniffi::export]
impl Database {
    /// Opens the replica at `path`, creating it if missing.
    #[uniffi::constructor]
    pub fn open(path: String) -> Result<Arc<Database>> {
        let path = PathBuf::from(path);
        let replica = Replica::open(&path)?;
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(weft_core::LOCK_WAIT_MAX)?;
        let blobs = LocalBlobs::beside(&path).map_err(|e| WeftError::Io {
            message: format!("cannot open the blob store beside {}: {e}", path.display()),
        })?;
        Ok(Arc::new(Database {
            open: Mutex::new(Some(Arc::new(OpenDatabase {
                writer: Arc::new(Mutex::new(replica)),
                reader: Mutex::new(reader),
                blobs,
            }))),
            path,
            handles: Handles::default(),
            ca_file: Mutex::new(None),
        }))
    }

    /// The database file's path.
    pub fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// Closes the database: stops its live syncs and listeners (waiting for them to end),
    /// then closes the file. Later calls fail with `Closed`. Closing twice is fine.
    pub fn close(&self) {
        self.handles.stop_all();
        let open = self.open.lock().take();
        drop(open);
    }

    /// Trusts the CA certificate(s) in the PEM file at `path` for this database's `wss://`
    /// syncs started from now on, besides the bundled Mozilla roots (for an organisation's
    /// own CA); `None` trusts the bundled roots only.
    pub fn set_ca_file(&self, path: Option<String>) {
        *self.ca_file.lock() = path.map(PathBuf::from);
    }

    /// Whether [`Database::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.open.lock().is_none()
    }

    /// Runs one statement with `params` (`?` placeholders, in order) in a write transaction of
    /// its own; returns the rows it changed. Rows it returns (`RETURNING`, a `PRAGMA`) are
    /// read and dropped: use `query` to see them.
    pub fn execute(&self, sql: String, params: Vec<SqlValue>) -> Result<u64> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.write(|conn| execute_on(conn, &sql, params))?)
    }

    /// Runs `sql` once per row of `rows` (each the statement's parameters) in one write
    /// transaction of its own: all rows or none. Returns the rows changed in all. The way to
    /// write many rows from a language where each call costs (one crossing, not one per row).
    pub fn execute_many(&self, sql: String, rows: Vec<Vec<SqlValue>>) -> Result<u64> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.write(|conn| execute_many_on(conn, &sql, rows))?)
    }

    /// Runs several `;`-separated statements without parameters (a schema, say) in one
    /// write transaction: all of them or none.
    pub fn execute_batch(&self, sql: String) -> Result<()> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.write(|conn| Ok(conn.execute_batch(&sql)?))?)
    }

    /// Runs a query with `params` on the read connection and returns every row. It sees what
    /// is committed, and never waits for a write or a sync in progress.
    pub fn query(&self, sql: String, params: Vec<SqlValue>) -> Result<QueryResult> {
        let open = self.opened()?;
        let reader = open.reader();
        Ok(query_on(&reader, &sql, params)?)
    }

    /// Makes `table` replicated: its rows merge with other replicas' from now on, the rows it
    /// holds included. The table needs a primary key of NOT NULL columns.
    pub fn enable_crr(&self, table: String) -> Result<()> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.enable_crr(&table)?)
    }

    /// The replicated tables.
    pub fn replicated_tables(&self) -> Result<Vec<String>> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.replicated_tables()?)
    }

    /// The state digest as 64 hex characters: equal on two replicas exactly when they hold
    /// the same replicated state (what `weft digest FILE` prints).
    pub fn digest(&self) -> Result<String> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.digest()?.to_string())
    }

    /// What `weft info` shows: identity, version and the replicated tables' row counts.
    pub fn info(&self) -> Result<DatabaseInfo> {
        let open = self.opened()?;
        let replica = open.writer()?;
        let info = replica.info()?;
        Ok(DatabaseInfo {
            path: self.path(),
            site_id: info.site_id.to_hex(),
            db_version: info.db_version,
            tables: info
                .tables
                .into_iter()
                .map(|(name, rows)| TableInfo { name, rows })
                .collect(),
        })
    }
}

impl Database {
    /// The open database, or `Closed`.
    pub(crate) fn opened(&self) -> Result<Arc<OpenDatabase>> {
        self.open.lock().clone().ok_or_else(|| WeftError::Closed {
            message: format!("the database {} is closed", self.path.display()),
        })
    }

    /// The file's path.
    pub(crate) fn file(&self) -> &Path {
        &self.path
    }

    /// Where to sync: `url` with `token`, trusting the CA file set, if any.
    pub(crate) fn target(&self, url: String, token: Option<String>) -> weft_client::SyncTarget {
        let target = weft_client::SyncTarget::new(url, token);
        match self.ca_file.lock().clone() {
            Some(ca_file) => target.with_ca_file(ca_file),
            None => target,
        }
    }
}

/// A replica's identity and contents at a glance.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct DatabaseInfo {
    /// The file.
    pub path: String,
    /// The replica's site id (hex).
    pub site_id: String,
    /// Its latest db_version: the count of its committed transactions that changed rows.
    pub db_version: u64,
    /// Replicated tables with their row counts.
    pub tables: Vec<TableInfo>,
}

/// One replicated table.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct TableInfo {
    /// Its name.
    pub name: String,
    /// Rows it holds now.
    pub rows: u64,
}
