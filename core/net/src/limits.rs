//! Every bound of the driver in one place: what one conversation holds in memory at most.

/// Frames one step may send before the socket gets a turn: bounds the memory a step holds.
pub const FRAMES_PER_STEP_MAX: usize = 64;

/// Decoded frames waiting in the channel for the session (the reader holds one more until
/// there is room, and the session one it applies): bounds the memory reading ahead holds (a
/// batch is at most `changes_per_batch_max` changes).
pub const DECODED_AHEAD_MAX: usize = 1;

/// Bytes a CA file (PEM) may hold: room for hundreds of certificates (Mozilla's whole set is
/// about 250 KB), while a wrong path to a huge file fails at once instead of filling memory.
pub const CA_FILE_BYTES_MAX: usize = 1 << 20;
