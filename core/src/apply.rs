//! Merging changes from elsewhere: one transaction per batch, idempotent and commutative.
//!
//! Changes are grouped by row. Each row's stored registers are loaded into a
//! [`RowState`](crate::merge::RowState), the pure merge rule runs, and only what changed is
//! written back: the base row (insert, update of the winning columns, or delete), the clock
//! row, and relay rows for columns or tables this replica's schema lacks. The state digest is
//! kept exact as it goes (see `digest.rs` and `Replica::digest`).

use crate::cells::{StoredClock, StoredStamp, ROW_SLOT_ID};
use crate::changes::Change;
use crate::connection::{quoted_clock, ConnState, TxnStamp};
use crate::digest::{register_hash, row_hash, Digest};
use crate::error::{Error, Result};
use crate::merge::{Register, RowState, Slot, Stamp};
use crate::meta::{self, RELAY_ROW_SLOT};
use crate::schema::{is_plain_identifier, quote, TableSchema};
use crate::value::{encode_key, Value};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap};

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

/// Checks one change before anything is written.
pub(crate) fn validate(change: &Change) -> Result<()> {
    let invalid = |reason: &str| Error::InvalidChange { table: change.table.clone(), reason: reason.to_owned() };
    if !is_plain_identifier(&change.table) || change.table.contains("__weft") {
        return Err(invalid("the table name is not a plain identifier"));
    }
    if let Some(column) = &change.column {
        if !is_plain_identifier(column) || column.starts_with("__weft") {
            return Err(invalid("the column name is not a plain identifier"));
        }
        if change.cl % 2 == 0 {
            return Err(invalid("a column write carries an even causal length (a deleted row)"));
        }
    } else if change.value != Value::Null {
        return Err(invalid("a row-existence change carries a value"));
    }
    if change.cl == 0 {
        return Err(invalid("causal length 0"));
    }
    if change.pk.is_empty() {
        return Err(invalid("empty primary key"));
    }
    if change.clock > i64::MAX as u64 || change.cl > i64::MAX as u64 {
        return Err(invalid("clock or causal length out of range"));
    }
    if let Value::Real(v) = change.value {
        if v.is_nan() {
            return Err(invalid("NaN is not a SQLite value"));
        }
    }
    Ok(())
}

/// Merges `changes` inside the caller's open transaction, with triggers already silenced.
pub(crate) fn apply_in_transaction(
    conn: &Connection,
    state: &mut ConnState,
    stamp: TxnStamp,
    changes: &[Change],
) -> Result<ApplyReport> {
    for change in changes {
        validate(change)?;
    }
    let catalog = meta::load_catalog(conn)?;
    let mut counters = meta::read_counters(conn)?;
    let mut groups: BTreeMap<(&str, Vec<u8>), Vec<&Change>> = BTreeMap::new();
    for change in changes {
        groups.entry((change.table.as_str(), encode_key(&change.pk))).or_default().push(change);
    }
    let mut merger = Merger {
        conn,
        state,
        stamp,
        digest_version: counters.digest_version,
        digest: counters.digest_sum,
        relay_tables: HashMap::new(),
        report: ApplyReport::default(),
    };
    for ((table, key_bytes), group) in groups {
        match catalog.get(table) {
            Some(schema) => merger.known_row(schema, &key_bytes, &group)?,
            None => merger.relay_row(table, &key_bytes, &group)?,
        }
    }
    let report = merger.report;
    if report.applied > 0 {
        counters.digest_sum = merger.digest;
        meta::write_digest(conn, &counters.digest_sum, counters.digest_version)?;
        meta::write_clock_floor(conn, merger.state.clock_last(), stamp.db_version)?;
    }
    Ok(ApplyReport { db_version: (report.applied > 0).then_some(stamp.db_version), ..report })
}

struct Merger<'a> {
    conn: &'a Connection,
    state: &'a mut ConnState,
    stamp: TxnStamp,
    digest_version: u64,
    digest: Digest,
    relay_tables: HashMap<String, bool>,
    report: ApplyReport,
}

impl Merger<'_> {
    fn merge_into(&mut self, row: &mut RowState, group: &[&Change]) -> Result<()> {
        for change in group {
            let site = change.site;
            self.state.observe(change.clock, &site);
            let slot = change.column.clone().map_or(Slot::Row, Slot::Column);
            let stamp = Stamp { cl: change.cl, clock: change.clock, site };
            match row.merge(slot, stamp, change.value.clone(), self.stamp.db_version) {
                crate::merge::MergeOutcome::Unchanged => self.report.unchanged += 1,
                _ => self.report.applied += 1,
            }
        }
        Ok(())
    }

    fn has_relay_rows(&mut self, table: &str) -> Result<bool> {
        if let Some(has) = self.relay_tables.get(table) {
            return Ok(*has);
        }
        let has: bool = self.conn.query_row("SELECT EXISTS(SELECT 1 FROM weft_relay WHERE tbl = ?1)", [table], |r| r.get(0))?;
        self.relay_tables.insert(table.to_owned(), has);
        Ok(has)
    }

    fn load_relay(&mut self, table: &str, key_bytes: &[u8], row: &mut RowState) -> Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT col, cl, clock, site, db_version, value FROM weft_relay WHERE tbl = ?1 AND pk = ?2",
        )?;
        let mut rows = statement.query(params![table, key_bytes])?;
        while let Some(r) = rows.next()? {
            let column: String = r.get(0)?;
            let ordinal = r.get::<_, i64>(3)? as u32;
            let register = Register {
                stamp: Stamp { cl: r.get::<_, i64>(1)? as u64, clock: r.get::<_, i64>(2)? as u64, site: self.state.site(self.conn, ordinal)? },
                value: r.get(5)?,
                db_version: r.get::<_, i64>(4)? as u64,
            };
            let slot = if column == RELAY_ROW_SLOT { Slot::Row } else { Slot::Column(column) };
            // Registers of one row share a causal length; the largest wins if storage disagrees.
            if register.stamp.cl > row.cl {
                row.cl = register.stamp.cl;
                row.registers.retain(|_, r| r.stamp.cl >= row.cl);
            }
            if register.stamp.cl == row.cl {
                row.registers.insert(slot, register);
            }
        }
        Ok(())
    }

    /// Writes back relay registers that changed, keeping the digest exact.
    fn store_relay(&mut self, table: &str, key_bytes: &[u8], old: &[(Slot, Register)], new: &[(Slot, Register)]) -> Result<()> {
        for (slot, register) in old {
            if !new.iter().any(|(s, r)| s == slot && r == register) {
                self.digest.sub(&register_hash(table, key_bytes, slot, register));
                if !new.iter().any(|(s, _)| s == slot) {
                    self.conn
                        .prepare_cached("DELETE FROM weft_relay WHERE tbl = ?1 AND pk = ?2 AND col = ?3")?
                        .execute(params![table, key_bytes, relay_column(slot)])?;
                }
            }
        }
        for (slot, register) in new {
            if old.iter().any(|(s, r)| s == slot && r == register) {
                continue;
            }
            self.digest.add(&register_hash(table, key_bytes, slot, register));
            let ordinal = self.state.ordinal(self.conn, &register.stamp.site)?;
            self.conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO weft_relay(tbl, pk, col, cl, clock, site, db_version, value) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
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
        }
        self.relay_tables.insert(table.to_owned(), !new.is_empty() || self.relay_tables.get(table) == Some(&true));
        Ok(())
    }

    fn relay_row(&mut self, table: &str, key_bytes: &[u8], group: &[&Change]) -> Result<()> {
        let mut row = RowState::default();
        self.load_relay(table, key_bytes, &mut row)?;
        let old: Vec<(Slot, Register)> = row.registers.clone().into_iter().collect();
        self.merge_into(&mut row, group)?;
        let new: Vec<(Slot, Register)> = row.registers.into_iter().collect();
        if new != old {
            self.store_relay(table, key_bytes, &old, &new)?;
        }
        Ok(())
    }

    fn known_row(&mut self, schema: &TableSchema, key_bytes: &[u8], group: &[&Change]) -> Result<()> {
        let key = &group[0].pk;
        if key.len() != schema.pk.len() {
            return Err(Error::InvalidChange {
                table: schema.name.clone(),
                reason: format!("the primary key has {} values, the table's has {}", key.len(), schema.pk.len()),
            });
        }
        let existing = load_known(self.conn, self.state, schema, key)?;
        let mut row = RowState::default();
        let (old_stored, old_base, present_before) = match &existing {
            Some(found) => {
                row = found.row.clone();
                (Some(found.stored.clone()), found.base, found.present)
            }
            None => (None, None, false),
        };
        if self.has_relay_rows(&schema.name)? {
            self.load_relay(&schema.name, key_bytes, &mut row)?;
        }
        let before = row.clone();
        self.merge_into(&mut row, group)?;
        if row == before {
            return Ok(());
        }
        let is_known = |slot: &Slot| match slot {
            Slot::Row => true,
            Slot::Column(name) => schema.column_index(name).is_some(),
        };
        let split = |state: &RowState| -> (Vec<(Slot, Register)>, Vec<(Slot, Register)>) {
            state.registers.clone().into_iter().partition(|(slot, _)| is_known(slot))
        };
        let (old_known, old_relay) = split(&before);
        let (new_known, new_relay) = split(&row);
        if old_relay != new_relay {
            self.store_relay(&schema.name, key_bytes, &old_relay, &new_relay)?;
        }
        if old_known == new_known && before.cl == row.cl {
            return Ok(());
        }
        self.write_base_row(schema, key, &old_known, &new_known, present_before, row.is_present())?;
        let new_hash = row_hash(&schema.name, key_bytes, new_known.iter().map(|(s, r)| (s, r)));
        let old_contribution = match &old_stored {
            None => Digest::ZERO,
            Some(stored) if stored.row.db_version <= self.digest_version => {
                row_hash(&schema.name, key_bytes, old_known.iter().map(|(s, r)| (s, r)))
            }
            Some(_) => old_base.unwrap_or(Digest::ZERO),
        };
        self.digest.add(&new_hash);
        self.digest.sub(&old_contribution);
        self.write_clock_row(schema, key, row.cl, &new_known, &new_hash)
    }

    fn write_base_row(
        &mut self,
        schema: &TableSchema,
        key: &[Value],
        old: &[(Slot, Register)],
        new: &[(Slot, Register)],
        present_before: bool,
        present_after: bool,
    ) -> Result<()> {
        let table = quote(&schema.name);
        let key_match: Vec<String> =
            schema.pk.iter().enumerate().map(|(i, c)| format!("{} = ?{}", quote(&c.name), i + 1)).collect();
        if !present_after {
            if present_before {
                self.conn
                    .prepare_cached(&format!("DELETE FROM {table} WHERE {}", key_match.join(" AND ")))?
                    .execute(rusqlite::params_from_iter(key))?;
            }
            return Ok(());
        }
        let changed: Vec<(&str, &Value)> = new
            .iter()
            .filter_map(|(slot, register)| match slot {
                Slot::Column(name) if !old.iter().any(|(s, r)| s == slot && r.value == register.value) || !present_before => {
                    Some((name.as_str(), &register.value))
                }
                _ => None,
            })
            .collect();
        let mut params: Vec<SqlValue> = key.iter().map(to_sql).collect();
        params.extend(changed.iter().map(|(_, v)| to_sql(v)));
        if !present_before {
            let mut columns: Vec<String> = schema.pk.iter().map(|c| quote(&c.name)).collect();
            columns.extend(changed.iter().map(|(n, _)| quote(n)));
            let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
            self.conn
                .prepare_cached(&format!("INSERT INTO {table} ({}) VALUES ({})", columns.join(", "), marks.join(", ")))?
                .execute(rusqlite::params_from_iter(params))?;
        } else if !changed.is_empty() {
            let sets: Vec<String> =
                changed.iter().enumerate().map(|(i, (n, _))| format!("{} = ?{}", quote(n), key.len() + i + 1)).collect();
            self.conn
                .prepare_cached(&format!("UPDATE {table} SET {} WHERE {}", sets.join(", "), key_match.join(" AND ")))?
                .execute(rusqlite::params_from_iter(params))?;
        }
        Ok(())
    }

    fn write_clock_row(
        &mut self,
        schema: &TableSchema,
        key: &[Value],
        cl: u64,
        registers: &[(Slot, Register)],
        hash: &Digest,
    ) -> Result<()> {
        let mut entries = Vec::with_capacity(registers.len());
        for (slot, register) in registers {
            let id = match slot {
                Slot::Row => ROW_SLOT_ID,
                Slot::Column(name) => schema.column_ids[schema.column_index(name).expect("split keeps known columns")],
            };
            let site = self.state.ordinal(self.conn, &register.stamp.site)?;
            entries.push((id, StoredStamp { clock: register.stamp.clock, site, db_version: register.db_version }));
        }
        let Some(stored) = StoredClock::compress(cl, entries, &schema.column_ids) else {
            return Err(Error::Corrupt(format!("{}: a changed row has no registers", schema.name)));
        };
        let mut columns: Vec<String> = schema.pk.iter().map(|c| quote(&c.name)).collect();
        columns.extend(
            ["__weft_cl", "__weft_clock", "__weft_site", "__weft_db_version", "__weft_cells", "__weft_base"].map(String::from),
        );
        let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
        let mut params: Vec<SqlValue> = key.iter().map(to_sql).collect();
        params.extend([
            SqlValue::Integer(stored.cl as i64),
            SqlValue::Integer(stored.row.clock as i64),
            SqlValue::Integer(i64::from(stored.row.site)),
            SqlValue::Integer(stored.row.db_version as i64),
            stored.cells.map_or(SqlValue::Null, SqlValue::Blob),
            SqlValue::Blob(hash.to_bytes().to_vec()),
        ]);
        self.conn
            .prepare_cached(&format!(
                "INSERT OR REPLACE INTO {} ({}) VALUES ({})",
                quoted_clock(&schema.name),
                columns.join(", "),
                marks.join(", ")
            ))?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(())
    }
}

fn relay_column(slot: &Slot) -> &str {
    match slot {
        Slot::Row => RELAY_ROW_SLOT,
        Slot::Column(name) => name,
    }
}

pub(crate) fn to_sql(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Integer(v) => SqlValue::Integer(*v),
        Value::Real(v) => SqlValue::Real(*v),
        Value::Text(v) => SqlValue::Text(v.clone()),
        Value::Blob(v) => SqlValue::Blob(v.clone()),
    }
}

/// A stored row of a replicated table, as registers with their values.
pub(crate) struct KnownRow {
    pub row: RowState,
    pub stored: StoredClock,
    pub base: Option<Digest>,
    pub present: bool,
}

pub(crate) fn load_known(conn: &Connection, state: &mut ConnState, schema: &TableSchema, key: &[Value]) -> Result<Option<KnownRow>> {
    let key_match: Vec<String> =
        schema.pk.iter().enumerate().map(|(i, c)| format!("c.{} = ?{}", quote(&c.name), i + 1)).collect();
    let join: Vec<String> = schema.pk.iter().map(|c| format!("t.{n} = c.{n}", n = quote(&c.name))).collect();
    let values: Vec<String> = schema.columns.iter().map(|c| format!(", t.{}", quote(&c.name))).collect();
    let sql = format!(
        "SELECT c.__weft_cl, c.__weft_clock, c.__weft_site, c.__weft_db_version, c.__weft_cells, c.__weft_base, \
         t.{first_key} IS NOT NULL{values} FROM {clock} c LEFT JOIN {table} t ON {join} WHERE {matching}",
        first_key = quote(&schema.pk[0].name),
        values = values.concat(),
        clock = quoted_clock(&schema.name),
        table = quote(&schema.name),
        join = join.join(" AND "),
        matching = key_match.join(" AND "),
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let found = statement
        .query_row(rusqlite::params_from_iter(key), |r| {
            let stored = StoredClock {
                cl: r.get::<_, i64>(0)? as u64,
                row: StoredStamp { clock: r.get::<_, i64>(1)? as u64, site: r.get::<_, i64>(2)? as u32, db_version: r.get::<_, i64>(3)? as u64 },
                cells: r.get(4)?,
            };
            let base: Option<Vec<u8>> = r.get(5)?;
            let present: bool = r.get(6)?;
            let values: Vec<Value> = (0..schema.columns.len()).map(|i| r.get(7 + i)).collect::<rusqlite::Result<_>>()?;
            Ok((stored, base, present, values))
        })
        .optional()?;
    let Some((stored, base, present, values)) = found else { return Ok(None) };
    let base = match base {
        None => None,
        Some(bytes) => Some(Digest::from_bytes(&bytes).ok_or_else(|| Error::Corrupt(format!("{}: base digest is not 32 bytes", schema.name)))?),
    };
    let mut row = RowState { cl: stored.cl, registers: BTreeMap::new() };
    for (id, stamp) in stored.expand(&schema.column_ids)? {
        let site = state.site(conn, stamp.site)?;
        let (slot, value) = if id == ROW_SLOT_ID {
            (Slot::Row, Value::Null)
        } else {
            let index = schema
                .column_ids
                .iter()
                .position(|c| *c == id)
                .ok_or_else(|| Error::Corrupt(format!("{}: clock cells name unknown column id {id}", schema.name)))?;
            (Slot::Column(schema.columns[index].name.clone()), values[index].clone())
        };
        row.registers.insert(slot, Register { stamp: Stamp { cl: stored.cl, clock: stamp.clock, site }, value, db_version: stamp.db_version });
    }
    Ok(Some(KnownRow { row, stored, base, present }))
}
