//! `weft info DB`: what a replica is and holds.

use super::open;
use std::path::Path;

/// Prints the replica's site id, db_version, tables and relayed registers.
pub(super) fn run(db: &Path, as_json: bool) -> anyhow::Result<()> {
    let info = open::replica(db)?.info()?;
    if as_json {
        let tables: serde_json::Map<String, serde_json::Value> = info
            .tables
            .iter()
            .map(|(name, rows)| (name.clone(), (*rows).into()))
            .collect();
        let json = serde_json::json!({
            "site_id": info.site_id.to_hex(),
            "db_version": info.db_version,
            "tables": tables,
            "relayed_registers": info.relayed_registers,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("site id     {}", info.site_id);
    println!("db_version  {}", info.db_version);
    println!(
        "relayed     {} registers for tables or columns this replica lacks",
        info.relayed_registers
    );
    println!(
        "tables{}",
        if info.tables.is_empty() {
            "      (none replicated)"
        } else {
            ""
        }
    );
    for (name, rows) in &info.tables {
        println!("  {name:<24} {rows} rows");
    }
    Ok(())
}
