//! How one clock row stores the registers of its base row.
//!
//! A clock row holds `cl`, the row-level `(clock, site, db_version)` and `cells`:
//! - `cl` even (a tombstone): the only register is the row's existence, at the row-level stamp;
//! - `cells` NULL: every slot (existence and each replicated column) holds the row-level
//!   stamp, which is what every local INSERT writes, so inserts store no blob at all;
//! - otherwise `cells` lists `(column id, clock, site, db_version)` per live register as
//!   varints; column id 0 is the row's existence.
//!
//! The row-level `db_version` is always the largest of the registers' (it is what the
//! db_version index finds), and the row-level clock the largest clock.

use crate::error::{Error, Result};
use integer_encoding::VarInt;

/// The column id that stands for the row's existence register.
pub(crate) const ROW_SLOT_ID: u32 = 0;

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
            Some(bytes) => decode_cells(bytes),
        }
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
        let uniform = entries.len() == column_ids.len() + 1
            && entries.iter().all(|(_, s)| *s == entries[0].1)
            && entries[0].0 == ROW_SLOT_ID
            && entries[1..]
                .iter()
                .map(|(id, _)| *id)
                .eq(sorted(column_ids));
        if uniform {
            Some(StoredClock {
                cl,
                row: entries[0].1,
                cells: None,
            })
        } else {
            Some(StoredClock {
                cl,
                row,
                cells: Some(encode_cells(&entries)),
            })
        }
    }
}

fn sorted(ids: &[u32]) -> Vec<u32> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
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
    fn truncated_cells_are_corruption_not_a_panic() {
        let bytes = encode_cells(&[(1, stamp(u64::MAX, 2, 3))]);
        assert!(decode_cells(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_cells(&[0xff]).is_err());
    }
}
