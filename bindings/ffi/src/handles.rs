//! What a database stops when it closes: the live syncs and listeners started from it.

use parking_lot::Mutex;
use std::sync::{Arc, Weak};

/// Something running in the background on behalf of a database.
pub(crate) trait Stoppable: Send + Sync {
    /// Stops it and waits until it has ended; stopping twice is fine.
    fn stop_now(&self);
}

/// Handles most a database keeps before pruning the ones already dropped.
const HANDLES_BEFORE_PRUNE: usize = 64;

/// A database's background work, held weakly: a handle the app dropped is not kept alive.
#[derive(Default)]
pub(crate) struct Handles {
    running: Mutex<Vec<Weak<dyn Stoppable>>>,
}

impl Handles {
    /// Remembers `handle`, to stop it when the database closes.
    pub(crate) fn add(&self, handle: Arc<dyn Stoppable>) {
        let mut running = self.running.lock();
        if running.len() >= HANDLES_BEFORE_PRUNE {
            running.retain(|h| h.strong_count() > 0);
        }
        running.push(Arc::downgrade(&handle));
    }

    /// Stops everything still running.
    pub(crate) fn stop_all(&self) {
        let running = std::mem::take(&mut *self.running.lock());
        for handle in running.iter().filter_map(Weak::upgrade) {
            handle.stop_now();
        }
    }
}
