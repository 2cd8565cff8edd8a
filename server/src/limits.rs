//! Every bound of the server in one place: sizes, counts and waits that stop something from
//! growing without end. Each breach is refused or cut with an error that names the bound.

use std::time::Duration;

/// Databases one peer link set follows, at most; and the most names `GET /v1/databases`
/// lists.
pub const DATABASES_PER_PEER_MAX: usize = 1_000;

/// The longest wait between two connection attempts of one link (or two listings that fail).
pub const PEER_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Largest answer body read, in bytes.
pub const PEER_ANSWER_BYTES_MAX: usize = 4 << 20;

/// SQLite connections a database keeps for its conversations' steps: at most this many steps
/// of one database run at once, and an idle client costs the server no SQLite connection
/// (measured: a connection is ~280 KiB of caches). Writes to one file take turns anyway.
pub const REPLICAS_OPEN_MAX: usize = 8;

/// Entries of the databases directory looked at, at most: bounds the time one listing takes
/// in a directory full of other files.
pub const DIRECTORY_ENTRIES_MAX: usize = 100_000;

/// How long a database's spare connection may go unused before it is closed.
pub const IDLE_CONNECTION_MAX: Duration = Duration::from_secs(60);

/// Events one delivery carries at most (one webhook POST; NATS messages between flushes).
pub const BATCH_EVENTS_MAX: usize = 100;

/// The longest wait between two attempts at one batch. A batch is retried until it is
/// acknowledged: skipping it would lose events.
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Most webhooks one server posts to.
pub const WEBHOOKS_MAX: usize = 16;

/// Answer bytes read from a receiver at most (the answer is ignored but for its status).
pub const WEBHOOK_ANSWER_BYTES_MAX: usize = 64 << 10;

/// Most bytes one [`BlobStore::read_at`](weft_core::blobs::BlobStore::read_at) returns: a read asks for one sync chunk, so a
/// larger request is a caller's mistake, refused rather than buffered.
pub const READ_BYTES_MAX: usize = 64 << 20;

/// Most parts of one multipart upload (S3's limit): larger files get larger parts.
pub const PARTS_MAX: u64 = 10_000;

/// Longest `--blobs` URL accepted, in bytes.
pub const BLOBS_URL_BYTES_MAX: usize = 2048;

/// Largest configuration file read, in bytes.
pub const CONFIG_FILE_BYTES_MAX: u64 = 1 << 20;

/// Most peers one server dials.
pub const PEERS_MAX: usize = 64;

/// The longest database name, in bytes.
pub const DATABASE_NAME_MAX: usize = 64;

/// Incoming peer links `GET /v1/peers` lists, at most.
pub const INCOMING_LINKS_SHOWN_MAX: usize = 1_000;
