//! [`Replica::write`]: one write transaction on a connection of its own, recorded below the
//! triggers ([`crate::engine::capture`]) when every trigger in the database is Weft's.

use super::Replica;
use crate::engine::capture;
use crate::error::{Error, Result};
use crate::storage::replica_connection::{finish, open_connection, ReplicaConnection};
use crate::storage::transaction_state::ConnectionContext;
use rusqlite::Connection;

impl Replica {
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
    /// must not change inside it. At most [`crate::Limits::write_rows_max`] rows may change.
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
            let context = ConnectionContext::new(self.options.wall_clock.clone());
            let (conn, _, _) = open_connection(&self.path, &context)?;
            *slot = Some(Writer {
                conn,
                context,
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
            let rollbacks = writer.context.rollbacks();
            let _refused = writer.context.refuse_commits();
            if writer.triggers_on {
                // The triggers record, as for plain SQL.
                let outcome = work(conn);
                capture::check_transaction_kept(conn, &writer.context, rollbacks, &outcome)?;
                return outcome;
            }
            capture::record(
                conn,
                &writer.context,
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
pub(super) struct Writes {
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
    context: ConnectionContext,
    triggers_on: bool,
}
