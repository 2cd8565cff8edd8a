//! `weft export` and `weft import`: change bundles as files.

use super::open;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::Path;
use weft_core::bundle;

/// A spinner counting changes, shown only when stderr is a terminal.
fn progress(verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} changes ({per_sec})")
            .expect("a valid template"),
    );
    bar.set_message(verb.to_owned());
    bar
}

/// Writes every change of `db` after `since` to `out` (or stdout).
pub(super) fn export(db: &Path, since: u64, out: Option<&Path>) -> anyhow::Result<()> {
    let replica = open::replica(db)?;
    let bar = progress("exporting");
    let summary = match out {
        Some(path) => {
            let file =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut writer = BufWriter::new(file);
            let summary = bundle::export(&replica, since, &mut writer, |n| bar.set_position(n))?;
            writer.flush()?;
            summary
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("a bundle is binary; redirect standard output to a file or use --out FILE");
            }
            let mut writer = BufWriter::new(stdout.lock());
            let summary = bundle::export(&replica, since, &mut writer, |n| bar.set_position(n))?;
            writer.flush()?;
            summary
        }
    };
    bar.finish_and_clear();
    eprintln!(
        "exported {} changes in {} frames, complete through db_version {}",
        summary.changes, summary.frames, summary.through_db_version
    );
    Ok(())
}

/// Checks and applies the bundle at `file` to `db`.
pub(super) fn import(db: &Path, file: &Path) -> anyhow::Result<()> {
    if !file.is_file() {
        bail!("bundle {} does not exist", file.display());
    }
    let replica = open::replica(db)?;
    let bar = progress("importing");
    let summary = bundle::import(
        &replica,
        || Ok(BufReader::new(File::open(file)?)),
        |n| bar.set_position(n),
    )
    .with_context(|| format!("nothing was imported from {}", file.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "imported {} changes ({} new to this replica)",
        summary.changes, summary.applied
    );
    Ok(())
}
