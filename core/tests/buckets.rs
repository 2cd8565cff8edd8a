//! Buckets: the listing replicates and merges like rows, the bytes are stored once per
//! content, bad names are refused wherever they come from, and garbage collection never
//! removes referenced bytes.

use weft_core::blobs::{BlobHash, BlobStore, LocalBlobs, BUCKET_TABLE};
use weft_core::{Error, Replica};

fn replica(dir: &std::path::Path, name: &str) -> (Replica, LocalBlobs) {
    let path = dir.join(name);
    let replica = Replica::open(&path).unwrap();
    let store = LocalBlobs::beside(&path).unwrap();
    (replica, store)
}

fn merge(from: &Replica, to: &Replica) {
    for batch in from.changes_since(0) {
        to.apply_changes(&batch.unwrap().changes).unwrap();
    }
}

fn read_all(replica: &Replica, store: &LocalBlobs, bucket: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::copy(
        &mut replica.buckets().open(store, bucket, name).unwrap(),
        &mut out,
    )
    .unwrap();
    out
}

#[test]
fn put_stores_bytes_once_per_content_and_lists_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, store) = replica(dir.path(), "a.db");
    let bytes = vec![7u8; 3 << 20];
    let entry = a
        .buckets()
        .put(
            &store,
            "photos",
            "cat.jpg",
            &bytes[..],
            "image/jpeg",
            |_| {},
        )
        .unwrap();
    assert_eq!(entry.hash, Some(BlobHash::of(&bytes)));
    a.buckets()
        .put(
            &store,
            "photos",
            "copy/cat.jpg",
            &bytes[..],
            "image/jpeg",
            |_| {},
        )
        .unwrap();
    let listed = a.buckets().list("photos", "", None, 10).unwrap();
    assert_eq!(
        listed.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["cat.jpg", "copy/cat.jpg"]
    );
    assert_eq!(listed[0].size, bytes.len() as u64);
    assert_eq!(read_all(&a, &store, "photos", "copy/cat.jpg"), bytes);
    // One file per content.
    let files = walk(store.root());
    assert_eq!(files, 1, "stored once per content");
    assert_eq!(
        a.buckets().list("photos", "copy/", None, 10).unwrap().len(),
        1
    );
}

fn walk(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == ".staging" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            n += walk(&entry.path());
        } else {
            n += 1;
        }
    }
    n
}

#[test]
fn listings_merge_like_rows_renames_and_deletes_included() {
    let dir = tempfile::tempdir().unwrap();
    let (a, store_a) = replica(dir.path(), "a.db");
    let (b, store_b) = replica(dir.path(), "b.db");
    a.buckets()
        .put(
            &store_a,
            "docs",
            "draft.txt",
            &b"one"[..],
            "text/plain",
            |_| {},
        )
        .unwrap();
    merge(&a, &b);
    assert!(b.buckets().get("docs", "draft.txt").unwrap().is_some());
    // B has the entry but not the bytes.
    assert!(matches!(
        b.buckets().open(&store_b, "docs", "draft.txt"),
        Err(Error::BlobNotHere { .. })
    ));
    assert_eq!(
        b.buckets().missing(None, 10, false).unwrap(),
        [BlobHash::of(b"one")]
    );
    a.buckets()
        .rename("docs", "draft.txt", "final.txt")
        .unwrap();
    b.buckets()
        .put(&store_b, "docs", "other.txt", &b"two"[..], "", |_| {})
        .unwrap();
    merge(&a, &b);
    merge(&b, &a);
    for r in [&a, &b] {
        let names: Vec<String> = r
            .buckets()
            .list("docs", "", None, 10)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["final.txt", "other.txt"]);
    }
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    b.buckets().remove("docs", "final.txt").unwrap();
    merge(&b, &a);
    assert!(a.buckets().get("docs", "final.txt").unwrap().is_none());
}

#[test]
fn lazy_buckets_are_left_out_of_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, store_a) = replica(dir.path(), "a.db");
    let (b, _) = replica(dir.path(), "b.db");
    a.buckets()
        .put(&store_a, "thumbs", "1.png", &b"t"[..], "", |_| {})
        .unwrap();
    a.buckets()
        .put(&store_a, "originals", "1.png", &b"o"[..], "", |_| {})
        .unwrap();
    b.buckets().set_lazy("originals", true).unwrap();
    merge(&a, &b);
    assert_eq!(
        b.buckets().missing(None, 10, false).unwrap(),
        [BlobHash::of(b"t")]
    );
    assert_eq!(b.buckets().missing(None, 10, true).unwrap().len(), 2);
}

#[test]
fn path_like_names_and_hashes_that_are_not_hashes_are_refused_locally_and_merged() {
    let dir = tempfile::tempdir().unwrap();
    let (a, store) = replica(dir.path(), "a.db");
    for (bucket, name) in [
        ("../x", "a"),
        ("b", "../x"),
        ("b", "/etc/passwd"),
        ("b", "a//b"),
    ] {
        assert!(matches!(
            a.buckets().put(&store, bucket, name, &b"x"[..], "", |_| {}),
            Err(Error::InvalidName(_))
        ));
    }
    // Straight SQL meets the same rules, as CHECK constraints.
    for sql in [
        "INSERT INTO weft_bucket_entries(bucket, name) VALUES ('b', '../x')",
        "INSERT INTO weft_bucket_entries(bucket, name) VALUES ('../b', 'x')",
        "INSERT INTO weft_bucket_entries(bucket, name, hash) VALUES ('b', 'x', 'not-a-hash')",
        "INSERT INTO weft_bucket_entries(bucket, name, hash) VALUES ('b', 'x', upper(hex(randomblob(32))))",
    ] {
        assert!(a.connection().execute(sql, []).is_err(), "{sql}");
    }
    // A replica that bypasses its own checks (a forged batch): the batch is refused whole.
    let (good, good_store) = replica(dir.path(), "good.db");
    good.buckets()
        .put(&good_store, "b", "fine", &b"x"[..], "", |_| {})
        .unwrap();
    let mut batch = good.changes_since(0).next().unwrap().unwrap().changes;
    for change in &mut batch {
        if &*change.table == BUCKET_TABLE {
            change.pk[1] = weft_core::Value::Text("../escape".into());
        }
    }
    let (victim, _) = replica(dir.path(), "victim.db");
    let before = victim.digest().unwrap();
    assert!(victim.apply_changes(&batch).is_err());
    assert_eq!(victim.digest().unwrap(), before);
    assert_eq!(
        victim
            .connection()
            .query_row(&format!("SELECT count(*) FROM {BUCKET_TABLE}"), [], |r| r
                .get::<_, i64>(
                0
            ))
            .unwrap(),
        0
    );
}

#[test]
fn garbage_collection_waits_out_the_grace_period_and_never_takes_referenced_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, store) = replica(dir.path(), "a.db");
    let old = a
        .buckets()
        .put(&store, "b", "x", &b"old bytes"[..], "", |_| {})
        .unwrap()
        .hash
        .unwrap();
    let kept = a
        .buckets()
        .put(&store, "b", "y", &b"kept bytes"[..], "", |_| {})
        .unwrap()
        .hash
        .unwrap();
    // Overwrite x: its old bytes are now unreferenced.
    let new = a
        .buckets()
        .put(&store, "b", "x", &b"new bytes"[..], "", |_| {})
        .unwrap()
        .hash
        .unwrap();
    let first = a.buckets().collect_garbage(&store, 1_000, 500).unwrap();
    assert_eq!((first.removed, first.waiting, first.referenced), (0, 1, 2));
    assert!(
        store.size(&old).unwrap().is_some(),
        "within the grace period"
    );
    let second = a.buckets().collect_garbage(&store, 1_600, 500).unwrap();
    assert_eq!((second.removed, second.waiting), (1, 0));
    assert_eq!(second.bytes_removed, 9);
    assert!(store.size(&old).unwrap().is_none());
    for hash in [kept, new] {
        assert!(store.size(&hash).unwrap().is_some());
        assert!(a.buckets().is_held(&hash).unwrap());
    }
    // Unreferenced, then referenced again before the grace period ends: kept.
    a.buckets().remove("b", "y").unwrap();
    a.buckets().collect_garbage(&store, 2_000, 500).unwrap();
    a.buckets().link("b", "y-again", &kept, 10, "").unwrap();
    let third = a.buckets().collect_garbage(&store, 9_000, 500).unwrap();
    assert_eq!(third.removed, 0);
    assert_eq!(read_all(&a, &store, "b", "y-again"), b"kept bytes");
}
