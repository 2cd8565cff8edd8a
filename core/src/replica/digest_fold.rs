//! The state digest of a replica: the stored sum brought up to date by folding in the rows
//! changed since its checkpoint, or made again from every stored register; and the visit of
//! every row's contribution that range-based reconciliation indexes.

use super::Replica;
use crate::engine::read_changes::{self, relay_change, RELAY_COLUMNS};
use crate::error::{Error, Result};
use crate::rules::digest::{register_hash, Digest};
use crate::rules::stored_clock::{StoredClock, CLOCK_COLUMNS, CLOCK_COLUMN_COUNT};
use crate::rules::stored_row_digest::hash_stored_row;
use crate::rules::value::{encode_key, Value};
use crate::storage::bookkeeping;
use crate::storage::replica_connection::finish;
use crate::storage::schema::{JoinSelect, TableSchema};
use crate::storage::transaction_state::ConnState;
use rusqlite::Connection;
use std::ops::ControlFlow;

impl Replica {
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
        let mut state = self.context.lock();
        state.refresh(&self.conn)?;
        let counters = bookkeeping::read_counters(&self.conn)?;
        let mut sum = counters.digest_sum;
        let mut names = read_changes::Names::default();
        for schema in bookkeeping::load_catalog(&self.conn)?.values() {
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
                            key: &encode_key(key),
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
            bookkeeping::write_digest(&self.conn, &sum, version)?;
            state.set_digest_version(version);
        }
        Ok(sum)
    }

    /// The state digest computed from every stored register, ignoring the maintained sum.
    /// Costs a full scan; equal to [`Replica::digest`] unless the replica's metadata is damaged.
    pub fn digest_from_scratch(&self) -> Result<Digest> {
        self.read_transaction(|| {
            let mut state = self.context.lock();
            state.refresh(&self.conn)?;
            self.sum_of_every_register(&mut state)
        })
    }

    /// The digest of every stored register, from a full scan.
    pub(super) fn sum_of_every_register(&self, state: &mut ConnState) -> Result<Digest> {
        let mut sum = Digest::ZERO;
        self.visit_rows_with(state, |_, _, contribution| {
            sum.add(&contribution);
            ControlFlow::Continue(())
        })?;
        Ok(sum)
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
        let mut state = self.context.lock();
        state.refresh(&self.conn)?;
        self.visit_rows_with(&mut state, visit)
    }

    fn visit_rows_with(
        &self,
        state: &mut ConnState,
        mut visit: impl FnMut(&str, &[u8], Digest) -> ControlFlow<()>,
    ) -> Result<bool> {
        for schema in bookkeeping::load_catalog(&self.conn)?.values() {
            let finished = visit_table_rows(
                &self.conn,
                state,
                schema,
                FoldFrom::Everything,
                |_, key, _, contribution, _| visit(&schema.name, &encode_key(key), contribution),
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
        let mut names = read_changes::Names::default();
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
/// counts. A merge that changes the row drops them (`engine/apply/`); the fold drops the rest.
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
        state: &mut ConnState,
        names: &mut read_changes::Names,
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
    state: &mut ConnState,
    schema: &TableSchema,
    from: FoldFrom,
    mut visit: impl FnMut(&mut ConnState, &[Value], u64, Digest, Option<Digest>) -> ControlFlow<()>,
) -> Result<bool> {
    let (since, subtract_base) = match from {
        FoldFrom::Checkpoint(version) => (version as i64, true),
        FoldFrom::Everything => (-1, false),
    };
    // A full read walks the clock table itself, not the db_version index or run log (a seek
    // per row). From the checkpoint, with a run log, the rows the triggers wrote are in the
    // partial index, the others in the log (`crate::storage::run_log`).
    let columns = format!("{CLOCK_COLUMNS}, c.__weft_base");
    let select = |filter: &'static str| JoinSelect {
        columns: &columns,
        filter,
        order: "",
    };
    let queries = match (subtract_base, schema.run_log) {
        (true, true) => vec![
            schema.clock_join_select(&select(
                "c.__weft_logged IS NULL AND c.__weft_db_version > ?1",
            )),
            schema.log_join_select("r.first", &select("r.db_version > ?1")),
        ],
        (true, false) => vec![schema.clock_join_select(&select("c.__weft_db_version > ?1"))],
        (false, _) => vec![schema.clock_join_select(&select("?1 IS NOT NULL"))],
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
    state: &mut ConnState,
    schema: &TableSchema,
    sql: &str,
    since: i64,
    subtract_base: bool,
    visit: &mut impl FnMut(&mut ConnState, &[Value], u64, Digest, Option<Digest>) -> ControlFlow<()>,
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
        let contribution = hash_stored_row(
            |ordinal| state.site(conn, ordinal),
            &schema.name,
            &key,
            &stored,
            &columns,
        )?;
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
