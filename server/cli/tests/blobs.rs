//! Blobs end to end with real processes: the `weft` binary serving on 127.0.0.1 (its blobs in
//! a local directory, or in a real S3-compatible server, moto), clients putting files
//! offline and syncing with `weft sync --once`, and `weft gc` on the server's data.

mod support;

use std::path::Path;
use std::process::Output;
use support::s3::Moto;
use support::server::ServerProcess;
use support::{auth_args, digest, free_port, mint_token, sync_once, weft};
use weft_core::blobs::{BlobHash, LocalBlobs};
use weft_core::Replica;

const SECRET: &str = "blob-tests-secret";
const DB: &str = "album";

/// A `weft serve` with its `--blobs` and environment, for `weft gc` on the same store.
struct Server {
    process: ServerProcess,
    url: String,
    blobs: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Server {
    /// Starts a server on `data`; `blobs` is its `--blobs` argument (none: the default
    /// directory), `env` its environment (the S3 variables).
    fn start(data: &Path, blobs: Option<String>, env: Vec<(&'static str, String)>) -> Server {
        Server::start_with(data, blobs, env, &[])
    }

    /// [`Server::start`] with more arguments (`--peer URL`).
    fn start_with(
        data: &Path,
        blobs: Option<String>,
        env: Vec<(&'static str, String)>,
        more: &[String],
    ) -> Server {
        let blobs: Vec<String> = blobs
            .into_iter()
            .flat_map(|b| ["--blobs".into(), b])
            .collect();
        let mut args = auth_args(SECRET);
        args.extend_from_slice(&blobs);
        args.extend_from_slice(more);
        let process = ServerProcess::start_with_env(data, free_port(), &args, &env);
        Server {
            url: process.url(DB),
            process,
            blobs,
            env,
        }
    }

    /// The server's address, for a peer's `--peer`.
    fn peer_url(&self) -> String {
        self.process.ws()
    }

    fn sync(&self, db: &Path) -> String {
        let output = sync_once(db, &self.url, &mint_token(SECRET, &["--db", DB]));
        assert_ok(&output, "weft sync");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }

    /// `weft gc` on the server's data (and blob store), with `grace`.
    fn gc(&self, grace: &str) -> String {
        let output = weft()
            .arg("gc")
            .arg("--data")
            .arg(&self.process.data)
            .args(&self.blobs)
            .args(["--grace", grace])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("weft gc runs");
        assert_ok(&output, "weft gc");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Puts `content` as `bucket/name` on the replica at `db`, offline, with the CLI.
fn put(db: &Path, bucket: &str, name: &str, content: &[u8]) -> BlobHash {
    let file = db.with_extension(format!("{}.upload", content.len()));
    std::fs::write(&file, content).unwrap();
    let output = weft()
        .args(["blob", "put"])
        .arg(db)
        .args([bucket, name])
        .arg(&file)
        .output()
        .expect("weft blob put runs");
    assert_ok(&output, "weft blob put");
    BlobHash::of(content)
}

/// Gets `bucket/name` from the replica at `db` with the CLI.
fn get(db: &Path, bucket: &str, name: &str) -> Vec<u8> {
    let out = db.with_extension("download");
    let output = weft()
        .args(["blob", "get"])
        .arg(db)
        .args([bucket, name])
        .arg(&out)
        .output()
        .expect("weft blob get runs");
    assert_ok(&output, "weft blob get");
    std::fs::read(out).unwrap()
}

/// Random-looking bytes (a stand-in for a photo).
fn image(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn a_photo_put_offline_reaches_another_client_byte_identical(server: &Server, dir: &Path) {
    let (a, b) = (dir.join("a.db"), dir.join("b.db"));
    let photo = image(3 << 20, 1);
    let hash = put(&a, "photos", "2026/cat.jpg", &photo);
    let up = server.sync(&a);
    assert!(up.contains("blobs: received 0 (0 bytes), sent 1"), "{up}");
    let down = server.sync(&b);
    assert!(
        down.contains(&format!("blobs: received 1 ({} bytes)", photo.len())),
        "{down}"
    );
    assert_eq!(get(&b, "photos", "2026/cat.jpg"), photo);
    let listed = Replica::open(&b)
        .unwrap()
        .buckets()
        .get("photos", "2026/cat.jpg")
        .unwrap()
        .expect("listed on B");
    assert_eq!(listed.hash, Some(hash));
    assert_eq!(listed.mime, "image/jpeg");
    assert_eq!(digest(&a), digest(&b));
}

fn concurrent_puts_resolve_like_a_cell_and_both_contents_stay_until_gc(
    server: &Server,
    dir: &Path,
) {
    let (a, b, c) = (dir.join("a2.db"), dir.join("b2.db"), dir.join("c2.db"));
    let from_a = image(200_000, 2);
    let from_b = image(300_000, 3);
    let hash_a = put(&a, "avatars", "me.png", &from_a);
    // Later on the wall clock: B's put wins the cell.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let hash_b = put(&b, "avatars", "me.png", &from_b);
    server.sync(&b);
    server.sync(&a);
    server.sync(&b);
    for db in [&a, &b] {
        let entry = Replica::open(db)
            .unwrap()
            .buckets()
            .get("avatars", "me.png")
            .unwrap()
            .unwrap();
        assert_eq!(entry.hash, Some(hash_b), "the later put wins everywhere");
        assert_eq!(entry.size, from_b.len() as u64);
        assert_eq!(get(db, "avatars", "me.png"), from_b);
    }
    // The server received both contents, though A's lost: both stay until gc.
    let waiting = server.gc("1h");
    assert!(waiting.contains("removed 0"), "{waiting}");
    assert!(waiting.contains("waiting 1"), "{waiting}");
    let collected = server.gc("0s");
    assert!(collected.contains("removed 1"), "{collected}");
    // The winner is still served; the loser's bytes are gone from the server (A keeps its own).
    server.sync(&c);
    assert_eq!(get(&c, "avatars", "me.png"), from_b);
    let a_store = LocalBlobs::beside(&a).unwrap();
    assert!(a_store.path_of(&hash_a).exists());
    let again = server.gc("0s");
    assert!(again.contains("removed 0"), "{again}");
}

fn a_lazy_bucket_fetches_its_bytes_on_first_read(server: &Server, dir: &Path) {
    let (a, lazy) = (dir.join("a3.db"), dir.join("lazy.db"));
    let original = image(1 << 20, 4);
    let hash = put(&a, "originals", "raw.dng", &original);
    server.sync(&a);
    let output = weft()
        .args(["blob", "lazy"])
        .arg(&lazy)
        .arg("originals")
        .output()
        .unwrap();
    assert_ok(&output, "weft blob lazy");
    let synced = server.sync(&lazy);
    assert!(!synced.contains("blobs: received 1"), "{synced}");
    assert!(!LocalBlobs::beside(&lazy).unwrap().path_of(&hash).exists());
    // The first read fetches from the server the replica last synced with.
    let out = dir.join("raw.dng");
    let read = weft()
        .args(["blob", "get"])
        .arg(&lazy)
        .args(["originals", "raw.dng"])
        .arg(&out)
        .env("WEFT_TOKEN", mint_token(SECRET, &["--db", DB]))
        .output()
        .unwrap();
    assert_ok(&read, "weft blob get of a lazy entry");
    assert_eq!(std::fs::read(&out).unwrap(), original);
    assert!(LocalBlobs::beside(&lazy).unwrap().path_of(&hash).exists());
    // Without a server to ask, the error says how to name one.
    let stranger = dir.join("stranger.db");
    let bundle = dir.join("listing.bundle");
    let export = weft().arg("export").arg(&a).output().unwrap();
    std::fs::write(&bundle, &export.stdout).unwrap();
    assert_ok(
        &weft()
            .arg("import")
            .arg(&stranger)
            .arg(&bundle)
            .output()
            .unwrap(),
        "weft import",
    );
    let orphan = weft()
        .args(["blob", "get"])
        .arg(&stranger)
        .args(["originals", "raw.dng"])
        .arg(dir.join("never"))
        .output()
        .unwrap();
    assert!(!orphan.status.success());
    assert!(
        String::from_utf8_lossy(&orphan.stderr).contains("--server"),
        "{}",
        String::from_utf8_lossy(&orphan.stderr)
    );
}

#[test]
fn blobs_sync_through_a_server_storing_them_in_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), None, Vec::new());
    a_photo_put_offline_reaches_another_client_byte_identical(&server, dir.path());
    concurrent_puts_resolve_like_a_cell_and_both_contents_stay_until_gc(&server, dir.path());
    a_lazy_bucket_fetches_its_bytes_on_first_read(&server, dir.path());
    // The default store is DATA/blobs.
    assert!(dir.path().join("data/blobs").is_dir());
}

#[test]
fn blobs_sync_through_a_server_storing_them_in_s3() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        Some(format!("s3://{}/weft", support::s3::BUCKET)),
        moto.env(),
    );
    a_photo_put_offline_reaches_another_client_byte_identical(&server, dir.path());
    concurrent_puts_resolve_like_a_cell_and_both_contents_stay_until_gc(&server, dir.path());
    // The bytes are in the bucket, not on the server's disk.
    assert!(!dir.path().join("data/blobs").exists());
}

#[test]
fn blobs_travel_between_peer_servers() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(&dir.path().join("first"), None, Vec::new());
    let second = Server::start_with(
        &dir.path().join("second"),
        None,
        Vec::new(),
        &["--peer".to_owned(), first.peer_url()],
    );
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let photo = image(2 << 20, 5);
    let hash = put(&a, "photos", "peer.jpg", &photo);
    first.sync(&a);
    // The second server fetches the listing and then the bytes from the first; B, a client
    // of the second, has them once it has synced after that (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        second.sync(&b);
        if LocalBlobs::beside(&b).unwrap().path_of(&hash).exists() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bytes never reached a client of the second server"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(get(&b, "photos", "peer.jpg"), photo);
    let hex = hash.to_hex();
    assert!(dir
        .path()
        .join("second/blobs")
        .join(DB)
        .join(&hex[..2])
        .join(&hex)
        .is_file());
}
