//! The relay's part of a merge: the registers of a row held for columns (or tables) this
//! replica's schema lacks are loaded into the row's state, and written back when they change.

use super::{Merger, Registers, SqlKey};
use crate::error::{Error, Result};
use crate::rules::change::Change;
use crate::rules::digest::register_hash;
use crate::rules::merge::{Register, RowState, Slot, Stamp};
use crate::rules::value::Value;
use crate::storage::bookkeeping::RELAY_ROW_SLOT;
use rusqlite::params;

/// What the relay holds of one row ([`Merger::load_relay`]).
#[derive(Default)]
pub(super) struct RelayHeld {
    /// Whether it holds any register of the row.
    pub(super) any: bool,
    /// Registers of an older incarnation than the row's, left out of its state.
    pub(super) stale: Vec<(Slot, Register)>,
}

pub(super) fn relay_column(slot: &Slot) -> &str {
    match slot {
        Slot::Row => RELAY_ROW_SLOT,
        Slot::Column(name) => name,
    }
}

impl Merger<'_> {
    pub(super) fn has_relay_rows(&mut self, table: &str) -> Result<bool> {
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
    pub(super) fn load_relay(
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
    pub(super) fn drop_stale_relay(
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
    pub(super) fn delete_relayed(
        &mut self,
        table: &str,
        key_bytes: &[u8],
        slot: &Slot,
    ) -> Result<()> {
        self.statement(SqlKey::RelayDelete, || {
            "DELETE FROM weft_relay WHERE tbl = ?1 AND pk = ?2 AND col = ?3".into()
        })?
        .execute(params![table, key_bytes, relay_column(slot)])?;
        Ok(())
    }

    /// Writes back relay registers that changed, keeping the digest exact.
    pub(super) fn store_relay(
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

    pub(super) fn relay_row(
        &mut self,
        table: &str,
        key_bytes: &[u8],
        group: &[Change],
    ) -> Result<()> {
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
}
