//! Opening the replica named on the command line, with errors that say what is wrong.

use anyhow::{bail, Context};
use std::path::Path;
use weft_core::Replica;

/// Opens the replica at `path`, creating the file if it is missing; its directory must exist.
pub(super) fn create(path: &Path) -> anyhow::Result<Replica> {
    check_path(path)?;
    open(path)
}

/// Opens the replica at `path`, which must already exist (commands that only read or change
/// an existing replica do not create one from a mistyped name).
pub(super) fn existing(path: &Path) -> anyhow::Result<Replica> {
    check_path(path)?;
    if !path.exists() {
        bail!(
            "{} does not exist (`weft sql` or `weft import` create a replica)",
            path.display()
        );
    }
    open(path)
}

/// Refuses paths SQLite would treat specially or that cannot name a database file.
fn check_path(path: &Path) -> anyhow::Result<()> {
    if path.as_os_str().is_empty() {
        bail!("the database path is empty");
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(
                "directory {} does not exist (weft does not create directories)",
                parent.display()
            );
        }
    }
    if path.is_dir() {
        bail!("{} is a directory, not a database file", path.display());
    }
    Ok(())
}

fn open(path: &Path) -> anyhow::Result<Replica> {
    Replica::open(path).with_context(|| format!("cannot open replica {}", path.display()))
}
