//! Every bound of the client in one place: what a sync, a listener or a reactive query may
//! hold or retry at most.

/// Rows a reactive query delivers at most; past that its result is cut and `truncated`.
pub const QUERY_ROWS_MAX: usize = 100_000;

/// Events kept for a slow listener before the oldest are dropped.
pub const EVENTS_BUFFERED_MAX: usize = 1024;

/// Attempts `sync_once` makes when the connection fails on the way.
pub const ONCE_ATTEMPTS_MAX: usize = 5;

/// Digest comparisons that may differ before a one-off sync gives up on equal states
/// (each side offers its digest up to three times a state).
pub const MISMATCHES_MAX: usize = 3;
