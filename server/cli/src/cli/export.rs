//! `weft export DB`: a replica's changes as a bundle file.

use super::words::count;
use super::{open, progress};
use anyhow::{bail, Context};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use weft_core::bundle::{self, BundleSummary};
use weft_core::Replica;

/// Writes every change of the replica at `db` after db_version `since` to `out`, or to
/// standard output when `out` is `None` (refused if that is a terminal).
pub(super) fn run(db: &Path, since: u64, out: Option<&Path>) -> anyhow::Result<()> {
    if out.is_none() && std::io::stdout().is_terminal() {
        bail!("a bundle is binary data; redirect standard output to a file or use --out FILE");
    }
    let replica = open::existing(db)?;
    let summary = match out {
        Some(path) => to_file(&replica, since, path)?,
        None => write(&replica, since, std::io::stdout().lock())?,
    };
    eprintln!(
        "exported {} in {}, complete through db_version {}",
        count(summary.changes, "change", "changes"),
        count(summary.frames, "frame", "frames"),
        summary.through_db_version
    );
    Ok(())
}

/// Writes the bundle to `path`; on failure removes the partial file rather than leave it.
/// Refuses a `path` that is the replica's own file, which creating the bundle would erase.
fn to_file(replica: &Replica, since: u64, path: &Path) -> anyhow::Result<BundleSummary> {
    if let (Ok(target), Ok(own)) = (path.canonicalize(), replica.path().canonicalize()) {
        if target == own {
            bail!(
                "--out {} is the replica's own database file",
                path.display()
            );
        }
    }
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    write(replica, since, file).inspect_err(|_| {
        let _ = std::fs::remove_file(path);
    })
}

/// Writes the bundle to `out` with a progress spinner.
fn write(replica: &Replica, since: u64, out: impl Write) -> anyhow::Result<BundleSummary> {
    let bar = progress::changes("exporting");
    let mut writer = BufWriter::new(out);
    let result = (|| -> anyhow::Result<BundleSummary> {
        let summary = bundle::export(replica, since, &mut writer, |n| bar.set_position(n))?;
        writer.flush()?;
        Ok(summary)
    })();
    bar.finish_and_clear();
    result
}
