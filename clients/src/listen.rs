//! Local listeners: a callback per committed transaction of a replica (local writes, merges
//! by sync, writes of another process), and reactive queries that deliver their new result
//! when a table they read changes.
//!
//! Each subscription runs on a thread of its own with its own connections to the file. It
//! watches SQLite's `PRAGMA data_version` (which moves when any other connection commits)
//! every [`ListenOptions::poll_interval`], then reads the new transactions by db_version with
//! [`EventReader`], so it sees commits from every connection and process alike and never runs
//! inside a writer's transaction. Dropping the [`Subscription`] stops the thread.

use crate::limits::QUERY_ROWS_MAX;
use rusqlite::hooks::{AuthAction, Authorization};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;
use weft_core::events::{Event, EventReader};
use weft_core::{rusqlite, Replica, Value};

/// How a subscription watches its replica.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// How often it looks for new commits.
    pub poll_interval: Duration,
    /// Registers read per step (bounds the memory of one step).
    pub registers_per_read_max: usize,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            poll_interval: Duration::from_millis(20),
            registers_per_read_max: 1_000,
        }
    }
}

/// Why a subscription could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The replica could not be opened.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: weft_core::Error,
    },
    /// The query is not valid SQL for this database, or reads no table.
    #[error("reactive query: {0}")]
    Query(String),
    /// The thread could not be started.
    #[error("cannot start the listener thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running listener or reactive query; dropping it stops it (after a callback that is
/// running returns).
#[derive(Debug)]
pub struct Subscription {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Calls `callback` with every transaction committed to the replica at `path` from now on,
/// local or merged, in db_version order, with the rows it changed. Unlike
/// `Replica::on_commit` (a bare signal on the committing thread, for this process's commits
/// only), it reads each transaction's change event on a thread of its own, whoever committed.
pub fn on_change_event(
    path: impl AsRef<Path>,
    options: ListenOptions,
    mut callback: impl FnMut(&Event) + Send + 'static,
) -> Result<Subscription, ListenError> {
    let mut watcher = Watcher::open(path.as_ref(), options)?;
    spawn("weft-listener", move |stop| {
        watcher.run(stop, |events| {
            for event in events {
                callback(event);
            }
        })
    })
}

/// The result of a reactive query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryResult {
    /// The result's column names.
    pub columns: Vec<String>,
    /// Its rows (at most [`QUERY_ROWS_MAX`]).
    pub rows: Vec<Vec<Value>>,
    /// Whether rows were cut at [`QUERY_ROWS_MAX`].
    pub truncated: bool,
}

/// Runs `sql` (one statement, with `params`) on the replica at `path`, delivers its result
/// at once, and again each time a committed transaction changed a table it reads and the
/// result differs. The tables read are found by SQLite's authorizer while the statement is
/// prepared (views and subqueries included); `tables`, if given, names them instead.
pub fn reactive_query(
    path: impl AsRef<Path>,
    sql: &str,
    params: Vec<Value>,
    tables: Option<Vec<String>>,
    options: ListenOptions,
    mut callback: impl FnMut(&QueryResult) + Send + 'static,
) -> Result<Subscription, ListenError> {
    let path = path.as_ref();
    let mut watcher = Watcher::open(path, options)?;
    let query_error = |e: rusqlite::Error| ListenError::Query(e.to_string());
    let mut reader = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(query_error)?;
    let read = match tables {
        Some(tables) => tables.into_iter().collect(),
        None => tables_read(&mut reader, sql).map_err(query_error)?,
    };
    if read.is_empty() {
        return Err(ListenError::Query(format!("{sql:?} reads no table")));
    }
    let sql = sql.to_owned();
    let mut last = run_query(&reader, &sql, &params).map_err(query_error)?;
    callback(&last);
    spawn("weft-query", move |stop| {
        watcher.run(stop, |events| {
            let touched = events
                .iter()
                .flat_map(|e| &e.changes)
                .any(|row| read.contains(&row.table));
            if !touched {
                return;
            }
            match run_query(&reader, &sql, &params) {
                Ok(result) if result != last => {
                    callback(&result);
                    last = result;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "reactive query failed; keeping its last result")
                }
            }
        })
    })
}

/// The tables `sql` reads, as SQLite's authorizer reports them while preparing it.
fn tables_read(conn: &mut rusqlite::Connection, sql: &str) -> rusqlite::Result<BTreeSet<String>> {
    let (sender, receiver) = mpsc::channel();
    conn.authorizer(Some(move |context: rusqlite::hooks::AuthContext<'_>| {
        if let AuthAction::Read { table_name, .. } = context.action {
            let _ = sender.send(table_name.to_owned());
        }
        Authorization::Allow
    }))?;
    let prepared = conn.prepare(sql).map(drop);
    conn.authorizer(None::<fn(rusqlite::hooks::AuthContext<'_>) -> Authorization>)?;
    prepared?;
    Ok(receiver
        .try_iter()
        .filter(|t| !t.starts_with("sqlite_"))
        .collect())
}

fn run_query(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> rusqlite::Result<QueryResult> {
    let mut statement = conn.prepare_cached(sql)?;
    let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let width = columns.len();
    let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
    let mut result = QueryResult {
        columns,
        rows: Vec::new(),
        truncated: false,
    };
    while let Some(row) = rows.next()? {
        if result.rows.len() == QUERY_ROWS_MAX {
            result.truncated = true;
            break;
        }
        let values = (0..width)
            .map(|i| row.get_ref(i).map(Value::from_sql_ref))
            .collect::<rusqlite::Result<_>>()?;
        result.rows.push(values);
    }
    Ok(result)
}

fn spawn(
    name: &str,
    body: impl FnOnce(mpsc::Receiver<()>) + Send + 'static,
) -> Result<Subscription, ListenError> {
    let (stop, stopped) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || body(stopped))?;
    Ok(Subscription {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// A replica watched for new commits.
struct Watcher {
    replica: Replica,
    reader: EventReader,
    data_version: i64,
    options: ListenOptions,
}

impl Watcher {
    fn open(path: &Path, options: ListenOptions) -> Result<Watcher, ListenError> {
        let open_error = |source| ListenError::Open {
            path: path.to_owned(),
            source,
        };
        let replica = Replica::open(path).map_err(open_error)?;
        let since = replica.db_version().map_err(open_error)?;
        let data_version = data_version(&replica).map_err(|e| open_error(e.into()))?;
        let database = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Watcher {
            replica,
            reader: EventReader::new(database, since),
            data_version,
            options,
        })
    }

    /// Until `stop` is dropped: looks for commits, hands each step's events to `deliver`.
    fn run(&mut self, stop: mpsc::Receiver<()>, mut deliver: impl FnMut(&[Event])) {
        loop {
            match stop.recv_timeout(self.options.poll_interval) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            match data_version(&self.replica) {
                Ok(version) if version == self.data_version => continue,
                Ok(version) => self.data_version = version,
                Err(error) => {
                    tracing::warn!(%error, "listener cannot check the replica");
                    continue;
                }
            }
            loop {
                match self
                    .reader
                    .read(&self.replica, self.options.registers_per_read_max)
                {
                    Ok(batch) => {
                        if !batch.events.is_empty() {
                            deliver(&batch.events);
                        }
                        if batch.caught_up {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "listener cannot read changes; retrying");
                        break;
                    }
                }
            }
        }
    }
}

fn data_version(replica: &Replica) -> rusqlite::Result<i64> {
    replica
        .connection()
        .query_row("PRAGMA data_version", [], |row| row.get(0))
}
