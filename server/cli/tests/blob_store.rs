//! The server's blob store, on a local directory and on a real S3-compatible server (moto,
//! started by [`support::s3::Moto`]): publish, ranged reads, sizes, deletes, multipart
//! uploads; `weft gc` end to end; `weft serve --blobs` at start-up.

use object_store::path::Path as ObjectPath;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;
use weft_core::blobs::{BlobHash, BlobStore};
use weft_core::Replica;
use weft_server::blobs::{BlobBackend, BlobsUrl, ObjectBlobs, UploadLimits};
use weft_server::limits::READ_BYTES_MAX;
use weft_server::DatabaseName;

mod support;
use support::s3::{Moto, BUCKET};
use support::{http_get, weft};

/// How long any one wait in these tests may take.
const WAIT: Duration = Duration::from_secs(60);

/// `len` bytes that differ from those of another `seed`.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u64::from(seed) | 1 << 40;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// Writes `content` into the store's staging directory and publishes it: its hash.
fn publish(store: &dyn BlobStore, content: &[u8]) -> BlobHash {
    let hash = BlobHash::of(content);
    let path = store.staging_dir().join(format!("{hash}.test"));
    std::fs::write(&path, content).unwrap();
    store.publish(&hash, &path).unwrap();
    assert!(!path.exists(), "publish removes the verified file");
    hash
}

/// Reads the whole blob back in chunks of `chunk` bytes.
fn read_all(store: &dyn BlobStore, hash: &BlobHash, chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let got = store.read_at(hash, out.len() as u64, chunk).unwrap();
        if got.is_empty() {
            return out;
        }
        assert!(got.len() <= chunk);
        out.extend_from_slice(&got);
    }
}

/// What every store must do: ranges (clipped at the end), sizes, NotFound, idempotent deletes.
fn exercise(store: &dyn BlobStore) {
    let content = bytes(3 << 20 | 12_345, 1);
    let len = content.len() as u64;
    let hash = publish(store, &content);
    assert_eq!(store.size(&hash).unwrap(), Some(len));
    assert_eq!(store.read_at(&hash, 0, 1000).unwrap(), content[..1000]);
    let middle = 1 << 20;
    assert_eq!(
        store.read_at(&hash, middle as u64, 256 << 10).unwrap(),
        content[middle..middle + (256 << 10)]
    );
    assert_eq!(
        store.read_at(&hash, len - 10, 100).unwrap(),
        content[len as usize - 10..]
    );
    assert!(store.read_at(&hash, len, 100).unwrap().is_empty());
    assert!(store.read_at(&hash, len + 5, 100).unwrap().is_empty());
    assert!(store.read_at(&hash, 7, 0).unwrap().is_empty());
    assert_eq!(read_all(store, &hash, 1 << 20), content);

    let too_much = store.read_at(&hash, 0, READ_BYTES_MAX + 1).unwrap_err();
    assert_eq!(too_much.kind(), io::ErrorKind::InvalidInput);

    let absent = BlobHash::of(b"never stored");
    assert_eq!(store.size(&absent).unwrap(), None);
    let missing = store.read_at(&absent, 0, 10).unwrap_err();
    assert_eq!(missing.kind(), io::ErrorKind::NotFound, "{missing}");
    store.delete(&absent).unwrap();

    store.delete(&hash).unwrap();
    assert_eq!(store.size(&hash).unwrap(), None);
    assert_eq!(
        store.read_at(&hash, 0, 10).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    store.delete(&hash).unwrap();

    let empty = publish(store, b"");
    assert_eq!(store.size(&empty).unwrap(), Some(0));
    assert!(store.read_at(&empty, 0, 10).unwrap().is_empty());
}

/// A file of several multipart parts goes up whole and reads back byte for byte.
fn exercise_multipart(store: &dyn BlobStore, len: usize) {
    let content = bytes(len, 2);
    let hash = publish(store, &content);
    assert_eq!(store.size(&hash).unwrap(), Some(len as u64));
    let back = read_all(store, &hash, 4 << 20);
    assert!(back == content, "the blob read back differs");
    store.delete(&hash).unwrap();
}

/// A store of database `notes` on `url`, requests run on `runtime`.
fn database_store(url: &BlobsUrl, data: &Path, runtime: &tokio::runtime::Runtime) -> ObjectBlobs {
    let backend = BlobBackend::open(url, data, runtime.handle().clone()).unwrap();
    backend
        .for_database(&DatabaseName::new("notes").unwrap())
        .unwrap()
}

/// The limits of the multipart tests: moto, like S3, wants parts of at least 5 MiB.
const SMALL_PARTS: UploadLimits = UploadLimits {
    part_bytes: 5 << 20,
    parts_in_flight_max: 2,
};

#[test]
fn object_blobs_on_a_local_directory() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let url = BlobsUrl::default_in(data.path());
    let store = database_store(&url, data.path(), &runtime);
    assert!(store.staging_dir().starts_with(data.path().join("staging")));
    exercise(&store);
    let hash = publish(&store, b"where is it");
    let hex = hash.to_hex();
    assert!(data
        .path()
        .join("blobs/notes")
        .join(&hex[..2])
        .join(&hex)
        .is_file());
    // On one file system a verified blob is moved into place, not copied.
    use std::os::unix::fs::MetadataExt;
    let content = vec![9u8; 3 << 20];
    let hash = BlobHash::of(&content);
    let staged = store.staging_dir().join("moved.tmp");
    std::fs::write(&staged, &content).unwrap();
    let inode = std::fs::metadata(&staged).unwrap().ino();
    store.publish(&hash, &staged).unwrap();
    let hex = hash.to_hex();
    let published = data.path().join("blobs/notes").join(&hex[..2]).join(&hex);
    assert_eq!(std::fs::metadata(&published).unwrap().ino(), inode);
    assert!(!staged.exists());
    assert_eq!(store.read_at(&hash, 0, content.len()).unwrap(), content);
    exercise_multipart(&store.with_limits(SMALL_PARTS), (12 << 20) + 3);
}

#[test]
fn object_blobs_on_s3() {
    let moto = Moto::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let store = ObjectBlobs::new(
        Arc::new(moto.store()),
        ObjectPath::from("prefix/notes"),
        staging.path().to_owned(),
        runtime.handle().clone(),
        format!("s3://{BUCKET}/prefix/notes"),
    );
    exercise(&store);
    let hash = publish(&store, b"where is it");
    let listed = runtime.block_on(async {
        use object_store::ObjectStoreExt;
        moto.store()
            .head(&ObjectPath::from(format!(
                "prefix/notes/{}/{hash}",
                &hash.to_hex()[..2]
            )))
            .await
    });
    assert_eq!(listed.map(|meta| meta.size).ok(), Some(11));
    // Three parts of 5 MiB (the last shorter), then the default 8 MiB parts.
    exercise_multipart(&store.clone().with_limits(SMALL_PARTS), (12 << 20) + 3);
    exercise_multipart(&store, (17 << 20) + 1);
    let log = moto.log();
    assert!(
        log.contains("partNumber=3&uploadId="),
        "the large files went up in parts: {log}"
    );
}

#[test]
fn bucket_puts_go_through_the_s3_store() {
    let moto = Moto::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBlobs::new(
        Arc::new(moto.store()),
        ObjectPath::from("weft/notes"),
        dir.path().join("staging"),
        runtime.handle().clone(),
        "moto".into(),
    );
    std::fs::create_dir_all(store.staging_dir()).unwrap();
    let replica = Replica::open(dir.path().join("notes.db")).unwrap();
    let content = bytes(2 << 20, 3);
    let entry = replica
        .buckets()
        .put(
            &store,
            "photos",
            "cat.jpg",
            &content[..],
            "image/jpeg",
            |_| {},
        )
        .unwrap();
    assert_eq!(entry.hash, Some(BlobHash::of(&content)));
    let mut back = Vec::new();
    replica
        .buckets()
        .open(&store, "photos", "cat.jpg")
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == content);
}

/// Puts `a` (kept) and `b` (then removed) into database `notes` of `data`, through `store`:
/// the hashes and sizes of both.
fn two_entries_one_removed(data: &Path, store: &dyn BlobStore) -> [(BlobHash, u64); 2] {
    std::fs::create_dir_all(data.join("dbs")).unwrap();
    let replica = Replica::open(DatabaseName::new("notes").unwrap().file_in(data)).unwrap();
    let buckets = replica.buckets();
    let kept = bytes(100_000, 4);
    let dropped = bytes(70_000, 5);
    buckets
        .put(store, "files", "a", &kept[..], "", |_| {})
        .unwrap();
    buckets
        .put(store, "files", "b", &dropped[..], "", |_| {})
        .unwrap();
    assert!(buckets.remove("files", "b").unwrap());
    [
        (BlobHash::of(&kept), kept.len() as u64),
        (BlobHash::of(&dropped), dropped.len() as u64),
    ]
}

/// `weft gc ARGS`, asserted to succeed: its stdout.
fn gc(args: &[&str], env: &[(&str, String)]) -> String {
    let output = weft()
        .arg("gc")
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("weft gc runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

fn assert_gc_removes_only_the_unreferenced(
    data: &Path,
    store: &dyn BlobStore,
    args: &[&str],
    env: &[(&str, String)],
) {
    let [(kept, _), (dropped, dropped_len)] = two_entries_one_removed(data, store);
    let data_arg = data.to_str().unwrap();
    let first = gc(&[&["--data", data_arg], args].concat(), env);
    assert!(
        first.contains("notes: removed 0 blobs (0 bytes), waiting 1, referenced 1"),
        "{first}"
    );
    assert!(store.size(&dropped).unwrap().is_some());
    let second = gc(
        &[
            &["--data", data_arg, "--grace", "0s", "--db", "notes"],
            args,
        ]
        .concat(),
        env,
    );
    assert!(
        second.contains(&format!(
            "notes: removed 1 blob ({dropped_len} bytes), waiting 0, referenced 1"
        )),
        "{second}"
    );
    assert!(second.contains("total (1 databases)"), "{second}");
    assert_eq!(store.size(&dropped).unwrap(), None);
    assert!(store.size(&kept).unwrap().is_some());
}

#[test]
fn gc_removes_unreferenced_bytes_from_the_data_directory() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = database_store(&BlobsUrl::default_in(data.path()), data.path(), &runtime);
    assert_gc_removes_only_the_unreferenced(data.path(), &store, &[], &[]);
}

#[test]
fn gc_removes_unreferenced_bytes_from_s3() {
    let moto = Moto::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let url = format!("s3://{BUCKET}/gc-test");
    let store = ObjectBlobs::new(
        Arc::new(moto.store()),
        ObjectPath::from("gc-test/notes"),
        data.path().join("staging/notes"),
        runtime.handle().clone(),
        url.clone(),
    );
    std::fs::create_dir_all(store.staging_dir()).unwrap();
    assert_gc_removes_only_the_unreferenced(data.path(), &store, &["--blobs", &url], &moto.env());
}

#[test]
fn gc_refuses_what_it_cannot_use() {
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("dbs")).unwrap();
    let data_arg = data.path().to_str().unwrap();
    for (args, expected) in [
        (vec!["--db", "absent"], "no database absent"),
        (vec!["--db", "../x"], "--db"),
        (vec!["--blobs", "gs://bucket"], "unsupported scheme"),
        (vec!["--grace", "soon"], "--grace"),
    ] {
        let output = weft()
            .args(["gc", "--data", data_arg])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// `weft serve` on a free port with `args` and `env`; its listening address, once printed.
fn serve(data: &Path, args: &[&str], env: &[(&str, String)]) -> (std::process::Child, String) {
    let mut child = weft()
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--no-auth"])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft serve starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the listening line");
    let Some(addr) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        let mut stderr = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
        panic!("weft serve printed {line:?}; stderr:\n{stderr}");
    };
    (child, addr.to_owned())
}

#[test]
fn serve_starts_with_an_s3_blob_store() {
    let moto = Moto::start();
    let data = tempfile::tempdir().unwrap();
    let url = format!("s3://{BUCKET}/served");
    let (mut child, addr) = serve(data.path(), &["--blobs", &url], &moto.env());
    let (status, body) = http_get(addr.as_str(), "/healthz");
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert_eq!(status, 200, "{body}");
    assert!(
        stderr.contains(&format!("blob bytes are stored in {url}")),
        "{stderr}"
    );
}

#[test]
fn serve_stores_blobs_in_the_data_directory_by_default_and_reads_the_config_file() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(data.path(), &[], &[]);
    assert_eq!(http_get(addr.as_str(), "/healthz").0, 200);
    let _ = child.kill();
    let _ = child.wait();
    assert!(data.path().join("blobs").is_dir());
    assert!(data.path().join("staging").is_dir());

    let config = data.path().join("weft.toml");
    std::fs::write(&config, "blobs = \"elsewhere\"\n").unwrap();
    let (mut child, addr) = serve(data.path(), &["--config", config.to_str().unwrap()], &[]);
    assert_eq!(http_get(addr.as_str(), "/healthz").0, 200);
    let _ = child.kill();
    let _ = child.wait();
    assert!(data.path().join("elsewhere").is_dir());
}

/// `weft serve ARGS`, expected to stop at start-up (killed after [`WAIT`] otherwise).
fn serve_fails(args: &[&str]) -> Output {
    let data = tempfile::tempdir().unwrap();
    let output = assert_cmd::Command::from_std(weft())
        .arg("serve")
        .arg("--data")
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0", "--no-auth"])
        .args(args)
        .timeout(WAIT)
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    output
}

#[test]
fn a_malformed_blobs_url_stops_the_server_with_a_clear_message() {
    for (url, expected) in [
        ("gs://bucket/x", "unsupported scheme"),
        ("s3://", "no valid bucket name"),
        ("file://relative", "absolute path"),
    ] {
        let output = serve_fails(&["--blobs", url]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--blobs"), "{url}: {stderr}");
        assert!(stderr.contains(expected), "{url}: {stderr}");
        assert!(output.stdout.is_empty(), "{url}: it never listened");
    }
}
