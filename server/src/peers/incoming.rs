//! The links other servers opened to this one. `GET /v1/peers` shows them beside the links
//! this server dials, so that both ends of a link see it (a server that only others dial
//! has no configured peers of its own).

use super::status::{rfc3339, IncomingLinkStatus};
use crate::limits::INCOMING_LINKS_SHOWN_MAX;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;
use weft_core::sync::Status;

/// The open incoming peer links, by connection.
#[derive(Debug, Default)]
pub(crate) struct IncomingLinks {
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, IncomingLink>>,
}

/// One open incoming link.
#[derive(Debug)]
struct IncomingLink {
    from: SocketAddr,
    database: String,
    site: String,
    since: SystemTime,
    pulled_all: bool,
    pushed_all: bool,
}

impl IncomingLinks {
    fn open(&self) -> MutexGuard<'_, BTreeMap<u64, IncomingLink>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the link a peer at `from` (its site `site`, in hex) opened for `database`; it
    /// is shown until the returned handle drops.
    pub(crate) fn opened(
        self: &Arc<Self>,
        from: SocketAddr,
        database: &str,
        site: String,
    ) -> IncomingLinkHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let link = IncomingLink {
            from,
            database: database.to_owned(),
            site,
            since: SystemTime::now(),
            pulled_all: false,
            pushed_all: false,
        };
        self.open().insert(id, link);
        IncomingLinkHandle {
            links: self.clone(),
            id,
        }
    }

    /// The open links, oldest first, at most [`INCOMING_LINKS_SHOWN_MAX`].
    pub(crate) fn report(&self) -> Vec<IncomingLinkStatus> {
        self.open()
            .values()
            .take(INCOMING_LINKS_SHOWN_MAX)
            .map(|link| IncomingLinkStatus {
                from: link.from.to_string(),
                database: link.database.clone(),
                site: link.site.clone(),
                connected_since: rfc3339(link.since),
                pulled_all: link.pulled_all,
                pushed_all: link.pushed_all,
            })
            .collect()
    }
}

/// An incoming link on record; dropping it takes the link off.
#[derive(Debug)]
pub(crate) struct IncomingLinkHandle {
    links: Arc<IncomingLinks>,
    id: u64,
}

impl IncomingLinkHandle {
    /// The session reports where it stands.
    pub(crate) fn update(&self, status: &Status) {
        if let Some(link) = self.links.open().get_mut(&self.id) {
            link.pulled_all = status.pulled_all;
            link.pushed_all = status.pushed_all;
        }
    }
}

impl Drop for IncomingLinkHandle {
    fn drop(&mut self) {
        self.links.open().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_shows_until_its_handle_drops() {
        let links = Arc::new(IncomingLinks::default());
        let from: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let first = links.opened(from, "notes", "ab".into());
        let second = links.opened(from, "todos", "ab".into());
        let shown = links.report();
        assert_eq!(shown.len(), 2);
        assert_eq!(shown[0].database, "notes");
        assert_eq!(shown[0].from, "127.0.0.1:4000");
        assert!(!shown[0].pulled_all);
        drop(first);
        let shown = links.report();
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].database, "todos");
        drop(second);
        assert!(links.report().is_empty());
    }
}
