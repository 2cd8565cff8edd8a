//! `weft blob ...`: files and images in a replica's buckets, on the local replica (offline).
//!
//! The listing is the replicated table `weft_bucket_entries`; the bytes live in the store
//! beside the database file (`DB.blobs/`, see [`LocalBlobs::beside`]) and travel with
//! `weft sync`. Names are checked before anything is opened, so a refused name leaves no
//! trace: no replica, no store directory, no staged file.

use super::{open, progress};
use crate::limits::BUCKETS_SHOWN_MAX;
use crate::limits::MIME_BYTES_MAX;
use anyhow::{bail, Context};
use clap::Subcommand;
use indicatif::ProgressBar;
use serde_json::json;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use weft_core::blobs::{
    check_bucket, check_entry, BlobHash, BlobStore, Entry, LocalBlobs, BLOB_BYTES_MAX, BUCKET_TABLE,
};
use weft_core::Replica;

/// Blobs from this size on get a progress bar (smaller ones are done before it would show).
const PROGRESS_BYTES_MIN: u64 = 4 << 20;

/// Entries `weft blob ls` reads per step: memory stays bounded for any bucket size.
const LIST_PAGE_ENTRIES: usize = 1_000;

/// Bytes copied per read when writing a blob out.
const COPY_CHUNK_BYTES: usize = 256 << 10;

/// The `weft blob` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum BlobCommand {
    /// Store a file in a bucket under NAME (replacing what NAME held); prints its hash and size.
    ///
    /// Works offline: the bytes go to the store beside the database (DB.blobs/) and travel
    /// with the next `weft sync`. The same content is stored once, whatever its names. The
    /// MIME type is guessed from NAME's (or FILE's) extension unless --mime gives it.
    #[command(
        after_help = "Example:\n  weft blob put app.db photos 2026/cat.jpg ~/Pictures/cat.jpg\n  weft blob put app.db notes today.txt - < today.txt"
    )]
    Put {
        /// The replica's database file; created if missing (its directory must exist).
        db: PathBuf,
        /// The bucket: 1 to 64 ASCII letters, digits, '.', '_' or '-', starting with a letter
        /// or digit.
        bucket: String,
        /// The entry's name: up to 1024 bytes, no control characters or '\', and no part
        /// between '/' empty, '.' or '..' (`photos/cat.jpg` yes, `../x` no).
        name: String,
        /// The file to store, or `-` for standard input.
        file: PathBuf,
        /// The MIME type, like image/png (default: guessed from the extension, else
        /// application/octet-stream).
        #[arg(long, value_name = "TYPE")]
        mime: Option<String>,
    },
    /// Write an entry's bytes to OUTFILE (`-`: standard output), checked against their hash.
    ///
    /// The bytes go to a temporary file beside OUTFILE, renamed over it only once complete
    /// and verified, so a failure leaves OUTFILE as it was. The bytes must be here: those of
    /// entries synced from elsewhere arrive with `weft sync`.
    Get {
        /// The replica's database file (must exist).
        db: PathBuf,
        /// The bucket.
        bucket: String,
        /// The entry's name.
        name: String,
        /// Where to write the bytes (replaced if it exists), or `-` for standard output.
        outfile: PathBuf,
        /// When the bytes are not here (a lazy bucket's, or not synced yet): the sync URL to
        /// fetch them from, ws:// or wss:// [default: the server this replica last synced
        /// with].
        #[arg(long)]
        server: Option<String>,
        /// The bearer token for that server (or WEFT_TOKEN).
        #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// For a wss:// server: a PEM file of CA certificates to trust besides the bundled
        /// roots, such as an organisation's own CA (or WEFT_CA_FILE).
        #[arg(long, value_name = "PATH", env = "WEFT_CA_FILE", value_parser = super::ca_file_parser())]
        ca_file: Option<PathBuf>,
    },
    /// List a bucket's entries, or with no BUCKET the buckets.
    ///
    /// Entries print one per line, tab-separated: name, size in bytes, MIME type, hash,
    /// created (UTC), and `here` or `missing` (whether this replica holds the bytes).
    /// Buckets print as: bucket, entries, bytes, bytes held here, `eager` or `lazy`.
    Ls {
        /// The replica's database file (must exist).
        db: PathBuf,
        /// The bucket to list; without it, the buckets are listed.
        bucket: Option<String>,
        /// Only entries whose names start with this.
        #[arg(long, value_name = "PREFIX", default_value = "", requires = "bucket")]
        prefix: String,
        /// Print one JSON array of objects instead.
        #[arg(long)]
        json: bool,
    },
    /// Remove an entry from a bucket (an error if it is not there).
    ///
    /// The removal syncs like a row's delete. The bytes stay until garbage collection finds
    /// no entry naming them.
    Rm {
        /// The replica's database file (must exist).
        db: PathBuf,
        /// The bucket.
        bucket: String,
        /// The entry's name.
        name: String,
    },
    /// Rename an entry within its bucket, replacing TO if it exists.
    ///
    /// One transaction: a delete of FROM and an insert of TO, which sync like rows'.
    Mv {
        /// The replica's database file (must exist).
        db: PathBuf,
        /// The bucket.
        bucket: String,
        /// The entry's current name.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Make this replica fetch a bucket's bytes on first read instead of with every sync.
    ///
    /// A local setting of this replica, not synced. --off makes the bucket eager again (the
    /// default): its bytes come with the next `weft sync`.
    Lazy {
        /// The replica's database file (created if missing).
        db: PathBuf,
        /// The bucket.
        bucket: String,
        /// Fetch the bucket's bytes with every sync again.
        #[arg(long)]
        off: bool,
    },
}

impl BlobCommand {
    /// The token of `weft blob get`, which may fetch from a server.
    pub(super) fn token_mut(&mut self) -> Option<&mut Option<String>> {
        match self {
            BlobCommand::Get { token, .. } => Some(token),
            _ => None,
        }
    }

    /// For `weft blob get`, which may fetch from a server: whether it was given a token.
    pub(super) fn token_given(&self) -> Option<bool> {
        match self {
            BlobCommand::Get { token, .. } => Some(token.is_some()),
            _ => None,
        }
    }
}

/// Runs one `weft blob` subcommand.
pub(super) fn run(command: BlobCommand) -> anyhow::Result<()> {
    match command {
        BlobCommand::Put {
            db,
            bucket,
            name,
            file,
            mime,
        } => put(&db, EntryName::new(&bucket, &name), &file, mime.as_deref()),
        BlobCommand::Get {
            db,
            bucket,
            name,
            outfile,
            server,
            token,
            ca_file,
        } => get(
            &db,
            EntryName::new(&bucket, &name),
            &outfile,
            Remote {
                server,
                token,
                ca_file: super::non_empty(ca_file),
            },
        ),
        BlobCommand::Ls {
            db,
            bucket: Some(bucket),
            prefix,
            json,
        } => list_entries(
            &db,
            EntryPrefix {
                bucket: &bucket,
                prefix: &prefix,
            },
            json,
        ),
        BlobCommand::Ls {
            db,
            bucket: None,
            json,
            ..
        } => list_buckets(&db, json),
        BlobCommand::Rm { db, bucket, name } => remove(&db, EntryName::new(&bucket, &name)),
        BlobCommand::Mv {
            db,
            bucket,
            from,
            to,
        } => rename(&db, EntryName::new(&bucket, &from), &to),
        BlobCommand::Lazy { db, bucket, off } => lazy(&db, &bucket, !off),
    }
}

/// An entry's address: its bucket and its name, two strings that must not be swapped.
#[derive(Clone, Copy, Debug)]
struct EntryName<'a> {
    bucket: &'a str,
    name: &'a str,
}

impl<'a> EntryName<'a> {
    fn new(bucket: &'a str, name: &'a str) -> EntryName<'a> {
        EntryName { bucket, name }
    }
}

/// The entries of a bucket whose names start with a prefix.
#[derive(Clone, Copy, Debug)]
struct EntryPrefix<'a> {
    bucket: &'a str,
    prefix: &'a str,
}

/// Refuses a bad bucket or entry name before anything is opened or created.
fn check_names(bucket: &str, names: &[&str]) -> anyhow::Result<()> {
    check_bucket(bucket)?;
    for name in names {
        check_entry(name)?;
    }
    Ok(())
}

/// The store beside the replica's database file.
fn local_store(db: &Path) -> anyhow::Result<LocalBlobs> {
    LocalBlobs::beside(db).with_context(|| {
        format!(
            "cannot open the blob store beside {} (its .blobs directory)",
            db.display()
        )
    })
}

fn is_stdio(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// A progress bar over `size` bytes, only for blobs large enough to take a while.
fn bar_for(size: Option<u64>, verb: &str) -> ProgressBar {
    match size {
        Some(size) if size < PROGRESS_BYTES_MIN => ProgressBar::hidden(),
        size => progress::bytes(size, verb),
    }
}

/// `weft blob put`.
fn put(db: &Path, entry: EntryName<'_>, file: &Path, mime: Option<&str>) -> anyhow::Result<()> {
    let EntryName { bucket, name } = entry;
    check_names(bucket, &[name])?;
    let mime = mime_of(name, file, mime)?;
    let (source, size) = open_source(file)?;
    let replica = open::create(db)?;
    let store = local_store(db)?;
    let bar = bar_for(size, "storing");
    let result = replica.buckets().put(
        &store,
        bucket,
        name,
        BoundedReader::new(source),
        &mime,
        |n| bar.set_position(n),
    );
    bar.finish_and_clear();
    let entry = result.with_context(|| format!("cannot store {}", file.display()))?;
    let hash = entry.hash.context("a stored entry has its hash")?;
    let mut out = io::stdout().lock();
    writeln!(out, "{hash}\t{}", entry.size)?;
    Ok(())
}

/// The MIME type to record: `given` if it is one, else guessed from `name`'s extension, then
/// `file`'s, else application/octet-stream.
fn mime_of(name: &str, file: &Path, given: Option<&str>) -> anyhow::Result<String> {
    if let Some(given) = given {
        let valid = given.len() <= MIME_BYTES_MAX && given.parse::<mime_guess::Mime>().is_ok();
        if !valid {
            bail!("--mime {given:?} is not a MIME type like image/png (at most {MIME_BYTES_MAX} bytes)");
        }
        return Ok(given.to_owned());
    }
    let guess = mime_guess::from_path(name)
        .first()
        .or_else(|| (!is_stdio(file)).then(|| mime_guess::from_path(file).first())?)
        .unwrap_or(mime_guess::mime::APPLICATION_OCTET_STREAM);
    Ok(guess.essence_str().to_owned())
}

/// The bytes to store and their size when known (not for standard input).
fn open_source(file: &Path) -> anyhow::Result<(Box<dyn Read>, Option<u64>)> {
    if is_stdio(file) {
        return Ok((Box::new(io::stdin().lock()), None));
    }
    let opened = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let meta = opened.metadata()?;
    if meta.is_dir() {
        bail!("{} is a directory, not a file", file.display());
    }
    if meta.len() > BLOB_BYTES_MAX {
        bail!(
            "{} is {} bytes, more than the {BLOB_BYTES_MAX} bytes a blob may hold",
            file.display(),
            meta.len()
        );
    }
    Ok((Box::new(io::BufReader::new(opened)), Some(meta.len())))
}

/// A reader that fails once more than [`BLOB_BYTES_MAX`] bytes came through (standard input
/// has no size to check up front).
struct BoundedReader<R> {
    inner: R,
    read: u64,
}

impl<R> BoundedReader<R> {
    fn new(inner: R) -> Self {
        BoundedReader { inner, read: 0 }
    }
}

impl<R: Read> Read for BoundedReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.read += n as u64;
        if self.read > BLOB_BYTES_MAX {
            return Err(io::Error::other(format!(
                "the input is larger than the {BLOB_BYTES_MAX} bytes a blob may hold"
            )));
        }
        Ok(n)
    }
}

/// Where `weft blob get` fetches bytes that are not here, and how it gets in.
struct Remote {
    /// The sync URL given, if any.
    server: Option<String>,
    /// The bearer token.
    token: Option<String>,
    /// Extra CA certificates for a `wss://` server.
    ca_file: Option<PathBuf>,
}

/// `weft blob get`.
fn get(db: &Path, entry: EntryName<'_>, outfile: &Path, remote: Remote) -> anyhow::Result<()> {
    let EntryName { bucket, name } = entry;
    check_names(bucket, &[name])?;
    if is_stdio(outfile) && io::stdout().is_terminal() {
        bail!("a blob is binary data; redirect standard output to a file or give OUTFILE");
    }
    let replica = open::existing(db)?;
    let store = local_store(db)?;
    let entry =
        replica
            .buckets()
            .get(bucket, name)?
            .ok_or_else(|| weft_core::Error::NoSuchEntry {
                bucket: bucket.into(),
                name: name.into(),
            })?;
    let hash = match bytes_here(&replica, &store, &entry) {
        Ok(hash) => hash,
        Err(not_here) => {
            let Some(hash) = entry.hash else {
                return Err(not_here);
            };
            let Some(url) = remote.server.or(replica.buckets().source()?) else {
                return Err(not_here.context(
                    "this replica never synced with a server: give --server URL to fetch them",
                ));
            };
            let mut target = weft_client::SyncTarget::new(url, remote.token);
            target.ca_file = remote.ca_file;
            fetch(db, &target, hash, entry.size)
                .with_context(|| format!("fetching {bucket}/{name} from {}", target.url))?;
            bytes_here(&replica, &store, &entry)?
        }
    };
    let reader = replica.buckets().open(&store, bucket, name)?;
    let bar = bar_for(Some(entry.size), "writing");
    let written = if is_stdio(outfile) {
        copy_verified(reader, &hash, entry.size, io::stdout().lock(), &bar)
    } else {
        write_beside(outfile, |file| {
            copy_verified(reader, &hash, entry.size, file, &bar)
        })
    };
    bar.finish_and_clear();
    match written {
        Err(error) if error.downcast_ref::<Damaged>().is_some() => {
            // Bytes that no longer match their hash are no use to anyone: drop them, so the
            // next sync fetches them again.
            let _ = store.delete(&hash);
            let _ = replica.buckets().forget_held(&hash);
            Err(error.context(format!(
                "the local copy of {bucket}/{name} was damaged and is removed; `weft sync` fetches it again"
            )))
        }
        other => other,
    }
}

/// Makes sure this replica's store holds `entry`'s bytes, and returns their hash.
///
/// Today the bytes must have arrived already (with the put, or with `weft sync` for an eager
/// bucket). This is where fetching a lazy bucket's bytes on first read slots in.
fn bytes_here(replica: &Replica, store: &LocalBlobs, entry: &Entry) -> anyhow::Result<BlobHash> {
    let buckets = replica.buckets();
    let place = format!("{}/{}", entry.bucket, entry.name);
    let Some(hash) = entry.hash else {
        bail!("the bytes of {place} are not here yet (its listing row is still arriving); `weft sync` fetches them");
    };
    let recorded = buckets.is_held(&hash)?;
    if recorded && store.size(&hash)?.is_some() {
        return Ok(hash);
    }
    if recorded {
        // The record says held but the file is gone (removed by hand): correct the record,
        // so that the next sync fetches the bytes again.
        buckets.forget_held(&hash)?;
    }
    if buckets.is_lazy(&entry.bucket)? {
        bail!(
            "the bytes of {place} ({hash}) are not here yet: bucket {} is lazy here; `weft blob lazy {} {} --off` and then `weft sync` fetch them",
            entry.bucket,
            replica.path().display(),
            entry.bucket
        );
    }
    bail!("the bytes of {place} ({hash}) are not here yet: `weft sync` fetches them")
}

/// Fetches the one blob `hash` from `target` (a sync that wants only it: the first read of
/// a lazy bucket's entry), with a byte bar.
fn fetch(
    db: &Path,
    target: &weft_client::SyncTarget,
    hash: BlobHash,
    size: u64,
) -> anyhow::Result<()> {
    let options = weft_client::OnceOptions {
        blob_fetch: weft_core::sync::BlobFetch::Only(vec![hash]),
    };
    let bar = bar_for(Some(size), "fetching");
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(weft_client::sync_once_with(
        db,
        target,
        &options,
        |event, _| {
            if let weft_core::sync::SessionEvent::BlobProgress { hash: h, done, .. } = event {
                if *h == hash {
                    bar.set_position(*done);
                }
            }
        },
    ));
    bar.finish_and_clear();
    let report = report?;
    if report.blobs_refused > 0 {
        bail!("the server's bytes did not match the hash {hash}: refused, nothing stored");
    }
    if report.blobs_received == 0 {
        bail!(
            "the server does not hold the bytes ({hash}) yet: the replica that put them has not uploaded them"
        );
    }
    Ok(())
}

/// Bytes in the local store that do not match their hash or size.
#[derive(Debug, thiserror::Error)]
#[error("the stored bytes are {size} bytes hashing to {actual}, not the {expected_size} bytes of {expected}")]
struct Damaged {
    expected: BlobHash,
    expected_size: u64,
    actual: BlobHash,
    size: u64,
}

/// Copies `reader` to `out`, hashing on the way; fails with [`Damaged`] unless the bytes are
/// exactly `expected` (`expected_size` bytes).
fn copy_verified(
    mut reader: impl Read,
    expected: &BlobHash,
    expected_size: u64,
    out: impl Write,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut out = BufWriter::with_capacity(COPY_CHUNK_BYTES, out);
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; COPY_CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read the stored bytes"),
        };
        size += n as u64;
        if size > expected_size {
            // Stop early: the bytes are damaged whatever follows.
            break;
        }
        hasher.update(&buffer[..n]);
        out.write_all(&buffer[..n])?;
        bar.set_position(size);
    }
    let actual = BlobHash::from(hasher.finalize());
    if size != expected_size || actual != *expected {
        return Err(Damaged {
            expected: *expected,
            expected_size,
            actual,
            size,
        }
        .into());
    }
    out.flush()?;
    Ok(())
}

/// Writes `outfile` through a temporary file beside it, renamed over it only when `write`
/// succeeded and the file is on disk; on failure the temporary file is removed and
/// `outfile` is as it was.
fn write_beside(
    outfile: &Path,
    write: impl FnOnce(&mut File) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if outfile.is_dir() {
        bail!("{} is a directory; give a file name", outfile.display());
    }
    let file_name = outfile
        .file_name()
        .with_context(|| format!("{} names no file", outfile.display()))?;
    let parent = outfile
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{:016x}.part", rand::random::<u64>()));
    let temp = TempFile(parent.join(temp_name));
    // create_new: never open another's file; the mode follows the umask like any new file.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp.0)
        .with_context(|| format!("cannot create a file in {}", parent.display()))?;
    write(&mut file).with_context(|| format!("nothing was written to {}", outfile.display()))?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temp.0, outfile)
        .with_context(|| format!("cannot rename the bytes to {}", outfile.display()))?;
    std::mem::forget(temp);
    Ok(())
}

/// A temporary file removed when dropped (unless forgotten once renamed).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `created_ms` as UTC time, to the second.
fn created_text(created_ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(created_ms)).to_string()
}

/// `weft blob ls DB BUCKET`: the entries, a page at a time.
fn list_entries(db: &Path, entries: EntryPrefix<'_>, as_json: bool) -> anyhow::Result<()> {
    let EntryPrefix { bucket, prefix } = entries;
    check_bucket(bucket)?;
    let replica = open::existing(db)?;
    let buckets = replica.buckets();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut after: Option<String> = None;
    let mut first = true;
    if as_json {
        write!(out, "[")?;
    }
    loop {
        let page = buckets.list(bucket, prefix, after.as_deref(), LIST_PAGE_ENTRIES)?;
        for entry in &page {
            let here = match &entry.hash {
                Some(hash) => buckets.is_held(hash)?,
                None => false,
            };
            if as_json {
                let object = json!({
                    "bucket": entry.bucket,
                    "name": entry.name,
                    "size": entry.size,
                    "mime": entry.mime,
                    "hash": entry.hash.map(|h| h.to_hex()),
                    "created_ms": entry.created_ms,
                    "created": created_text(entry.created_ms),
                    "here": here,
                });
                let comma = if first { "" } else { "," };
                write!(out, "{comma}{object}")?;
            } else {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    entry.name,
                    entry.size,
                    entry.mime,
                    entry.hash.map(|h| h.to_hex()).unwrap_or_default(),
                    created_text(entry.created_ms),
                    if here { "here" } else { "missing" },
                )?;
            }
            first = false;
        }
        match page.last() {
            Some(last) if page.len() == LIST_PAGE_ENTRIES => after = Some(last.name.clone()),
            _ => break,
        }
    }
    if as_json {
        writeln!(out, "]")?;
    }
    out.flush()?;
    Ok(())
}

/// One bucket's totals on this replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BucketUsage {
    /// The bucket.
    pub(super) bucket: String,
    /// Entries in its listing.
    pub(super) entries: u64,
    /// Their sizes added up.
    pub(super) bytes: u64,
    /// The sizes of the entries whose bytes this replica holds, added up.
    pub(super) bytes_here: u64,
    /// Whether this replica fetches the bucket's bytes on first read.
    pub(super) lazy: bool,
}

/// The buckets with entries or a lazy setting, in name order, at most [`BUCKETS_SHOWN_MAX`].
pub(super) fn bucket_usage(replica: &Replica) -> anyhow::Result<Vec<BucketUsage>> {
    // One aggregate over the listing and the replica's record of held bytes (the engine's
    // Buckets::buckets has no "held here" total).
    let sql = format!(
        "SELECT b.bucket, count(e.name), coalesce(sum(e.size), 0),
                coalesce(sum(CASE WHEN h.hash IS NOT NULL THEN e.size END), 0),
                b.bucket IN (SELECT bucket FROM weft_buckets_lazy)
         FROM (SELECT bucket FROM {BUCKET_TABLE} UNION SELECT bucket FROM weft_buckets_lazy) b
         LEFT JOIN {BUCKET_TABLE} e ON e.bucket = b.bucket
         LEFT JOIN weft_blobs_held h ON h.hash = e.hash AND e.hash != ''
         GROUP BY b.bucket ORDER BY b.bucket LIMIT ?1"
    );
    let mut statement = replica.connection().prepare(&sql)?;
    let rows = statement.query_map([BUCKETS_SHOWN_MAX as i64], |r| {
        Ok(BucketUsage {
            bucket: r.get(0)?,
            entries: r.get::<_, i64>(1)?.max(0) as u64,
            bytes: r.get::<_, i64>(2)?.max(0) as u64,
            bytes_here: r.get::<_, i64>(3)?.max(0) as u64,
            lazy: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `weft blob ls DB`: the buckets.
fn list_buckets(db: &Path, as_json: bool) -> anyhow::Result<()> {
    let replica = open::existing(db)?;
    let usage = bucket_usage(&replica)?;
    let mut out = io::stdout().lock();
    if as_json {
        let list: Vec<_> = usage
            .iter()
            .map(|b| {
                json!({
                    "bucket": b.bucket,
                    "entries": b.entries,
                    "bytes": b.bytes,
                    "bytes_here": b.bytes_here,
                    "lazy": b.lazy,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(list))?;
    } else {
        for b in &usage {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                b.bucket,
                b.entries,
                b.bytes,
                b.bytes_here,
                if b.lazy { "lazy" } else { "eager" }
            )?;
        }
    }
    if usage.len() == BUCKETS_SHOWN_MAX {
        eprintln!("(only the first {BUCKETS_SHOWN_MAX} buckets are shown)");
    }
    Ok(())
}

/// `weft blob rm`.
fn remove(db: &Path, entry: EntryName<'_>) -> anyhow::Result<()> {
    let EntryName { bucket, name } = entry;
    check_names(bucket, &[name])?;
    let replica = open::existing(db)?;
    if !replica.buckets().remove(bucket, name)? {
        return Err(weft_core::Error::NoSuchEntry {
            bucket: bucket.into(),
            name: name.into(),
        }
        .into());
    }
    Ok(())
}

/// `weft blob mv`.
fn rename(db: &Path, entry: EntryName<'_>, to: &str) -> anyhow::Result<()> {
    let EntryName { bucket, name: from } = entry;
    check_names(bucket, &[from, to])?;
    let replica = open::existing(db)?;
    if from == to {
        // Renaming onto itself would delete and insert the row for nothing.
        return match replica.buckets().get(bucket, from)? {
            Some(_) => Ok(()),
            None => Err(weft_core::Error::NoSuchEntry {
                bucket: bucket.into(),
                name: from.into(),
            }
            .into()),
        };
    }
    replica.buckets().rename(bucket, from, to)?;
    Ok(())
}

/// `weft blob lazy`.
fn lazy(db: &Path, bucket: &str, lazy: bool) -> anyhow::Result<()> {
    check_bucket(bucket)?;
    // Created if missing: a new device sets its lazy buckets before its first sync.
    let replica = open::create(db)?;
    replica.buckets().set_lazy(bucket, lazy)?;
    let mut out = io::stdout().lock();
    if lazy {
        writeln!(out, "{bucket}: lazy here (bytes are fetched on first read)")?;
    } else {
        writeln!(out, "{bucket}: eager here (bytes come with every sync)")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_are_guessed_from_the_name_then_the_file() {
        let none = Path::new("-");
        assert_eq!(mime_of("a/cat.JPG", none, None).unwrap(), "image/jpeg");
        assert_eq!(
            mime_of("cat", Path::new("/tmp/cat.png"), None).unwrap(),
            "image/png"
        );
        assert_eq!(
            mime_of("cat", none, None).unwrap(),
            "application/octet-stream"
        );
        assert_eq!(
            mime_of("x.png", none, Some("text/plain; charset=utf-8")).unwrap(),
            "text/plain; charset=utf-8"
        );
        assert!(mime_of("x", none, Some("not a type")).is_err());
        assert!(mime_of("x", none, Some(&format!("a/{}", "b".repeat(300)))).is_err());
    }

    #[test]
    fn damaged_bytes_are_refused_and_a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        fs::write(&out, b"old").unwrap();
        let bytes = b"hello world".to_vec();
        let hash = BlobHash::of(&bytes);
        let bar = ProgressBar::hidden();
        let wrong = write_beside(&out, |file| {
            copy_verified(&b"hello there"[..], &hash, 11, file, &bar)
        });
        assert!(wrong.unwrap_err().downcast_ref::<Damaged>().is_some());
        let longer = write_beside(&out, |file| {
            copy_verified(&b"hello world!"[..], &hash, 11, file, &bar)
        });
        assert!(longer.unwrap_err().downcast_ref::<Damaged>().is_some());
        assert_eq!(fs::read(&out).unwrap(), b"old", "the old file stays");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        write_beside(&out, |file| {
            copy_verified(&bytes[..], &hash, 11, file, &bar)
        })
        .unwrap();
        assert_eq!(fs::read(&out).unwrap(), bytes);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
