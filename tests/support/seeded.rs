//! Time and identity from a seed: what makes one simulation seed replay the same run.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use weft_core::WallClock;
use weft_core::{IdSource, Options};

/// Where virtual time starts on the wall clock: 2026-01-01T00:00:00Z, in milliseconds.
pub const VIRTUAL_EPOCH_MS: u64 = 1_767_225_600_000;

/// A wall clock that reads virtual time: it moves only when the harness sets it.
#[derive(Debug)]
pub struct VirtualClock {
    now_ms: AtomicU64,
}

impl VirtualClock {
    /// A clock at virtual time 0 ([`VIRTUAL_EPOCH_MS`] on the wall).
    pub fn new() -> Arc<VirtualClock> {
        Arc::new(VirtualClock {
            now_ms: AtomicU64::new(VIRTUAL_EPOCH_MS),
        })
    }

    /// Sets the clock to `virtual_ms` after the epoch. Time never goes back.
    pub fn set(&self, virtual_ms: u64) {
        let wall_ms = VIRTUAL_EPOCH_MS + virtual_ms;
        let before = self.now_ms.swap(wall_ms, Ordering::Relaxed);
        assert!(before <= wall_ms, "virtual time went back");
    }
}

impl WallClock for VirtualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed)
    }
}

/// Site ids and incarnations drawn from a seeded generator: the same seed, the same ids in
/// the same order.
#[derive(Debug)]
pub struct SeededIds {
    rng: Mutex<ChaCha8Rng>,
}

impl SeededIds {
    /// Ids from `seed`, on a stream of their own (so they do not shift what the harness's
    /// own generator, seeded alike, draws).
    pub fn new(seed: u64) -> Arc<SeededIds> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(1);
        Arc::new(SeededIds {
            rng: Mutex::new(rng),
        })
    }
}

impl IdSource for SeededIds {
    fn fresh_id(&self) -> [u8; 16] {
        let mut id = [0; 16];
        self.rng
            .lock()
            .expect("no test panicked while drawing an id")
            .fill_bytes(&mut id);
        id
    }
}

/// Replica options whose clock and ids come from `clock` and `ids`, shared by every replica
/// of one run.
pub fn options(clock: &Arc<VirtualClock>, ids: &Arc<SeededIds>) -> Options {
    Options {
        wall_clock: clock.clone(),
        ids: ids.clone(),
        ..Options::default()
    }
}
