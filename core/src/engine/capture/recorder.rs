//! What the preupdate hook notes during a `Replica::write`: which rows of replicated tables
//! the transaction touched, and what each held before it first touched it.

use super::hook::PreupdateValues;
use crate::error::Error;
use crate::limits::Limits;
use crate::rules::value::Held;
use crate::storage::clock_row_sql::CaptureSql;
use crate::storage::schema::TableSchema;
use std::collections::HashMap;
use std::sync::Arc;

/// One row change as SQLite reports it to the hook.
pub(crate) enum RowEvent {
    Insert { new_rowid: i64 },
    Update { old_rowid: i64, new_rowid: i64 },
    Delete { old_rowid: i64 },
}

/// What a row held before the transaction first touched it: the values of its replicated
/// columns, or None where there was no row.
pub(crate) type Before = Option<Vec<Held>>;

/// One replicated table as the recorder sees it.
pub(crate) struct TablePlan {
    pub schema: TableSchema,
    /// Whether the key is the rowid: then the hook's rowids are the keys.
    pub key_is_rowid: bool,
    /// The table-order index of each key column, in key order.
    pub key_columns: Vec<usize>,
    /// The table-order index of each replicated column, in `schema.columns` order.
    pub value_columns: Vec<usize>,
    /// How many columns a reported row must have to hold all of those.
    pub columns_needed: usize,
    pub sql: CaptureSql,
}

/// Every replicated table of one schema version.
pub(crate) struct Plan {
    /// `PRAGMA schema_version` when the plan was made.
    pub schema_version: i64,
    pub tables: Vec<TablePlan>,
    /// Whether the database has triggers of its own (not Weft's): they must see every write,
    /// so the triggers stay on and record the writes themselves.
    pub foreign_triggers: bool,
    by_name: HashMap<Vec<u8>, usize>,
}

impl Plan {
    pub(crate) fn new(schema_version: i64, tables: Vec<TablePlan>, foreign_triggers: bool) -> Plan {
        let by_name = tables
            .iter()
            .enumerate()
            .map(|(i, t)| (t.schema.name.as_bytes().to_vec(), i))
            .collect();
        Plan {
            schema_version,
            tables,
            foreign_triggers,
            by_name,
        }
    }

    /// Whether two plans record the same tables the same way.
    pub(crate) fn same_tables(&self, other: &Plan) -> bool {
        self.foreign_triggers == other.foreign_triggers
            && self.tables.len() == other.tables.len()
            && self.tables.iter().zip(&other.tables).all(|(a, b)| {
                a.schema == b.schema
                    && a.key_is_rowid == b.key_is_rowid
                    && a.key_columns == b.key_columns
                    && a.value_columns == b.value_columns
            })
    }
}

/// The rows of a table keyed by rowid that a transaction touched.
#[derive(Default)]
pub(crate) struct TouchedRowids {
    /// Rows inserted with keys above every key touched before them (a bulk insert, in key
    /// order): sorted, all absent before. Kept apart so they cost no hashing.
    pub appended: Vec<i64>,
    /// Rows that existed, first touched with keys above every key touched before them (an
    /// UPDATE or DELETE visits the rows it matches in key order), with what they held: sorted.
    /// Kept apart for the same reason: hashing and growing a map of every row of a bulk
    /// update was a tenth of what it cost.
    pub ascending: Vec<(i64, Vec<Held>)>,
    /// Every other touched row.
    pub others: HashMap<i64, Before, foldhash::fast::RandomState>,
    /// The largest key in `others`.
    others_max: Option<i64>,
}

impl TouchedRowids {
    /// Whether `rowid` is above every key touched so far.
    fn is_above_all(&self, rowid: i64) -> bool {
        self.appended.last().is_none_or(|last| rowid > *last)
            && self.ascending.last().is_none_or(|(last, _)| rowid > *last)
            && self.others_max.is_none_or(|max| rowid > max)
    }

    /// Whether no row was touched.
    pub(crate) fn is_empty(&self) -> bool {
        self.appended.is_empty() && self.ascending.is_empty() && self.others.is_empty()
    }

    /// Whether `rowid` was touched before; only asked for keys not above all.
    fn was_touched(&self, rowid: i64) -> bool {
        self.others.contains_key(&rowid)
            || self.appended.binary_search(&rowid).is_ok()
            || self
                .ascending
                .binary_search_by_key(&rowid, |(key, _)| *key)
                .is_ok()
    }

    /// Notes `rowid` if it was not touched before; returns the bytes that costs.
    fn touch(
        &mut self,
        rowid: i64,
        before: impl FnOnce() -> Result<Before, String>,
    ) -> Result<Option<usize>, String> {
        let above_all = self.is_above_all(rowid);
        if !above_all && self.was_touched(rowid) {
            return Ok(None);
        }
        let before = before()?;
        match before {
            None if above_all => {
                self.appended.push(rowid);
                Ok(Some(size_of::<i64>()))
            }
            Some(values) if above_all => {
                let bytes = ENTRY_BYTES + values_bytes(&values);
                self.ascending.push((rowid, values));
                Ok(Some(bytes))
            }
            before => {
                let bytes = ENTRY_BYTES + held_bytes(&before);
                self.others.insert(rowid, before);
                self.others_max = Some(self.others_max.map_or(rowid, |m| m.max(rowid)));
                Ok(Some(bytes))
            }
        }
    }
}

/// What a map entry costs beside the values it holds (key, slot, the map's own bytes), about.
const ENTRY_BYTES: usize = 64;

/// The memory held values take: each value, and the text or bytes it owns.
fn held_bytes(before: &Before) -> usize {
    before.as_ref().map_or(0, |v| values_bytes(v))
}

fn values_bytes(values: &[Held]) -> usize {
    values
        .iter()
        .map(|v| size_of::<Held>() + v.heap_bytes())
        .sum()
}

/// Touched rows of a table not keyed by rowid: by the canonical bytes of the key, with the
/// key's values and what the row held before.
pub(crate) type KeyedRows = HashMap<Vec<u8>, (Vec<Held>, Before), foldhash::fast::RandomState>;

/// The rows of one table a transaction touched.
pub(crate) enum Touched {
    /// By rowid, for tables keyed by it.
    Rowid(TouchedRowids),
    /// By the canonical bytes of the key, with the key's values.
    Keyed(KeyedRows),
}

/// The touched rows of every table, filled by the preupdate hook.
pub(crate) struct Recorder {
    pub plan: Arc<Plan>,
    pub touched: Vec<Touched>,
    pub rows: usize,
    pub held_bytes: usize,
    limits: Limits,
    /// Why the transaction must not commit, once something could not be recorded.
    pub failure: Option<Error>,
}

impl Recorder {
    pub(crate) fn new(plan: Arc<Plan>, limits: Limits) -> Recorder {
        let touched = plan
            .tables
            .iter()
            .map(|t| {
                if t.key_is_rowid {
                    Touched::Rowid(TouchedRowids::default())
                } else {
                    Touched::Keyed(HashMap::default())
                }
            })
            .collect();
        Recorder {
            plan,
            touched,
            rows: 0,
            held_bytes: 0,
            limits,
            failure: None,
        }
    }

    /// The plan index of a replicated table, by the name SQLite reports.
    pub(crate) fn table_index(&self, name: &[u8]) -> Option<usize> {
        self.plan.by_name.get(name).copied()
    }

    /// Marks the transaction as one that must not commit.
    pub(crate) fn fail(&mut self, reason: String) {
        if self.failure.is_none() {
            self.failure = Some(Error::WriteRolledBack(reason));
        }
    }

    /// Notes a row change of table `index`: the keys it touches, and for each key touched for
    /// the first time what its row held before.
    pub(crate) fn record(&mut self, index: usize, event: RowEvent, values: &PreupdateValues) {
        if self.failure.is_some() {
            return;
        }
        if let Err(reason) = self.try_record(index, event, values) {
            self.fail(reason);
        }
    }

    fn try_record(
        &mut self,
        index: usize,
        event: RowEvent,
        values: &PreupdateValues,
    ) -> Result<(), String> {
        if let RowEvent::Insert { new_rowid } = event {
            if self.plan.tables[index].key_is_rowid {
                // The common case, a row inserted into a table keyed by rowid: nothing to read.
                return self.touch(index, Key::Rowid(new_rowid), || Ok(None));
            }
        }
        let plan = self.plan.clone();
        let table = &plan.tables[index];
        let needed = table.columns_needed;
        if values.count() < needed {
            return Err(format!(
                "{}: SQLite reported a row of {} columns, the table has {needed}",
                table.schema.name,
                values.count()
            ));
        }
        let old_values = || -> Result<Vec<Held>, String> {
            table
                .value_columns
                .iter()
                .map(|c| values.before(*c))
                .collect()
        };
        match event {
            RowEvent::Insert { new_rowid } => {
                let key = self.key(table, new_rowid, |c| values.after(c))?;
                self.touch(index, key, || Ok(None))
            }
            RowEvent::Delete { old_rowid } => {
                let key = self.key(table, old_rowid, |c| values.before(c))?;
                self.touch(index, key, || old_values().map(Some))
            }
            RowEvent::Update {
                old_rowid,
                new_rowid,
            } => {
                let old_key = self.key(table, old_rowid, |c| values.before(c))?;
                let new_key = self.key(table, new_rowid, |c| values.after(c))?;
                let key_changed = old_key != new_key;
                self.touch(index, old_key, || old_values().map(Some))?;
                if key_changed {
                    // The row moved: its old key is deleted, its new key inserted.
                    self.touch(index, new_key, || Ok(None))?;
                }
                Ok(())
            }
        }
    }

    fn key(
        &self,
        table: &TablePlan,
        rowid: i64,
        read: impl Fn(usize) -> Result<Held, String>,
    ) -> Result<Key, String> {
        if table.key_is_rowid {
            return Ok(Key::Rowid(rowid));
        }
        let values: Vec<Held> = table
            .key_columns
            .iter()
            .map(|c| read(*c))
            .collect::<Result<_, _>>()?;
        Ok(Key::Values(values))
    }

    fn touch(
        &mut self,
        index: usize,
        key: Key,
        before: impl FnOnce() -> Result<Before, String>,
    ) -> Result<(), String> {
        let added = match (&mut self.touched[index], key) {
            (Touched::Rowid(rows), Key::Rowid(rowid)) => rows.touch(rowid, before)?,
            (Touched::Keyed(rows), Key::Values(values)) => {
                let mut encoded = Vec::with_capacity(16 * values.len());
                for value in &values {
                    crate::rules::value::write_canonical_ref(value.as_ref(), &mut encoded);
                }
                match rows.entry(encoded) {
                    std::collections::hash_map::Entry::Occupied(_) => None,
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        let before = before()?;
                        let bytes = ENTRY_BYTES
                            + slot.key().len()
                            + values_bytes(&values)
                            + held_bytes(&before);
                        slot.insert((values, before));
                        Some(bytes)
                    }
                }
            }
            _ => unreachable!("a table's keys are all rowids or all values"),
        };
        if let Some(bytes) = added {
            self.rows += 1;
            self.held_bytes += bytes;
            if self.rows > self.limits.write_rows_max {
                self.failure = Some(Error::LimitExceeded {
                    limit: "write_rows_max",
                    max: self.limits.write_rows_max as u64,
                    actual: self.rows as u64,
                });
            } else if self.held_bytes > self.limits.write_held_bytes_max {
                self.failure = Some(Error::LimitExceeded {
                    limit: "write_held_bytes_max",
                    max: self.limits.write_held_bytes_max as u64,
                    actual: self.held_bytes as u64,
                });
            }
        }
        Ok(())
    }
}

/// A touched row's key.
#[derive(PartialEq)]
enum Key {
    Rowid(i64),
    Values(Vec<Held>),
}
