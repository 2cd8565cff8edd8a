//! `weft peers`: a server's peer links as a table (or its JSON).

use anyhow::Context;
use std::io::Write;
use weft_server::peers::{get_json, PeersStatus, PEERS_PATH};
use weft_server::PeerUrl;

/// Runs `weft peers`.
pub(super) fn run(server: &str, token: Option<String>, json: bool) -> anyhow::Result<()> {
    let url = PeerUrl::parse(server).context("--server")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let status: PeersStatus = runtime.block_on(get_json(&url, PEERS_PATH, token.as_deref()))?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &status)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", table(&status))?;
    }
    Ok(())
}

/// One row per peer and database; a peer with no database yet gets one row of its own; then
/// one row per link other servers have open to this one.
fn table(status: &PeersStatus) -> String {
    let mut rows = vec![[
        "PEER".to_owned(),
        "DATABASE".to_owned(),
        "CONNECTED".to_owned(),
        "BEHIND".to_owned(),
        "BEHIND_S".to_owned(),
        "ATTEMPTS".to_owned(),
        "LAST ERROR".to_owned(),
    ]];
    for peer in &status.peers {
        if let Some(error) = &peer.listing_error {
            rows.push([
                peer.url.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!(
                    "listing: {error} ({})",
                    peer.listing_error_at.as_deref().unwrap_or("")
                ),
            ]);
        } else if peer.databases.is_empty() {
            rows.push([
                peer.url.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                String::new(),
            ]);
        }
        for link in &peer.databases {
            let error = match (&link.last_error, &link.last_error_at) {
                (Some(error), Some(at)) => format!("{error} ({at})"),
                (Some(error), None) => error.clone(),
                _ => String::new(),
            };
            rows.push([
                peer.url.clone(),
                link.database.clone(),
                if link.connected { "yes" } else { "no" }.into(),
                link.db_versions_behind.to_string(),
                format!("{:.1}", link.seconds_behind),
                link.attempts.to_string(),
                error.replace(['\r', '\n'], " "),
            ]);
        }
    }
    for link in &status.incoming {
        let caught_up = link.pulled_all && link.pushed_all;
        rows.push([
            format!("{} (incoming)", link.from),
            link.database.clone(),
            "yes".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            if caught_up {
                String::new()
            } else {
                "catching up".into()
            },
        ]);
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
