//! Blob bytes between sessions over perfect in-memory pipes: fetching, lazy buckets,
//! resuming a cut transfer, "missing" then "have", and bytes that do not match their hash.

use weft_core::blobs::{BlobHash, BlobStore};
use weft_core::sync::{
    encode_frame, BlobData, BlobFetch, BlobWant, ErrorCode, Message, SessionEvent,
};
use weft_core::sync::{Role, Session, SessionConfig};
use weft_tests::node::Node;
use weft_tests::pair::{closed_code, next_frame, sync_as, Pair, Side};

fn node(dir: &std::path::Path, name: &str) -> Node {
    Node::open(dir, name)
}

fn config(role: Role, node: &Node) -> SessionConfig {
    node.config(role)
}

/// A conversation of `client` with `server` (which moves blobs through its store).
fn open(client: &Node, client_config: SessionConfig, server: &Node) -> Pair {
    Pair::open(
        &client.replica,
        client_config,
        &server.replica,
        config(Role::Server, server),
    )
}

/// Syncs until both sides are in sync and neither fetches; returns the pair.
fn sync(client: &Node, client_config: SessionConfig, server: &Node) -> Pair {
    sync_as(
        &client.replica,
        client_config,
        &server.replica,
        config(Role::Server, server),
    )
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 253) as u8))
        .collect()
}

fn put(node: &Node, bucket: &str, name: &str, content: &[u8]) -> BlobHash {
    node.replica
        .buckets()
        .put(
            &*node.store,
            bucket,
            name,
            content,
            "application/octet-stream",
            |_| {},
        )
        .unwrap()
        .hash
        .unwrap()
}

fn read(node: &Node, hash: &BlobHash, len: usize) -> Vec<u8> {
    node.store.read_at(hash, 0, len + 1).unwrap()
}

fn staged_files(node: &Node) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(node.store.staging_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn blobs_reach_the_server_and_other_clients_and_lazy_buckets_wait_for_a_read() {
    let dir = tempfile::tempdir().unwrap();
    let (a, server, b) = (
        node(dir.path(), "a"),
        node(dir.path(), "s"),
        node(dir.path(), "b"),
    );
    let photo = bytes(1_000_000, 1);
    let thumb = bytes(2_000, 2);
    let photo_hash = put(&a, "photos", "cat.jpg", &photo);
    let thumb_hash = put(&a, "thumbs", "cat.png", &thumb);
    let up = sync(&a, config(Role::Client, &a), &server);
    assert_eq!(up.server.status().blobs.received, 2);
    assert_eq!(up.client.status().blobs.sent, 2, "receipts for both");
    assert_eq!(read(&server, &photo_hash, photo.len()), photo);

    b.replica.buckets().set_lazy("thumbs", true).unwrap();
    let down = sync(&b, config(Role::Client, &b), &server);
    assert_eq!(
        down.client.status().blobs.received,
        1,
        "the lazy bucket waits"
    );
    assert_eq!(read(&b, &photo_hash, photo.len()), photo);
    assert!(!b.replica.buckets().is_held(&thumb_hash).unwrap());
    assert!(b.store.size(&thumb_hash).unwrap().is_none());
    // The first read of the lazy entry fetches only it.
    let mut only = config(Role::Client, &b);
    only.blob_fetch = BlobFetch::Only(vec![thumb_hash]);
    let read_once = sync(&b, only, &server);
    assert_eq!(read_once.client.status().blobs.received, 1);
    assert_eq!(read(&b, &thumb_hash, thumb.len()), thumb);
    assert!(staged_files(&b).is_empty(), "no partial file is left");
}

#[test]
fn a_cut_transfer_resumes_where_it_stopped_without_resending_what_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let (a, server) = (node(dir.path(), "a"), node(dir.path(), "s"));
    let size = 4 << 20; // 16 chunks
    let content = bytes(size, 3);
    let hash = put(&a, "files", "big.bin", &content);
    // First conversation: cut once the server holds at least half.
    let mut first = open(&a, config(Role::Client, &a), &server);
    let mut now = 0;
    let received_at_cut = loop {
        first.pump_at_most(&a.replica, &server.replica, now, 1);
        now += 1;
        let received = first
            .events
            .iter()
            .filter_map(|(side, e)| match e {
                SessionEvent::BlobProgress {
                    done,
                    incoming: true,
                    ..
                } if *side == Side::Server => Some(*done),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        if received >= size as u64 / 2 {
            break received;
        }
        assert!(now < 1_000, "the transfer never got halfway");
    };
    assert!(received_at_cut < size as u64, "cut before the end");
    drop(first);
    assert!(!server.replica.buckets().is_held(&hash).unwrap());
    assert!(
        server.store.size(&hash).unwrap().is_none(),
        "nothing published"
    );
    // Second conversation: only the rest travels.
    let second = sync(&a, config(Role::Client, &a), &server);
    assert_eq!(
        second.client.status().blobs.bytes_sent,
        size as u64 - received_at_cut,
        "only what had not arrived is sent again"
    );
    assert_eq!(read(&server, &hash, size), content);
    assert!(staged_files(&server).is_empty());
}

#[test]
fn a_server_without_the_bytes_says_missing_then_tells_when_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let (a, server, b) = (
        node(dir.path(), "a"),
        node(dir.path(), "s"),
        node(dir.path(), "b"),
    );
    let content = bytes(300_000, 4);
    let hash = put(&a, "files", "late.bin", &content);
    // A's listing reaches the server, its bytes not (a conversation without its store).
    let mut no_store = SessionConfig::new(Role::Client, "db");
    no_store.blobs = None;
    let rows_only = sync(&a, no_store, &server);
    assert_eq!(rows_only.server.status().blobs.missing, 1);
    // B learns of the entry; the server lacks the bytes.
    let mut b_pair = open(&b, config(Role::Client, &b), &server);
    let mut now = 0;
    while !(b_pair.settled() && b_pair.client.status().blobs.missing == 1) {
        b_pair.pump(&b.replica, &server.replica, now);
        now += 1;
        assert!(now < 1_000, "B never heard the blob is missing");
    }
    assert!(!b.replica.buckets().is_held(&hash).unwrap());
    // A uploads in another conversation; B's conversation is told and fetches.
    let up = sync(&a, config(Role::Client, &a), &server);
    assert_eq!(up.server.status().blobs.received, 1);
    while !b.replica.buckets().is_held(&hash).unwrap() {
        now += 100;
        b_pair.pump(&b.replica, &server.replica, now);
        assert!(now < 100_000, "B never got the bytes");
    }
    assert_eq!(read(&b, &hash, content.len()), content);
    assert!(b_pair
        .events
        .iter()
        .any(|(side, e)| *side == Side::Client && matches!(e, SessionEvent::BlobReceived { .. })));
}

#[test]
fn bytes_that_do_not_match_their_hash_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (a, server) = (node(dir.path(), "a"), node(dir.path(), "s"));
    let content = bytes(600_000, 5);
    let hash = put(&a, "files", "x.bin", &content);
    // A's copy rots on disk (same length, other bytes): it sends what it has.
    let path = a.store.path_of(&hash);
    std::fs::write(&path, bytes(content.len(), 6)).unwrap();
    let pair = sync(&a, config(Role::Client, &a), &server);
    assert_eq!(pair.server.status().blobs.refused, 1);
    assert!(pair.events.iter().any(|(side, e)| *side == Side::Server
        && matches!(e, SessionEvent::BlobRefused { hash: h, .. } if *h == hash)));
    assert!(server.store.size(&hash).unwrap().is_none());
    assert!(!server.replica.buckets().is_held(&hash).unwrap());
    assert!(staged_files(&server).is_empty(), "the partial file is gone");
    // The rows synced all the same.
    assert_eq!(
        a.replica.digest().unwrap(),
        server.replica.digest().unwrap()
    );
}

/// A server session past the hellos with a client, and the client's replica.
fn running_server(dir: &std::path::Path) -> (Node, Node, Session) {
    let (a, server) = (node(dir, "a"), node(dir, "s"));
    let mut client = Session::initiator(&a.replica, config(Role::Client, &a)).unwrap();
    let mut session = Session::responder(&server.replica, config(Role::Server, &server)).unwrap();
    let hello = next_frame(&mut client, &a.replica, 0).unwrap();
    session.handle_frame(&server.replica, &hello, 0).unwrap();
    (a, server, session)
}

#[test]
fn malformed_blob_messages_close_the_session_with_the_code_naming_the_breach() {
    let dir = tempfile::tempdir().unwrap();
    let held = bytes(1_000, 7);
    let forged: Vec<(Message, ErrorCode)> = vec![
        // A blob id that is not a hash.
        (
            Message::BlobWant(BlobWant {
                hash: vec![1; 31],
                offset: 0,
            }),
            ErrorCode::WrongLength,
        ),
        // A chunk larger than a chunk may be.
        (
            Message::BlobData(BlobData {
                hash: vec![2; 32],
                offset: 0,
                size: 1 << 20,
                bytes: vec![0; weft_core::blobs::BLOB_CHUNK_BYTES + 1],
            }),
            ErrorCode::FieldTooLong,
        ),
        // A chunk past the blob's end.
        (
            Message::BlobData(BlobData {
                hash: vec![2; 32],
                offset: 10,
                size: 12,
                bytes: vec![0; 3],
            }),
            ErrorCode::OutOfRange,
        ),
        // A want past the end of a blob the server holds.
        (
            Message::BlobWant(BlobWant {
                hash: BlobHash::of(&held).0.to_vec(),
                offset: held.len() as u64 + 1,
            }),
            ErrorCode::OutOfRange,
        ),
    ];
    for (i, (message, code)) in forged.into_iter().enumerate() {
        let dir = dir.path().join(i.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let (_a, server, mut session) = running_server(&dir);
        put(&server, "files", "held", &held);
        session
            .handle_frame(&server.replica, &encode_frame(&message), 1)
            .unwrap();
        assert_eq!(closed_code(&mut session), Some(code), "{i}");
        assert!(staged_files(&server).is_empty(), "{i}: nothing staged");
    }
}

#[test]
fn more_blobs_wanted_at_once_than_a_side_serves_close_the_session_as_too_many_wants() {
    let dir = tempfile::tempdir().unwrap();
    let (_a, server, mut session) = running_server(dir.path());
    // One more held blob wanted than a side serves at once (16), none of it sent meanwhile.
    for i in 0..17u8 {
        let hash = put(&server, "files", &format!("b{i}"), &bytes(100, i));
        let want = Message::BlobWant(BlobWant {
            hash: hash.0.to_vec(),
            offset: 0,
        });
        session
            .handle_frame(&server.replica, &encode_frame(&want), 1)
            .unwrap();
        let closed = session.is_closed();
        assert_eq!(closed, i == 16, "want {i}");
    }
    assert_eq!(closed_code(&mut session), Some(ErrorCode::TooManyWants));
}

#[test]
fn a_chunk_nobody_asked_for_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (_a, server, mut session) = running_server(dir.path());
    let content = b"unsolicited".to_vec();
    let hash = BlobHash::of(&content);
    let data = Message::BlobData(BlobData {
        hash: hash.0.to_vec(),
        offset: 0,
        size: content.len() as u64,
        bytes: content,
    });
    session
        .handle_frame(&server.replica, &encode_frame(&data), 1)
        .unwrap();
    assert!(!session.is_closed());
    assert!(server.store.size(&hash).unwrap().is_none());
    assert!(!server.replica.buckets().is_held(&hash).unwrap());
}
