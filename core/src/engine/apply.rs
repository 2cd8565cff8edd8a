//! Merging changes from elsewhere: one transaction per batch, idempotent and commutative.
//!
//! Changes are grouped by row. Each row's stored registers are loaded into a
//! [`RowState`](crate::rules::merge::RowState), the pure merge rule runs, and only what changed is
//! written back: the base row (insert, update of the winning columns, or delete), the clock
//! row, and relay rows for columns or tables this replica's schema lacks. The state digest is
//! kept exact as it goes (see `digest.rs` and `Replica::digest`).

use crate::error::{Error, Result};
use crate::rules::change::Change;
use crate::rules::digest::{register_hash, row_hash, Digest};
use crate::rules::merge::{Register, RowState, Slot, Stamp};
use crate::rules::stored_clock::{
    StoredClock, StoredStamp, CLOCK_COLUMNS, CLOCK_COLUMN_COUNT, ROW_SLOT_ID,
};
use crate::rules::value::{encode_key, Value};
use crate::storage::bookkeeping::{self, RELAY_ROW_SLOT};
use crate::storage::schema::TableSchema;
use crate::storage::sql_names::{is_plain_identifier, quote, quoted_clock};
use crate::storage::transaction_state::{ConnState, TxnStamp};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension, ToSql};
// Keys are names and small enums looked up per change: foldhash, not SipHash, which was a
// measured share of a large merge.
use foldhash::HashMap;
use std::collections::BTreeMap;

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

/// What the relay holds of one row ([`Merger::load_relay`]).
#[derive(Default)]
struct RelayHeld {
    /// Whether it holds any register of the row.
    any: bool,
    /// Registers of an older incarnation than the row's, left out of its state.
    stale: Vec<(Slot, Register)>,
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

/// What a merge does to a row of the base table, from whether the table held it before the
/// merge and whether the merged row is present (two bools a caller could swap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BaseRowWrite {
    /// Absent before and after: nothing to write.
    Nothing,
    /// Absent before, present after.
    Insert,
    /// Present before and after: the columns whose values changed are written.
    Update,
    /// Present before, absent after.
    Delete,
}

impl BaseRowWrite {
    fn from_presence(present_before: bool, present_after: bool) -> BaseRowWrite {
        match (present_before, present_after) {
            (false, false) => BaseRowWrite::Nothing,
            (false, true) => BaseRowWrite::Insert,
            (true, true) => BaseRowWrite::Update,
            (true, false) => BaseRowWrite::Delete,
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

    fn has_relay_rows(&mut self, table: &str) -> Result<bool> {
        if let Some(has) = self.relay_tables.get(table) {
            return Ok(*has);
        }
        let has: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM weft_relay WHERE tbl = ?1)",
            [table],
            |r| r.get(0),
        )?;
        self.relay_tables.insert(table.to_owned(), has);
        Ok(has)
    }

    /// Merges the registers the relay holds for the row into `row`, and says what it holds.
    fn load_relay(
        &mut self,
        table: &str,
        key_bytes: &[u8],
        row: &mut RowState,
    ) -> Result<RelayHeld> {
        let conn = self.conn;
        let mut found = Vec::new();
        {
            let statement = self.statement(SqlKey::RelayLoad, || {
                "SELECT col, cl, clock, site, db_version, value FROM weft_relay WHERE tbl = ?1 AND pk = ?2".into()
            })?;
            let mut rows = statement.query(params![table, key_bytes])?;
            while let Some(r) = rows.next()? {
                found.push((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u32,
                    r.get::<_, i64>(4)? as u64,
                    r.get::<_, Value>(5)?,
                ));
            }
        }
        let any = !found.is_empty();
        let mut loaded = Vec::with_capacity(found.len());
        for (column, cl, clock, ordinal, db_version, value) in found {
            let register = Register {
                stamp: Stamp {
                    cl,
                    clock,
                    site: self.state.site(conn, ordinal)?,
                },
                value,
                db_version,
            };
            let slot = if column == RELAY_ROW_SLOT {
                Slot::Row
            } else {
                Slot::Column(column.into())
            };
            loaded.push((slot, register));
        }
        // Registers of one row share a causal length; the largest wins if storage disagrees,
        // and registers of older incarnations (stored or relayed) are left out of the row.
        let cl = loaded
            .iter()
            .map(|(_, r)| r.stamp.cl)
            .fold(row.cl, u64::max);
        if cl > row.cl {
            row.cl = cl;
            row.registers.retain(|_, r| r.stamp.cl >= cl);
        }
        let (current, stale) = loaded.into_iter().partition(|(_, r)| r.stamp.cl == cl);
        row.registers.extend::<Vec<(Slot, Register)>>(current);
        Ok(RelayHeld { any, stale })
    }

    /// Removes relayed registers of an older incarnation of the row than its own (a local
    /// delete raises a row's causal length without touching the relay) and their share of
    /// the digest. Only inside a merge that changes the row, which writes the digest.
    fn drop_stale_relay(
        &mut self,
        table: &str,
        key_bytes: &[u8],
        stale: &[(Slot, Register)],
    ) -> Result<()> {
        for (slot, register) in stale {
            self.digest
                .sub(&register_hash(table, key_bytes, slot, register));
            self.delete_relayed(table, key_bytes, slot)?;
        }
        Ok(())
    }

    /// Deletes one relayed register (its digest share is the caller's to take away).
    fn delete_relayed(&mut self, table: &str, key_bytes: &[u8], slot: &Slot) -> Result<()> {
        self.statement(SqlKey::RelayDelete, || {
            "DELETE FROM weft_relay WHERE tbl = ?1 AND pk = ?2 AND col = ?3".into()
        })?
        .execute(params![table, key_bytes, relay_column(slot)])?;
        Ok(())
    }

    /// Writes back relay registers that changed, keeping the digest exact.
    fn store_relay(
        &mut self,
        table: &str,
        key_bytes: &[u8],
        old: &[(&Slot, &Register)],
        new: &[(&Slot, &Register)],
        held: bool,
    ) -> Result<()> {
        for (slot, register) in old {
            if !new.iter().any(|(s, r)| s == slot && r == register) {
                self.digest
                    .sub(&register_hash(table, key_bytes, slot, register));
                if !new.iter().any(|(s, _)| s == slot) {
                    self.delete_relayed(table, key_bytes, slot)?;
                }
            }
        }
        for (slot, register) in new {
            if old.iter().any(|(s, r)| s == slot && r == register) {
                continue;
            }
            self.digest
                .add(&register_hash(table, key_bytes, slot, register));
            let ordinal = self.state.ordinal(self.conn, &register.stamp.site)?;
            // A row the relay holds nothing of goes in with INSERT OR IGNORE: no statement
            // journal (see `write_clock_row`); the change count asserts nothing was ignored.
            // Otherwise OR REPLACE: the relay may hold registers `old` leaves out (an older
            // causal length), which the new ones replace.
            let (key, verb) = if held {
                (SqlKey::RelayUpsert, "INSERT OR REPLACE")
            } else {
                (SqlKey::RelayInsert, "INSERT OR IGNORE")
            };
            let written = self
                .statement(key, || {
                    format!(
                        "{verb} INTO weft_relay(tbl, pk, col, cl, clock, site, db_version, value) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    )
                })?
                .execute(params![
                    table,
                    key_bytes,
                    relay_column(slot),
                    register.stamp.cl as i64,
                    register.stamp.clock as i64,
                    ordinal,
                    register.db_version as i64,
                    register.value
                ])?;
            if written != 1 {
                return Err(Error::Corrupt(format!(
                    "{table}: a relayed register appeared between reading and writing it"
                )));
            }
        }
        let holds = !new.is_empty() || self.relay_tables.get(table) == Some(&true);
        if self.relay_tables.get(table) != Some(&holds) {
            self.relay_tables.insert(table.to_owned(), holds);
        }
        Ok(())
    }

    fn relay_row(&mut self, table: &str, key_bytes: &[u8], group: &[Change]) -> Result<()> {
        let mut row = RowState::default();
        let held = self.load_relay(table, key_bytes, &mut row)?;
        let before = row.clone();
        self.merge_into(&mut row, group)?;
        let old: Registers = before.registers.iter().collect();
        let new: Registers = row.registers.iter().collect();
        if new != old {
            self.drop_stale_relay(table, key_bytes, &held.stale)?;
            self.store_relay(table, key_bytes, &old, &new, held.any)?;
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

    fn write_base_row(
        &mut self,
        schema: &TableSchema,
        key: &[Value],
        old: &[(&Slot, &Register)],
        new: &[(&Slot, &Register)],
        write: BaseRowWrite,
    ) -> Result<()> {
        let table = || quote(&schema.name);
        let id = self.table_id(&schema.name);
        match write {
            BaseRowWrite::Nothing => return Ok(()),
            BaseRowWrite::Delete => {
                self.statement(SqlKey::Delete(id), || {
                    format!("DELETE FROM {} WHERE {}", table(), schema.key_match())
                })?
                .execute(rusqlite::params_from_iter(key))?;
                return Ok(());
            }
            BaseRowWrite::Insert | BaseRowWrite::Update => {}
        }
        let mut changed: Vec<(usize, &Value)> = Vec::with_capacity(new.len());
        for (slot, register) in new {
            let Slot::Column(name) = slot else { continue };
            let unchanged = write == BaseRowWrite::Update
                && old
                    .iter()
                    .any(|(s, r)| s == slot && r.value == register.value);
            if unchanged {
                continue;
            }
            let position = schema.column_index(name).ok_or_else(|| {
                Error::Corrupt(format!("{}: no column {name:?} to write", schema.name))
            })?;
            changed.push((position, &register.value));
        }
        // Bound by reference: cloning every value into an owned parameter was a large share
        // of merge time.
        let mut params: Vec<&dyn ToSql> = key.iter().map(|v| v as &dyn ToSql).collect();
        params.extend(changed.iter().map(|(_, v)| *v as &dyn ToSql));
        let positions: Vec<usize> = changed.iter().map(|(p, _)| *p).collect();
        let names = || positions.iter().map(|p| schema.columns[*p].name.as_str());
        if write == BaseRowWrite::Insert {
            self.statement(SqlKey::Insert(id, ColumnSet::of(&positions)), || {
                let mut columns: Vec<String> = schema.pk.iter().map(|c| quote(&c.name)).collect();
                columns.extend(names().map(quote));
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    table(),
                    columns.join(", "),
                    marks.join(", ")
                )
            })?
            .execute(rusqlite::params_from_iter(params))?;
        } else if !changed.is_empty() {
            self.statement(SqlKey::Update(id, ColumnSet::of(&positions)), || {
                let sets: Vec<String> = names()
                    .enumerate()
                    .map(|(i, n)| format!("{} = ?{}", quote(n), key.len() + i + 1))
                    .collect();
                format!(
                    "UPDATE {} SET {} WHERE {}",
                    table(),
                    sets.join(", "),
                    schema.key_match()
                )
            })?
            .execute(rusqlite::params_from_iter(params))?;
        }
        Ok(())
    }

    fn write_clock_row(
        &mut self,
        schema: &TableSchema,
        key: &[Value],
        cl: u64,
        registers: &[(&Slot, &Register)],
        hash: &Digest,
        replaces: bool,
    ) -> Result<()> {
        let mut entries = Vec::with_capacity(registers.len());
        for (slot, register) in registers {
            let id = match slot {
                Slot::Row => ROW_SLOT_ID,
                Slot::Column(name) => {
                    schema.column_ids[schema
                        .column_index(name)
                        .expect("split keeps known columns")]
                }
            };
            let site = self.state.ordinal(self.conn, &register.stamp.site)?;
            entries.push((
                id,
                StoredStamp {
                    clock: register.stamp.clock,
                    site,
                    db_version: register.db_version,
                },
            ));
        }
        let Some(stored) = StoredClock::compress(cl, entries, &schema.column_ids) else {
            return Err(Error::Corrupt(format!(
                "{}: a changed row has no registers",
                schema.name
            )));
        };
        let id = self.table_id(&schema.name);
        // A new clock row goes in with INSERT OR IGNORE, not OR REPLACE: a statement that
        // writes two B-trees (the row and its db_version index, where it has one) and may
        // abort gets a statement journal, which copied every page it touched (a tenth of a
        // large merge's time); one that ignores conflicts cannot abort. The row was just found missing in
        // this write transaction, so nothing is ignored, which the change count asserts.
        let (sql_key, verb) = if replaces {
            (SqlKey::Clock(id), "INSERT OR REPLACE")
        } else {
            (SqlKey::NewClock(id), "INSERT OR IGNORE")
        };
        let statement = self.statement(sql_key, || {
            let mut columns: Vec<String> = schema.pk.iter().map(|c| quote(&c.name)).collect();
            columns.extend(
                [
                    "__weft_cl",
                    "__weft_clock",
                    "__weft_site",
                    "__weft_db_version",
                    "__weft_cells",
                    "__weft_base",
                ]
                .map(String::from),
            );
            let mut marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
            if schema.run_log {
                // Found through the run log, which the merge writes (`crate::storage::run_log`).
                columns.push("__weft_logged".into());
                marks.push("1".into());
            }
            format!(
                "{verb} INTO {} ({}) VALUES ({})",
                quoted_clock(&schema.name),
                columns.join(", "),
                marks.join(", ")
            )
        })?;
        let numbers = [
            stored.cl as i64,
            stored.row.clock as i64,
            i64::from(stored.row.site),
            stored.row.db_version as i64,
        ];
        let hash_bytes = hash.to_bytes();
        let mut params: Vec<&dyn ToSql> = key.iter().map(|v| v as &dyn ToSql).collect();
        params.extend(numbers.iter().map(|n| n as &dyn ToSql));
        params.push(&stored.cells);
        params.push(&hash_bytes);
        let written = statement.execute(rusqlite::params_from_iter(params))?;
        if written != 1 {
            return Err(Error::Corrupt(format!(
                "{}: a clock row appeared between reading and writing it",
                schema.name
            )));
        }
        self.wrote_key(id, key);
        if schema.run_log {
            // The key as stored: the rowid the statement just wrote.
            let rowid = self.conn.last_insert_rowid();
            let index = id as usize;
            if self.logged.len() <= index {
                self.logged.resize_with(index + 1, || None);
            }
            self.logged[index]
                .get_or_insert_with(|| (schema.name.clone(), Vec::new()))
                .1
                .push(rowid);
        }
        Ok(())
    }
}

fn relay_column(slot: &Slot) -> &str {
    match slot {
        Slot::Row => RELAY_ROW_SLOT,
        Slot::Column(name) => name,
    }
}

/// A stored row of a replicated table, as registers with their values.
pub(crate) struct KnownRow {
    pub row: RowState,
    pub stored: StoredClock,
    pub base: Option<Digest>,
    pub present: bool,
}

impl<'a> Merger<'a> {
    /// Whether `key` is an integer above every key of the table's clock rows, so that the
    /// row cannot exist yet: a download of rows appended in key order then skips a lookup
    /// per row. Only for single-column keys whose largest stored value is an integer (every
    /// stored key then sorts at or below it); read once per batch, then raised as new clock
    /// rows are written.
    fn above_every_key(&mut self, schema: &TableSchema, id: u32, key: &[Value]) -> Result<bool> {
        let ([Value::Integer(wanted)], [pk]) = (key, schema.pk.as_slice()) else {
            return Ok(false);
        };
        let largest = match self.key_max.get(&id) {
            Some(largest) => *largest,
            None => {
                let stored: Value = self.conn.query_row(
                    &format!(
                        "SELECT max({}) FROM {}",
                        quote(&pk.name),
                        quoted_clock(&schema.name)
                    ),
                    [],
                    |r| r.get(0),
                )?;
                let largest = match stored {
                    // An empty table: every integer is above its keys.
                    Value::Null => Some(i64::MIN),
                    Value::Integer(v) => Some(v),
                    _ => None,
                };
                self.key_max.insert(id, largest);
                largest
            }
        };
        Ok(largest.is_some_and(|largest| *wanted > largest))
    }

    /// Records a clock row written for `key`, keeping [`Merger::above_every_key`] exact. A
    /// key that is not an integer (text or a real that the column's affinity may store as
    /// one) ends the skipping for the rest of the batch.
    fn wrote_key(&mut self, id: u32, key: &[Value]) {
        if let Some(Some(largest)) = self.key_max.get_mut(&id) {
            match key {
                [Value::Integer(written)] => *largest = (*largest).max(*written),
                _ => {
                    self.key_max.insert(id, None);
                }
            }
        }
    }
}

/// Loads a stored row: its clock row, then (if it has one) its base row. Two plain key
/// lookups, not a join: SQLite re-planned a LEFT JOIN keyed by a bound value on every
/// execution (measured: every call re-prepared, a third of merge time).
impl<'a> Merger<'a> {
    fn load_known(&mut self, schema: &TableSchema, key: &[Value]) -> Result<Option<KnownRow>> {
        let conn = self.conn;
        let id = self.table_id(&schema.name);
        if self.above_every_key(schema, id, key)? {
            return Ok(None);
        }
        let found = self
            .statement(SqlKey::LoadClock(id), || {
                format!(
                    "SELECT {CLOCK_COLUMNS}, c.__weft_base FROM {} c WHERE {}",
                    quoted_clock(&schema.name),
                    schema.key_match(),
                )
            })?
            .query_row(rusqlite::params_from_iter(key), |r| {
                let stored = StoredClock::from_row(r, 0)?;
                Ok((stored, r.get::<_, Option<Vec<u8>>>(CLOCK_COLUMN_COUNT)?))
            })
            .optional()?;
        let Some((stored, base)) = found else {
            return Ok(None);
        };
        let values: Option<Vec<Value>> = self
            .statement(SqlKey::LoadValues(id), || {
                let columns = if schema.columns.is_empty() {
                    "1".to_owned()
                } else {
                    schema
                        .columns
                        .iter()
                        .map(|c| quote(&c.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!(
                    "SELECT {columns} FROM {} WHERE {}",
                    quote(&schema.name),
                    schema.key_match()
                )
            })?
            .query_row(rusqlite::params_from_iter(key), |r| {
                (0..schema.columns.len()).map(|i| r.get(i)).collect()
            })
            .optional()?;
        let present = values.is_some();
        let values = values.unwrap_or_else(|| vec![Value::Null; schema.columns.len()]);
        let base = match base {
            None => None,
            Some(bytes) => Some(Digest::from_bytes(&bytes).ok_or_else(|| {
                Error::Corrupt(format!("{}: base digest is not 32 bytes", schema.name))
            })?),
        };
        let mut row = RowState {
            cl: stored.cl,
            registers: BTreeMap::new(),
        };
        for (id, stamp) in stored.expand(&schema.column_ids)? {
            let site = self.state.site(conn, stamp.site)?;
            let (slot, value) = if id == ROW_SLOT_ID {
                (Slot::Row, Value::Null)
            } else {
                let index = schema.position_of_id(id)?;
                (
                    Slot::Column(schema.columns[index].name.as_str().into()),
                    values[index].clone(),
                )
            };
            row.registers.insert(
                slot,
                Register {
                    stamp: Stamp {
                        cl: stored.cl,
                        clock: stamp.clock,
                        site,
                    },
                    value,
                    db_version: stamp.db_version,
                },
            );
        }
        Ok(Some(KnownRow {
            row,
            stored,
            base,
            present,
        }))
    }
}
