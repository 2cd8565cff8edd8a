//! `weft sync`: sync a replica with a server database, once or live.

use super::progress;
use anyhow::{bail, Context};
use std::path::Path;
use weft_client::{sync_once, LiveEvent, LiveOptions, LiveSync, SyncTarget};
use weft_core::sync::Event;

/// Runs `weft sync`.
pub fn run(db: &Path, url: &str, token: Option<String>, once: bool) -> anyhow::Result<()> {
    let target = SyncTarget::new(url, token);
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
    let report = sync_once(db, target, |event, status| match event {
        Event::Connected { db_version, .. } => {
            bar.set_length(*db_version);
            bar.set_position(status.received_through.min(*db_version));
        }
        Event::Applied {
            received_through, ..
        } => {
            bar.set_position((*received_through).min(bar.length().unwrap_or(0)));
            bar.set_message(format!(
                "received {} changes, sent {}",
                status.changes_received, status.changes_acknowledged
            ));
        }
        Event::Acknowledged { .. } => bar.set_message(format!(
            "received {} changes, sent {}",
            status.changes_received, status.changes_acknowledged
        )),
        Event::Reconciled {
            rows_to_send,
            rows_wanted,
            fallback: false,
        } => bar.suspend(|| {
            eprintln!(
                "no cursors either way: compared rows with the server; {rows_to_send} rows \
                 to send, {rows_wanted} to receive"
            )
        }),
        _ => {}
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    eprintln!(
        "received {} changes ({} bytes), sent {} ({} bytes) over {} connection{}",
        report.received,
        report.bytes_received,
        report.sent,
        report.bytes_sent,
        report.connections,
        if report.connections == 1 { "" } else { "s" }
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
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Ok(LiveEvent::Sync(Event::Connected { .. })) => eprintln!("connected"),
                Ok(LiveEvent::Sync(Event::Applied { changes, db_version: Some(_), .. })) => {
                    eprintln!("received {changes} changes")
                }
                Ok(LiveEvent::Sync(Event::InSync { digest })) => {
                    eprintln!("in sync: {}", digest.to_hex())
                }
                Ok(LiveEvent::Sync(Event::Rejected { count, reason })) => {
                    eprintln!("the server refused {count} local changes: {reason}")
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
