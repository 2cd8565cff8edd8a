//! `weft import DB FILE`: apply a bundle written by `weft export`.

use super::words::count;
use super::{open, progress};
use anyhow::{bail, Context};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use weft_core::{bundle, Limits};

/// Checks the bundle at `file` whole, then applies it whole to the replica at `db` (created
/// if missing, but only once the bundle checked out).
pub(super) fn run(db: &Path, file: &Path) -> anyhow::Result<()> {
    let reader = || -> weft_core::Result<BufReader<File>> { Ok(BufReader::new(File::open(file)?)) };
    if file.is_dir() {
        bail!("{} is a directory, not a bundle", file.display());
    }
    let first =
        File::open(file).with_context(|| format!("cannot open bundle {}", file.display()))?;
    let refused = || format!("nothing was imported from {}", file.display());
    if !db.exists() {
        // The engine checks the bundle too; checking first here keeps a damaged bundle from
        // leaving a new, empty replica behind.
        bundle::verify(
            BufReader::new(first),
            Limits::default().bundle_frame_bytes_max,
        )
        .with_context(refused)?;
    }
    let replica = open::create(db)?;
    let bar = progress::changes("importing");
    let result = bundle::import(&replica, reader, |n| bar.set_position(n));
    bar.finish_and_clear();
    let summary = result.with_context(refused)?;
    eprintln!(
        "imported {} ({} new to this replica)",
        count(summary.changes, "change", "changes"),
        summary.applied
    );
    Ok(())
}
