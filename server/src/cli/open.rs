//! Opening a replica named on the command line, with errors that say what is wrong.

use anyhow::{bail, Context};
use std::path::Path;
use weft_core::Replica;

/// Opens (creating if missing) the replica at `path`; its directory must exist.
pub(super) fn replica(path: &Path) -> anyhow::Result<Replica> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!("directory {} does not exist", parent.display());
        }
    }
    if path.is_dir() {
        bail!("{} is a directory, not a database file", path.display());
    }
    Replica::open(path).with_context(|| format!("cannot open replica {}", path.display()))
}
