//! `weft blob` on local replicas, run as a user runs it: put, get, ls, rm, mv, lazy.

mod support;

use support::{stdout, weft_assert as weft, Dir};

use predicates::prelude::*;
use rand::RngCore;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let mut command = weft();
    for arg in args {
        command.arg(arg);
    }
    stdout(&command.assert().success())
}

/// `weft blob put`; returns the hash and size it printed.
fn put(db: &Path, bucket: &str, name: &str, file: &Path) -> (String, u64) {
    let out = run(&[&"blob", &"put", &db, &bucket, &name, &file]);
    let (hash, size) = out.trim_end().split_once('\t').expect("hash<TAB>size");
    (hash.to_owned(), size.parse().unwrap())
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// Every file under `dir`, relative, recursively.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

fn store_of(db: &Path) -> PathBuf {
    let mut dir = db.as_os_str().to_owned();
    dir.push(".blobs");
    PathBuf::from(dir)
}

#[test]
fn put_then_get_is_byte_identical_and_the_same_content_is_stored_once() {
    let dir = Dir::new();
    let db = dir.path("app.db");
    let bytes = random_bytes((6 << 20) + 12_345);
    let file = dir.path("big.bin");
    fs::write(&file, &bytes).unwrap();
    let (hash, size) = put(&db, "files", "big.bin", &file);
    assert_eq!(hash, blake3::hash(&bytes).to_hex().as_str());
    assert_eq!(size, bytes.len() as u64);
    let stored = store_of(&db).join(&hash[..2]).join(&hash);
    assert_eq!(fs::read(&stored).unwrap(), bytes, "DB.blobs/ab/abcd…");

    let out = dir.path("copy.bin");
    run(&[&"blob", &"get", &db, &"files", &"big.bin", &out]);
    assert!(fs::read(&out).unwrap() == bytes, "byte-identical");
    let piped = weft()
        .args(["blob", "get"])
        .arg(&db)
        .args(["files", "big.bin", "-"])
        .assert()
        .success();
    assert!(
        piped.get_output().stdout == bytes,
        "byte-identical on stdout"
    );
    let names: Vec<_> = fs::read_dir(dir.0.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".part"))
        .collect();
    assert!(names.is_empty(), "no temporary file left: {names:?}");

    // The same bytes under another name (and from standard input): one copy in the store.
    let before = files_under(&store_of(&db));
    let again = weft()
        .args(["blob", "put"])
        .arg(&db)
        .args(["files", "again.bin", "-"])
        .write_stdin(bytes.clone())
        .assert()
        .success();
    assert_eq!(stdout(&again), format!("{hash}\t{size}\n"));
    assert_eq!(files_under(&store_of(&db)), before);
}

#[test]
fn ls_lists_entries_and_buckets_as_text_and_json() {
    let dir = Dir::new();
    let db = dir.path("app.db");
    let cat = dir.path("cat.png");
    fs::write(&cat, b"not really a png").unwrap();
    let note = dir.path("note");
    fs::write(&note, b"hello").unwrap();
    let (cat_hash, _) = put(&db, "photos", "2026/cat.png", &cat);
    let (note_hash, _) = put(&db, "photos", "note.txt", &note);
    run(&[
        &"blob",
        &"put",
        &db,
        &"docs",
        &"raw",
        &note,
        &"--mime",
        &"text/x-weft",
    ]);

    let text = run(&[&"blob", &"ls", &db, &"photos"]);
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        lines[0][..4],
        ["2026/cat.png", "16", "image/png", &cat_hash]
    );
    assert_eq!(lines[1][..4], ["note.txt", "5", "text/plain", &note_hash]);
    for line in &lines {
        assert!(line[4].ends_with('Z') && line[4].contains('T'), "{line:?}");
        assert_eq!(line[5], "here");
    }
    let prefixed = run(&[&"blob", &"ls", &db, &"photos", &"--prefix", &"2026/"]);
    assert_eq!(prefixed.lines().count(), 1);
    assert!(prefixed.starts_with("2026/cat.png\t"));

    let json: serde_json::Value =
        serde_json::from_str(&run(&[&"blob", &"ls", &db, &"photos", &"--json"])).unwrap();
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["name"], "2026/cat.png");
    assert_eq!(entries[0]["bucket"], "photos");
    assert_eq!(entries[0]["size"], 16);
    assert_eq!(entries[0]["mime"], "image/png");
    assert_eq!(entries[0]["hash"], cat_hash.as_str());
    assert_eq!(entries[0]["here"], true);
    assert!(entries[0]["created_ms"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(
        run(&[&"blob", &"ls", &db, &"empty", &"--json"]),
        "[]\n",
        "a bucket without entries lists nothing"
    );

    assert_eq!(
        run(&[&"blob", &"ls", &db]),
        "docs\t1\t5\t5\teager\nphotos\t2\t21\t21\teager\n"
    );
    let buckets: serde_json::Value =
        serde_json::from_str(&run(&[&"blob", &"ls", &db, &"--json"])).unwrap();
    assert_eq!(buckets[0]["bucket"], "docs");
    assert_eq!(buckets[1]["entries"], 2);
    assert_eq!(buckets[1]["bytes_here"], 21);
    let docs = run(&[&"blob", &"ls", &db, &"docs"]);
    assert!(
        docs.contains("\ttext/x-weft\t"),
        "--mime is recorded: {docs}"
    );
}

#[test]
fn rm_removes_and_refuses_what_is_absent() {
    let dir = Dir::new();
    let db = dir.path("app.db");
    let file = dir.path("a.txt");
    fs::write(&file, b"a").unwrap();
    put(&db, "docs", "a.txt", &file);
    put(&db, "docs", "b.txt", &file);
    run(&[&"blob", &"rm", &db, &"docs", &"a.txt"]);
    let listed = run(&[&"blob", &"ls", &db, &"docs"]);
    assert!(
        listed.starts_with("b.txt\t") && listed.lines().count() == 1,
        "{listed}"
    );
    weft()
        .args(["blob", "rm"])
        .arg(&db)
        .args(["docs", "a.txt"])
        .assert()
        .failure()
        .stderr("error: no entry \"a.txt\" in bucket \"docs\"\n");
    // The bytes stay while another entry names them (and until garbage collection).
    assert_eq!(files_under(&store_of(&db)).len(), 1);
}

#[test]
fn mv_renames_within_the_bucket() {
    let dir = Dir::new();
    let db = dir.path("app.db");
    let file = dir.path("a.txt");
    fs::write(&file, b"contents").unwrap();
    let (hash, _) = put(&db, "docs", "drafts/a.txt", &file);
    run(&[
        &"blob",
        &"mv",
        &db,
        &"docs",
        &"drafts/a.txt",
        &"final/a.txt",
    ]);
    let listed = run(&[&"blob", &"ls", &db, &"docs"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.starts_with(&format!("final/a.txt\t8\ttext/plain\t{hash}\t")));
    let out = dir.path("out.txt");
    run(&[&"blob", &"get", &db, &"docs", &"final/a.txt", &out]);
    assert_eq!(fs::read(&out).unwrap(), b"contents");
    weft()
        .args(["blob", "mv"])
        .arg(&db)
        .args(["docs", "drafts/a.txt", "x"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no entry \"drafts/a.txt\""));
    weft()
        .args(["blob", "mv"])
        .arg(&db)
        .args(["docs", "final/a.txt", "../a.txt"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("'..'"));
    assert_eq!(
        run(&[&"blob", &"ls", &db, &"docs"]),
        listed,
        "nothing moved"
    );
}

#[test]
fn get_of_a_missing_name_fails_and_writes_nothing() {
    let dir = Dir::new();
    let db = dir.path("app.db");
    let file = dir.path("a.txt");
    fs::write(&file, b"a").unwrap();
    put(&db, "docs", "a.txt", &file);
    let out = dir.path("out.txt");
    weft()
        .args(["blob", "get"])
        .arg(&db)
        .args(["docs", "nope.txt"])
        .arg(&out)
        .assert()
        .failure()
        .stdout("")
        .stderr("error: no entry \"nope.txt\" in bucket \"docs\"\n");
    assert!(!out.exists());
    weft()
        .args(["blob", "get"])
        .arg(dir.path("missing.db"))
        .args(["docs", "a.txt"])
        .arg(&out)
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not exist"));
    assert!(!dir.path("missing.db").exists());
    assert!(!out.exists());
}

#[test]
fn path_like_names_are_refused_and_nothing_is_stored() {
    let dir = Dir::new();
    let db = dir.path("app.db");
    let file = dir.path("a.txt");
    fs::write(&file, b"some bytes never stored").unwrap();
    let other = dir.path("b.txt");
    fs::write(&other, b"b").unwrap();
    put(&db, "docs", "ok.txt", &other);
    let store_before = files_under(&store_of(&db));
    let listing_before = run(&[&"blob", &"ls", &db, &"docs"]);
    for (bucket, name, rule) in [
        (
            "docs",
            "../x",
            "no part between '/' may be empty, '.' or '..'",
        ),
        ("docs", "/etc/passwd", "no part between '/' may be empty"),
        ("docs", "a//b", "no part between '/' may be empty"),
        ("docs", "a\\b", "without control characters or '\\'"),
        ("../x", "a.txt", "a bucket name is 1 to 64 ASCII letters"),
        (".hidden", "a.txt", "starting with a letter or digit"),
    ] {
        weft()
            .args(["blob", "put"])
            .arg(&db)
            .args([bucket, name])
            .arg(&file)
            .assert()
            .failure()
            .stderr(predicate::str::starts_with("error: invalid name: "))
            .stderr(predicate::str::contains(rule));
    }
    assert_eq!(files_under(&store_of(&db)), store_before, "no new file");
    assert_eq!(run(&[&"blob", &"ls", &db, &"docs"]), listing_before);
    assert_eq!(run(&[&"blob", &"ls", &db]), "docs\t1\t1\t1\teager\n");
    // On a replica that does not exist yet, a refused put creates nothing at all.
    let fresh = dir.path("fresh.db");
    weft()
        .args(["blob", "put"])
        .arg(&fresh)
        .args(["docs", "../x"])
        .arg(&file)
        .assert()
        .failure();
    assert!(!fresh.exists() && !store_of(&fresh).exists());
}

#[test]
fn lazy_is_a_local_setting_shown_by_ls_and_info() {
    let dir = Dir::new();
    let db = dir.path("app.db");
    let file = dir.path("a.jpg");
    fs::write(&file, b"jpeg").unwrap();
    put(&db, "photos", "a.jpg", &file);
    let said = run(&[&"blob", &"lazy", &db, &"photos"]);
    assert!(said.contains("lazy"), "{said}");
    assert_eq!(run(&[&"blob", &"ls", &db]), "photos\t1\t4\t4\tlazy\n");
    let info = run(&[&"info", &db]);
    assert!(info.contains("buckets\n"), "{info}");
    assert!(
        info.contains("1 entries") && info.contains("lazy here"),
        "{info}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&[&"info", &db, &"--json"])).unwrap();
    assert_eq!(json["buckets"]["photos"]["lazy"], true);
    assert_eq!(json["buckets"]["photos"]["entries"], 1);
    assert_eq!(json["buckets"]["photos"]["bytes"], 4);
    assert_eq!(json["buckets"]["photos"]["bytes_here"], 4);
    // A bucket can be lazy before it has entries.
    run(&[&"blob", &"lazy", &db, &"later"]);
    assert_eq!(
        run(&[&"blob", &"ls", &db]),
        "later\t0\t0\t0\tlazy\nphotos\t1\t4\t4\tlazy\n"
    );
    run(&[&"blob", &"lazy", &db, &"photos", &"--off"]);
    run(&[&"blob", &"lazy", &db, &"later", &"--off"]);
    assert_eq!(run(&[&"blob", &"ls", &db]), "photos\t1\t4\t4\teager\n");
    let info = run(&[&"info", &db, &"--json"]);
    assert!(info.contains("\"lazy\": false"), "{info}");
}

#[test]
fn get_of_bytes_not_here_yet_says_that_sync_fetches_them() {
    let dir = Dir::new();
    let laptop = dir.path("laptop.db");
    let phone = dir.path("phone.db");
    let file = dir.path("cat.jpg");
    fs::write(&file, b"a cat").unwrap();
    let (hash, _) = put(&laptop, "photos", "cat.jpg", &file);
    // The listing travels in a bundle; the bytes do not.
    let bundle = dir.path("listing.bundle");
    weft()
        .arg("export")
        .arg(&laptop)
        .arg("--out")
        .arg(&bundle)
        .assert()
        .success();
    weft()
        .arg("import")
        .arg(&phone)
        .arg(&bundle)
        .assert()
        .success();
    let listed = run(&[&"blob", &"ls", &phone, &"photos"]);
    assert!(listed.starts_with(&format!("cat.jpg\t5\timage/jpeg\t{hash}\t")));
    assert!(listed.ends_with("\tmissing\n"), "{listed}");
    assert_eq!(run(&[&"blob", &"ls", &phone]), "photos\t1\t5\t0\teager\n");
    let out = dir.path("out.jpg");
    weft()
        .args(["blob", "get"])
        .arg(&phone)
        .args(["photos", "cat.jpg"])
        .arg(&out)
        .assert()
        .failure()
        .stderr(predicate::str::contains("are not here yet"))
        .stderr(predicate::str::contains("`weft sync` fetches them"));
    run(&[&"blob", &"lazy", &phone, &"photos"]);
    weft()
        .args(["blob", "get"])
        .arg(&phone)
        .args(["photos", "cat.jpg"])
        .arg(&out)
        .assert()
        .failure()
        .stderr(predicate::str::contains("bucket photos is lazy here"));
    assert!(!out.exists());
}

#[test]
fn get_refuses_damaged_local_bytes_and_keeps_outfile() {
    let dir = Dir::new();
    let db = dir.path("app.db");
    let file = dir.path("a.bin");
    fs::write(&file, random_bytes(10_000)).unwrap();
    let (hash, _) = put(&db, "files", "a.bin", &file);
    let stored = store_of(&db).join(&hash[..2]).join(&hash);
    let mut bytes = fs::read(&stored).unwrap();
    bytes[5_000] ^= 1;
    fs::write(&stored, &bytes).unwrap();
    let out = dir.path("out.bin");
    fs::write(&out, b"previous contents").unwrap();
    weft()
        .args(["blob", "get"])
        .arg(&db)
        .args(["files", "a.bin"])
        .arg(&out)
        .assert()
        .failure()
        .stderr(predicate::str::contains("damaged"));
    assert_eq!(fs::read(&out).unwrap(), b"previous contents");
    let listed = run(&[&"blob", &"ls", &db, &"files"]);
    assert!(
        listed.ends_with("\tmissing\n"),
        "damaged bytes are dropped, to be fetched again: {listed}"
    );
}
