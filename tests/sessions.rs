//! Two sessions over a perfect in-memory pipe: the protocol's rules one at a time.

use weft_core::sync::{Role, Session, SessionConfig, Status};
use weft_core::Replica;
use weft_tests::node::DATABASE;
use weft_tests::pair::{closed_code, next_frame, sync_as};

/// Runs a client and a server session until both are idle and in sync; returns their
/// final statuses. Panics if that takes more than a bounded number of rounds.
fn sync(client: &Replica, server: &Replica) -> (Status, Status) {
    let pair = sync_as(
        client,
        SessionConfig::new(Role::Client, DATABASE),
        server,
        SessionConfig::new(Role::Server, DATABASE),
    );
    (pair.client.status().clone(), pair.server.status().clone())
}

fn replica(dir: &std::path::Path, name: &str, schema: bool) -> Replica {
    let replica = Replica::open(dir.join(name)).unwrap();
    if schema {
        replica
            .connection()
            .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        replica.enable_crr("t").unwrap();
    }
    replica
}

fn insert(replica: &Replica, from: i64, to: i64) {
    replica
        .connection()
        .execute(
            "WITH RECURSIVE k(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM k WHERE i < ?2) INSERT INTO t SELECT i, 'v' || i FROM k",
            [from, to],
        )
        .unwrap();
}

#[test]
fn changes_are_not_echoed_back_to_the_side_that_sent_them() {
    let dir = tempfile::tempdir().unwrap();
    let (a, server) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "s", false),
    );
    insert(&a, 1, 100);
    let (client, srv) = sync(&a, &server);
    assert_eq!(srv.changes_received, 200);
    assert_eq!(
        client.changes_received, 0,
        "the server sent A's changes back"
    );
    // A second client gets them all from the server.
    let b = replica(dir.path(), "b", true);
    let (client_b, _) = sync(&b, &server);
    assert_eq!(client_b.changes_received, 200);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
}

#[test]
fn a_resumed_session_sends_only_new_changes_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let (a, server) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "s", false),
    );
    insert(&a, 1, 10);
    sync(&a, &server);
    insert(&a, 11, 12);
    let (client, srv) = sync(&a, &server);
    assert_eq!((srv.changes_received, client.changes_received), (4, 0));
}

#[test]
fn a_copy_restored_from_an_older_file_is_taken_whole_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a, server) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "s", false),
    );
    insert(&a, 1, 1);
    let old = dir.path().join("a-old");
    a.connection()
        .execute("VACUUM INTO ?1", [old.to_str().unwrap()])
        .unwrap();
    // The original goes on and syncs well past the copy's db_version.
    for i in 2..8 {
        insert(&a, i, i);
    }
    sync(&a, &server);
    drop(a);
    // The copy comes back (same site, same incarnation, older db_version) and writes.
    let copy = Replica::open(&old).unwrap();
    insert(&copy, 100, 101);
    sync(&copy, &server);
    let held: i64 = server
        .connection()
        .query_row("SELECT count(*) FROM weft_relay WHERE col = 'v'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        held, 9,
        "rows 1-7 and the copy's 100-101 reached the server"
    );
    assert_eq!(copy.digest().unwrap(), server.digest().unwrap());
}

#[test]
fn a_renewed_incarnation_makes_the_other_side_start_from_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (a, server) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "s", false),
    );
    insert(&a, 1, 5);
    sync(&a, &server);
    let (_, srv) = sync(&a, &server);
    assert_eq!(srv.changes_received, 0, "resumed: nothing new");
    a.renew_incarnation().unwrap();
    insert(&a, 6, 6);
    let (client, srv) = sync(&a, &server);
    // The server no longer trusts its cursor: the sides compare all their rows and find the
    // one A wrote since.
    assert!(srv.reconciled.is_some() && client.reconciled.is_some());
    assert_eq!(srv.changes_received, 2);
    assert_eq!(a.digest().unwrap(), server.digest().unwrap());
}

#[test]
fn a_server_answers_a_peer_only_when_told_to_accept_peers() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        replica(dir.path(), "a", false),
        replica(dir.path(), "b", false),
    );
    // Without accept_peer, a peer's hello is the wrong role for a server.
    let mut dialer = Session::initiator(&a, SessionConfig::new(Role::Peer, "db")).unwrap();
    let mut server = Session::responder(&b, SessionConfig::new(Role::Server, "db")).unwrap();
    let hello = next_frame(&mut dialer, &a, 0).unwrap();
    server.handle_frame(&b, &hello, 0).unwrap();
    assert_eq!(
        closed_code(&mut server),
        Some(weft_core::sync::ErrorCode::WrongRole)
    );
    // With it, the server becomes a peer for this conversation and they sync.
    let source = replica(dir.path(), "c", true);
    insert(&source, 1, 5);
    let mut accepting = SessionConfig::new(Role::Server, "db");
    accepting.accept_peer = true;
    let pair = sync_as(&source, SessionConfig::new(Role::Peer, "db"), &b, accepting);
    assert_eq!(pair.server.role(), Role::Peer);
    assert_eq!(pair.client.status().changes_acknowledged, 10);
    assert_eq!(source.digest().unwrap(), b.digest().unwrap());
}

/// Copies every change of `from` into `to` without any cursor: the two then hold the same
/// rows but know nothing of each other, like two servers that never met.
fn copy_without_cursors(from: &Replica, to: &Replica) {
    for batch in from.changes_since(0) {
        to.apply_changes(&batch.unwrap().changes).unwrap();
    }
}

fn update(replica: &Replica, from: i64, to: i64, text: &str) {
    replica
        .connection()
        .execute(
            "UPDATE t SET v = ?3 WHERE id BETWEEN ?1 AND ?2",
            weft_core::rusqlite::params![from, to, text],
        )
        .unwrap();
}

#[test]
fn strangers_holding_mostly_the_same_rows_reconcile_and_send_only_the_differences() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "b", true),
    );
    insert(&a, 1, 2_000);
    copy_without_cursors(&a, &b);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    // They diverge: 30 rows changed on A, 40 others changed and 5 added on B, and one row
    // changed on both (the later write wins on both sides).
    update(&a, 1, 30, "a");
    update(&b, 101, 140, "b");
    insert(&b, 5_001, 5_005);
    update(&a, 500, 500, "a-first");
    // Later on the wall clock: within one millisecond the tie would fall to the site ids.
    std::thread::sleep(std::time::Duration::from_millis(5));
    update(&b, 500, 500, "b-later");
    b.connection()
        .execute("DELETE FROM t WHERE id = 900", [])
        .unwrap();
    let (client, server) = sync(&a, &b);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    let (from_b, from_a) = (client.changes_received, server.changes_received);
    // 77 rows differ; neither side can tell whose version of a row wins, so each sends its
    // own version of each (two registers a row at most: existence and v), nothing else.
    assert!((2 * 31..=2 * 77).contains(&from_a), "A sent {from_a}");
    assert!((2 * 46..=2 * 77).contains(&from_b), "B sent {from_b}");
    let (stats_a, stats_b) = (
        client.reconciled.clone().expect("A reconciled"),
        server.reconciled.clone().expect("B reconciled"),
    );
    assert!(!stats_a.fallback && !stats_b.fallback);
    // A lacks B's 5 new rows; B holds all 77 (the deleted one as a tombstone).
    assert_eq!((stats_a.rows_to_send, stats_b.rows_to_send), (72, 77));
    // Much less than the 4,000 registers a full exchange would have sent each way.
    assert!(
        client.bytes_received + client.bytes_sent < 60_000,
        "{client:?}"
    );
    let v: String = a
        .connection()
        .query_row("SELECT v FROM t WHERE id = 500", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, "b-later");
    // With cursors now known both ways, the next conversation does not reconcile again.
    update(&a, 2, 2, "again");
    let (client, server) = sync(&a, &b);
    assert_eq!(client.reconciled, None);
    // One register: the updated cell.
    assert_eq!((server.changes_received, client.changes_received), (1, 0));
}

#[test]
fn strangers_of_very_different_sizes_send_everything_instead() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "b", true),
    );
    insert(&a, 1, 1_000);
    insert(&b, 2_000, 2_009);
    let (client, server) = sync(&a, &b);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
    assert!(client.reconciled.as_ref().is_some_and(|s| s.fallback));
    assert_eq!(
        (server.changes_received, client.changes_received),
        (2_000, 20)
    );
}

#[test]
fn a_fresh_replica_takes_everything_without_reconciling() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "b", false),
    );
    insert(&a, 1, 50);
    let (client, server) = sync(&b, &a);
    assert_eq!(client.reconciled, None);
    assert_eq!((client.changes_received, server.changes_received), (100, 0));
}

#[test]
fn row_fingerprints_add_up_to_the_digest_across_tables_relay_and_tombstones() {
    use weft_core::test_support::{HashRange, RowIndex};
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", true);
    insert(&a, 1, 300);
    a.connection()
        .execute("DELETE FROM t WHERE id BETWEEN 10 AND 20", [])
        .unwrap();
    // A schema-less replica holds everything in the relay; one with the table holds rows.
    let relay = replica(dir.path(), "relay", false);
    copy_without_cursors(&a, &relay);
    for replica in [&a, &relay] {
        let index = RowIndex::build(replica, 1_000)
            .unwrap()
            .expect("small enough");
        assert_eq!(index.len(), 300);
        index.check_against(&replica.digest().unwrap()).unwrap();
    }
    let (left, right) = (
        RowIndex::build(&a, 1_000).unwrap().unwrap(),
        RowIndex::build(&relay, 1_000).unwrap().unwrap(),
    );
    for range in HashRange::ALL.split(7) {
        assert_eq!(left.summary(range), right.summary(range));
    }
    // Over the bound, no index.
    assert!(RowIndex::build(&a, 100).unwrap().is_none());
}

/// A `reconcile` round as an initiator would send it (no digest, no wants).
fn round_frame(
    number: u32,
    rows: Option<u64>,
    ranges: Vec<weft_core::sync::RangeSplit>,
) -> Vec<u8> {
    use weft_core::sync::{encode_frame, Message, Reconcile};
    encode_frame(&Message::Reconcile(Reconcile {
        round: number,
        rows,
        digest: None,
        ranges,
        want: Vec::new(),
        done: false,
        fallback: false,
    }))
}

/// A responder on `server` that took `client`'s hello and a round 1 announcing `rows`, and
/// answered with round 2 (so it expects round 3).
fn responder_after_round_2(client: &Replica, server: &Replica, rows: u64) -> Session {
    let mut initiator = Session::initiator(client, SessionConfig::new(Role::Client, "db")).unwrap();
    let mut responder = Session::responder(server, SessionConfig::new(Role::Server, "db")).unwrap();
    let hello = next_frame(&mut initiator, client, 0).unwrap();
    responder.handle_frame(server, &hello, 0).unwrap();
    while next_frame(&mut responder, server, 0).is_some() {}
    responder
        .handle_frame(server, &round_frame(1, Some(rows), vec![]), 0)
        .unwrap();
    assert!(next_frame(&mut responder, server, 0).is_some(), "round 2");
    responder
}

#[test]
fn reconcile_rounds_out_of_turn_or_unsplittable_close_the_session_with_a_code() {
    use weft_core::sync::{ErrorCode, RangePart, RangeSplit};
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "b", true),
    );
    // Two fresh replicas: nobody asked to reconcile, so a round is out of turn.
    let mut client = Session::initiator(&a, SessionConfig::new(Role::Client, "db")).unwrap();
    let mut server = Session::responder(&b, SessionConfig::new(Role::Server, "db")).unwrap();
    let hello = next_frame(&mut client, &a, 0).unwrap();
    server.handle_frame(&b, &hello, 0).unwrap();
    server
        .handle_frame(&b, &round_frame(1, Some(5), vec![]), 0)
        .unwrap();
    assert_eq!(closed_code(&mut server), Some(ErrorCode::UnexpectedMessage));
    // Strangers holding data reconcile; a range of width 2 split into 3 parts is refused.
    insert(&a, 1, 10);
    copy_without_cursors(&a, &b);
    let mut server = responder_after_round_2(&a, &b, 5);
    let summary = RangePart(1, Some(vec![0; 16]), None);
    let split = RangeSplit(5, 6, vec![summary; 3]);
    server
        .handle_frame(&b, &round_frame(3, Some(5), vec![split]), 0)
        .unwrap();
    assert_eq!(closed_code(&mut server), Some(ErrorCode::MalformedRound));
}

#[test]
fn an_older_copy_told_so_by_one_server_starts_a_new_life_before_it_meets_another() {
    let dir = tempfile::tempdir().unwrap();
    let a = replica(dir.path(), "a", true);
    let (s1, s2) = (
        replica(dir.path(), "s1", false),
        replica(dir.path(), "s2", false),
    );
    insert(&a, 1, 1);
    let old = dir.path().join("a-old");
    a.connection()
        .execute("VACUUM INTO ?1", [old.to_str().unwrap()])
        .unwrap();
    for i in 2..8 {
        insert(&a, i, i);
    }
    sync(&a, &s1);
    sync(&a, &s2);
    let incarnation = a.incarnation().unwrap();
    drop(a);
    // The copy comes back (same site and incarnation, db_version 1) and meets s1, which holds
    // its changes through db_version 7: the copy learns it is an older copy.
    let copy = Replica::open(&old).unwrap();
    sync(&copy, &s1);
    assert_ne!(copy.incarnation().unwrap(), incarnation, "not renewed");
    // It writes well past db_version 7, then meets s2, whose cursor into the old life says 7:
    // under the new incarnation s2 trusts nothing and misses none of the new rows.
    for i in 100..110 {
        insert(&copy, i, i);
    }
    assert!(copy.db_version().unwrap() > 7);
    sync(&copy, &s2);
    assert_eq!(copy.digest().unwrap(), s2.digest().unwrap());
    let held: i64 = s2
        .connection()
        .query_row("SELECT count(*) FROM weft_relay WHERE col = 'v'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(held, 17, "rows 1-7 and the copy's 100-109 on s2");
}

#[test]
fn strangers_in_the_same_state_compare_digests_and_index_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "b", false),
    );
    insert(&a, 1, 500);
    copy_without_cursors(&a, &b);
    let (client, server) = sync(&a, &b);
    for stats in [&client.reconciled, &server.reconciled] {
        let stats = stats.as_ref().expect("they reconciled");
        assert_eq!((stats.ranges_sent, stats.rows_listed), (0, 0), "{stats:?}");
        assert!(!stats.fallback);
    }
    assert_eq!((client.changes_received, server.changes_received), (0, 0));
    // Equal from the digests on: a write after it is all that travels next time.
    insert(&a, 501, 501);
    let (_, server) = sync(&a, &b);
    assert_eq!(server.changes_received, 2);
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
}

#[test]
fn a_client_cannot_make_a_server_renew_its_incarnation() {
    use weft_core::sync::{encode_frame, Hello, Message, Resume, PROTOCOL_VERSION};
    use weft_core::Cursor;
    let dir = tempfile::tempdir().unwrap();
    let (a, server) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "s", false),
    );
    insert(&a, 1, 3);
    sync(&a, &server);
    let incarnation = server.incarnation().unwrap();
    // A made-up claim: "I hold your changes far past your db_version".
    let lie = Message::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        site: a.site_id(),
        incarnation: a.incarnation().unwrap(),
        role: Role::Client,
        database: "db".into(),
        db_version: a.db_version().unwrap(),
        resume: vec![Resume {
            site: server.site_id(),
            incarnation,
            cursor: Cursor::since(u64::MAX),
        }],
        reconcile: false,
    });
    let mut session = Session::responder(&server, SessionConfig::new(Role::Server, "db")).unwrap();
    session
        .handle_frame(&server, &encode_frame(&lie), 0)
        .unwrap();
    assert!(next_frame(&mut session, &server, 0).is_some(), "answered");
    assert_eq!(server.incarnation().unwrap(), incarnation);
}

#[test]
fn ranges_nobody_described_are_refused() {
    use weft_core::sync::{ErrorCode, RangePart, RangeSplit};
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "b", true),
    );
    insert(&a, 1, 100);
    copy_without_cursors(&a, &b);
    insert(&b, 200, 200);
    let mut server = responder_after_round_2(&a, &b, 100);
    // Round 3 "answers" the whole space again, which the server never summarised as a part.
    let forged = RangeSplit(0, u64::MAX, vec![RangePart(0, None, Some(vec![]))]);
    server
        .handle_frame(&b, &round_frame(3, None, vec![forged]), 0)
        .unwrap();
    assert_eq!(closed_code(&mut server), Some(ErrorCode::MalformedRound));
}

#[test]
fn a_batch_that_ends_before_it_starts_closes_the_session_as_out_of_range() {
    use weft_core::sync::{encode_frame, encode_rows, Changes, ErrorCode, Message};
    use weft_core::Cursor;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        replica(dir.path(), "a", true),
        replica(dir.path(), "b", true),
    );
    insert(&a, 1, 10);
    sync_as(
        &a,
        SessionConfig::new(Role::Client, DATABASE),
        &b,
        SessionConfig::new(Role::Server, DATABASE),
    );
    let stored = b
        .peer_cursor(&a.site_id())
        .unwrap()
        .expect("b holds a cursor into a");
    assert!(stored.cursor.since > 0);
    // A new conversation resumes from the stored cursor; a batch from there back to 0.
    let mut client = Session::initiator(&a, SessionConfig::new(Role::Client, DATABASE)).unwrap();
    let mut server = Session::responder(&b, SessionConfig::new(Role::Server, DATABASE)).unwrap();
    let hello = next_frame(&mut client, &a, 0).unwrap();
    server.handle_frame(&b, &hello, 0).unwrap();
    let rows = encode_rows(&[]);
    let backwards = Message::Changes(Changes {
        from: stored.cursor.clone(),
        to: Cursor::since(0),
        done: true,
        count: 0,
        checksum: blake3::hash(&rows).as_bytes().to_vec(),
        rows,
    });
    server
        .handle_frame(&b, &encode_frame(&backwards), 0)
        .unwrap();
    assert_eq!(closed_code(&mut server), Some(ErrorCode::OutOfRange));
    let after = b.peer_cursor(&a.site_id()).unwrap().expect("still stored");
    assert_eq!(
        after.cursor, stored.cursor,
        "the stored cursor did not move"
    );
}
