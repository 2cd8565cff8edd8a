//! Loading a stored row for a merge: its clock row and its base values, with a shortcut for
//! keys above every stored key (a download appended in key order).

use super::{Merger, SqlKey};
use crate::error::{Error, Result};
use crate::rules::digest::Digest;
use crate::rules::merge::{Register, RowState, Slot, Stamp};
use crate::rules::stored_clock::{StoredClock, CLOCK_COLUMNS, CLOCK_COLUMN_COUNT, ROW_SLOT_ID};
use crate::rules::value::Value;
use crate::storage::schema::TableSchema;
use crate::storage::sql_names::{quote, quoted_clock};
use rusqlite::OptionalExtension;
use std::collections::BTreeMap;

/// A stored row of a replicated table, as registers with their values.
pub(crate) struct KnownRow {
    pub row: RowState,
    pub stored: StoredClock,
    pub base: Option<Digest>,
    pub present: bool,
}

impl Merger<'_> {
    /// Whether `key` is an integer above every key of the table's clock rows, so that the
    /// row cannot exist yet: a download of rows appended in key order then skips a lookup
    /// per row. Only for single-column keys whose largest stored value is an integer (every
    /// stored key then sorts at or below it); read once per batch, then raised as new clock
    /// rows are written.
    pub(super) fn above_every_key(
        &mut self,
        schema: &TableSchema,
        id: u32,
        key: &[Value],
    ) -> Result<bool> {
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
    pub(super) fn wrote_key(&mut self, id: u32, key: &[Value]) {
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
impl Merger<'_> {
    pub(super) fn load_known(
        &mut self,
        schema: &TableSchema,
        key: &[Value],
    ) -> Result<Option<KnownRow>> {
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
