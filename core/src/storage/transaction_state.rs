//! What every connection the library hands out carries: the SQL functions the triggers call
//! and the hooks that keep this connection's view of the replica exact.
//!
//! Each connection keeps the replica's committed `db_version`, its hybrid clock and the digest
//! checkpoint in memory. The first write of a transaction takes a stamp (next db_version, a new
//! clock); the commit hook makes it the committed one, the rollback hook forgets it. Another
//! connection's commits are noticed through `PRAGMA data_version` at the start of each
//! transaction, and then the state is reread from the database, so several connections (or
//! processes) writing one replica still get strictly increasing db_versions and clocks.
//!
//! A connection without these functions (the sqlite3 shell, say) cannot write replicated tables:
//! the triggers call `weft_clock()` and fail with "no such function" instead of leaving a write
//! unrecorded.

use crate::engine::capture::pending::{self, PendingUpdates};
use crate::rules::stored_clock::{StoredClock, StoredStamp};
use crate::rules::clock::{HybridClock, Observation, SharedWallClock};
use crate::rules::digest::{row_hash, Digest};
use crate::error::{Error, Result};
use crate::sync::fingerprint::RowFilter;
use crate::rules::merge::{Register, Slot, Stamp};
use crate::storage::bookkeeping;
use crate::storage::schema::{clock_table_name, quote};
use crate::rules::site::SiteId;
use crate::rules::value::{encode_key, Value};
use integer_encoding::VarInt;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The stamp of the current write transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TxnStamp {
    /// The db_version this transaction's writes get.
    pub db_version: u64,
    /// The clock this transaction's local writes get.
    pub clock: u64,
    /// The digest checkpoint in force: rows at or below it are folded into the stored sum.
    pub digest_version: u64,
}

/// One connection's view of its replica.
pub(crate) struct ConnState {
    wall: SharedWallClock,
    clock: HybridClock,
    committed_db_version: u64,
    digest_version: u64,
    known_data_version: Option<i64>,
    txn: Option<TxnStamp>,
    sites: Vec<SiteId>,
    far_future_clocks: u64,
    rollbacks_seen: u64,
    /// Where this connection's sweeps of the run logs stand (`crate::storage::run_log`).
    pub(crate) sweeps: crate::storage::run_log::Sweeps,
    shared: Option<Arc<SharedInner>>,
}

/// A connection's state, shared by its SQL functions, hooks and the engine.
///
/// Whether triggers record writes lives outside the mutex: the engine holds the mutex while it
/// merges, and the triggers its writes fire must read the flag without taking it again.
#[derive(Clone)]
pub(crate) struct Shared(Arc<SharedInner>);

pub(crate) struct SharedInner {
    state: Mutex<ConnState>,
    capturing: AtomicBool,
    /// While set, every commit on the connection is turned into a rollback: inside
    /// `Replica::write` nothing may commit before its clock rows are written.
    commits_refused: AtomicBool,
    /// The hooks never take the mutex (SQLite may roll back while the engine holds it); they
    /// work on these atomics, and the next lock folds them into the state.
    /// The db_version of the open write transaction, 0 if none.
    open_db_version: AtomicU64,
    /// The clock and digest checkpoint of that transaction's stamp, valid while
    /// `open_db_version` is not 0: every trigger call after a transaction's first reads its
    /// stamp here instead of taking the mutex (a measured share of a trigger's cost).
    open_clock: AtomicU64,
    open_digest_version: AtomicU64,
    /// The largest db_version this connection committed.
    committed_db_version: AtomicU64,
    /// How many transactions rolled back; a change means caches may hold rolled-back rows.
    rollbacks: AtomicU64,
    /// The rows a read of changes keeps, while one runs with a filter (`weft_*_row_sent`).
    /// Apart from `state`, which the read holds while SQLite calls the functions.
    row_filter: Mutex<Option<Arc<RowFilter>>>,
    /// The clock rows a set-based UPDATE of `Replica::write`'s commit writes, while it runs
    /// (`weft_pending*`, [`crate::engine::capture::pending`]).
    pending: Mutex<Option<Arc<PendingUpdates>>>,
}

/// Silences the triggers of a connection while it lives; they record again when it drops.
pub(crate) struct MergeGuard<'a>(&'a Shared);

impl Drop for MergeGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.capturing.store(true, Ordering::SeqCst);
    }
}

/// Refuses every commit on a connection while it lives ([`Shared::refuse_commits`]).
pub(crate) struct CommitsRefused<'a>(&'a Shared);

impl Drop for CommitsRefused<'_> {
    fn drop(&mut self) {
        self.0 .0.commits_refused.store(false, Ordering::SeqCst);
    }
}

impl Shared {
    /// How many transactions the connection has rolled back so far.
    pub(crate) fn rollbacks(&self) -> u64 {
        self.0.rollbacks.load(Ordering::SeqCst)
    }

    /// Turns every commit on the connection into a rollback until the guard drops: a
    /// `COMMIT` (or an autocommit statement) inside `Replica::write`'s work would otherwise make
    /// writes durable that no clock row records.
    pub(crate) fn refuse_commits(&self) -> CommitsRefused<'_> {
        self.0.commits_refused.store(true, Ordering::SeqCst);
        CommitsRefused(self)
    }

    /// Stops the triggers from recording writes until the guard drops (merges write rows whose
    /// clocks they set themselves).
    pub(crate) fn merging(&self) -> MergeGuard<'_> {
        self.0.capturing.store(false, Ordering::SeqCst);
        MergeGuard(self)
    }

    pub(crate) fn new(wall: SharedWallClock) -> Shared {
        Shared(Arc::new(SharedInner {
            capturing: AtomicBool::new(true),
            commits_refused: AtomicBool::new(false),
            open_db_version: AtomicU64::new(0),
            open_clock: AtomicU64::new(0),
            open_digest_version: AtomicU64::new(0),
            committed_db_version: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
            row_filter: Mutex::new(None),
            pending: Mutex::new(None),
            state: Mutex::new(ConnState {
                wall,
                clock: HybridClock::default(),
                committed_db_version: 0,
                digest_version: 0,
                known_data_version: None,
                txn: None,
                sites: Vec::new(),
                far_future_clocks: 0,
                sweeps: Default::default(),
                rollbacks_seen: 0,
                shared: None,
            }),
        }))
    }

    /// Runs `work` with `filter` in force for the `weft_*_row_sent` SQL functions.
    pub(crate) fn with_row_filter<T>(&self, filter: Arc<RowFilter>, work: impl FnOnce() -> T) -> T {
        *self.row_filter() = Some(filter);
        let result = work();
        *self.row_filter() = None;
        result
    }

    /// Runs `work` with `pending` in force for the `weft_pending*` SQL functions.
    pub(crate) fn with_pending_updates<T>(
        &self,
        pending: Arc<PendingUpdates>,
        work: impl FnOnce() -> T,
    ) -> T {
        *self.pending_updates() = Some(pending);
        let result = work();
        *self.pending_updates() = None;
        result
    }

    /// The pending updates in force, if a set-based UPDATE runs.
    pub(crate) fn pending_updates(&self) -> MutexGuard<'_, Option<Arc<PendingUpdates>>> {
        self.0
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn row_filter(&self) -> MutexGuard<'_, Option<Arc<RowFilter>>> {
        self.0
            .row_filter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stamp of the open write transaction once it has taken one, without the mutex.
    fn open_stamp(&self) -> Option<TxnStamp> {
        let db_version = self.0.open_db_version.load(Ordering::SeqCst);
        (db_version != 0).then(|| TxnStamp {
            db_version,
            clock: self.0.open_clock.load(Ordering::SeqCst),
            digest_version: self.0.open_digest_version.load(Ordering::SeqCst),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ConnState> {
        // A panic while holding the lock leaves plain numbers behind; they stay usable.
        let mut state = self
            .0
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let open = self.0.open_db_version.load(Ordering::SeqCst);
        if state.txn.is_some_and(|t| t.db_version != open) {
            state.txn = None;
        }
        state.committed_db_version = state
            .committed_db_version
            .max(self.0.committed_db_version.load(Ordering::SeqCst));
        let rollbacks = self.0.rollbacks.load(Ordering::SeqCst);
        if rollbacks != state.rollbacks_seen {
            // Rolled-back writes may have added sites to the cache; reread everything.
            state.rollbacks_seen = rollbacks;
            state.known_data_version = None;
        }
        if state.shared.is_none() {
            state.shared = Some(self.0.clone());
        }
        state
    }
}

impl ConnState {
    /// The stamp of the current write transaction, taking one if this is its first write.
    pub(crate) fn begin(&mut self, conn: &Connection) -> Result<TxnStamp> {
        if let Some(stamp) = self.txn {
            return Ok(stamp);
        }
        self.refresh(conn)?;
        let stamp = TxnStamp {
            db_version: self.committed_db_version + 1,
            clock: self.clock.tick(self.wall.now_ms()),
            digest_version: self.digest_version,
        };
        self.txn = Some(stamp);
        if let Some(shared) = &self.shared {
            // The stamp's other fields first: a nonzero db_version says they are valid.
            shared.open_clock.store(stamp.clock, Ordering::SeqCst);
            shared
                .open_digest_version
                .store(stamp.digest_version, Ordering::SeqCst);
            shared
                .open_db_version
                .store(stamp.db_version, Ordering::SeqCst);
        }
        Ok(stamp)
    }

    /// Whether the current transaction has taken a stamp (written something) yet.
    pub(crate) fn has_stamp(&self) -> bool {
        self.txn.is_some()
    }

    /// Gives back a stamp that nothing was written with, so the commit takes no db_version.
    pub(crate) fn release_unused_stamp(&mut self) {
        self.txn = None;
        if let Some(shared) = &self.shared {
            shared.open_db_version.store(0, Ordering::SeqCst);
        }
    }

    /// Rereads the replica's counters if another connection committed since we last looked.
    pub(crate) fn refresh(&mut self, conn: &Connection) -> Result<()> {
        // Cached: every write transaction asks once.
        let data_version: i64 = conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if self.known_data_version == Some(data_version) {
            return Ok(());
        }
        let counters = bookkeeping::read_counters(conn)?;
        let scan_from = match self.known_data_version {
            Some(_) => self.committed_db_version,
            None => counters.clock_floor_db_version,
        };
        let (max_version, max_clock) = bookkeeping::max_version_and_clock_since(conn, scan_from)?;
        self.committed_db_version = self
            .committed_db_version
            .max(max_version)
            .max(counters.db_version_floor);
        self.clock =
            HybridClock::starting_at(self.clock.last().max(max_clock).max(counters.clock_floor));
        self.digest_version = counters.digest_version;
        self.sites = bookkeeping::read_sites(conn)?;
        self.known_data_version = Some(data_version);
        Ok(())
    }

    pub(crate) fn committed_db_version(&self) -> u64 {
        self.committed_db_version
    }

    pub(crate) fn set_digest_version(&mut self, version: u64) {
        self.digest_version = version;
    }

    pub(crate) fn clock_last(&self) -> u64 {
        self.clock.last()
    }

    pub(crate) fn far_future_clocks(&self) -> u64 {
        self.far_future_clocks
    }

    /// The wall-clock time now.
    pub(crate) fn now_ms(&self) -> u64 {
        self.wall.now_ms()
    }

    /// Advances the clock past a received one; far-future clocks are accepted and reported.
    /// `now_ms` is read once per batch by the caller.
    pub(crate) fn observe(&mut self, remote: u64, site: &SiteId, now_ms: u64) {
        if let Observation::FarFuture { ahead_ms } = self.clock.observe(remote, now_ms) {
            self.far_future_clocks += 1;
            tracing::warn!(site = %site, ahead_ms, "accepted a change whose clock is far in the future");
        }
    }

    /// The site id of a stored ordinal, rereading the site table if another connection added it.
    pub(crate) fn site(&mut self, conn: &Connection, ordinal: u32) -> Result<SiteId> {
        if let Some(site) = self.sites.get(ordinal as usize) {
            return Ok(*site);
        }
        self.sites = bookkeeping::read_sites(conn)?;
        self.sites
            .get(ordinal as usize)
            .copied()
            .ok_or_else(|| Error::Corrupt(format!("unknown site ordinal {ordinal}")))
    }

    /// The ordinal of a site id, adding it to the site table if new.
    pub(crate) fn ordinal(&mut self, conn: &Connection, site: &SiteId) -> Result<u32> {
        if let Some(position) = self.sites.iter().position(|s| s == site) {
            return Ok(position as u32);
        }
        self.sites = bookkeeping::read_sites(conn)?;
        if let Some(position) = self.sites.iter().position(|s| s == site) {
            return Ok(position as u32);
        }
        let ordinal = self.sites.len() as u32;
        conn.execute(
            "INSERT INTO weft_sites(ordinal, site_id) VALUES (?1, ?2)",
            rusqlite::params![ordinal, site.0.as_slice()],
        )?;
        self.sites.push(*site);
        Ok(ordinal)
    }
}

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
        crate::storage::commit_notices::uninstall(&mut self.0);
    }
}

/// Installs the SQL functions and hooks on a connection.
pub(crate) fn install(conn: &mut Connection, shared: &Shared) -> Result<()> {
    let volatile = FunctionFlags::SQLITE_UTF8;
    for (name, pick) in [
        ("weft_clock", (|s: TxnStamp| s.clock) as fn(TxnStamp) -> u64),
        ("weft_db_version", |s: TxnStamp| s.db_version),
        ("weft_digest_version", |s: TxnStamp| s.digest_version),
    ] {
        let state = shared.clone();
        conn.create_scalar_function(name, 0, volatile, move |ctx| {
            if let Some(stamp) = state.open_stamp() {
                return Ok(pick(stamp) as i64);
            }
            let mut state = state.lock();
            // Only a transaction's first call needs the connection (to learn what others
            // committed); every later call of the transaction reuses its stamp.
            let stamp = match state.txn {
                Some(stamp) => stamp,
                None => {
                    let conn = context_connection(ctx)?;
                    state.begin(&conn).map_err(user_error)?
                }
            };
            Ok(pick(stamp) as i64)
        })?;
    }
    let state = shared.clone();
    conn.create_scalar_function("weft_capturing", 0, volatile, move |_| {
        Ok(state.0.capturing.load(Ordering::SeqCst))
    })?;
    conn.create_scalar_function("weft_cells_update", -1, volatile, |ctx| {
        cells_update(ctx).map_err(user_error)
    })?;
    pending::register(conn, shared)?;
    type RowHasher = fn(&Context<'_>, &Connection, &mut ConnState) -> Result<Digest>;
    for (name, hasher) in [
        ("weft_row_hash", stored_row_hash as RowHasher),
        ("weft_tombstone_hash", tombstone_hash),
    ] {
        let state = shared.clone();
        conn.create_scalar_function(name, -1, volatile, move |ctx| {
            let conn = context_connection(ctx)?;
            let mut state = state.lock();
            hasher(ctx, &conn, &mut state)
                .map(|d| d.to_bytes().to_vec())
                .map_err(user_error)
        })?;
    }
    // weft_relay_row_sent(db_version, tbl, pk) and weft_table_row_sent(db_version, 'table',
    // key...): whether a read under a row filter keeps the row (always, without a filter).
    // SQLite evaluates them on the index's (or the run log's) rows, before it reads the base
    // row.
    let filter = shared.clone();
    conn.create_scalar_function("weft_relay_row_sent", 3, volatile, move |ctx| {
        let guard = filter.row_filter();
        let Some(rows) = guard.as_ref() else {
            return Ok(true);
        };
        let version = ctx.get::<i64>(0)? as u64;
        Ok(rows.sends(version, || {
            let table = ctx.get_raw(1).as_str().unwrap_or_default();
            let key = ctx.get_raw(2).as_blob().unwrap_or_default();
            crate::sync::fingerprint::row_hash(table, key)
        }))
    })?;
    let filter = shared.clone();
    conn.create_scalar_function("weft_table_row_sent", -1, volatile, move |ctx| {
        let guard = filter.row_filter();
        let Some(rows) = guard.as_ref() else {
            return Ok(true);
        };
        let version = ctx.get::<i64>(0)? as u64;
        let table = ctx.get_raw(1).as_str().unwrap_or_default().to_owned();
        let key: Vec<Value> = (2..ctx.len())
            .map(|i| Value::from_sql_ref(ctx.get_raw(i)))
            .collect();
        Ok(rows.sends(version, || {
            crate::sync::fingerprint::row_hash(&table, &encode_key(&key))
        }))
    })?;
    let inner = shared.0.clone();
    conn.commit_hook(Some(move || {
        if inner.commits_refused.load(Ordering::SeqCst) {
            return true; // SQLite rolls the transaction back instead
        }
        let committed = inner.open_db_version.swap(0, Ordering::SeqCst);
        let previous = inner
            .committed_db_version
            .fetch_max(committed, Ordering::SeqCst);
        debug_assert!(
            committed == 0 || committed > previous,
            "db_version must grow with every commit"
        );
        false
    }))?;
    let inner = shared.0.clone();
    conn.rollback_hook(Some(move || {
        inner.open_db_version.store(0, Ordering::SeqCst);
        inner.rollbacks.fetch_add(1, Ordering::SeqCst);
    }))?;
    Ok(())
}

#[allow(unsafe_code)]
pub(crate) fn context_connection<'a>(
    ctx: &'a Context<'_>,
) -> rusqlite::Result<rusqlite::functions::ConnectionRef<'a>> {
    // SAFETY: the handle is the connection running this function; it outlives the call, and
    // we only run read queries on it (PRAGMA data_version, the meta and clock tables), which
    // SQLite allows from inside a function. This is how the first write of a transaction learns
    // what other connections committed (a measured need: the alternative, a subquery in every
    // trigger, costs every row).
    unsafe { ctx.get_connection() }
}

pub(crate) fn user_error(error: Error) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(error))
}

/// Argument `index`, or an error naming it if the call has fewer: these functions are also
/// callable from plain SQL, with any arguments.
pub(crate) fn raw_arg<'a>(ctx: &'a Context<'_>, index: usize) -> Result<ValueRef<'a>> {
    if index >= ctx.len() {
        return Err(Error::Corrupt(format!(
            "a weft_* function needs argument {} and got {}",
            index + 1,
            ctx.len()
        )));
    }
    Ok(ctx.get_raw(index))
}

fn int_arg(ctx: &Context<'_>, index: usize) -> Result<u64> {
    match raw_arg(ctx, index)? {
        ValueRef::Integer(v) if v >= 0 => Ok(v as u64),
        ValueRef::Null => Ok(0),
        other => Err(Error::Corrupt(format!(
            "argument {index} is not a counter: {other:?}"
        ))),
    }
}

fn blob_arg<'a>(ctx: &'a Context<'_>, index: usize) -> Option<&'a [u8]> {
    match raw_arg(ctx, index) {
        Ok(ValueRef::Blob(b)) => Some(b),
        _ => None,
    }
}

/// Decodes the column-id list a trigger passes as a blob literal.
pub(crate) fn decode_column_ids(mut bytes: &[u8]) -> Vec<u32> {
    let mut ids = Vec::new();
    while let Some((id, used)) = u32::decode_var(bytes) {
        ids.push(id);
        bytes = &bytes[used..];
    }
    ids
}

/// Encodes a column-id list as the blob literal triggers pass.
pub(crate) fn encode_column_ids(ids: &[u32]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.encode_var_vec()).collect()
}

/// weft_cells_update(cells, clock, site, db_version, new_clock, new_db_version, column_ids, changed...):
/// the clock row's `cells` after a local UPDATE changed the flagged columns.
fn cells_update(ctx: &Context<'_>) -> Result<Option<Vec<u8>>> {
    let column_ids = decode_column_ids(blob_arg(ctx, 6).unwrap_or_default());
    let (stored, fresh) = update_args(ctx, 0)?;
    let mut changed = Vec::with_capacity(column_ids.len());
    for position in 0..column_ids.len() {
        changed.push(matches!(raw_arg(ctx, 7 + position)?, ValueRef::Integer(1)));
    }
    updated_cells(&stored, &column_ids, fresh, &changed)
}

/// The arguments from `at` on of a function that updates a live clock row's cells: `cells,
/// clock, site, db_version` as stored, then the transaction's `clock, db_version`.
pub(crate) fn update_args(ctx: &Context<'_>, at: usize) -> Result<(StoredClock, StoredStamp)> {
    let stored = StoredClock {
        cl: 1,
        row: StoredStamp {
            clock: int_arg(ctx, at + 1)?,
            site: int_arg(ctx, at + 2)? as u32,
            db_version: int_arg(ctx, at + 3)?,
        },
        cells: blob_arg(ctx, at).map(<[u8]>::to_vec),
    };
    let fresh = StoredStamp {
        clock: int_arg(ctx, at + 4)?,
        site: 0,
        db_version: int_arg(ctx, at + 5)?,
    };
    Ok((stored, fresh))
}

/// The arguments `cl, clock, site, cells` from `at` on of a function that hashes a stored clock
/// row; its db_version is not hashed and reads as 0.
pub(crate) fn hashed_clock_args(ctx: &Context<'_>, at: usize) -> Result<StoredClock> {
    Ok(StoredClock {
        cl: int_arg(ctx, at)?,
        row: StoredStamp {
            clock: int_arg(ctx, at + 1)?,
            site: int_arg(ctx, at + 2)? as u32,
            db_version: 0,
        },
        cells: blob_arg(ctx, at + 3).map(<[u8]>::to_vec),
    })
}

/// The `cells` of a live clock row after a local UPDATE at stamp `fresh` changed the columns
/// of `column_ids` flagged in `changed`.
pub(crate) fn updated_cells(
    stored: &StoredClock,
    column_ids: &[u32],
    fresh: StoredStamp,
    changed: &[bool],
) -> Result<Option<Vec<u8>>> {
    debug_assert_eq!(column_ids.len(), changed.len());
    let mut entries = stored.expand(column_ids)?;
    for (id, _) in column_ids.iter().zip(changed).filter(|(_, c)| **c) {
        match entries.iter_mut().find(|(existing, _)| existing == id) {
            Some(entry) => entry.1 = fresh,
            None => entries.push((*id, fresh)),
        }
    }
    // The caller stores `fresh` as the row-level stamp, so the cells are made against it, not
    // against the stamp `compress` would choose: the two differ when a register of the row has
    // a larger clock at the same db_version (merged into this transaction after its clock was
    // taken), and the forms read against the row-level stamp would then read back wrong.
    Ok(crate::rules::stored_clock::cells_beside(entries, fresh, column_ids))
}

/// weft_row_hash(table, key_count, key..., cl, clock, site, cells, column_ids, column_names, values...):
/// the digest contribution of a stored row, given its base-table values in column-id order.
fn stored_row_hash(ctx: &Context<'_>, conn: &Connection, state: &mut ConnState) -> Result<Digest> {
    let table = match raw_arg(ctx, 0)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => return Err(Error::Corrupt("weft_row_hash needs a table name".into())),
    };
    let key_count = int_arg(ctx, 1)? as usize;
    let key: Vec<Value> = (0..key_count)
        .map(|i| raw_arg(ctx, 2 + i).map(Value::from_sql_ref))
        .collect::<Result<_>>()?;
    let at = 2 + key_count;
    let stored = hashed_clock_args(ctx, at)?;
    let column_ids = decode_column_ids(blob_arg(ctx, at + 4).unwrap_or_default());
    let names = match raw_arg(ctx, at + 5)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => String::new(),
    };
    let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
    let values: Vec<Value> = (0..column_ids.len())
        .map(|i| raw_arg(ctx, at + 6 + i).map(Value::from_sql_ref))
        .collect::<Result<_>>()?;
    let columns: Vec<(u32, &str, &Value)> = column_ids
        .iter()
        .zip(&names)
        .zip(&values)
        .map(|((id, name), value)| (*id, *name, value))
        .collect();
    hash_stored_row(conn, state, &table, &key, &stored, &columns)
}

/// weft_tombstone_hash(table, cl, clock, site, key...): the digest contribution of a
/// tombstone, which is its existence register alone.
fn tombstone_hash(ctx: &Context<'_>, conn: &Connection, state: &mut ConnState) -> Result<Digest> {
    let table = match raw_arg(ctx, 0)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => {
            return Err(Error::Corrupt(
                "weft_tombstone_hash needs a table name".into(),
            ))
        }
    };
    let stored = StoredClock {
        cl: int_arg(ctx, 1)?,
        row: StoredStamp {
            clock: int_arg(ctx, 2)?,
            site: int_arg(ctx, 3)? as u32,
            db_version: 0,
        },
        cells: None,
    };
    let key: Vec<Value> = (4..ctx.len())
        .map(|i| raw_arg(ctx, i).map(Value::from_sql_ref))
        .collect::<Result<_>>()?;
    hash_stored_row(conn, state, &table, &key, &stored, &[])
}

/// The digest contribution of a stored clock row and its base values `(id, name, value)`.
pub(crate) fn hash_stored_row(
    conn: &Connection,
    state: &mut ConnState,
    table: &str,
    key: &[Value],
    stored: &StoredClock,
    columns: &[(u32, &str, &Value)],
) -> Result<Digest> {
    let ids: Vec<u32> = columns.iter().map(|c| c.0).collect();
    let mut registers = Vec::new();
    for (id, stamp) in stored.expand(&ids)? {
        let site = state.site(conn, stamp.site)?;
        let stamp_full = Stamp {
            cl: stored.cl,
            clock: stamp.clock,
            site,
        };
        let (slot, value) = if id == crate::rules::stored_clock::ROW_SLOT_ID {
            (Slot::Row, Value::Null)
        } else {
            match columns.iter().find(|c| c.0 == id) {
                Some((_, name, value)) => (Slot::Column((*name).into()), (*value).clone()),
                None => {
                    return Err(Error::Corrupt(format!(
                        "{table}: clock cells name unknown column id {id}"
                    )))
                }
            }
        };
        registers.push((
            slot,
            Register {
                stamp: stamp_full,
                value,
                db_version: stamp.db_version,
            },
        ));
    }
    Ok(row_hash(
        table,
        &encode_key(key),
        registers.iter().map(|(s, r)| (s, r)),
    ))
}

/// Quoted name of a table's clock table.
pub(crate) fn quoted_clock(table: &str) -> String {
    quote(&clock_table_name(table))
}
