//! Replays the fuzzers' corpus (`core/fuzz/corpus/<target>/`) and every input a fuzzer found a
//! bug with (`core/fuzz/crashers/<target>/<bug>`) through the decoders: none panics, what
//! decodes round-trips, and each bug's input is refused with the error its fix gives.

#[path = "support/wire_round_trip.rs"]
mod wire_round_trip;

use std::path::{Path, PathBuf};
use weft_core::sync::ErrorCode;

/// Each bug a fuzzer found: its input file under `core/fuzz/crashers/`, and the code its frame
/// is refused with since the fix.
const CRASHERS: &[(&str, Expected)] = &[
    // A frame of arrays nested 194 deep: decoding recursed once per level and overflowed a
    // test thread's 2 MiB stack (debug build). Nesting is now limited to NESTING_DEPTH_MAX.
    (
        "frames/deep_nesting_overflowed_the_stack",
        Expected::Code(ErrorCode::UndecodableFrame),
    ),
    // The same through a bundle frame.
    (
        "bundles/deep_nesting_overflowed_the_stack",
        Expected::Bundle("depth limit exceeded"),
    ),
];

/// What a crasher's input is refused with since its bug was fixed.
enum Expected {
    /// A frame or rows refused with this code.
    Code(ErrorCode),
    /// A bundle refused with a message containing this text.
    Bundle(&'static str),
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every file under `dir/<target>/`, as (target, path).
fn inputs(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    let Ok(targets) = std::fs::read_dir(dir) else {
        return found;
    };
    for target in targets {
        let target = target.expect("a corpus folder entry").path();
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&target).expect("a target's corpus folder") {
            found.push((name.clone(), file.expect("a corpus file").path()));
        }
    }
    found.sort();
    found
}

fn replay(target: &str, data: &[u8]) -> Result<(), String> {
    match target {
        "frames" => wire_round_trip::check_frame(data).map_err(|e| e.code.to_string()),
        "rows" => wire_round_trip::check_rows(data).map_err(|e| e.code.to_string()),
        "bundles" => wire_round_trip::check_bundle(data).map_err(|e| e.to_string()),
        other => panic!("no fuzz target {other:?}"),
    }
}

#[test]
fn the_fuzz_corpus_decodes_without_a_panic_and_round_trips() {
    let corpus = inputs(&fuzz_dir().join("corpus"));
    for target in ["frames", "rows", "bundles"] {
        let count = corpus.iter().filter(|(t, _)| t == target).count();
        assert!(count > 0, "no corpus for {target}");
    }
    let mut decoded = 0;
    for (target, path) in &corpus {
        let data = std::fs::read(path).expect("a corpus file");
        if replay(target, &data).is_ok() {
            decoded += 1;
        }
    }
    assert!(decoded > 0, "nothing in the corpus decodes");
}

#[test]
fn every_input_a_fuzzer_found_a_bug_with_is_refused_as_its_fix_says() {
    let found = inputs(&fuzz_dir().join("crashers"));
    assert_eq!(
        found.len(),
        CRASHERS.len(),
        "a crasher without its entry, or the reverse"
    );
    for (name, expected) in CRASHERS {
        let path = fuzz_dir().join("crashers").join(name);
        let target = name.split('/').next().unwrap();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let error = replay(target, &data).expect_err(name);
        match expected {
            Expected::Code(code) => assert_eq!(error, code.to_string(), "{name}"),
            Expected::Bundle(text) => assert!(error.contains(text), "{name}: {error}"),
        }
    }
}

/// Writes the seed inputs the fuzzers start from (run once by hand, then `cargo fuzz cmin`):
/// `cargo test -p weft-core --test fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_seed_corpus() {
    use weft_core::sync::*;
    use weft_core::{Change, Cursor, Incarnation, SiteId, Value};
    let change = |key: i64, value: Value| Change {
        table: "note".into(),
        pk: vec![Value::Integer(key)],
        column: Some("body".into()),
        value,
        clock: 1 << 20,
        site: SiteId([3; 16]),
        cl: 1,
        db_version: 7,
    };
    let changes = vec![
        change(1, Value::Text("a".into())),
        change(2, Value::Real(1.5)),
        change(3, Value::Blob(vec![1, 2, 3])),
        change(4, Value::Null),
        Change {
            column: None,
            ..change(5, Value::Null)
        },
    ];
    let rows = encode_rows(&changes);
    let messages = vec![
        Message::Hello(Hello {
            protocol: PROTOCOL_VERSION,
            site: SiteId([1; 16]),
            incarnation: Incarnation([2; 16]),
            role: Role::Client,
            database: "notes".into(),
            db_version: 4,
            resume: vec![Resume {
                site: SiteId([3; 16]),
                incarnation: Incarnation([4; 16]),
                cursor: Cursor::since(42),
            }],
            reconcile: true,
        }),
        Message::Changes(Changes {
            from: Cursor::since(0),
            to: Cursor::since(9),
            done: true,
            count: changes.len() as u32,
            checksum: blake3::hash(&rows).as_bytes().to_vec(),
            rows: rows.clone(),
        }),
        Message::Ack(Ack {
            to: Cursor::since(9),
            resend: true,
        }),
        Message::Digest(DigestMessage {
            db_version: 9,
            state_hash: vec![5; 32],
            reply: true,
            fetching: true,
        }),
        Message::Reject(Reject {
            from: Cursor::since(0),
            to: Cursor::since(9),
            count: 1,
            reason: "read-only".into(),
            sample: vec![("note".into(), vec![Value::Integer(1)])],
        }),
        Message::Reconcile(Reconcile {
            round: 3,
            rows: Some(10),
            digest: Some(vec![6; 32]),
            ranges: vec![RangeSplit(
                0,
                u64::MAX,
                vec![
                    RangePart(2, Some(vec![7; 16]), None),
                    RangePart(1, None, Some(vec![8; 16])),
                ],
            )],
            want: vec![9; 16],
            done: false,
            fallback: false,
        }),
        Message::BlobWant(BlobWant {
            hash: vec![1; 32],
            offset: 5,
        }),
        Message::BlobData(BlobData {
            hash: vec![1; 32],
            offset: 0,
            size: 3,
            bytes: vec![1, 2, 3],
        }),
        Message::BlobHave(BlobRef { hash: vec![1; 32] }),
        Message::BlobMissing(BlobRef { hash: vec![1; 32] }),
        Message::Error(ErrorMessage {
            code: ErrorCode::TrailingBytes,
            message: "no".into(),
        }),
    ];
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    for message in &messages {
        write("frames", message.type_name(), &encode_frame(message));
    }
    write("rows", "five-changes", &rows);
    let frame = weft_core::bundle::encode_changes_frame(&changes).unwrap();
    write("bundles", "frame", &frame);
    let mut file = b"WEFTBNDL\x01".to_vec();
    file.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    file.extend_from_slice(&frame);
    file.extend_from_slice(&0u32.to_be_bytes());
    file.extend_from_slice(&(changes.len() as u64).to_be_bytes());
    let hash = blake3::hash(&file);
    file.extend_from_slice(hash.as_bytes());
    write("bundles", "file", &file);
}
