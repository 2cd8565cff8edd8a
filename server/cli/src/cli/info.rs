//! `weft info DB`: what a replica is and holds.

use super::blob::bucket_usage;
use super::open;
use super::words::count;
use crate::limits::BUCKETS_SHOWN_MAX;
use indicatif::HumanBytes;
use std::io::Write;
use std::path::Path;

/// Prints the replica's site id, incarnation, db_version, replicated tables with their row
/// counts, the number of relayed registers and the buckets (entries, bytes, bytes held here,
/// lazy or not), as aligned text or (with `as_json`) one JSON object.
pub(super) fn run(db: &Path, as_json: bool) -> anyhow::Result<()> {
    let replica = open::existing(db)?;
    let info = replica.info()?;
    let buckets = bucket_usage(&replica)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let tables: serde_json::Map<String, serde_json::Value> = info
            .tables
            .iter()
            .map(|(name, rows)| (name.clone(), (*rows).into()))
            .collect();
        let buckets_json: serde_json::Map<String, serde_json::Value> = buckets
            .iter()
            .map(|b| {
                let totals = serde_json::json!({
                    "entries": b.entries,
                    "bytes": b.bytes,
                    "bytes_here": b.bytes_here,
                    "lazy": b.lazy,
                });
                (b.bucket.clone(), totals)
            })
            .collect();
        let json = serde_json::json!({
            "site_id": info.site_id.to_hex(),
            "incarnation": info.incarnation.to_hex(),
            "db_version": info.db_version,
            "tables": tables,
            "relayed_registers": info.relayed_registers,
            "buckets": buckets_json,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    writeln!(out, "site id     {}", info.site_id)?;
    writeln!(out, "incarnation {}", info.incarnation)?;
    writeln!(out, "db_version  {}", info.db_version)?;
    writeln!(
        out,
        "relayed     {} registers for tables or columns this replica lacks",
        info.relayed_registers
    )?;
    writeln!(out, "tables")?;
    for (name, rows) in &info.tables {
        writeln!(out, "  {name:<24} {}", count(*rows, "row", "rows"))?;
    }
    if !buckets.is_empty() {
        writeln!(out, "buckets")?;
    }
    for b in &buckets {
        let lazy = if b.lazy { ", lazy here" } else { "" };
        writeln!(
            out,
            "  {:<24} {} entries, {}, {} here{lazy}",
            b.bucket,
            b.entries,
            HumanBytes(b.bytes),
            HumanBytes(b.bytes_here)
        )?;
    }
    if buckets.len() == BUCKETS_SHOWN_MAX {
        writeln!(
            out,
            "  (only the first {BUCKETS_SHOWN_MAX} buckets are shown)"
        )?;
    }
    Ok(())
}

/// Gives the replica a new incarnation and prints the old and the new one.
pub(super) fn renew_incarnation(db: &Path) -> anyhow::Result<()> {
    let replica = open::existing(db)?;
    let old = replica.incarnation()?;
    let new = replica.renew_incarnation()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "incarnation {old} -> {new}")?;
    Ok(())
}
