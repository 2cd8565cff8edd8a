//! `weft gc`: remove the blob bytes no listing entry has referenced for a grace period.

use super::words::count;
use crate::limits::GC_DATABASES_MAX;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use weft_core::blobs::GarbageReport;
use weft_core::Replica;
use weft_server::blobs::{BlobBackend, BlobsUrl};
use weft_server::config::DEFAULT_DATA_DIR;
use weft_server::names::DatabaseName;
use weft_server::ConfigFile;

/// The command line of `weft gc`.
#[derive(clap::Args, Debug)]
pub(super) struct Flags {
    /// The server's TOML configuration file: its `data` and `blobs` keys are used (the
    /// flags below override them).
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// The server's data directory [default: ./weft-data].
    #[arg(long, value_name = "DIR")]
    pub(super) data: Option<PathBuf>,
    /// Where the server stores blob bytes, as given to `weft serve --blobs` [default: DATA/blobs].
    #[arg(long, value_name = "URL")]
    pub(super) blobs: Option<String>,
    /// Keep unreferenced bytes this long after a run first found them unreferenced (so a
    /// client's put whose listing entry has not synced yet keeps its bytes), like 24h or 0s.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub(super) grace: Duration,
    /// Only this database (default: every database under DATA/dbs).
    #[arg(long = "db", value_name = "NAME")]
    pub(super) database: Option<String>,
}

/// Runs `weft gc`.
pub(super) fn run(flags: Flags) -> anyhow::Result<()> {
    let file = match &flags.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let data = flags
        .data
        .or(file.data.clone())
        .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
    let url = match &flags.blobs {
        Some(text) => BlobsUrl::parse(text)?,
        None => file
            .blobs_url()
            .map_err(anyhow::Error::msg)?
            .unwrap_or_else(|| BlobsUrl::default_in(&data)),
    };
    let databases = match &flags.database {
        Some(name) => {
            let name = DatabaseName::new(name).context("--db")?;
            if !name.file_in(&data).is_file() {
                anyhow::bail!("no database {name} in {}", data.display());
            }
            vec![name]
        }
        None => every_database(&data)?,
    };
    let grace_ms = u64::try_from(flags.grace.as_millis()).unwrap_or(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let backend = {
        let _entered = runtime.enter();
        BlobBackend::open(&url, &data, runtime.handle().clone())?
    };
    println!("blob store: {url}");
    // The stores block on the runtime: the work runs on its blocking pool.
    let collected = runtime.block_on(async move {
        tokio::task::spawn_blocking(move || collect_all(&data, &backend, &databases, grace_ms))
            .await
            .context("the garbage collection task")?
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    collected
}

/// Collects every database's garbage and prints a line per database and a total.
fn collect_all(
    data: &Path,
    backend: &BlobBackend,
    databases: &[DatabaseName],
    grace_ms: u64,
) -> anyhow::Result<()> {
    let mut total = GarbageReport::default();
    for name in databases {
        let report =
            collect(data, backend, name, grace_ms).with_context(|| format!("database {name}"))?;
        println!("{name}: {}", summary(&report));
        total.removed += report.removed;
        total.bytes_removed += report.bytes_removed;
        total.waiting += report.waiting;
        total.referenced += report.referenced;
    }
    println!("total ({} databases): {}", databases.len(), summary(&total));
    Ok(())
}

/// One database's collection.
fn collect(
    data: &Path,
    backend: &BlobBackend,
    name: &DatabaseName,
    grace_ms: u64,
) -> anyhow::Result<GarbageReport> {
    let replica = Replica::open(name.file_in(data))?;
    let store = backend.for_database(name)?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .context("the system clock is before 1970")?;
    Ok(replica
        .buckets()
        .collect_garbage(&store, now_ms, grace_ms)?)
}

/// `removed N blobs (B bytes), waiting N, referenced N`.
fn summary(report: &GarbageReport) -> String {
    format!(
        "removed {} ({}), waiting {}, referenced {}",
        count(report.removed, "blob", "blobs"),
        count(report.bytes_removed, "byte", "bytes"),
        report.waiting,
        report.referenced
    )
}

/// The databases under `DATA/dbs`, by name.
fn every_database(data: &Path) -> anyhow::Result<Vec<DatabaseName>> {
    let dir = weft_server::names::databases_dir(data);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("no databases directory {}", dir.display())
        }
        Err(e) => return Err(e).with_context(|| dir.display().to_string()),
    };
    let mut names = std::collections::BTreeSet::new();
    for entry in entries.take(GC_DATABASES_MAX) {
        let file_name = entry
            .with_context(|| dir.display().to_string())?
            .file_name();
        let Some(stem) = file_name.to_str().and_then(|f| f.strip_suffix(".db")) else {
            continue;
        };
        if let Ok(name) = DatabaseName::new(stem) {
            names.insert(name);
        }
    }
    Ok(names.into_iter().collect())
}
