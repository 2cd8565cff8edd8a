//! Internals that tests and benchmarks reach, and nothing else: hidden from the docs and not
//! part of the API (it may change in any release).
//!
//! One way in, chosen over a cargo feature: the integration tests of this crate and of
//! `weft-tests` are other crates, so a `cfg(test)` item is invisible to them, and a feature
//! would have to be switched on by each of them and would build the crate twice in a workspace
//! check. `#[doc(hidden)] pub` costs nothing and keeps the public API what the docs show.

/// Row fingerprints and the index of one snapshot's rows that range-based reconciliation
/// compares (tests check it against the digest, benchmarks time it).
pub use crate::sync::fingerprint::{
    change_row_hash, row_hash, Fingerprint, HashRange, IndexedRow, RowFilter, RowIndex,
};
