//! Every bound the engine enforces, in one place, with units in the names.

/// The engine's bounds. Breaching one is a typed error naming it ([`crate::Error::LimitExceeded`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most changes merged in one transaction: bounds how long a merge holds the write lock.
    pub changes_per_batch_max: usize,
    /// Largest frame in a change bundle file.
    pub bundle_frame_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            changes_per_batch_max: 10_000,
            bundle_frame_bytes_max: 64 << 20,
        }
    }
}
