//! Row fingerprints for range-based set reconciliation.
//!
//! Two replicas that know nothing of each other's cursors find what differs between them by
//! comparing fingerprints of ranges of rows, descending only into ranges that differ. The
//! rows are ordered by a 64-bit hash of `(table, key)` (the *row hash*), which places rows of
//! materialised tables and rows held in the relay in one space without caring about how
//! SQLite orders keys. A row's *fingerprint* is its contribution to the state digest (the sum
//! of its live registers' hashes, [`crate::rules::digest`]) cut to 128 bits, so fingerprints add:
//! a range's fingerprint is the sum of its rows', and the whole space's is the digest's low
//! half. Two replicas hold a row alike exactly when its fingerprints are equal.
//!
//! [`RowIndex`] holds every row of one snapshot, sorted by row hash, with prefix sums: any
//! range's count and fingerprint cost two binary searches. It costs [`RowIndex::BYTES_PER_ROW`]
//! bytes of memory per row.

use crate::error::{Error, Result};
use crate::replica::Replica;
use crate::rules::change::Change;
use crate::rules::value::encode_key;
use std::ops::ControlFlow;

/// The sum of row fingerprints modulo 2^128.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u128);

impl Fingerprint {
    /// The 16-byte wire form (big-endian).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Reads the 16-byte wire form.
    pub fn from_bytes(bytes: [u8; 16]) -> Fingerprint {
        Fingerprint(u128::from_be_bytes(bytes))
    }

    /// The low 128 bits of a digest contribution.
    fn of_digest(digest: &crate::Digest) -> Fingerprint {
        let bytes = digest.to_bytes();
        let mut low = [0u8; 16];
        low.copy_from_slice(&bytes[..16]);
        Fingerprint(u128::from_le_bytes(low))
    }
}

const ROW_HASH_DOMAIN: &str = "weft 2026-11 row hash v1";

/// The position of row `key` (canonical key bytes, [`encode_key`]) of `table` in the
/// reconciliation space: the first 8 bytes (big-endian) of a keyed BLAKE3 of both.
pub fn row_hash(table: &str, key: &[u8]) -> u64 {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let domain = KEY.get_or_init(|| blake3::derive_key(ROW_HASH_DOMAIN, b""));
    let mut hasher = blake3::Hasher::new_keyed(domain);
    hasher.update(&(table.len() as u64).to_le_bytes());
    hasher.update(table.as_bytes());
    hasher.update(&(key.len() as u64).to_le_bytes());
    hasher.update(key);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_be_bytes(first)
}

/// The row hash of the row a change belongs to.
pub fn change_row_hash(change: &Change) -> u64 {
    row_hash(&change.table, &encode_key(&change.pk))
}

/// Which rows a sender leaves out after reconciliation: those at or below the compared
/// snapshot that the other side holds alike (every row whose hash is not in `rows`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowFilter {
    /// The db_version of the snapshot compared: changes above it are always sent.
    pub through: u64,
    /// Row hashes of the rows to send.
    pub rows: std::collections::HashSet<u64>,
}

impl RowFilter {
    /// Whether a change of the row with `row_hash`, stored at `db_version`, is sent.
    pub fn sends(&self, db_version: u64, row_hash: impl FnOnce() -> u64) -> bool {
        db_version > self.through || self.rows.contains(&row_hash())
    }
}

/// An inclusive range of row hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashRange {
    /// The first row hash in the range.
    pub first: u64,
    /// The last row hash in the range (inclusive, so the whole space is `0..=u64::MAX`).
    pub last: u64,
}

impl HashRange {
    /// Every row hash.
    pub const ALL: HashRange = HashRange {
        first: 0,
        last: u64::MAX,
    };

    /// How many hashes the range spans (1 to 2^64).
    pub fn width(&self) -> u128 {
        u128::from(self.last) - u128::from(self.first) + 1
    }

    /// Splits the range into `parts` ranges of (nearly) equal width, in order; fewer when the
    /// range is narrower than `parts`. Both sides of a conversation split alike.
    pub fn split(&self, parts: usize) -> Vec<HashRange> {
        let parts = (parts.max(1) as u128).min(self.width());
        let width = self.width();
        (0..parts)
            .map(|i| {
                let start = u128::from(self.first) + width * i / parts;
                let end = u128::from(self.first) + width * (i + 1) / parts - 1;
                HashRange {
                    first: start as u64,
                    last: end as u64,
                }
            })
            .collect()
    }
}

/// Every row of one snapshot of a replica: row hashes in order, with prefix sums of their
/// fingerprints.
#[derive(Clone, Debug)]
pub struct RowIndex {
    hashes: Vec<u64>,
    /// `prefix[i]` is the sum of the fingerprints of rows `0..i`.
    prefix: Vec<u128>,
    db_version: u64,
}

/// One row in a [`RowIndex`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexedRow {
    /// Its row hash.
    pub hash: u64,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

/// Sorts parts of rows by row hash and adds up the fingerprints of parts of one row (a
/// fingerprint of a sum of contributions is the sum of theirs), leaving one entry per row.
fn fold_parts(parts: &mut Vec<(u64, u128)>) {
    parts.sort_unstable_by_key(|p| p.0);
    let mut folded = 0;
    for i in 0..parts.len() {
        if folded > 0 && parts[folded - 1].0 == parts[i].0 {
            parts[folded - 1].1 = parts[folded - 1].1.wrapping_add(parts[i].1);
        } else {
            parts[folded] = parts[i];
            folded += 1;
        }
    }
    parts.truncate(folded);
}

impl RowIndex {
    /// Memory an index takes per row, in bytes.
    pub const BYTES_PER_ROW: usize = 24;

    /// Indexes every row of `replica` in one read snapshot. `Ok(None)` if it holds more than
    /// `rows_max` rows (the caller falls back to sending everything).
    pub fn build(replica: &Replica, rows_max: usize) -> Result<Option<RowIndex>> {
        replica.in_read_snapshot(|| {
            let db_version = replica.db_version()?;
            // (row hash, fingerprint) per part of a row: a row may be partly in its table
            // and partly in the relay, and in several runs of the relay. Parts are folded
            // into rows whenever they fill twice the rows allowed, which bounds the memory.
            let parts_max = rows_max.saturating_mul(2).max(1);
            let mut parts: Vec<(u64, u128)> = Vec::new();
            let complete = replica.visit_rows(|table, key, contribution| {
                if parts.len() >= parts_max {
                    fold_parts(&mut parts);
                    if parts.len() > rows_max {
                        return ControlFlow::Break(());
                    }
                }
                parts.push((
                    row_hash(table, key),
                    Fingerprint::of_digest(&contribution).0,
                ));
                ControlFlow::Continue(())
            })?;
            if !complete {
                return Ok(None);
            }
            fold_parts(&mut parts);
            if parts.len() > rows_max {
                return Ok(None);
            }
            let mut hashes = Vec::with_capacity(parts.len());
            let mut prefix = Vec::with_capacity(parts.len() + 1);
            prefix.push(0u128);
            for (hash, fingerprint) in parts {
                let total = prefix[prefix.len() - 1];
                hashes.push(hash);
                prefix.push(total.wrapping_add(fingerprint));
            }
            Ok(Some(RowIndex {
                hashes,
                prefix,
                db_version,
            }))
        })
    }

    /// The db_version of the snapshot indexed: every change at or below it is in the index.
    pub fn db_version(&self) -> u64 {
        self.db_version
    }

    /// How many rows the index holds.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether the index holds no row.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    fn bounds(&self, range: HashRange) -> (usize, usize) {
        let start = self.hashes.partition_point(|h| *h < range.first);
        let end = self.hashes.partition_point(|h| *h <= range.last);
        (start, end)
    }

    /// How many rows fall in `range`, and the sum of their fingerprints.
    pub fn summary(&self, range: HashRange) -> (u64, Fingerprint) {
        let (start, end) = self.bounds(range);
        (
            (end - start) as u64,
            Fingerprint(self.prefix[end].wrapping_sub(self.prefix[start])),
        )
    }

    /// The rows in `range`, in order.
    pub fn rows(&self, range: HashRange) -> impl Iterator<Item = IndexedRow> + '_ {
        let (start, end) = self.bounds(range);
        (start..end).map(move |i| IndexedRow {
            hash: self.hashes[i],
            fingerprint: Fingerprint(self.prefix[i + 1].wrapping_sub(self.prefix[i])),
        })
    }

    /// Checks the index against the replica's digest: the fingerprints of all rows sum to
    /// the digest's low half. A mismatch means the index or the digest is wrong.
    pub fn check_against(&self, digest: &crate::Digest) -> Result<()> {
        let (_, total) = self.summary(HashRange::ALL);
        if total != Fingerprint::of_digest(digest) {
            return Err(Error::Corrupt(
                "row fingerprints do not add up to the state digest".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_the_range_exactly_in_order() {
        for range in [
            HashRange::ALL,
            HashRange { first: 5, last: 5 },
            HashRange {
                first: 10,
                last: 20,
            },
            HashRange {
                first: u64::MAX - 3,
                last: u64::MAX,
            },
        ] {
            for parts in [1, 2, 16, 100] {
                let split = range.split(parts);
                assert!(!split.is_empty() && split.len() <= parts);
                assert_eq!(split[0].first, range.first);
                assert_eq!(split[split.len() - 1].last, range.last);
                for pair in split.windows(2) {
                    assert_eq!(pair[0].last + 1, pair[1].first, "{range:?} in {parts}");
                    assert!(pair[0].first <= pair[0].last);
                }
            }
        }
    }
}
