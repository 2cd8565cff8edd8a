//! The merge rule, as pure functions over one row's registers: no SQLite here.
//!
//! A row is a causal length `cl` (odd = present, even = deleted) and a set of registers: one
//! for the row's existence ([`Slot::Row`]) and one per written column. Every register carries
//! the `cl` of the incarnation it was written in. The merged state is
//! - `cl` = the largest causal length seen, and
//! - for each slot, the register with the largest `(clock, site, value)` among those written in
//!   incarnation `cl`; registers of older incarnations are dead and dropped.
//!
//! This is a join-semilattice, so applying changes in any order, any number of times, gives
//! the same state. Deletes win over concurrent updates (a delete raises `cl`; updates of the
//! old incarnation become dead) and a later re-insert wins over the delete (it raises `cl` again).

use crate::rules::site::SiteId;
use crate::rules::value::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What decides between two writes of one register: compared field by field, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Stamp {
    /// Causal length of the row incarnation the write belongs to.
    pub cl: u64,
    /// Hybrid logical clock of the write.
    pub clock: u64,
    /// The replica that wrote it.
    pub site: SiteId,
}

/// Which register of a row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Slot {
    /// The row's existence: written by inserts and deletes.
    Row,
    /// One column's value (its name shared with the changes that write it).
    Column(Arc<str>),
}

/// One register: the winning write of a slot, and the local db_version at which it was stored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Register {
    /// Who wrote it, when, in which incarnation.
    pub stamp: Stamp,
    /// The value (NULL for [`Slot::Row`]).
    pub value: Value,
    /// The local commit in which this replica wrote or merged it.
    pub db_version: u64,
}

/// Which of two writes of the same register wins. A total order, so every replica picks the same.
pub(crate) fn incoming_wins(local: (&Stamp, &Value), incoming: (&Stamp, &Value)) -> bool {
    match incoming.0.cmp(local.0) {
        Ordering::Greater => true,
        Ordering::Less => false,
        // The same stamp means the same write; differing values can only come from a broken
        // peer, and a deterministic tie-break keeps replicas converging even then.
        Ordering::Equal => compare_values(incoming.1, local.1) == Ordering::Greater,
    }
}

fn compare_values(a: &Value, b: &Value) -> Ordering {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    a.write_canonical(&mut x);
    b.write_canonical(&mut y);
    x.cmp(&y)
}

/// What merging one write did to a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MergeOutcome {
    /// The row already held this write or a winning one.
    Unchanged,
    /// The write replaced a register of the current incarnation (or filled an empty one).
    Updated,
    /// The write started a newer incarnation: every older register died.
    NewIncarnation,
}

/// One row's merged state.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RowState {
    /// Causal length: 0 = never seen, odd = present, even = deleted.
    pub cl: u64,
    /// The live registers; every one has `stamp.cl == cl`.
    pub registers: BTreeMap<Slot, Register>,
}

impl RowState {
    /// Whether the row is present (its causal length is odd).
    pub(crate) fn is_present(&self) -> bool {
        self.cl % 2 == 1
    }

    /// Merges one write. `db_version` is recorded on the register if the write wins.
    pub(crate) fn merge(
        &mut self,
        slot: Slot,
        stamp: Stamp,
        value: Value,
        db_version: u64,
    ) -> MergeOutcome {
        debug_assert!(self.registers.values().all(|r| r.stamp.cl == self.cl));
        let outcome = match stamp.cl.cmp(&self.cl) {
            Ordering::Less => return MergeOutcome::Unchanged,
            Ordering::Greater => {
                self.cl = stamp.cl;
                self.registers.clear();
                MergeOutcome::NewIncarnation
            }
            Ordering::Equal => match self.registers.get(&slot) {
                Some(local) if !incoming_wins((&local.stamp, &local.value), (&stamp, &value)) => {
                    return MergeOutcome::Unchanged
                }
                _ => MergeOutcome::Updated,
            },
        };
        self.registers.insert(
            slot,
            Register {
                stamp,
                value,
                db_version,
            },
        );
        assert!(
            self.registers.values().all(|r| r.stamp.cl == self.cl),
            "registers must share the row's causal length"
        );
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stamp(cl: u64, clock: u64, site: u8) -> Stamp {
        Stamp {
            cl,
            clock,
            site: SiteId([site; 16]),
        }
    }

    fn col(name: &str) -> Slot {
        Slot::Column(name.into())
    }

    #[test]
    fn later_clock_wins_and_equal_clock_falls_to_higher_site() {
        let mut row = RowState::default();
        row.merge(col("a"), stamp(1, 10, 1), Value::Integer(1), 1);
        assert_eq!(
            row.merge(col("a"), stamp(1, 9, 9), Value::Integer(2), 2),
            MergeOutcome::Unchanged
        );
        assert_eq!(
            row.merge(col("a"), stamp(1, 10, 2), Value::Integer(3), 3),
            MergeOutcome::Updated
        );
        assert_eq!(row.registers[&col("a")].value, Value::Integer(3));
    }

    #[test]
    fn delete_beats_concurrent_update_and_reinsert_beats_delete() {
        let mut row = RowState::default();
        row.merge(Slot::Row, stamp(1, 1, 1), Value::Null, 1);
        // Concurrent: site 2 deletes (cl 2), site 3 updates the live row with a later clock.
        row.merge(Slot::Row, stamp(2, 5, 2), Value::Null, 2);
        assert_eq!(
            row.merge(col("a"), stamp(1, 9, 3), Value::Integer(9), 3),
            MergeOutcome::Unchanged
        );
        assert!(!row.is_present());
        assert_eq!(
            row.merge(Slot::Row, stamp(3, 6, 2), Value::Null, 4),
            MergeOutcome::NewIncarnation
        );
        assert!(row.is_present());
    }

    type Write = (u8, u64, u64, u8, i64);

    fn apply_all(writes: &[Write]) -> RowState {
        let mut row = RowState::default();
        for &(slot, cl, clock, site, value) in writes {
            let slot = if slot == 0 {
                Slot::Row
            } else {
                col(&format!("c{slot}"))
            };
            let value = if slot == Slot::Row {
                Value::Null
            } else {
                Value::Integer(value)
            };
            row.merge(slot, stamp(cl, clock, site), value, 0);
        }
        row
    }

    proptest! {
        #[test]
        fn merge_is_order_independent_and_idempotent(
            writes in proptest::collection::vec((0u8..3, 1u64..5, 0u64..4, 0u8..3, 0i64..3), 0..24),
            seed in any::<u64>(),
        ) {
            let expected = apply_all(&writes);
            let mut shuffled = writes.clone();
            // Fisher-Yates with a tiny deterministic generator, plus duplicates.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            shuffled.extend(writes.iter().take(3).cloned());
            prop_assert_eq!(apply_all(&shuffled), expected);
        }
    }
}
