//! The one async runtime the bindings run network work on: two worker threads, started on
//! first use, shared by every database in the process.

use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// Worker threads of the sync runtime: sync is I/O-bound; merges run on these threads too.
const SYNC_WORKER_THREADS: usize = 2;

/// The process's sync runtime.
pub(crate) fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SYNC_WORKER_THREADS)
            .thread_name("weft-sync")
            .enable_all()
            .build()
            // Without threads or a timer nothing of sync can work; this is the process's
            // environment failing, not input.
            .expect("the weft sync runtime starts")
    })
}
