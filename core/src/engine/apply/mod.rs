//! Merging changes from elsewhere: one transaction per batch, idempotent and commutative.
//!
//! Changes are grouped by row. Each row's stored registers are loaded into a
//! [`RowState`], the pure merge rule runs, and only what changed is
//! written back: the base row (insert, update of the winning columns, or delete), the clock
//! row, and relay rows for columns or tables this replica's schema lacks. The state digest is
//! kept exact as it goes (see `rules/digest.rs` and `Replica::digest`).

mod load;
mod relay;
mod write;

use relay::RelayHeld;
use write::BaseRowWrite;

use crate::error::{Error, Result};
use crate::rules::change::Change;
use crate::rules::digest::{row_hash, Digest};
use crate::rules::merge::{Register, RowState, Slot};
use crate::rules::value::{encode_key, Value};
use crate::storage::bookkeeping;
use crate::storage::schema::TableSchema;
use crate::storage::sql_names::is_plain_identifier;
use crate::storage::transaction_state::{ConnState, TxnStamp};
use rusqlite::{CachedStatement, Connection};
// Keys are names and small enums looked up per change: foldhash, not SipHash, which was a
// measured share of a large merge.
use foldhash::HashMap;

/// What applying a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Changes that won and were stored.
    pub applied: usize,
    /// Changes that lost to what the replica already had (or repeated it).
    pub unchanged: usize,
    /// The db_version the batch was stored at, if anything changed.
    pub db_version: Option<u64>,
}

/// A row's registers as a list, in slot order, borrowed from its state.
type Registers<'a> = Vec<(&'a Slot, &'a Register)>;

/// Checks one change before anything is written.
pub(crate) fn validate(change: &Change) -> Result<()> {
    if !is_plain_identifier(&change.table) || change.table.contains("__weft") {
        return Err(invalid(change, "the table name is not a plain identifier"));
    }
    if let Some(column) = &change.column {
        if !is_plain_identifier(column) || column.starts_with("__weft") {
            return Err(invalid(change, "the column name is not a plain identifier"));
        }
    }
    validate_values(change)
}

fn invalid(change: &Change, reason: &str) -> Error {
    Error::InvalidChange {
        table: change.table.to_string(),
        reason: reason.to_owned(),
    }
}

/// The checks of [`validate`] that do not look at names (names are checked once per batch).
fn validate_values(change: &Change) -> Result<()> {
    if change.column.is_some() && change.cl.is_multiple_of(2) {
        return Err(invalid(
            change,
            "a column write carries an even causal length (a deleted row)",
        ));
    }
    if change.column.is_none() && change.value != Value::Null {
        return Err(invalid(change, "a row-existence change carries a value"));
    }
    if change.cl == 0 {
        return Err(invalid(change, "causal length 0"));
    }
    if change.pk.is_empty() {
        return Err(invalid(change, "empty primary key"));
    }
    if change.clock > i64::MAX as u64 || change.cl > i64::MAX as u64 {
        return Err(invalid(change, "clock or causal length out of range"));
    }
    if matches!(change.value, Value::Real(v) if v.is_nan()) {
        return Err(invalid(change, "NaN is not a SQLite value"));
    }
    Ok(())
}

/// Merges `changes` inside the caller's open transaction, with triggers already silenced.
pub(crate) fn apply_in_transaction(
    conn: &Connection,
    state: &mut ConnState,
    stamp: TxnStamp,
    changes: &[Change],
    stamp_is_fresh: bool,
) -> Result<ApplyReport> {
    let mut checked_names: foldhash::HashSet<(&str, Option<&str>)> = Default::default();
    for change in changes {
        if checked_names.insert((&*change.table, change.column.as_deref())) {
            validate(change)?;
        } else {
            validate_values(change)?;
        }
    }
    let catalog = bookkeeping::load_catalog(conn)?;
    let mut counters = bookkeeping::read_counters(conn)?;
    // Readers send a row's registers together; merging consecutive runs of one row needs no
    // map (a sorted map of every change was an eighth of merge time). A row that comes back
    // later in the batch is merged again, which the merge rule makes harmless.
    let groups = changes.chunk_by(|a, b| a.table == b.table && a.pk == b.pk);

    let now_ms = state.now_ms();
    let mut merger = Merger {
        conn,
        state,
        stamp,
        digest_version: counters.digest_version,
        digest: counters.digest_sum,
        relay_tables: HashMap::default(),
        table_ids: HashMap::default(),
        key_max: HashMap::default(),
        statements: HashMap::default(),
        logged: Vec::new(),
        now_ms,
        report: ApplyReport::default(),
    };
    for group in groups {
        let table = &*group[0].table;
        let key_bytes = encode_key(&group[0].pk);
        match catalog.get(table) {
            Some(schema) => merger.known_row(schema, &key_bytes, group)?,
            None => merger.relay_row(table, &key_bytes, group)?,
        }
    }
    for (table, mut keys) in std::mem::take(&mut merger.logged).into_iter().flatten() {
        let rows = keys.len() as u64;
        crate::storage::run_log::append_keys(conn, &table, stamp.db_version, &mut keys)?;
        keys.dedup(); // sorted by append_keys; a row merged twice in the batch is listed twice
        merger
            .state
            .sweeps
            .after_write(conn, &table, stamp.db_version, rows, &keys)?;
    }
    let report = merger.report;
    if report.applied > 0 {
        counters.digest_sum = merger.digest;
        // When every earlier row was folded in (the checkpoint is the last commit) and this
        // transaction wrote nothing but this merge, the sum is exact through this version and
        // every row above the checkpoint has its contribution recorded: move the checkpoint,
        // so the next `digest()` need not re-hash what was merged (a large download).
        let checkpoint = if stamp_is_fresh && counters.digest_version + 1 == stamp.db_version {
            merger.state.set_digest_version(stamp.db_version);
            stamp.db_version
        } else {
            counters.digest_version
        };
        bookkeeping::write_digest(conn, &counters.digest_sum, checkpoint)?;
        bookkeeping::write_clock_floor(conn, merger.state.clock_last(), stamp.db_version)?;
    }
    Ok(ApplyReport {
        db_version: (report.applied > 0).then_some(stamp.db_version),
        ..report
    })
}

struct Merger<'a> {
    conn: &'a Connection,
    state: &'a mut ConnState,
    stamp: TxnStamp,
    digest_version: u64,
    digest: Digest,
    relay_tables: HashMap<String, bool>,
    table_ids: HashMap<String, u32>,
    /// Per table id: the largest key of its clock rows, if it is an integer (see
    /// [`Merger::above_every_key`]).
    key_max: HashMap<u32, Option<i64>>,
    statements: HashMap<SqlKey, CachedStatement<'a>>,
    /// Per table id: the table's name and the keys of the clock rows written, for a table
    /// with a run log (`crate::storage::run_log`).
    logged: Vec<Option<(String, Vec<i64>)>>,
    now_ms: u64,
    report: ApplyReport,
}

/// Which statement, for which table (its id in this batch), writing which columns: the key
/// of the prepared statements a batch keeps, so each is built and looked up once per batch,
/// not once per row (building the SQL text, and hashing it to find the statement, was a
/// measured share of merge time).
#[derive(Clone, PartialEq, Eq, Hash)]
enum SqlKey {
    Delete(u32),
    Insert(u32, ColumnSet),
    Update(u32, ColumnSet),
    Clock(u32),
    NewClock(u32),
    LoadClock(u32),
    LoadValues(u32),
    RelayLoad,
    RelayDelete,
    RelayUpsert,
    RelayInsert,
}

/// A set of column positions: a bit mask for tables of up to 128 columns.
#[derive(Clone, PartialEq, Eq, Hash)]
enum ColumnSet {
    Mask(u128),
    List(Vec<u16>),
}

impl ColumnSet {
    fn of(positions: &[usize]) -> ColumnSet {
        if positions.iter().all(|p| *p < 128) {
            ColumnSet::Mask(positions.iter().fold(0u128, |m, p| m | (1u128 << p)))
        } else {
            ColumnSet::List(positions.iter().map(|p| *p as u16).collect())
        }
    }
}

impl<'a> Merger<'a> {
    /// The batch's prepared statement for `key`, prepared from `build()` the first time.
    fn statement(
        &mut self,
        key: SqlKey,
        build: impl FnOnce() -> String,
    ) -> Result<&mut CachedStatement<'a>> {
        let conn = self.conn;
        Ok(match self.statements.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(conn.prepare_cached(&build())?)
            }
        })
    }

    /// A small number for `table`, stable within the batch.
    fn table_id(&mut self, table: &str) -> u32 {
        if let Some(id) = self.table_ids.get(table) {
            return *id;
        }
        let id = self.table_ids.len() as u32;
        self.table_ids.insert(table.to_owned(), id);
        id
    }

    fn merge_into(&mut self, row: &mut RowState, group: &[Change]) -> Result<()> {
        for change in group {
            self.state.observe(change.clock, &change.site, self.now_ms);
            match row.merge(
                change.slot(),
                change.stamp(),
                change.value.clone(),
                self.stamp.db_version,
            ) {
                crate::rules::merge::MergeOutcome::Unchanged => self.report.unchanged += 1,
                _ => self.report.applied += 1,
            }
        }
        Ok(())
    }

    fn known_row(
        &mut self,
        schema: &TableSchema,
        key_bytes: &[u8],
        group: &[Change],
    ) -> Result<()> {
        let key = &group[0].pk;
        if key.len() != schema.pk.len() {
            return Err(Error::InvalidChange {
                table: schema.name.clone(),
                reason: format!(
                    "the primary key has {} values, the table's has {}",
                    key.len(),
                    schema.pk.len()
                ),
            });
        }
        let existing = self.load_known(schema, key)?;
        let mut row = RowState::default();
        let (old_stored, old_base, present_before) = match &existing {
            Some(found) => {
                row = found.row.clone();
                (Some(found.stored.clone()), found.base, found.present)
            }
            None => (None, None, false),
        };
        let mut relay_held = RelayHeld::default();
        if self.has_relay_rows(&schema.name)? {
            relay_held = self.load_relay(&schema.name, key_bytes, &mut row)?;
        }
        let before = row.clone();
        self.merge_into(&mut row, group)?;
        if row == before {
            return Ok(());
        }
        self.drop_stale_relay(&schema.name, key_bytes, &relay_held.stale)?;
        let is_known = |slot: &Slot| match slot {
            Slot::Row => true,
            Slot::Column(name) => schema.column_index(name).is_some(),
        };
        fn split<'s>(
            state: &'s RowState,
            is_known: &dyn Fn(&Slot) -> bool,
        ) -> (Registers<'s>, Registers<'s>) {
            state.registers.iter().partition(|(slot, _)| is_known(slot))
        }
        let (old_known, old_relay) = split(&before, &is_known);
        let (new_known, new_relay) = split(&row, &is_known);
        if old_relay != new_relay {
            self.store_relay(
                &schema.name,
                key_bytes,
                &old_relay,
                &new_relay,
                relay_held.any,
            )?;
        }
        if old_known == new_known && before.cl == row.cl {
            return Ok(());
        }
        let base_write = BaseRowWrite::from_presence(present_before, row.is_present());
        self.write_base_row(schema, key, &old_known, &new_known, base_write)?;
        let new_hash = row_hash(
            &schema.name,
            key_bytes,
            new_known.iter().map(|(s, r)| (*s, *r)),
        );
        let old_contribution = match &old_stored {
            None => Digest::ZERO,
            Some(stored) if stored.row.db_version <= self.digest_version => row_hash(
                &schema.name,
                key_bytes,
                old_known.iter().map(|(s, r)| (*s, *r)),
            ),
            Some(_) => old_base.unwrap_or(Digest::ZERO),
        };
        self.digest.add(&new_hash);
        self.digest.sub(&old_contribution);
        let had_clock_row = old_stored.is_some();
        self.write_clock_row(schema, key, row.cl, &new_known, &new_hash, had_clock_row)
    }
}
