//! Syncing once: connect, exchange until both sides hold the same state, disconnect.

use crate::error::ClientError;
use crate::limits::MISMATCHES_MAX;
use crate::limits::ONCE_ATTEMPTS_MAX;
use backon::BackoffBuilder;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use weft_core::blobs::LocalBlobs;
use weft_core::sync::{BlobFetch, Role, Session, SessionConfig, SessionEvent, Status};
use weft_core::{Digest, Replica};
use weft_net::{connect, drive, Outcome, SyncTarget, Wakeups};

/// What a one-off sync did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SyncReport {
    /// Whether both sides ended with equal state digests.
    pub in_sync: bool,
    /// The common digest, when in sync.
    pub digest: Option<Digest>,
    /// Changes received and applied.
    pub received: u64,
    /// Changes sent and acknowledged.
    pub sent: u64,
    /// Local changes the server refused (they stay in the local replica).
    pub rejected: u64,
    /// Why, as the server said (distinct reasons).
    pub reject_reasons: Vec<String>,
    /// Connections it took.
    pub connections: usize,
    /// Frame bytes received, over all connections.
    pub bytes_received: u64,
    /// Frame bytes sent, over all connections.
    pub bytes_sent: u64,
    /// Blobs received, verified and stored.
    pub blobs_received: u64,
    /// Their bytes received.
    pub blob_bytes_received: u64,
    /// Blobs the server confirmed it stored after this replica sent them.
    pub blobs_sent: u64,
    /// Their bytes sent.
    pub blob_bytes_sent: u64,
    /// Blobs wanted that the server did not hold yet (their writer has not uploaded them).
    pub blobs_missing: u64,
    /// Blobs whose bytes did not match their hash: refused, nothing stored.
    pub blobs_refused: u64,
}

/// How a one-off sync runs.
#[derive(Clone, Debug)]
pub struct OnceOptions {
    /// Which blobs to fetch: by default those of every bucket not set lazy here.
    pub blob_fetch: BlobFetch,
}

impl Default for OnceOptions {
    fn default() -> Self {
        OnceOptions {
            blob_fetch: BlobFetch::Eager,
        }
    }
}

/// Syncs the replica at `db_path` with `target` once: pushes what the server lacks, pulls
/// what it lacks, blobs included (in the store beside the database, [`LocalBlobs::beside`]),
/// and returns when both sides hold the same state and neither still fetches blobs from the
/// other (or when they are caught up but differ, as when the server refused changes). A
/// connection lost on the way is opened again (up to [`ONCE_ATTEMPTS_MAX`] times), resuming
/// where it stopped, blobs included.
pub async fn sync_once(
    db_path: &Path,
    target: &SyncTarget,
    on_event: impl FnMut(&SessionEvent, &Status) + Send,
) -> Result<SyncReport, ClientError> {
    sync_once_with(db_path, target, &OnceOptions::default(), on_event).await
}

/// [`sync_once`] with options (which blobs to fetch).
pub async fn sync_once_with(
    db_path: &Path,
    target: &SyncTarget,
    options: &OnceOptions,
    mut on_event: impl FnMut(&SessionEvent, &Status) + Send,
) -> Result<SyncReport, ClientError> {
    let database = target.database()?;
    let store = Arc::new(LocalBlobs::beside(db_path).map_err(weft_core::Error::from)?);
    let mut replica = Some(Replica::open(db_path)?);
    let mut report = SyncReport::default();
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        report.connections += 1;
        let mut config = SessionConfig::new(Role::Client, database.as_str());
        config.blobs = Some(store.clone());
        config.blob_fetch = options.blob_fetch.clone();
        let attempt = once_over_one_connection(
            replica.take().expect("the replica is back"),
            target,
            config,
            &mut report,
            &mut on_event,
        )
        .await;
        match attempt {
            (Some(back), Err(error))
                if error.is_transient() && report.connections < ONCE_ATTEMPTS_MAX =>
            {
                tracing::warn!(%error, "sync connection lost; trying again");
                replica = Some(back);
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
            }
            (back, result) => {
                if let (Some(replica), Ok(())) = (back, &result) {
                    // Where a lazy bucket's bytes come from on first read.
                    replica.buckets().remember_source(&target.url)?;
                }
                return result.map(|()| report);
            }
        }
    }
}

async fn once_over_one_connection(
    replica: Replica,
    target: &SyncTarget,
    config: SessionConfig,
    report: &mut SyncReport,
    on_event: &mut (impl FnMut(&SessionEvent, &Status) + Send),
) -> (Option<Replica>, Result<(), ClientError>) {
    let socket = match connect(target).await {
        Ok(socket) => socket,
        Err(error) => return (Some(replica), Err(error.into())),
    };
    let session = match Session::initiator(&replica, config) {
        Ok(session) => session,
        Err(error) => return (Some(replica), Err(error.into())),
    };
    let mut mismatches = 0;
    let (received_before, sent_before) = (report.bytes_received, report.bytes_sent);
    let (blob_received_before, blob_sent_before) =
        (report.blob_bytes_received, report.blob_bytes_sent);
    let driven = drive(
        socket,
        replica,
        session,
        Wakeups::default(),
        |event, status| {
            on_event(event, status);
            report.bytes_received = received_before + status.bytes_received;
            report.bytes_sent = sent_before + status.bytes_sent;
            report.blob_bytes_received = blob_received_before + status.blobs.bytes_received;
            report.blob_bytes_sent = blob_sent_before + status.blobs.bytes_sent;
            match event {
                SessionEvent::BlobReceived { .. } => report.blobs_received += 1,
                SessionEvent::BlobSent { .. } => report.blobs_sent += 1,
                SessionEvent::BlobMissing { .. } => report.blobs_missing += 1,
                SessionEvent::BlobRefused { .. } => report.blobs_refused += 1,
                SessionEvent::Applied { changes, .. } => report.received += *changes as u64,
                SessionEvent::Acknowledged { changes } => report.sent += *changes as u64,
                SessionEvent::Rejected { count, reason } => {
                    report.rejected += count;
                    if !report.reject_reasons.contains(reason) {
                        report.reject_reasons.push(reason.clone());
                    }
                }
                SessionEvent::InSync { digest } => {
                    report.in_sync = true;
                    report.digest = Some(*digest);
                    // Done once neither side still fetches blobs from the other; a side that
                    // stops fetching offers its digest again, so another InSync follows.
                    if !status.blobs.fetching && !status.blobs.peer_fetching {
                        return ControlFlow::Break(());
                    }
                }
                SessionEvent::DigestMismatch { .. } => {
                    mismatches += 1;
                    if mismatches >= MISMATCHES_MAX {
                        report.in_sync = false;
                        return ControlFlow::Break(());
                    }
                }
                _ => {}
            }
            ControlFlow::Continue(())
        },
    )
    .await;
    let result = match driven.result {
        Ok(Outcome::Stopped) => Ok(()),
        Ok(Outcome::PeerClosed) => Err(ClientError::Closed),
        Ok(Outcome::SessionClosed { code, message }) => {
            Err(ClientError::Protocol { code, message })
        }
        Err(error) => Err(error.into()),
    };
    (driven.replica, result)
}
