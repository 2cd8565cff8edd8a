//! `weft sync`: sync a replica with a server database, once or live.

use super::progress;
use super::words::count;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use weft_client::{sync_once, LiveEvent, LiveOptions, LiveSync, SyncTarget};
use weft_core::sync::SessionEvent;

/// Runs `weft sync`; `ca_file` adds trusted CA certificates for a `wss://` URL.
pub fn run(
    db: &Path,
    url: &str,
    token: Option<String>,
    ca_file: Option<PathBuf>,
    once: bool,
) -> anyhow::Result<()> {
    let mut target = SyncTarget::new(url, token);
    target.ca_file = ca_file;
    target.database()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if once {
        runtime.block_on(run_once(db, &target))
    } else {
        runtime.block_on(run_live(db, target))
    }
}

async fn run_once(db: &Path, target: &SyncTarget) -> anyhow::Result<()> {
    let bar = progress::bar(0, "receiving");
    let mut blobs = BlobBar::default();
    let report = sync_once(db, target, |event, status| match event {
        SessionEvent::BlobProgress {
            hash,
            done,
            size,
            incoming,
        } => blobs.update(*hash, *done, *size, *incoming),
        SessionEvent::BlobRefused { hash, reason } => {
            bar.suspend(|| eprintln!("refused blob {hash}: {reason}"))
        }
        SessionEvent::Connected { db_version, .. } => {
            bar.set_length(*db_version);
            bar.set_position(status.received_through.min(*db_version));
        }
        SessionEvent::Applied {
            received_through, ..
        } => {
            bar.set_position((*received_through).min(bar.length().unwrap_or(0)));
            bar.set_message(format!(
                "received {} changes, sent {}",
                status.changes_received, status.changes_acknowledged
            ));
        }
        SessionEvent::Acknowledged { .. } => bar.set_message(format!(
            "received {} changes, sent {}",
            status.changes_received, status.changes_acknowledged
        )),
        SessionEvent::Reconciled {
            rows_to_send,
            rows_wanted,
            fallback: false,
        } => bar.suspend(|| {
            eprintln!(
                "no cursors either way: compared rows with the server; {} to send, {} to \
                 receive",
                count(*rows_to_send, "row", "rows"),
                count(*rows_wanted, "row", "rows"),
            )
        }),
        _ => {}
    })
    .await;
    bar.finish_and_clear();
    blobs.finish();
    let report = report?;
    if report.blobs_received + report.blobs_sent + report.blobs_missing > 0 {
        eprintln!(
            "blobs: received {} ({}), sent {} ({})",
            report.blobs_received,
            count(report.blob_bytes_received, "byte", "bytes"),
            report.blobs_sent,
            count(report.blob_bytes_sent, "byte", "bytes"),
        );
    }
    if report.blobs_missing > 0 {
        eprintln!(
            "{} blob{} not on the server yet (the replica that put {} has not uploaded {}); \
             sync again later",
            report.blobs_missing,
            if report.blobs_missing == 1 {
                " is"
            } else {
                "s are"
            },
            if report.blobs_missing == 1 {
                "it"
            } else {
                "them"
            },
            if report.blobs_missing == 1 {
                "it"
            } else {
                "them"
            },
        );
    }
    if report.blobs_refused > 0 {
        bail!(
            "{} blob{} from the server did not match {} hash and {} refused; nothing of {} was stored",
            report.blobs_refused,
            if report.blobs_refused == 1 { "" } else { "s" },
            if report.blobs_refused == 1 { "its" } else { "their" },
            if report.blobs_refused == 1 { "was" } else { "were" },
            if report.blobs_refused == 1 { "it" } else { "them" },
        );
    }
    eprintln!(
        "received {} ({}), sent {} ({}) over {}",
        count(report.received, "change", "changes"),
        count(report.bytes_received, "byte", "bytes"),
        report.sent,
        count(report.bytes_sent, "byte", "bytes"),
        count(report.connections, "connection", "connections"),
    );
    if report.rejected > 0 {
        bail!(
            "the server refused {} local change{} ({}); they remain in {}",
            report.rejected,
            if report.rejected == 1 { "" } else { "s" },
            report.reject_reasons.join("; "),
            db.display()
        );
    }
    match report.digest {
        Some(digest) if report.in_sync => {
            eprintln!("in sync: {}", digest.to_hex());
            Ok(())
        }
        _ => bail!("caught up, but the server's state still differs (it kept changing)"),
    }
}

async fn run_live(db: &Path, target: SyncTarget) -> anyhow::Result<()> {
    // Open once up front so a bad path fails now, not in the background.
    drop(weft_core::Replica::open(db)?);
    let live = LiveSync::start(db, target, LiveOptions::default());
    let mut events = live.subscribe();
    eprintln!("syncing {} live; Ctrl-C to stop", db.display());
    // The sides compare digests again after every exchange: say `in sync` once per state.
    let mut in_sync_at = None;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Ok(LiveEvent::Sync(SessionEvent::Connected { .. })) => eprintln!("connected"),
                Ok(LiveEvent::Sync(SessionEvent::Applied { changes, db_version: Some(_), .. })) => {
                    eprintln!("received {}", count(changes, "change", "changes"))
                }
                Ok(LiveEvent::Sync(SessionEvent::Acknowledged { changes })) if changes > 0 => {
                    eprintln!("sent {}", count(changes, "change", "changes"))
                }
                Ok(LiveEvent::Sync(SessionEvent::InSync { digest })) => {
                    if in_sync_at != Some(digest) {
                        eprintln!("in sync: {}", digest.to_hex());
                        in_sync_at = Some(digest);
                    }
                }
                Ok(LiveEvent::Sync(SessionEvent::BlobReceived { hash, size })) => {
                    eprintln!("received blob {hash} ({size} bytes)")
                }
                Ok(LiveEvent::Sync(SessionEvent::BlobRefused { hash, reason })) => {
                    eprintln!("refused blob {hash}: {reason}")
                }
                Ok(LiveEvent::Sync(SessionEvent::Rejected { count: refused, reason })) => {
                    let refused = count(refused, "local change", "local changes");
                    eprintln!("the server refused {refused}: {reason}")
                }
                Ok(LiveEvent::Disconnected { error, retry_in: Some(wait) }) => {
                    eprintln!("disconnected: {error}; retrying in {:.1}s", wait.as_secs_f64())
                }
                Ok(LiveEvent::Disconnected { error, retry_in: None }) => {
                    live.stop().await;
                    bail!("{error}");
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    }
    live.stop().await;
    Ok(())
}

/// One byte bar over the blobs moving in a sync: its length is the sizes of the blobs seen
/// so far, its position their bytes moved (counting a partial copy from an earlier sync).
#[derive(Default)]
struct BlobBar {
    bar: Option<indicatif::ProgressBar>,
    blobs: std::collections::HashMap<(weft_core::blobs::BlobHash, bool), (u64, u64)>,
}

impl BlobBar {
    fn update(&mut self, hash: weft_core::blobs::BlobHash, done: u64, size: u64, incoming: bool) {
        self.blobs.insert((hash, incoming), (done, size));
        let (done, total) = self
            .blobs
            .values()
            .fold((0, 0), |(d, t), (done, size)| (d + done, t + size));
        let bar = self
            .bar
            .get_or_insert_with(|| progress::bytes(Some(total), "blobs"));
        bar.set_length(total);
        bar.set_position(done);
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
