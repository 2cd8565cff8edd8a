//! A replica and its blob store, as the session tests and the simulation open them.

use std::path::Path;
use std::sync::Arc;
use weft_core::blobs::LocalBlobs;
use weft_core::sync::{Role, SessionConfig};
use weft_core::{Options, Replica};

/// The database name every test session asks for.
pub const DATABASE: &str = "db";

/// A replica and its blob store (beside its file, without fsync).
pub struct Node {
    /// The replica.
    pub replica: Replica,
    /// Its blob store.
    pub store: Arc<LocalBlobs>,
}

impl Node {
    /// Opens (creating) the replica `name` in `dir` with default options.
    pub fn open(dir: &Path, name: &str) -> Node {
        Node::open_with(dir, name, Options::default())
    }

    /// Opens (creating) the replica `name` in `dir` with `options`.
    pub fn open_with(dir: &Path, name: &str, options: Options) -> Node {
        let replica = Replica::open_with(dir.join(name), options).expect("open a replica");
        let store = store_beside(&replica);
        Node { replica, store }
    }

    /// A session configuration for `role` that moves blobs through this node's store.
    pub fn config(&self, role: Role) -> SessionConfig {
        let mut config = SessionConfig::new(role, DATABASE);
        config.blobs = Some(self.store.clone());
        config
    }
}

/// The blob store beside `replica`'s file, without fsync (tests do not survive power loss).
pub fn store_beside(replica: &Replica) -> Arc<LocalBlobs> {
    Arc::new(
        LocalBlobs::beside(replica.path())
            .expect("a blob store")
            .without_fsync(),
    )
}
