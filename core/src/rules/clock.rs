//! Hybrid logical clocks: 48 bits of wall-clock milliseconds and a 16-bit counter in one u64.
//!
//! A clock taken by [`HybridClock::tick`] is larger than every clock this replica has issued or
//! observed, so a write always beats every write its replica has seen; between concurrent
//! writes the later wall time wins. Time is handed in, never read here.

use std::sync::Arc;

/// Milliseconds since the Unix epoch, from whatever source the embedder trusts.
pub trait WallClock: Send + Sync + 'static {
    /// The current wall-clock time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A shareable wall clock.
pub type SharedWallClock = Arc<dyn WallClock>;

/// The number of low bits that hold the logical counter.
pub(crate) const COUNTER_BITS: u32 = 16;

/// Clocks further ahead of local wall time than this are accepted but reported.
pub(crate) const FUTURE_TOLERANCE_MS: u64 = 60_000;

/// The hybrid clock of one replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HybridClock {
    last: u64,
}

/// What observing a remote clock found out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observation {
    /// The remote clock is within tolerance of local wall time.
    Ordinary,
    /// The remote clock is more than [`FUTURE_TOLERANCE_MS`] ahead of local wall time.
    FarFuture {
        /// How far ahead, in milliseconds.
        ahead_ms: u64,
    },
}

impl HybridClock {
    /// A clock that has seen everything up to `last`.
    pub(crate) fn starting_at(last: u64) -> Self {
        HybridClock { last }
    }

    /// The largest clock issued or observed so far.
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// Issues a new clock, strictly larger than every clock issued or observed before.
    pub(crate) fn tick(&mut self, now_ms: u64) -> u64 {
        let wall = physical(now_ms);
        let next = wall.max(self.last.saturating_add(1));
        assert!(next > self.last, "hybrid clock must move forward");
        self.last = next;
        next
    }

    /// Advances past a clock received from another replica.
    pub(crate) fn observe(&mut self, remote: u64, now_ms: u64) -> Observation {
        self.last = self.last.max(remote);
        let remote_ms = remote >> COUNTER_BITS;
        if remote_ms > now_ms.saturating_add(FUTURE_TOLERANCE_MS) {
            Observation::FarFuture {
                ahead_ms: remote_ms - now_ms,
            }
        } else {
            Observation::Ordinary
        }
    }
}

/// The clock value of a wall time with a zero counter.
pub(crate) fn physical(now_ms: u64) -> u64 {
    (now_ms & ((1u64 << 48) - 1)) << COUNTER_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_is_strictly_monotonic_even_when_wall_time_goes_back() {
        let mut clock = HybridClock::default();
        let a = clock.tick(1_000);
        let b = clock.tick(1_000);
        let c = clock.tick(500);
        assert!(a < b && b < c);
        assert_eq!(a, physical(1_000));
        let d = clock.tick(2_000);
        assert_eq!(d, physical(2_000));
    }

    #[test]
    fn observing_a_later_clock_moves_past_it() {
        let mut clock = HybridClock::default();
        clock.tick(1_000);
        let remote = physical(5_000) + 3;
        assert_eq!(clock.observe(remote, 1_000), Observation::Ordinary);
        assert!(clock.tick(1_000) > remote);
        let far = physical(1_000 + FUTURE_TOLERANCE_MS + 10);
        assert_eq!(
            clock.observe(far, 1_000),
            Observation::FarFuture {
                ahead_ms: FUTURE_TOLERANCE_MS + 10
            }
        );
    }
}
