//! `weft digest DB`: the replica's state digest.

use super::open;
use std::io::Write;
use std::path::Path;

/// Prints the digest of the replica at `db` as 64 hex characters and a newline.
pub(super) fn run(db: &Path) -> anyhow::Result<()> {
    let digest = open::existing(db)?.digest()?;
    writeln!(std::io::stdout(), "{}", digest.to_hex())?;
    Ok(())
}
