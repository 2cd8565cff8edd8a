//! The [`Replica`] facade: one SQLite file with a site id, replicated tables and their clocks,
//! and every operation an app or the sync layer asks of it. The methods live beside what they
//! do: opening ([`open`]), [`Replica::write`] ([`write`](mod@write)), reading changes out
//! ([`changes_out`]), the digest ([`digest_fold`]), the relay's changes landing in a table
//! ([`relay_materialize`]) and the key-value table ([`kv`]); this file holds the rest.

mod changes_out;
mod digest_fold;
pub(crate) mod kv;
mod open;
mod relay_materialize;
mod write;

pub use changes_out::ChangeBatches;

use crate::engine::apply::ApplyReport;
use crate::engine::merge_batch::merge_batch;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::rules::change::{Change, CursorMove, PeerCursor};
use crate::rules::clock::{SharedWallClock, SystemClock};
use crate::rules::site::{Incarnation, RandomIds, SharedIdSource, SiteId};
use crate::storage::bookkeeping;
use crate::storage::commit_notices;
use crate::storage::crr;
use crate::storage::replica_connection::{finish, open_connection, ReplicaConnection};
use crate::storage::schema;
use crate::storage::sql_names::{quote, quoted_clock};
use crate::storage::transaction_state::ConnectionContext;
use open::BUILT_IN_TABLES;
use relay_materialize::materialize_relay;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use write::Writes;

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
    context: ConnectionContext,
    /// Who in this process hears of commits to this file.
    listeners: Arc<commit_notices::Listeners>,
    /// The identity of `conn` among the file's committers.
    origin: commit_notices::Origin,
    site_id: SiteId,
    path: PathBuf,
    options: Options,
    /// What [`Replica::write`] keeps between writes (boxed: most replicas never write so).
    writes: Box<Writes>,
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

impl Replica {
    /// The connection this replica uses; plain SQL through it is captured.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// A new connection to the same file with the SQL functions the triggers need.
    pub fn connect(&self) -> Result<ReplicaConnection> {
        let context = ConnectionContext::new(self.options.wall_clock.clone());
        Ok(open_connection(&self.path, &context)?.0)
    }

    /// Calls `callback` after every transaction committed to this file, in this process, by
    /// any connection but this replica's own [`Replica::connection`]: another `Replica` of the
    /// same file, or one from [`Replica::connect`]. It runs on the committing thread, after the
    /// commit is visible to readers, and must return quickly (wake a task, bump a counter).
    /// Commits by other processes are not reported. Dropping the subscription ends it.
    pub fn on_commit(
        &self,
        callback: impl Fn() + Send + Sync + 'static,
    ) -> commit_notices::CommitSubscription {
        commit_notices::subscribe(&self.listeners, self.origin, callback)
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
        let mut state = self.context.lock();
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
        self.write_transaction(|conn, context| {
            self.forget_rows_without_values(conn, table)?;
            crr::enable(conn, table)?;
            materialize_relay(
                conn,
                context,
                table,
                self.options.limits.changes_per_batch_max,
            )
        })
    }

    /// Forgets the rows of a replicated table whose values are gone
    /// ([`crr::forget_rows_without_values`]) and, if there were any, makes the digest again
    /// from every stored register: their share of the stored sum cannot be taken out without
    /// the values it was made of. Runs in the caller's write transaction, before it writes.
    pub(super) fn forget_rows_without_values(&self, conn: &Connection, table: &str) -> Result<()> {
        let forgotten = crr::forget_rows_without_values(conn, table)?;
        if forgotten == 0 {
            return Ok(());
        }
        let mut state = self.context.lock();
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
        bookkeeping::write_digest(conn, &sum, version)?;
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
        bookkeeping::replicated_table_names(&self.conn)
    }

    /// Merges a batch of changes in one transaction. Idempotent and commutative: applying the
    /// same changes again, or in another order, leaves the same state. A batch with an invalid
    /// change, or one the schema refuses (a STRICT column's type, a CHECK), is refused whole.
    /// The batch holds the write lock while it merges (at most `changes_per_batch_max`
    /// changes); callers applying many batches pause [`crate::PAUSE_BETWEEN_BATCHES`] between them.
    pub fn apply_changes(&self, batch: &[Change]) -> Result<ApplyReport> {
        self.check_batch_size(batch)?;
        self.write_transaction(|conn, context| merge_batch(conn, context, batch))
    }

    /// Merges a batch received from another replica and records, in the same transaction, how
    /// far into that replica's changes this one now is: a crash leaves both or neither.
    /// `how` says whether the cursor moves on from the stored one ([`CursorMove::Forward`]:
    /// never backwards) or replaces it after a start-over.
    pub fn apply_changes_from(
        &self,
        batch: &[Change],
        received: &PeerCursor,
        how: CursorMove,
    ) -> Result<ApplyReport> {
        self.check_batch_size(batch)?;
        self.write_transaction(|conn, context| {
            let report = merge_batch(conn, context, batch)?;
            let now_ms = context.lock().now_ms();
            bookkeeping::write_peer_cursor(conn, received, now_ms, how)?;
            if let Some(version) = report.db_version {
                bookkeeping::write_merged_from(conn, version, &received.site)?;
            }
            Ok(report)
        })
    }

    /// How far this replica has applied `site`'s changes, if it ever received any.
    pub fn peer_cursor(&self, site: &SiteId) -> Result<Option<PeerCursor>> {
        bookkeeping::peer_cursor(&self.conn, site)
    }

    /// The cursors of the replicas this one heard from most recently, newest first.
    pub fn recent_peer_cursors(&self, max: usize) -> Result<Vec<PeerCursor>> {
        bookkeeping::recent_peer_cursors(&self.conn, max)
    }

    /// This replica's incarnation: the identity of this life of its data.
    pub fn incarnation(&self) -> Result<Incarnation> {
        bookkeeping::incarnation(&self.conn)?
            .ok_or_else(|| Error::Corrupt("the replica has no incarnation".into()))
    }

    /// Starts a new life: other replicas' cursors into this one are no longer trusted, and
    /// they reconcile with it from the start. For a replica restored from a copy.
    pub fn renew_incarnation(&self) -> Result<Incarnation> {
        self.write_transaction(|conn, _| bookkeeping::renew_incarnation(conn, &*self.options.ids))
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
            far_future_clocks: self.context.lock().far_future_clocks(),
        })
    }

    /// The buckets of blobs: their replicated listing and this replica's record of the
    /// bytes its store holds.
    pub fn buckets(&self) -> crate::blobs::Buckets<'_> {
        crate::blobs::Buckets::new(self)
    }

    /// This replica's wall clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.context.lock().now_ms()
    }

    /// The built-in replicated key-value table.
    pub fn kv(&self) -> crate::replica::kv::Kv<'_> {
        crate::replica::kv::Kv::new(&self.conn)
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
            for name in bookkeeping::load_catalog(&self.conn)?.keys() {
                let in_table: i64 = self.conn.query_row(
                    &format!("SELECT count(*) FROM {}", quoted_clock(name)),
                    [],
                    |r| r.get(0),
                )?;
                rows += in_table;
            }
            Ok(rows as u64)
        })
    }

    /// Runs `work` on one consistent snapshot of this replica's connection.
    pub(crate) fn in_read_snapshot<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.read_transaction(work)
    }

    /// Runs `work` on one consistent snapshot: its own read transaction, or the caller's open one.
    pub(super) fn read_transaction<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
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
        work: impl FnOnce(&Connection, &ConnectionContext) -> Result<T>,
    ) -> Result<T> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("SAVEPOINT weft_write")?;
            let result = work(&self.conn, &self.context);
            match &result {
                Ok(_) => self.conn.execute_batch("RELEASE weft_write")?,
                Err(_) => self
                    .conn
                    .execute_batch("ROLLBACK TO weft_write; RELEASE weft_write")?,
            }
            return result;
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = work(&self.conn, &self.context);
        finish(&self.conn, result)
    }
}
