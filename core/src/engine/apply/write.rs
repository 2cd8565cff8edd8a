//! The writes of a merge: the base row (insert, update of the winning columns, or delete) and
//! its clock row.

use super::{ColumnSet, Merger, SqlKey};
use crate::error::{Error, Result};
use crate::rules::digest::Digest;
use crate::rules::merge::{Register, Slot};
use crate::rules::stored_clock::{StoredClock, StoredStamp, ROW_SLOT_ID};
use crate::rules::value::Value;
use crate::storage::schema::TableSchema;
use crate::storage::sql_names::{quote, quoted_clock};
use rusqlite::ToSql;

/// What a merge does to a row of the base table, from whether the table held it before the
/// merge and whether the merged row is present (two bools a caller could swap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BaseRowWrite {
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
    pub(super) fn from_presence(present_before: bool, present_after: bool) -> BaseRowWrite {
        match (present_before, present_after) {
            (false, false) => BaseRowWrite::Nothing,
            (false, true) => BaseRowWrite::Insert,
            (true, true) => BaseRowWrite::Update,
            (true, false) => BaseRowWrite::Delete,
        }
    }
}

impl Merger<'_> {
    pub(super) fn write_base_row(
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

    pub(super) fn write_clock_row(
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
