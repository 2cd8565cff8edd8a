//! The cursor into another replica's changes, as merges store it: it moves forward only,
//! unless a session says it started over.

use weft_core::{Cursor, CursorMove, Incarnation, PeerCursor, Replica, SiteId};

fn received(since: u64, incarnation: u8) -> PeerCursor {
    PeerCursor {
        site: SiteId([7; 16]),
        incarnation: Incarnation([incarnation; 16]),
        cursor: Cursor::since(since),
    }
}

fn stored_since(replica: &Replica) -> u64 {
    replica
        .peer_cursor(&SiteId([7; 16]))
        .unwrap()
        .expect("a cursor is stored")
        .cursor
        .since
}

#[test]
fn a_forward_move_never_takes_the_stored_cursor_back_and_a_start_over_may() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path().join("r.db")).unwrap();
    replica
        .apply_changes_from(&[], &received(10, 1), CursorMove::StartOver)
        .unwrap();
    assert_eq!(stored_since(&replica), 10);
    // A second session that resumed earlier and applied less: everything up to 10 is held.
    replica
        .apply_changes_from(&[], &received(5, 1), CursorMove::Forward)
        .unwrap();
    assert_eq!(
        stored_since(&replica),
        10,
        "a forward move does not go back"
    );
    replica
        .apply_changes_from(&[], &received(12, 1), CursorMove::Forward)
        .unwrap();
    assert_eq!(stored_since(&replica), 12);
    // The sender went back in time and the session took everything again.
    replica
        .apply_changes_from(&[], &received(5, 1), CursorMove::StartOver)
        .unwrap();
    assert_eq!(stored_since(&replica), 5);
    // A new life of the sender: its cursors start again, whatever the old life reached.
    replica
        .apply_changes_from(&[], &received(20, 1), CursorMove::Forward)
        .unwrap();
    replica
        .apply_changes_from(&[], &received(3, 2), CursorMove::Forward)
        .unwrap();
    assert_eq!(stored_since(&replica), 3);
}
