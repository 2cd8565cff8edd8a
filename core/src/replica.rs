//! A replica: one SQLite file with a site id, replicated tables and their clocks.

use crate::apply::{self, ApplyReport};
use crate::capture;
use crate::cells::{StoredClock, CLOCK_COLUMNS, CLOCK_COLUMN_COUNT};
use crate::changes::{self, relay_change, ChangeBatch, Cursor, RELAY_COLUMNS};
use crate::clock::{SharedWallClock, SystemClock};
use crate::commits;
use crate::connection::{self, hash_stored_row, ReplicaConnection, Shared};
use crate::crr;
use crate::digest::register_hash;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fingerprint::RowFilter;
use crate::format;
use crate::limits::Limits;
use crate::meta;
use crate::meta::PeerCursor;
use crate::schema::{self, quote, TableSchema};
use crate::site::{IdSource, Incarnation, RandomIds, SharedIdSource, SiteId};
use crate::value::Value;
use crate::Change;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How to open a replica.
#[derive(Clone)]
pub struct Options {
    /// Where clocks come from (the system clock unless a test hands in its own).
    pub wall_clock: SharedWallClock,
    /// Bounds on batches and frames.
    pub limits: Limits,
    /// Where the site id of a new file and every new incarnation come from (random unless a
    /// test hands in a seeded source).
    pub ids: SharedIdSource,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            wall_clock: Arc::new(SystemClock),
            limits: Limits::default(),
            ids: Arc::new(RandomIds),
        }
    }
}

/// One replica: a SQLite database file whose replicated tables merge with other replicas'.
pub struct Replica {
    conn: ReplicaConnection,
    shared: Shared,
    /// Who in this process hears of commits to this file.
    listeners: Arc<commits::Listeners>,
    /// The identity of `conn` among the file's committers.
    origin: commits::Origin,
    site_id: SiteId,
    path: PathBuf,
    options: Options,
    /// What [`Replica::write`] keeps between writes (boxed: most replicas never write so).
    writes: Box<Writes>,
}

/// Rolls back a transaction still open when it drops: a work that panicked inside
/// [`Replica::write`] must not leave the database locked.
struct RollbackOnDrop<'c>(&'c Connection);

impl Drop for RollbackOnDrop<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// The state of [`Replica::write`].
#[derive(Default)]
struct Writes {
    /// The connection writes run on, opened by the first write.
    writer: std::sync::Mutex<Option<Writer>>,
    /// What the writes record, per schema version.
    plans: capture::PlanCache,
}

/// The connection of [`Replica::write`]. Its triggers are off for good while every trigger in
/// the database is Weft's, so no write statement is prepared twice; nothing but `write`
/// reaches it, and `write` refuses every commit but its own while the work runs.
struct Writer {
    conn: ReplicaConnection,
    shared: Shared,
    triggers_on: bool,
}

/// What `weft info` shows about a replica.
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    /// The replica's site id.
    pub site_id: SiteId,
    /// The identity of this life of its data ([`Replica::renew_incarnation`]).
    pub incarnation: Incarnation,
    /// Its latest db_version.
    pub db_version: u64,
    /// Replicated tables and how many rows each holds now.
    pub tables: Vec<(String, u64)>,
    /// Registers held for tables or columns this replica's schema lacks.
    pub relayed_registers: u64,
    /// Changes accepted with a clock far ahead of local wall time, since this replica was opened.
    pub far_future_clocks: u64,
}

/// The name of the built-in key-value table.
pub const KV_TABLE: &str = "weft_kv";

/// The replicated tables every replica has: the key-value table and the buckets' listing.
const BUILT_IN_TABLES: [&str; 2] = [KV_TABLE, crate::blobs::BUCKET_TABLE];

impl Replica {
    /// Opens (creating if missing) the replica at `path`, with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Replica> {
        Replica::open_with(path, Options::default())
    }

    /// Opens (creating if missing) the replica at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Replica> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            // SQLite would open a private temporary database: never what a caller meant.
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an empty path names no database file",
            )));
        }
        let shared = Shared::new(options.wall_clock.clone());
        let (conn, listeners, origin) = open_connection(&path, &shared)?;
        // An initialised replica of the current file format opens without the write lock, so
        // opening never waits for another writer (a long import, a merge) and never writes.
        // One of an older format is upgraded once, under the write lock.
        let name = path.display().to_string();
        let site_id = match initialised_site_id(&conn)? {
            Some(site_id) => {
                let found = format::stored(&conn)?;
                format::check_supported(found)?;
                if found < format::FORMAT_VERSION {
                    conn.execute_batch("BEGIN IMMEDIATE")?;
                    finish(&conn, format::upgrade(&conn, &name))?;
                }
                site_id
            }
            None => {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                let setup = (|| -> Result<SiteId> {
                    conn.execute_batch(meta::SCHEMA_SQL)?;
                    conn.execute_batch(&meta::relay_table_sql("weft_relay"))?;
                    conn.execute_batch(meta::RELAY_KEY_INDEX_SQL)?;
                    format::upgrade(&conn, &name)?;
                    let site_id = ensure_site_id(&conn, &*options.ids)?;
                    meta::ensure_incarnation(&conn, &*options.ids)?;
                    // Every trigger this build makes is of its version.
                    crr::mark_triggers_current(&conn)?;
                    conn.execute_batch(&format!(
                        "CREATE TABLE IF NOT EXISTS {KV_TABLE}(key TEXT PRIMARY KEY NOT NULL, value)"
                    ))?;
                    conn.execute_batch(&crate::blobs::listing_table_sql())?;
                    Ok(site_id)
                })();
                finish(&conn, setup)?
            }
        };
        let mut replica = Replica {
            conn,
            shared,
            listeners,
            origin,
            site_id,
            path,
            options,
            writes: Box::default(),
        };
        for table in BUILT_IN_TABLES {
            let registered: bool = replica.conn.query_row(
                "SELECT count(*) > 0 FROM weft_tables WHERE name = ?1",
                [table],
                |r| r.get(0),
            )?;
            if !registered {
                replica.enable_crr(table)?;
            }
        }
        if crr::triggers_outdated(&replica.conn)?
            || !crr::tables_missing_triggers(&replica.conn)?.is_empty()
        {
            replica.refresh_triggers(&name);
        }
        Ok(replica)
    }

    /// Makes the triggers of an older build again, once per file, and those a rebuilt table
    /// lost, if the write lock is free now: opening never waits for another writer, and a file
    /// that cannot be written (read only, or locked) keeps its triggers, which work as before,
    /// until a later open.
    fn refresh_triggers(&mut self, name: &str) {
        let attempt = (|| -> Result<()> {
            let begun = {
                let conn = &mut *self.conn;
                conn.busy_handler(None::<fn(i32) -> bool>)?;
                let begun = conn.execute_batch("BEGIN IMMEDIATE");
                conn.busy_handler(Some(wait_for_lock))?;
                begun
            };
            begun?;
            let conn: &Connection = &self.conn;
            let repaired = (|| {
                let lost = crr::tables_missing_triggers(conn)?;
                for table in &lost {
                    self.forget_rows_without_values(conn, table)?;
                }
                crr::refresh_triggers(conn, &lost)
            })();
            finish(conn, repaired)
        })();
        match attempt {
            Ok(()) => tracing::info!(
                replica = name,
                "triggers brought up to this build's version"
            ),
            Err(error) => tracing::warn!(
                replica = name,
                %error,
                "triggers of an older build kept; they are made again at a later open"
            ),
        }
    }

    /// The connection this replica uses; plain SQL through it is captured.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Runs `work` in one write transaction and commits it when `work` returns `Ok`; an error
    /// (or a panic) rolls everything back. It is the fast way to write: the writes to
    /// replicated tables are recorded below the triggers (SQLite's preupdate hook notes the
    /// rows touched; their clock rows are written once, just before the commit), which costs
    /// about half of what the triggers cost on a bulk insert (docs/benchmarks.md). When the
    /// database has triggers of its own, Weft's triggers stay on and record the writes as for
    /// plain SQL.
    ///
    /// Each row's net effect over the transaction is recorded, from what it held before and
    /// what it holds at the commit: a row inserted and deleted again leaves nothing, a row
    /// deleted (or replaced) and inserted again is an update of the columns that differ.
    /// `work` must not end the transaction itself (`COMMIT`, `ROLLBACK`, `RELEASE` of the
    /// outermost savepoint): every commit but this method's own is refused while it runs, and
    /// the write fails whole. Savepoints inside it, and statements that fail half way, are
    /// fine: only what the rows hold at the commit is recorded. Replicated tables' schemas
    /// must not change inside it. At most [`Limits::write_rows_max`] rows may change.
    ///
    /// `work` runs on a connection of its own (opened by the first call), not on
    /// [`Replica::connection`]; calling `write` again from inside `work` is an error.
    ///
    /// ```
    /// # fn main() -> weft_core::Result<()> {
    /// # let dir = tempfile::tempdir()?;
    /// let replica = weft_core::Replica::open(dir.path().join("app.db"))?;
    /// replica.connection().execute_batch("CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT)")?;
    /// replica.enable_crr("item")?;
    /// replica.write(|conn| {
    ///     let mut insert = conn.prepare_cached("INSERT INTO item VALUES (?1, ?2)")?;
    ///     for i in 0..1000 {
    ///         insert.execute((i, format!("item {i}")))?;
    ///     }
    ///     Ok(())
    /// })?;
    /// assert_eq!(replica.changes_since(0).map(|b| b.map(|b| b.changes.len())).sum::<weft_core::Result<usize>>()?, 2000);
    /// # Ok(())
    /// # }
    /// ```
    pub fn write<T>(&self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut slot = match self.writes.writer.try_lock() {
            Ok(slot) => slot,
            // A work that panicked; its transaction was rolled back as it unwound.
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(Error::WriteRolledBack(
                    "Replica::write was called from inside another write of this replica".into(),
                ))
            }
        };
        if slot.is_none() {
            let shared = Shared::new(self.options.wall_clock.clone());
            let (conn, _, _) = open_connection(&self.path, &shared)?;
            *slot = Some(Writer {
                conn,
                shared,
                triggers_on: true,
            });
        }
        let writer = slot.as_mut().expect("opened above");
        let conn = &writer.conn;
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let _unwinding = RollbackOnDrop(conn);
        let result = (|| {
            let plan = self.writes.plans.current(conn)?;
            if plan.foreign_triggers != writer.triggers_on {
                conn.set_db_config(
                    rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
                    plan.foreign_triggers,
                )?;
                writer.triggers_on = plan.foreign_triggers;
            }
            let rollbacks = writer.shared.rollbacks();
            let _refused = writer.shared.refuse_commits();
            if writer.triggers_on {
                // The triggers record, as for plain SQL.
                let outcome = work(conn);
                capture::check_transaction_kept(conn, &writer.shared, rollbacks, &outcome)?;
                return outcome;
            }
            capture::record(
                conn,
                &writer.shared,
                rollbacks,
                plan,
                &self.writes.plans,
                self.options.limits,
                work,
            )
        })();
        let finished = finish(conn, result);
        if finished.is_err() {
            // Its schema changes, if any, were rolled back with it (a refused COMMIT too).
            self.writes.plans.forget();
        }
        finished
    }

    /// A new connection to the same file with the SQL functions the triggers need.
    pub fn connect(&self) -> Result<ReplicaConnection> {
        let shared = Shared::new(self.options.wall_clock.clone());
        Ok(open_connection(&self.path, &shared)?.0)
    }

    /// Calls `callback` after every transaction committed to this file, in this process, by
    /// any connection but this replica's own [`Replica::connection`]: another `Replica` of the
    /// same file, or one from [`Replica::connect`]. It runs on the committing thread, after the
    /// commit is visible to readers, and must return quickly (wake a task, bump a counter).
    /// Commits by other processes are not reported. Dropping the subscription ends it.
    pub fn on_commit(
        &self,
        callback: impl Fn() + Send + Sync + 'static,
    ) -> commits::CommitSubscription {
        commits::subscribe(&self.listeners, self.origin, callback)
    }

    /// The replica's site id.
    pub fn site_id(&self) -> SiteId {
        self.site_id
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.options.limits
    }

    /// The latest committed db_version of this replica.
    pub fn db_version(&self) -> Result<u64> {
        let mut state = self.shared.lock();
        state.refresh(&self.conn)?;
        Ok(state.committed_db_version())
    }

    /// Makes `table` replicated: a clock table, triggers that record every write, and clocks
    /// for the rows it already holds. Calling it again after `ALTER TABLE ... ADD COLUMN`
    /// replicates the new columns; calling it again otherwise changes nothing. Changes held for
    /// this table or its new columns are merged in.
    pub fn enable_crr(&self, table: &str) -> Result<()> {
        if !BUILT_IN_TABLES.contains(&table) {
            schema::check_table_name(table)?;
            if table.to_ascii_lowercase().starts_with("weft_") {
                return Err(Error::NotReplicable {
                    table: table.into(),
                    reason: "names starting with weft_ are reserved".into(),
                });
            }
        }
        self.write_transaction(|conn, shared| {
            self.forget_rows_without_values(conn, table)?;
            crr::enable(conn, table)?;
            materialize_relay(
                conn,
                shared,
                table,
                self.options.limits.changes_per_batch_max,
            )
        })
    }

    /// Forgets the rows of a replicated table whose values are gone
    /// ([`crr::forget_rows_without_values`]) and, if there were any, makes the digest again
    /// from every stored register: their share of the stored sum cannot be taken out without
    /// the values it was made of. Runs in the caller's write transaction, before it writes.
    fn forget_rows_without_values(&self, conn: &Connection, table: &str) -> Result<()> {
        let forgotten = crr::forget_rows_without_values(conn, table)?;
        if forgotten == 0 {
            return Ok(());
        }
        let mut state = self.shared.lock();
        if state.has_stamp() {
            // Rows this transaction wrote would count twice: in the new sum and again when
            // the next digest folds them in.
            return Err(Error::NotReplicable {
                table: table.to_owned(),
                reason: format!(
                    "{forgotten} of its rows have clocks but no values (removed without their \
                     triggers); call enable_crr before writing in this transaction, or outside one"
                ),
            });
        }
        state.refresh(conn)?;
        let sum = self.sum_of_every_register(&mut state)?;
        let version = state.committed_db_version();
        meta::write_digest(conn, &sum, version)?;
        state.set_digest_version(version);
        tracing::warn!(
            table,
            forgotten,
            "rows with clocks but no values (removed without their triggers) were forgotten; \
             the replicas that still have them send them back"
        );
        Ok(())
    }

    /// Names of the replicated tables.
    pub fn replicated_tables(&self) -> Result<Vec<String>> {
        meta::replicated_table_names(&self.conn)
    }

    /// One bounded batch of the changes after `cursor` (at most `max_changes`, never splitting a row).
    pub fn changes(&self, cursor: &Cursor, max_changes: usize) -> Result<ChangeBatch> {
        self.read_changes(cursor, max_changes, false)
    }

    fn read_changes(
        &self,
        cursor: &Cursor,
        max_changes: usize,
        filtered: bool,
    ) -> Result<ChangeBatch> {
        let max_changes = max_changes.clamp(1, self.options.limits.changes_per_batch_max);
        self.read_transaction(|| {
            let catalog = meta::load_catalog(&self.conn)?;
            let mut state = self.shared.lock();
            changes::read(
                &self.conn,
                &mut state,
                &catalog,
                cursor,
                max_changes,
                filtered,
            )
        })
    }

    /// Like [`Replica::changes`], for sending to `peer`: leaves out registers that this
    /// replica stored by merging a batch from `peer` ([`Replica::apply_changes_from`]), which
    /// `peer` holds already (or something newer). The cursor still moves past them, so a
    /// batch may come back empty and not done.
    pub fn changes_for(
        &self,
        peer: &SiteId,
        cursor: &Cursor,
        max_changes: usize,
    ) -> Result<ChangeBatch> {
        self.changes_for_rows(peer, cursor, max_changes, None)
    }

    /// Like [`Replica::changes_for`], leaving out too the changes `filter` does not send
    /// (after range-based reconciliation: rows the peer holds alike). Whole rows are left out
    /// inside SQLite, then each register is checked with [`RowFilter::sends`] (a row changed
    /// after the snapshot carries older registers too). A batch that is `done` ends at least
    /// at the snapshot: everything left out below it, the peer holds.
    pub fn changes_for_rows(
        &self,
        peer: &SiteId,
        cursor: &Cursor,
        max_changes: usize,
        filter: Option<&Arc<RowFilter>>,
    ) -> Result<ChangeBatch> {
        // Skip whole transactions merged from `peer` at the start without reading them (after
        // a large download, all of them are).
        let skipped;
        let cursor = match cursor.position {
            None => {
                let through = meta::merged_from_run(&self.conn, peer, cursor.since)?;
                skipped = Cursor::since(through);
                &skipped
            }
            Some(_) => cursor,
        };
        let mut batch = match filter {
            Some(filter) => self.shared.with_row_filter(filter.clone(), || {
                self.read_changes(cursor, max_changes, true)
            })?,
            None => self.changes(cursor, max_changes)?,
        };
        let low = batch.changes.iter().map(|c| c.db_version).min();
        let high = batch.changes.iter().map(|c| c.db_version).max();
        if let (Some(low), Some(high)) = (low, high) {
            let echoes = meta::merged_from(&self.conn, peer, low, high)?;
            if !echoes.is_empty() {
                batch.changes.retain(|c| !echoes.contains(&c.db_version));
            }
        }
        if let Some(filter) = filter {
            filter_registers(&mut batch, filter);
        }
        Ok(batch)
    }

    /// Stops leaving `peer`'s own changes out of what is sent to it: for a peer that came back
    /// with a new incarnation, or older than it was, and may have lost them.
    pub fn forget_merged_from(&self, peer: &SiteId) -> Result<()> {
        self.write_transaction(|conn, _| {
            conn.execute(
                "DELETE FROM weft_merged_from WHERE site = ?1",
                [peer.0.as_slice()],
            )?;
            Ok(())
        })
    }

    /// All changes after `db_version`, as an iterator of bounded batches.
    pub fn changes_since(&self, db_version: u64) -> ChangeBatches<'_> {
        ChangeBatches {
            replica: self,
            cursor: Some(Cursor::since(db_version)),
        }
    }

    /// Merges a batch of changes in one transaction. Idempotent and commutative: applying the
    /// same changes again, or in another order, leaves the same state. A batch with an invalid
    /// change, or one the schema refuses (a STRICT column's type, a CHECK), is refused whole.
    /// The batch holds the write lock while it merges (at most `changes_per_batch_max`
    /// changes); callers applying many batches pause [`PAUSE_BETWEEN_BATCHES`] between them.
    pub fn apply_changes(&self, batch: &[Change]) -> Result<ApplyReport> {
        self.check_batch_size(batch)?;
        self.write_transaction(|conn, shared| merge_batch(conn, shared, batch))
    }

    /// Merges a batch received from another replica and records, in the same transaction, how
    /// far into that replica's changes this one now is: a crash leaves both or neither.
    pub fn apply_changes_from(
        &self,
        batch: &[Change],
        received: &PeerCursor,
    ) -> Result<ApplyReport> {
        self.check_batch_size(batch)?;
        self.write_transaction(|conn, shared| {
            let report = merge_batch(conn, shared, batch)?;
            let now_ms = shared.lock().now_ms();
            meta::write_peer_cursor(conn, received, now_ms)?;
            if let Some(version) = report.db_version {
                meta::write_merged_from(conn, version, &received.site)?;
            }
            Ok(report)
        })
    }

    /// How far this replica has applied `site`'s changes, if it ever received any.
    pub fn peer_cursor(&self, site: &SiteId) -> Result<Option<PeerCursor>> {
        meta::peer_cursor(&self.conn, site)
    }

    /// The cursors of the replicas this one heard from most recently, newest first.
    pub fn recent_peer_cursors(&self, max: usize) -> Result<Vec<PeerCursor>> {
        meta::recent_peer_cursors(&self.conn, max)
    }

    /// This replica's incarnation: the identity of this life of its data.
    pub fn incarnation(&self) -> Result<Incarnation> {
        meta::incarnation(&self.conn)?
            .ok_or_else(|| Error::Corrupt("the replica has no incarnation".into()))
    }

    /// Starts a new life: other replicas' cursors into this one are no longer trusted, and
    /// they reconcile with it from the start. For a replica restored from a copy.
    pub fn renew_incarnation(&self) -> Result<Incarnation> {
        self.write_transaction(|conn, _| meta::renew_incarnation(conn, &*self.options.ids))
    }

    fn check_batch_size(&self, batch: &[Change]) -> Result<()> {
        let max = self.options.limits.changes_per_batch_max;
        if batch.len() > max {
            return Err(Error::LimitExceeded {
                limit: "changes_per_batch_max",
                max: max as u64,
                actual: batch.len() as u64,
            });
        }
        Ok(())
    }

    /// The state digest: equal on two replicas exactly when they hold the same CRDT state.
    /// Costs time in proportion to the local writes since the last call (writes themselves pay
    /// nothing for it); merges keep it current as they go.
    pub fn digest(&self) -> Result<Digest> {
        let autocommit = self.conn.is_autocommit();
        if autocommit {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        let result = self.fold_digest(autocommit);
        if autocommit {
            finish(&self.conn, result)
        } else {
            result
        }
    }

    fn fold_digest(&self, store: bool) -> Result<Digest> {
        let mut state = self.shared.lock();
        state.refresh(&self.conn)?;
        let counters = meta::read_counters(&self.conn)?;
        let mut sum = counters.digest_sum;
        let mut names = changes::Names::default();
        for schema in meta::load_catalog(&self.conn)?.values() {
            let relayed = relay_holds_table(&self.conn, &schema.name)?;
            let mut failed = None;
            visit_table_rows(
                &self.conn,
                &mut state,
                schema,
                FoldFrom::Checkpoint(counters.digest_version),
                |state, key, cl, contribution, base| {
                    sum.add(&contribution);
                    if let Some(base) = base {
                        sum.sub(&base);
                    }
                    if relayed {
                        let row = StaleRelayed {
                            table: &schema.name,
                            key: &crate::value::encode_key(key),
                            cl,
                        };
                        if let Err(error) = row.fold(&self.conn, state, &mut names, &mut sum, store)
                        {
                            failed = Some(error);
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                },
            )?;
            if let Some(error) = failed {
                return Err(error);
            }
        }
        let version = state.committed_db_version();
        if store && version > counters.digest_version {
            meta::write_digest(&self.conn, &sum, version)?;
            state.set_digest_version(version);
        }
        Ok(sum)
    }

    /// The state digest computed from every stored register, ignoring the maintained sum.
    /// Costs a full scan; equal to [`Replica::digest`] unless the replica's metadata is damaged.
    pub fn digest_from_scratch(&self) -> Result<Digest> {
        self.read_transaction(|| {
            let mut state = self.shared.lock();
            state.refresh(&self.conn)?;
            self.sum_of_every_register(&mut state)
        })
    }

    /// The digest of every stored register, from a full scan.
    fn sum_of_every_register(&self, state: &mut connection::ConnState) -> Result<Digest> {
        let mut sum = Digest::ZERO;
        self.visit_rows_with(state, |_, _, contribution| {
            sum.add(&contribution);
            ControlFlow::Continue(())
        })?;
        Ok(sum)
    }

    /// Site id, db_version, replicated tables with their row counts.
    pub fn info(&self) -> Result<Info> {
        let mut tables = Vec::new();
        for name in self.replicated_tables()? {
            let rows: i64 = self.conn.query_row(
                &format!("SELECT count(*) FROM {}", quote(&name)),
                [],
                |r| r.get(0),
            )?;
            tables.push((name, rows as u64));
        }
        let relayed: i64 = self
            .conn
            .query_row("SELECT count(*) FROM weft_relay", [], |r| r.get(0))?;
        Ok(Info {
            site_id: self.site_id,
            incarnation: self.incarnation()?,
            db_version: self.db_version()?,
            tables,
            relayed_registers: relayed as u64,
            far_future_clocks: self.shared.lock().far_future_clocks(),
        })
    }

    /// The buckets of blobs: their replicated listing and this replica's record of the
    /// bytes its store holds.
    pub fn buckets(&self) -> crate::blobs::Buckets<'_> {
        crate::blobs::Buckets::new(self)
    }

    /// This replica's wall clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.shared.lock().now_ms()
    }

    /// The built-in replicated key-value table.
    pub fn kv(&self) -> crate::kv::Kv<'_> {
        crate::kv::Kv::new(&self.conn)
    }

    /// How many rows the replica holds, tombstones included, in its tables and in the relay
    /// (a row held partly in each counts twice). Cheap next to reading them: one count per
    /// table.
    pub fn row_count(&self) -> Result<u64> {
        self.read_transaction(|| {
            let mut rows: i64 = self.conn.query_row(
                "SELECT count(*) FROM (SELECT DISTINCT tbl, pk FROM weft_relay)",
                [],
                |r| r.get(0),
            )?;
            for name in meta::load_catalog(&self.conn)?.keys() {
                let in_table: i64 = self.conn.query_row(
                    &format!("SELECT count(*) FROM {}", connection::quoted_clock(name)),
                    [],
                    |r| r.get(0),
                )?;
                rows += in_table;
            }
            Ok(rows as u64)
        })
    }

    /// Calls `visit(table, canonical key, contribution)` for every row this replica holds, in
    /// its tables (in their storage order) and in the relay (in its storage order, once per
    /// run of a row's registers stored together), on the caller's snapshot, until `visit`
    /// says stop. A row held in several parts (partly in its table and partly in the relay,
    /// or in several runs of the relay) is visited once per part; the contributions of its
    /// parts add up to the row's. Returns whether it visited every part.
    pub(crate) fn visit_rows(
        &self,
        visit: impl FnMut(&str, &[u8], Digest) -> ControlFlow<()>,
    ) -> Result<bool> {
        let mut state = self.shared.lock();
        state.refresh(&self.conn)?;
        self.visit_rows_with(&mut state, visit)
    }

    fn visit_rows_with(
        &self,
        state: &mut connection::ConnState,
        mut visit: impl FnMut(&str, &[u8], Digest) -> ControlFlow<()>,
    ) -> Result<bool> {
        for schema in meta::load_catalog(&self.conn)?.values() {
            let finished = visit_table_rows(
                &self.conn,
                state,
                schema,
                FoldFrom::Everything,
                |_, key, _, contribution, _| {
                    visit(&schema.name, &crate::value::encode_key(key), contribution)
                },
            )?;
            if !finished {
                return Ok(false);
            }
        }
        // The relay in storage (db_version) order, a straight scan: registers of a row
        // written together are adjacent, and a row whose registers were written at different
        // versions is visited once per run of them.
        let mut statement = self.conn.prepare(&format!(
            "SELECT {RELAY_COLUMNS} FROM weft_relay ORDER BY db_version, tbl, pk, col"
        ))?;
        let mut rows = statement.query([])?;
        let mut current: Option<(String, Vec<u8>, Digest)> = None;
        let mut names = changes::Names::default();
        while let Some(r) = rows.next()? {
            let table: String = r.get(0)?;
            let key: Vec<u8> = r.get(1)?;
            let change = relay_change(&self.conn, state, &mut names, r)?;
            let hash = register_hash(&table, &key, &change.slot(), &change.register());
            match &mut current {
                Some((t, k, sum)) if *t == table && *k == key => sum.add(&hash),
                _ => {
                    if let Some((t, k, sum)) = current.take() {
                        if visit(&t, &k, sum).is_break() {
                            return Ok(false);
                        }
                    }
                    current = Some((table, key, hash));
                }
            }
        }
        if let Some((t, k, sum)) = current {
            if visit(&t, &k, sum).is_break() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs `work` on one consistent snapshot of this replica's connection.
    pub(crate) fn in_read_snapshot<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.read_transaction(work)
    }

    /// Runs `work` on one consistent snapshot: its own read transaction, or the caller's open one.
    fn read_transaction<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.conn.is_autocommit() {
            return work();
        }
        self.conn.execute_batch("BEGIN")?;
        let result = work();
        finish(&self.conn, result)
    }

    /// Runs `work` in one write transaction on this replica's connection.
    pub(crate) fn write_transaction<T>(
        &self,
        work: impl FnOnce(&Connection, &Shared) -> Result<T>,
    ) -> Result<T> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("SAVEPOINT weft_write")?;
            let result = work(&self.conn, &self.shared);
            match &result {
                Ok(_) => self.conn.execute_batch("RELEASE weft_write")?,
                Err(_) => self
                    .conn
                    .execute_batch("ROLLBACK TO weft_write; RELEASE weft_write")?,
            }
            return result;
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = work(&self.conn, &self.shared);
        finish(&self.conn, result)
    }
}

/// An iterator over all changes after a db_version, in bounded batches.
pub struct ChangeBatches<'a> {
    replica: &'a Replica,
    cursor: Option<Cursor>,
}

impl Iterator for ChangeBatches<'_> {
    type Item = Result<ChangeBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let cursor = self.cursor.take()?;
        let batch = self
            .replica
            .changes(&cursor, self.replica.options.limits.changes_per_batch_max);
        match &batch {
            Ok(b) if b.done && b.changes.is_empty() => return None,
            Ok(b) if !b.done => self.cursor = Some(b.next.clone()),
            _ => {}
        }
        Some(batch)
    }
}

/// Merges `batch` inside the caller's write transaction. A batch that changes nothing takes
/// no db_version, so merging what a replica already has never looks like news to its readers.
fn merge_batch(conn: &Connection, shared: &Shared, batch: &[Change]) -> Result<ApplyReport> {
    let _merging = shared.merging();
    let _triggers = TriggersOff::when_only_weft_triggers(conn)?;
    let mut state = shared.lock();
    let stamp_was_taken = state.has_stamp();
    let stamp = state.begin(conn)?;
    let report = apply::apply_in_transaction(conn, &mut state, stamp, batch, !stamp_was_taken)?;
    if report.db_version.is_none() && !stamp_was_taken {
        state.release_unused_stamp();
    }
    Ok(report)
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
fn open_connection(
    path: &Path,
    shared: &Shared,
) -> Result<(ReplicaConnection, Arc<commits::Listeners>, commits::Origin)> {
    // NO_MUTEX: a rusqlite Connection is not Sync, so SQLite need not lock on every call.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_handler(Some(wait_for_lock))?;
    conn.set_prepared_statement_cache_capacity(256);
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA recursive_triggers = ON;")?;
    connection::install(&mut conn, shared)?;
    let listeners = commits::listeners_for(path);
    let origin = commits::next_id();
    commits::install(&mut conn, listeners.clone(), origin)?;
    Ok((ReplicaConnection::new(conn), listeners, origin))
}

/// Turns the connection's triggers off while a merge writes rows, when every trigger in the
/// database is Weft's own: then a merged row runs no trigger program at all (SQLite sets up
/// every trigger's frame per row before evaluating WHEN, and a statement that fires triggers
/// writing a second table needs a statement journal; together most of a merge's SQLite time).
/// An application trigger (say one maintaining a full-text index) must see merged rows, so
/// with any such trigger present the triggers stay on and only Weft's go quiet, through
/// `weft_capturing()`.
struct TriggersOff<'a>(Option<&'a Connection>);

impl<'a> TriggersOff<'a> {
    fn when_only_weft_triggers(conn: &'a Connection) -> Result<Self> {
        if crr::has_foreign_triggers(conn)? {
            return Ok(TriggersOff(None));
        }
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
            false,
        )?;
        Ok(TriggersOff(Some(conn)))
    }
}

impl Drop for TriggersOff<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            let restored = conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
                true,
            );
            // Local writes on this connection would go unrecorded with triggers off.
            assert!(
                restored.is_ok(),
                "could not turn the connection's triggers back on"
            );
        }
    }
}

/// How long a connection waits for another writer before giving up with SQLITE_BUSY.
pub const LOCK_WAIT_MAX: Duration = Duration::from_secs(10);

/// How often a waiting connection retries the lock. SQLite's default handler backs off to
/// 100 ms sleeps and so rarely lands in the short gaps between a merge's transactions.
const LOCK_POLL: Duration = Duration::from_micros(500);

fn wait_for_lock(attempt: i32) -> bool {
    let waited = LOCK_POLL * attempt.max(0) as u32;
    if waited >= LOCK_WAIT_MAX {
        return false;
    }
    std::thread::sleep(LOCK_POLL);
    true
}

/// How long a caller applying many batches back to back should pause between them, so that
/// other writers waiting for the lock (which retry every [`LOCK_POLL`]) get their turn.
pub const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(2);

/// The site id of a replica whose setup is complete (bookkeeping tables, site id, the KV table
/// replicated), or `None` if setup must run.
fn initialised_site_id(conn: &Connection) -> Result<Option<SiteId>> {
    let present: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({})",
            meta::SCHEMA_TABLES.map(|t| format!("'{t}'")).join(", ")
        ),
        [],
        |r| r.get(0),
    )?;
    if present as usize != meta::SCHEMA_TABLES.len() || meta::incarnation(conn)?.is_none() {
        return Ok(None);
    }
    for table in BUILT_IN_TABLES {
        let registered: bool = conn.query_row(
            "SELECT count(*) > 0 FROM weft_tables WHERE name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if !registered {
            return Ok(None);
        }
    }
    local_site_id(conn)
}

/// The local site id (ordinal 0), if set.
fn local_site_id(conn: &Connection) -> Result<Option<SiteId>> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT site_id FROM weft_sites WHERE ordinal = 0",
            [],
            |r| r.get(0),
        )
        .optional()?;
    bytes
        .map(|b| {
            SiteId::from_slice(&b)
                .ok_or_else(|| Error::Corrupt("the local site id is not 16 bytes".into()))
        })
        .transpose()
}

fn ensure_site_id(conn: &Connection, ids: &dyn IdSource) -> Result<SiteId> {
    if let Some(site) = local_site_id(conn)? {
        return Ok(site);
    }
    let site = SiteId(ids.fresh_id());
    conn.execute(
        "INSERT INTO weft_sites(ordinal, site_id) VALUES (0, ?1)",
        [site.0.as_slice()],
    )?;
    Ok(site)
}

/// Moves changes held for `table` into it: they are taken out of the relay and merged again,
/// so registers for columns the table now has land in it and the rest go back to the relay.
fn materialize_relay(
    conn: &Connection,
    shared: &Shared,
    table: &str,
    batch_max: usize,
) -> Result<()> {
    let _merging = shared.merging();
    let mut state = shared.lock();
    let held: Vec<Change> = {
        let mut statement = conn.prepare(&format!(
            "SELECT {RELAY_COLUMNS} FROM weft_relay WHERE tbl = ?1"
        ))?;
        let mut rows = statement.query([table])?;
        let mut held = Vec::new();
        let mut names = changes::Names::default();
        while let Some(r) = rows.next()? {
            held.push(relay_change(conn, &mut state, &mut names, r)?);
        }
        held
    };
    if held.is_empty() {
        return Ok(());
    }
    let mut counters = meta::read_counters(conn)?;
    for change in &held {
        let key = crate::value::encode_key(&change.pk);
        counters.digest_sum.sub(&register_hash(
            table,
            &key,
            &change.slot(),
            &change.register(),
        ));
    }
    conn.execute("DELETE FROM weft_relay WHERE tbl = ?1", [table])?;
    meta::write_digest(conn, &counters.digest_sum, counters.digest_version)?;
    let stamp = state.begin(conn)?;
    for chunk in held.chunks(batch_max) {
        apply::apply_in_transaction(conn, &mut state, stamp, chunk, false)?;
    }
    Ok(())
}

/// Leaves out of `batch` the registers `filter` does not send, hashing each row once, and
/// moves a `done` batch's end to at least the filter's snapshot.
fn filter_registers(batch: &mut ChangeBatch, filter: &RowFilter) {
    let mut keep = Vec::with_capacity(batch.changes.len());
    for row in batch
        .changes
        .chunk_by(|a, b| a.table == b.table && a.pk == b.pk)
    {
        let mut hash = None;
        for change in row {
            let row_hash =
                || *hash.get_or_insert_with(|| crate::fingerprint::change_row_hash(change));
            keep.push(filter.sends(change.db_version, row_hash));
        }
    }
    let mut keep = keep.into_iter();
    batch.changes.retain(|_| keep.next().unwrap_or(true));
    if batch.done && batch.next.since < filter.through {
        batch.next = Cursor::since(filter.through);
    }
}

/// Whether the relay holds any register of `table`: a known table's relayed registers are
/// those of columns this replica's schema lacks, so most tables have none.
fn relay_holds_table(conn: &Connection, table: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM weft_relay WHERE tbl = ?1)")?
        .query_row([table], |r| r.get(0))?)
}

/// A row of a known table, as the digest fold meets it, and the relayed registers it may
/// have outlived. A local delete (or re-insert) raises the row's causal length in its clock
/// row without touching the relay, so registers relayed for columns this replica lacks can
/// belong to an older incarnation: dead state that a replica with those columns no longer
/// counts. A merge that changes the row drops them (`apply.rs`); the fold drops the rest.
struct StaleRelayed<'a> {
    table: &'a str,
    key: &'a [u8],
    cl: u64,
}

impl StaleRelayed<'_> {
    /// Takes the dead registers' shares out of `sum`, and deletes them when the fold is
    /// stored (`drop`); a fold inside the caller's transaction only computes.
    fn fold(
        &self,
        conn: &Connection,
        state: &mut connection::ConnState,
        names: &mut changes::Names,
        sum: &mut Digest,
        drop: bool,
    ) -> Result<()> {
        let cl = self.cl as i64;
        let mut select = conn.prepare_cached(&format!(
            "SELECT {RELAY_COLUMNS} FROM weft_relay WHERE tbl = ?1 AND pk = ?2 AND cl < ?3"
        ))?;
        let mut rows = select.query(rusqlite::params![self.table, self.key, cl])?;
        let mut found = false;
        while let Some(row) = rows.next()? {
            let change = relay_change(conn, state, names, row)?;
            sum.sub(&register_hash(
                self.table,
                self.key,
                &change.slot(),
                &change.register(),
            ));
            found = true;
        }
        if found && drop {
            conn.prepare_cached("DELETE FROM weft_relay WHERE tbl = ?1 AND pk = ?2 AND cl < ?3")?
                .execute(rusqlite::params![self.table, self.key, cl])?;
        }
        Ok(())
    }
}

/// Which rows a digest visit reads.
#[derive(Clone, Copy)]
enum FoldFrom {
    /// Rows changed after this checkpoint, replacing their contribution as of it.
    Checkpoint(u64),
    /// Every row, from nothing.
    Everything,
}

/// Calls `visit(state, key, cl, contribution, base)` for `schema`'s rows: those changed since the digest
/// checkpoint (with their contribution as of it, if they had one then), or all (in storage
/// order, with no base), until `visit` says stop. Returns whether it visited every row.
fn visit_table_rows(
    conn: &Connection,
    state: &mut connection::ConnState,
    schema: &TableSchema,
    from: FoldFrom,
    mut visit: impl FnMut(
        &mut connection::ConnState,
        &[Value],
        u64,
        Digest,
        Option<Digest>,
    ) -> ControlFlow<()>,
) -> Result<bool> {
    let (since, subtract_base) = match from {
        FoldFrom::Checkpoint(version) => (version as i64, true),
        FoldFrom::Everything => (-1, false),
    };
    // A full read walks the clock table itself, not the db_version index or run log (a seek
    // per row). From the checkpoint, with a run log, the rows the triggers wrote are in the
    // partial index, the others in the log (`crate::runs`).
    let columns = format!("{CLOCK_COLUMNS}, c.__weft_base");
    let queries = match (subtract_base, schema.run_log) {
        (true, true) => vec![
            schema.clock_join_select(
                &columns,
                "c.__weft_logged IS NULL AND c.__weft_db_version > ?1",
                "",
            ),
            schema.log_join_select(&columns, "r.first", "r.db_version > ?1", ""),
        ],
        (true, false) => vec![schema.clock_join_select(&columns, "c.__weft_db_version > ?1", "")],
        (false, _) => vec![schema.clock_join_select(&columns, "?1 IS NOT NULL", "")],
    };
    for sql in queries {
        if !visit_rows(conn, state, schema, &sql, since, subtract_base, &mut visit)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// [`visit_table_rows`] for the rows `sql` selects; false when `visit` said stop.
fn visit_rows(
    conn: &Connection,
    state: &mut connection::ConnState,
    schema: &TableSchema,
    sql: &str,
    since: i64,
    subtract_base: bool,
    visit: &mut impl FnMut(
        &mut connection::ConnState,
        &[Value],
        u64,
        Digest,
        Option<Digest>,
    ) -> ControlFlow<()>,
) -> Result<bool> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query([since])?;
    let key_count = schema.pk.len();
    while let Some(row) = rows.next()? {
        let key: Vec<Value> = (0..key_count)
            .map(|i| row.get(i))
            .collect::<rusqlite::Result<_>>()?;
        let stored = StoredClock::from_row(row, key_count)?;
        let base: Option<Vec<u8>> = row.get(key_count + CLOCK_COLUMN_COUNT)?;
        let values: Vec<Value> = (0..schema.columns.len())
            .map(|i| row.get(key_count + CLOCK_COLUMN_COUNT + 1 + i))
            .collect::<rusqlite::Result<_>>()?;
        let columns: Vec<(u32, &str, &Value)> = schema
            .column_ids
            .iter()
            .zip(&schema.columns)
            .zip(&values)
            .map(|((id, c), v)| (*id, c.name.as_str(), v))
            .collect();
        let contribution = hash_stored_row(conn, state, &schema.name, &key, &stored, &columns)?;
        let base = match (subtract_base, base) {
            (true, Some(base)) => Some(Digest::from_bytes(&base).ok_or_else(|| {
                Error::Corrupt(format!("{}: base digest is not 32 bytes", schema.name))
            })?),
            _ => None,
        };
        if visit(state, &key, stored.cl, contribution, base).is_break() {
            return Ok(false);
        }
    }
    Ok(true)
}
