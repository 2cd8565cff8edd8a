//! Every bound of the `weft` tool in one place: what one command holds in memory, shows or
//! waits at most.

use std::time::Duration;

/// Output held in memory up to this size, then in a temporary file: only once the statements
/// run out is it known which one was last, so every result is held until the next replaces it.
pub const SPOOL_MEMORY_MAX: usize = 16 << 20;

/// Most buckets `weft blob ls DB` and `weft info` show.
pub const BUCKETS_SHOWN_MAX: usize = 10_000;

/// Longest `--mime` accepted, in bytes.
pub const MIME_BYTES_MAX: usize = 255;

/// `weft watch`: the longest wait between two connection attempts.
pub const WATCH_RECONNECT_WAIT_MAX: Duration = Duration::from_secs(5);

/// `weft watch`: the longest SSE line accepted; a longer one is a broken stream.
pub const WATCH_LINE_BYTES_MAX: usize = 64 << 20;

/// `weft gc`: most databases one run goes through (the first ones by name).
pub const GC_DATABASES_MAX: usize = 100_000;
