//! How one clock row stores the registers of its base row.
//!
//! A clock row holds `cl`, the row-level `(clock, site, db_version)` and `cells`:
//! - `cl` even (a tombstone): the only register is the row's existence, at the row-level stamp;
//! - `cells` NULL: every slot (existence and each replicated column) holds the row-level
//!   stamp, which is what every local INSERT writes, so inserts store no blob at all;
//! - every slot at one of two stamps, one of them the row-level stamp (what a local UPDATE of
//!   some columns of such a row writes, and the common merged row): `cells` is
//!   [`TWO_STAMP_MARKER`], the earlier stamp `(clock, site, db_version)` (its clock as the
//!   distance below the row-level clock) and the ids of the slots at the row-level stamp, as
//!   varints. About 10 bytes where the list below takes 13 per slot: a clock row that grows
//!   less on its first update splits fewer pages, which was a fifth of what a bulk UPDATE cost
//!   (docs/benchmarks.md). Like the NULL form it is read against the row-level stamp stored
//!   beside it and the table's current column ids, so it is only written against the stamp
//!   that is stored ([`cells_beside`]), and both forms are made explicit before new columns
//!   join;
//! - otherwise `cells` lists `(column id, clock, site, db_version)` per live register as
//!   varints; column id 0 is the row's existence.
//!
//! The row-level `db_version` is always the largest of the registers' (it is what the
//! db_version index and the run log find). The row-level clock is the largest clock, except after a merge and
//! a local update of the same row in one transaction: the update stores the transaction's
//! stamp, whose clock was taken before the merge raised the hybrid clock (the explicit list
//! then keeps every register's own stamp).

use crate::error::{Error, Result};
use integer_encoding::VarInt;

/// The column id that stands for the row's existence register.
pub(crate) const ROW_SLOT_ID: u32 = 0;

/// The first bytes of a `cells` blob in the two-stamp form (file format 3). An explicit list
/// starts with the canonical varint of a column id, which is never this two-byte encoding of
/// zero.
pub(crate) const TWO_STAMP_MARKER: [u8; 2] = [0x80, 0x00];

/// A register's stamp as stored: clock, site ordinal and local db_version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoredStamp {
    pub clock: u64,
    pub site: u32,
    pub db_version: u64,
}

/// A clock row as stored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoredClock {
    pub cl: u64,
    pub row: StoredStamp,
    pub cells: Option<Vec<u8>>,
}

/// Decodes an explicit `cells` blob.
pub(crate) fn decode_cells(mut bytes: &[u8]) -> Result<Vec<(u32, StoredStamp)>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let column = take_varint::<u32>(&mut bytes)?;
        let clock = take_varint::<u64>(&mut bytes)?;
        let site = take_varint::<u32>(&mut bytes)?;
        let db_version = take_varint::<u64>(&mut bytes)?;
        out.push((
            column,
            StoredStamp {
                clock,
                site,
                db_version,
            },
        ));
    }
    Ok(out)
}

fn take_varint<T: VarInt>(bytes: &mut &[u8]) -> Result<T> {
    let (value, used) = T::decode_var(bytes)
        .ok_or_else(|| Error::Corrupt("clock cells end inside a number".into()))?;
    *bytes = &bytes[used..];
    Ok(value)
}

/// Decodes the body of a two-stamp `cells` blob (after [`TWO_STAMP_MARKER`]): every slot of
/// `column_ids` and the existence slot, at `row` if listed, else at the earlier stamp.
fn decode_two_stamps(
    mut bytes: &[u8],
    row: StoredStamp,
    column_ids: &[u32],
) -> Result<Vec<(u32, StoredStamp)>> {
    // The earlier clock is stored as its distance below the row-level clock, the larger: a
    // row updated soon after it was written takes few bytes. Its db_version is stored as it
    // is, so the form reads the same to the digest's hashers, which do not know the row's.
    let distance = take_varint::<u64>(&mut bytes)?;
    let clock = row.clock.checked_sub(distance).ok_or_else(|| {
        Error::Corrupt("clock cells put the earlier stamp above the row's".into())
    })?;
    let site = take_varint::<u32>(&mut bytes)?;
    let db_version = take_varint::<u64>(&mut bytes)?;
    let earlier = StoredStamp {
        clock,
        site,
        db_version,
    };
    let mut later = Vec::new();
    while !bytes.is_empty() {
        let id = take_varint::<u32>(&mut bytes)?;
        if later.last().is_some_and(|last| *last >= id) {
            return Err(Error::Corrupt(
                "clock cells list a slot twice or out of order".into(),
            ));
        }
        if id != ROW_SLOT_ID && !column_ids.contains(&id) {
            return Err(Error::Corrupt(format!(
                "clock cells name unknown column id {id}"
            )));
        }
        later.push(id);
    }
    Ok(std::iter::once(ROW_SLOT_ID)
        .chain(column_ids.iter().copied())
        .map(|id| {
            let at_row = later.binary_search(&id).is_ok();
            (id, if at_row { row } else { earlier })
        })
        .collect())
}

/// The two-stamp form of registers sorted by id that are exactly the existence slot and every
/// column of the table (the caller checks it), each at `row` or at one other stamp whose clock
/// is not above `row`'s; `None` if they are not.
fn encode_two_stamps(entries: &[(u32, StoredStamp)], row: StoredStamp) -> Option<Vec<u8>> {
    let earlier = entries.iter().map(|(_, s)| *s).find(|s| *s != row)?;
    if !entries.iter().all(|(_, s)| *s == row || *s == earlier) {
        return None;
    }
    let mut out = Vec::with_capacity(TWO_STAMP_MARKER.len() + 16 + entries.len());
    out.extend_from_slice(&TWO_STAMP_MARKER);
    let mut buf = [0u8; 10];
    let mut put = |n: u64, out: &mut Vec<u8>| {
        let used = n.encode_var(&mut buf);
        out.extend_from_slice(&buf[..used]);
    };
    put(row.clock.checked_sub(earlier.clock)?, &mut out);
    put(u64::from(earlier.site), &mut out);
    put(earlier.db_version, &mut out);
    let mut any_later = false;
    for (id, _) in entries.iter().filter(|(_, s)| *s == row) {
        put(u64::from(*id), &mut out);
        any_later = true;
    }
    any_later.then_some(out)
}

/// Whether registers sorted by id are exactly the existence slot and each of `column_ids`.
fn covers_every_slot(entries: &[(u32, StoredStamp)], column_ids: &[u32]) -> bool {
    entries.len() == column_ids.len() + 1
        && entries[0].0 == ROW_SLOT_ID
        && entries[1..]
            .iter()
            .map(|(id, _)| *id)
            .eq(sorted(column_ids))
}

/// Encodes registers as an explicit `cells` blob.
pub(crate) fn encode_cells(entries: &[(u32, StoredStamp)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 14);
    let mut buf = [0u8; 10];
    for (column, stamp) in entries {
        for n in [
            u64::from(*column),
            stamp.clock,
            u64::from(stamp.site),
            stamp.db_version,
        ] {
            let used = n.encode_var(&mut buf);
            out.extend_from_slice(&buf[..used]);
        }
    }
    out
}

/// The clock columns of a clock table aliased `c`, in the order [`StoredClock::from_row`]
/// reads them.
pub(crate) const CLOCK_COLUMNS: &str =
    "c.__weft_cl, c.__weft_clock, c.__weft_site, c.__weft_db_version, c.__weft_cells";

/// How many columns [`CLOCK_COLUMNS`] names.
pub(crate) const CLOCK_COLUMN_COUNT: usize = 5;

impl StoredClock {
    /// Reads a clock row selected as [`CLOCK_COLUMNS`], starting at column `at`.
    pub(crate) fn from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StoredClock> {
        Ok(StoredClock {
            cl: row.get::<_, i64>(at)? as u64,
            row: StoredStamp {
                clock: row.get::<_, i64>(at + 1)? as u64,
                site: row.get::<_, i64>(at + 2)? as u32,
                db_version: row.get::<_, i64>(at + 3)? as u64,
            },
            cells: row.get(at + 4)?,
        })
    }

    /// Every live register, the existence register (id 0) first.
    pub(crate) fn expand(&self, column_ids: &[u32]) -> Result<Vec<(u32, StoredStamp)>> {
        if self.cl.is_multiple_of(2) {
            return Ok(vec![(ROW_SLOT_ID, self.row)]);
        }
        match &self.cells {
            None => Ok(std::iter::once(ROW_SLOT_ID)
                .chain(column_ids.iter().copied())
                .map(|id| (id, self.row))
                .collect()),
            Some(bytes) => match bytes.strip_prefix(&TWO_STAMP_MARKER) {
                Some(body) => decode_two_stamps(body, self.row, column_ids),
                None => decode_cells(bytes),
            },
        }
    }

    /// Whether `cells` holds a form read against the table's current column ids (NULL or
    /// two-stamp), which must be made explicit before the column set changes.
    pub(crate) fn reads_column_ids(cells: Option<&[u8]>) -> bool {
        cells.is_none_or(|bytes| bytes.starts_with(&TWO_STAMP_MARKER))
    }

    /// Stores registers in the smallest form; `None` if there is no register at all.
    pub(crate) fn compress(
        cl: u64,
        mut entries: Vec<(u32, StoredStamp)>,
        column_ids: &[u32],
    ) -> Option<StoredClock> {
        entries.sort_by_key(|(id, _)| *id);
        let latest = entries
            .iter()
            .map(|(_, s)| *s)
            .max_by_key(|s| (s.db_version, s.clock))?;
        let max_clock = entries.iter().map(|(_, s)| s.clock).max()?;
        let max_version = entries.iter().map(|(_, s)| s.db_version).max()?;
        let row = StoredStamp {
            clock: max_clock,
            site: latest.site,
            db_version: max_version,
        };
        if cl.is_multiple_of(2) {
            // A tombstone keeps only its existence register.
            let existence = entries
                .iter()
                .find(|(id, _)| *id == ROW_SLOT_ID)
                .map(|(_, s)| *s)?;
            return Some(StoredClock {
                cl,
                row: existence,
                cells: None,
            });
        }
        // Registers all at one stamp make that stamp `row`, and `cells_beside` stores NULL.
        Some(StoredClock {
            cl,
            row,
            cells: cells_beside(entries, row, column_ids),
        })
    }
}

/// The `cells` of a live row's registers when `row` is the row-level stamp stored beside them
/// (whichever it is): NULL if every slot is at `row`, the two-stamp form if every slot is at
/// `row` or one other stamp with a smaller clock, the explicit list otherwise. Each reads back
/// as exactly `entries` against `row`.
pub(crate) fn cells_beside(
    mut entries: Vec<(u32, StoredStamp)>,
    row: StoredStamp,
    column_ids: &[u32],
) -> Option<Vec<u8>> {
    entries.sort_by_key(|(id, _)| *id);
    if !covers_every_slot(&entries, column_ids) {
        return Some(encode_cells(&entries));
    }
    if entries.iter().all(|(_, s)| *s == row) {
        return None;
    }
    Some(encode_two_stamps(&entries, row).unwrap_or_else(|| encode_cells(&entries)))
}

fn sorted(ids: &[u32]) -> Vec<u32> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}

/// Decodes the column-id list a trigger passes as a blob literal.
pub(crate) fn decode_column_ids(mut bytes: &[u8]) -> Vec<u32> {
    let mut ids = Vec::new();
    while let Some((id, used)) = u32::decode_var(bytes) {
        ids.push(id);
        bytes = &bytes[used..];
    }
    ids
}

/// Encodes a column-id list as the blob literal triggers pass.
pub(crate) fn encode_column_ids(ids: &[u32]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.encode_var_vec()).collect()
}

/// The `cells` of a live clock row after a local UPDATE at stamp `fresh` changed the columns
/// of `column_ids` flagged in `changed`.
pub(crate) fn updated_cells(
    stored: &StoredClock,
    column_ids: &[u32],
    fresh: StoredStamp,
    changed: &[bool],
) -> Result<Option<Vec<u8>>> {
    debug_assert_eq!(column_ids.len(), changed.len());
    let mut entries = stored.expand(column_ids)?;
    for (id, _) in column_ids.iter().zip(changed).filter(|(_, c)| **c) {
        match entries.iter_mut().find(|(existing, _)| existing == id) {
            Some(entry) => entry.1 = fresh,
            None => entries.push((*id, fresh)),
        }
    }
    // The caller stores `fresh` as the row-level stamp, so the cells are made against it, not
    // against the stamp `compress` would choose: the two differ when a register of the row has
    // a larger clock at the same db_version (merged into this transaction after its clock was
    // taken), and the forms read against the row-level stamp would then read back wrong.
    Ok(cells_beside(entries, fresh, column_ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(clock: u64, site: u32, db_version: u64) -> StoredStamp {
        StoredStamp {
            clock,
            site,
            db_version,
        }
    }

    #[test]
    fn uniform_rows_store_no_blob_and_expand_back() {
        let ids = [3, 1, 2];
        let entries = vec![
            (0, stamp(9, 0, 4)),
            (1, stamp(9, 0, 4)),
            (2, stamp(9, 0, 4)),
            (3, stamp(9, 0, 4)),
        ];
        let stored = StoredClock::compress(1, entries.clone(), &ids).unwrap();
        assert_eq!(stored.cells, None);
        assert_eq!(stored.expand(&[1, 2, 3]).unwrap(), entries);
    }

    #[test]
    fn mixed_rows_round_trip_and_row_level_is_the_maximum() {
        let entries = vec![
            (0, stamp(5, 0, 1)),
            (2, stamp(7, 3, 9)),
            (1, stamp(8, 1, 2)),
        ];
        let stored = StoredClock::compress(3, entries, &[1, 2]).unwrap();
        assert_eq!(stored.row.db_version, 9);
        assert_eq!(stored.row.clock, 8);
        let back = stored.expand(&[1, 2]).unwrap();
        assert_eq!(
            back,
            vec![
                (0, stamp(5, 0, 1)),
                (1, stamp(8, 1, 2)),
                (2, stamp(7, 3, 9))
            ]
        );
    }

    #[test]
    fn a_row_with_some_columns_at_a_later_stamp_takes_the_two_stamp_form() {
        let ids = [4, 2, 7];
        let (old, new) = (stamp(1 << 56, 0, 3), stamp((1 << 56) + 9, 0, 8));
        let entries = vec![(0, old), (2, new), (4, old), (7, new)];
        let stored = StoredClock::compress(1, entries.clone(), &ids).unwrap();
        assert_eq!(stored.row, new);
        let cells = stored.cells.clone().unwrap();
        assert!(cells.starts_with(&TWO_STAMP_MARKER));
        let explicit = encode_cells(&entries);
        assert!(
            cells.len() * 4 < explicit.len(),
            "{} bytes against {}",
            cells.len(),
            explicit.len()
        );
        assert!(StoredClock::reads_column_ids(Some(&cells)));
        assert!(!StoredClock::reads_column_ids(Some(&explicit)));
        let mut back = stored.expand(&ids).unwrap();
        back.sort_by_key(|(id, _)| *id);
        assert_eq!(back, entries);
    }

    #[test]
    fn rows_the_two_stamp_form_cannot_hold_stay_explicit() {
        let ids = [1, 2];
        let (a, b, c) = (stamp(5, 0, 1), stamp(6, 1, 2), stamp(7, 2, 3));
        // Three stamps.
        let three = StoredClock::compress(1, vec![(0, a), (1, b), (2, c)], &ids).unwrap();
        // A slot missing (a merged row whose other cells have not arrived).
        let partial = StoredClock::compress(1, vec![(0, a), (1, c)], &ids).unwrap();
        // Two stamps, neither the row-level one: the larger clock is not at the larger version.
        let crossed = StoredClock::compress(
            1,
            vec![
                (0, stamp(9, 0, 1)),
                (1, stamp(9, 0, 1)),
                (2, stamp(5, 1, 4)),
            ],
            &ids,
        )
        .unwrap();
        for (stored, entries) in [
            (three, vec![(0, a), (1, b), (2, c)]),
            (partial, vec![(0, a), (1, c)]),
            (
                crossed,
                vec![
                    (0, stamp(9, 0, 1)),
                    (1, stamp(9, 0, 1)),
                    (2, stamp(5, 1, 4)),
                ],
            ),
        ] {
            let cells = stored.cells.clone().unwrap();
            assert!(!cells.starts_with(&TWO_STAMP_MARKER));
            assert_eq!(stored.expand(&ids).unwrap(), entries);
        }
    }

    #[test]
    fn a_damaged_two_stamp_blob_is_corruption_not_a_panic() {
        let ids = [1, 2];
        let row = stamp(9, 0, 2);
        let entries = vec![(0, stamp(5, 0, 1)), (1, row), (2, stamp(5, 0, 1))];
        let good = StoredClock::compress(1, entries, &ids).unwrap();
        let cells = good.cells.clone().unwrap();
        let read = |bytes: Vec<u8>| {
            StoredClock {
                cl: 1,
                row,
                cells: Some(bytes),
            }
            .expand(&ids)
        };
        assert!(read(cells.clone()).is_ok());
        // A slot id the table does not have, a slot twice, a number cut short.
        assert!(read([cells.clone(), vec![9]].concat()).is_err());
        assert!(read([cells.clone(), vec![1]].concat()).is_err());
        assert!(read(TWO_STAMP_MARKER.to_vec()).is_err());
        // An earlier stamp said to lie further below the row's clock than zero.
        assert!(read([TWO_STAMP_MARKER.to_vec(), vec![10, 0, 0, 1]].concat()).is_err());
        assert!(read([TWO_STAMP_MARKER.to_vec(), vec![9, 0, 0, 1]].concat()).is_ok());
        assert!(read([TWO_STAMP_MARKER.to_vec(), vec![0xff]].concat()).is_err());
    }

    #[test]
    fn truncated_cells_are_corruption_not_a_panic() {
        let bytes = encode_cells(&[(1, stamp(u64::MAX, 2, 3))]);
        assert!(decode_cells(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_cells(&[0xff]).is_err());
    }
}
