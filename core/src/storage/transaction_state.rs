//! Each connection's transaction state: the replica's committed `db_version`, its hybrid clock
//! and the digest checkpoint, kept in memory and shared by the connection's SQL functions, its
//! hooks and the engine.
//!
//! The first write of a transaction takes a stamp (next db_version, a new clock); the commit
//! hook makes it the committed one, the rollback hook forgets it
//! (the SQL functions' module installs both). Another connection's commits are noticed
//! through `PRAGMA data_version` at the start of each transaction, and then the state is reread
//! from the database, so several connections (or processes) writing one replica still get
//! strictly increasing db_versions and clocks.

use crate::error::{Error, Result};
use crate::rules::clock::{HybridClock, Observation, SharedWallClock};
use crate::rules::site::SiteId;
use crate::rules::value::Value;
use crate::storage::bookkeeping;
use crate::storage::pending_updates::PendingUpdates;
use crate::storage::run_log::Sweeps;
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
    pub(crate) sweeps: Sweeps,
    context: Option<Arc<ContextInner>>,
}

/// Which rows a read of changes keeps, as the `weft_*_row_sent` SQL functions ask it: the sync
/// layer's row filter, seen from storage.
pub(crate) trait RowSelection: Send + Sync {
    /// Whether the row of `table` with key `key`, stored at `db_version`, is kept.
    fn keeps(&self, db_version: u64, table: &str, key: RowKey<'_>) -> bool;
}

/// A row's key as a `weft_*_row_sent` function has it: encoded already (a relay row), or as
/// values (a table row), encoded only if the selection needs it.
pub(crate) enum RowKey<'a> {
    /// The canonical encoding ([`crate::rules::value::encode_key`]).
    Encoded(&'a [u8]),
    /// The key's values, in key order.
    Values(&'a [Value]),
}

/// A connection's transaction state, shared by its SQL functions, hooks and the engine.
///
/// Whether triggers record writes lives outside the mutex: the engine holds the mutex while it
/// merges, and the triggers its writes fire must read the flag without taking it again.
#[derive(Clone)]
pub(crate) struct ConnectionContext(Arc<ContextInner>);

struct ContextInner {
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
    /// Set by the commit hook when a commit would not have raised the db_version (it refuses
    /// that commit); the next lock of the state panics on it.
    db_version_went_back: AtomicBool,
    /// How many transactions rolled back; a change means caches may hold rolled-back rows.
    rollbacks: AtomicU64,
    /// The rows a read of changes keeps, while one runs with a filter (`weft_*_row_sent`).
    /// Apart from `state`, which the read holds while SQLite calls the functions.
    row_filter: Mutex<Option<Arc<dyn RowSelection>>>,
    /// The clock rows a set-based UPDATE of `Replica::write`'s commit writes, while it runs
    /// (`weft_pending*`, [`crate::storage::pending_updates`]).
    pending: Mutex<Option<Arc<PendingUpdates>>>,
}

/// Silences the triggers of a connection while it lives; they record again when it drops.
pub(crate) struct MergeGuard<'a>(&'a ConnectionContext);

impl Drop for MergeGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.capturing.store(true, Ordering::SeqCst);
    }
}

/// Refuses every commit on a connection while it lives ([`ConnectionContext::refuse_commits`]).
pub(crate) struct CommitsRefused<'a>(&'a ConnectionContext);

impl Drop for CommitsRefused<'_> {
    fn drop(&mut self) {
        self.0 .0.commits_refused.store(false, Ordering::SeqCst);
    }
}

impl ConnectionContext {
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

    /// A fresh state reading time from `wall`; it reads the replica's counters at its first
    /// transaction.
    pub(crate) fn new(wall: SharedWallClock) -> ConnectionContext {
        ConnectionContext(Arc::new(ContextInner {
            capturing: AtomicBool::new(true),
            commits_refused: AtomicBool::new(false),
            open_db_version: AtomicU64::new(0),
            open_clock: AtomicU64::new(0),
            open_digest_version: AtomicU64::new(0),
            committed_db_version: AtomicU64::new(0),
            db_version_went_back: AtomicBool::new(false),
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
                context: None,
            }),
        }))
    }

    /// Runs `work` with `filter` in force for the `weft_*_row_sent` SQL functions.
    pub(crate) fn with_row_filter<T>(
        &self,
        filter: Arc<dyn RowSelection>,
        work: impl FnOnce() -> T,
    ) -> T {
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

    /// The row filter in force, if a filtered read of changes runs.
    pub(crate) fn row_filter(&self) -> MutexGuard<'_, Option<Arc<dyn RowSelection>>> {
        self.0
            .row_filter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the triggers record writes now (`weft_capturing()`).
    pub(crate) fn is_capturing(&self) -> bool {
        self.0.capturing.load(Ordering::SeqCst)
    }

    /// The commit hook's work: whether to turn the commit into a rollback. Commits are
    /// refused while [`ConnectionContext::refuse_commits`] holds, and so is a commit that would
    /// not raise the connection's db_version: every reader's cursor relies on db_version
    /// growing, so that commit must not land, and the next [`ConnectionContext::lock`] panics
    /// on it (a panic inside the hook itself would be caught by rusqlite, and the commit would
    /// go through).
    pub(crate) fn refuses_commit(&self) -> bool {
        let inner = &self.0;
        if inner.commits_refused.load(Ordering::SeqCst) {
            return true; // SQLite rolls the transaction back instead
        }
        let committed = inner.open_db_version.swap(0, Ordering::SeqCst);
        let previous = inner.committed_db_version.load(Ordering::SeqCst);
        if committed != 0 && committed <= previous {
            inner.db_version_went_back.store(true, Ordering::SeqCst);
            return true;
        }
        inner
            .committed_db_version
            .fetch_max(committed, Ordering::SeqCst);
        false
    }

    /// The rollback hook's work: the open transaction's stamp is gone.
    pub(crate) fn rolled_back(&self) {
        self.0.open_db_version.store(0, Ordering::SeqCst);
        self.0.rollbacks.fetch_add(1, Ordering::SeqCst);
    }

    /// The stamp of the open write transaction once it has taken one, without the mutex.
    pub(crate) fn open_stamp(&self) -> Option<TxnStamp> {
        let db_version = self.0.open_db_version.load(Ordering::SeqCst);
        (db_version != 0).then(|| TxnStamp {
            db_version,
            clock: self.0.open_clock.load(Ordering::SeqCst),
            digest_version: self.0.open_digest_version.load(Ordering::SeqCst),
        })
    }

    /// The connection's state, with what the hooks recorded since the last lock folded in.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ConnState> {
        // A panic while holding the lock leaves plain numbers behind; they stay usable.
        let mut state = self
            .0
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        assert!(
            !self.0.db_version_went_back.load(Ordering::SeqCst),
            "db_version must grow with every commit: a commit that did not raise it was refused"
        );
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
        if state.context.is_none() {
            state.context = Some(self.0.clone());
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
        if let Some(context) = &self.context {
            // The stamp's other fields first: a nonzero db_version says they are valid.
            context.open_clock.store(stamp.clock, Ordering::SeqCst);
            context
                .open_digest_version
                .store(stamp.digest_version, Ordering::SeqCst);
            context
                .open_db_version
                .store(stamp.db_version, Ordering::SeqCst);
        }
        Ok(stamp)
    }

    /// The current transaction's stamp, if it has taken one.
    pub(crate) fn stamp(&self) -> Option<TxnStamp> {
        self.txn
    }

    /// Whether the current transaction has taken a stamp (written something) yet.
    pub(crate) fn has_stamp(&self) -> bool {
        self.txn.is_some()
    }

    /// Gives back a stamp that nothing was written with, so the commit takes no db_version.
    pub(crate) fn release_unused_stamp(&mut self) {
        self.txn = None;
        if let Some(context) = &self.context {
            context.open_db_version.store(0, Ordering::SeqCst);
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
