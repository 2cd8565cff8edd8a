//! `weft crr DB TABLE`: make a table replicated.

use super::open;
use std::path::Path;

/// Makes `table` of the replica at `db` replicated; the engine's refusal names the problem.
pub(super) fn run(db: &Path, table: &str) -> anyhow::Result<()> {
    open::existing(db)?.enable_crr(table)?;
    eprintln!("{table} is replicated");
    Ok(())
}
