//! Two sessions over a perfect in-memory pipe: every frame arrives, at once and in order.

use weft_core::sync::{ErrorCode, Session, SessionConfig, SessionEvent};
use weft_core::Replica;

/// Rounds a conversation over a perfect pipe may take before it counts as stuck.
pub const ROUNDS_MAX: u64 = 10_000;

/// Which end of a conversation: the side that dialled or the side that answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The initiator (a client, or a server dialling a peer).
    Client,
    /// The responder.
    Server,
}

impl Side {
    /// Both sides, the dialling one first.
    pub const BOTH: [Side; 2] = [Side::Client, Side::Server];

    /// The side's name in traces.
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// A client session and a server session of one conversation, and the events a perfect pipe
/// collected from them.
pub struct Pair {
    /// The dialling side.
    pub client: Session,
    /// The answering side.
    pub server: Session,
    /// Events taken from both sides by [`Pair::pump`], in order, with the side they came from.
    pub events: Vec<(Side, SessionEvent)>,
}

impl Pair {
    /// Opens a conversation between `client` (dialling) and `server` (answering).
    pub fn open(
        client: &Replica,
        client_config: SessionConfig,
        server: &Replica,
        server_config: SessionConfig,
    ) -> Pair {
        Pair {
            client: Session::initiator(client, client_config).expect("a dialling session"),
            server: Session::responder(server, server_config).expect("an answering session"),
            events: Vec::new(),
        }
    }

    /// One side's session.
    pub fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Moves frames both ways once (the client's first); returns whether any moved.
    pub fn pump(&mut self, client: &Replica, server: &Replica, now: u64) -> bool {
        self.pump_at_most(client, server, now, usize::MAX)
    }

    /// [`Pair::pump`], taking at most `client_frames` frames from the client. Panics if either
    /// side closes.
    pub fn pump_at_most(
        &mut self,
        client: &Replica,
        server: &Replica,
        now: u64,
        client_frames: usize,
    ) -> bool {
        let mut moved = false;
        for _ in 0..client_frames {
            let Some(frame) = next_frame(&mut self.client, client, now) else {
                break;
            };
            self.server
                .handle_frame(server, &frame, now)
                .expect("no local failure");
            moved = true;
        }
        while let Some(frame) = next_frame(&mut self.server, server, now) {
            self.client
                .handle_frame(client, &frame, now)
                .expect("no local failure");
            moved = true;
        }
        for side in Side::BOTH {
            while let Some(event) = self.session(side).poll_event() {
                assert!(!matches!(event, SessionEvent::Closed { .. }), "{event:?}");
                self.events.push((side, event));
            }
        }
        moved
    }

    /// Whether both sides are in sync and neither is fetching blobs.
    pub fn settled(&self) -> bool {
        [&self.client, &self.server]
            .iter()
            .all(|s| s.status().in_sync && !s.status().blobs.fetching)
    }
}

/// Runs a conversation until nothing moves and both sides are settled; returns it. Panics if
/// that takes more than [`ROUNDS_MAX`] rounds, or if a side closes.
pub fn sync_as(
    client: &Replica,
    client_config: SessionConfig,
    server: &Replica,
    server_config: SessionConfig,
) -> Pair {
    let mut pair = Pair::open(client, client_config, server, server_config);
    for now in 0..ROUNDS_MAX {
        let moved = pair.pump(client, server, now);
        if !moved && pair.settled() {
            return pair;
        }
    }
    panic!(
        "not settled in {ROUNDS_MAX} rounds: {:?} {:?}",
        pair.client.status(),
        pair.server.status()
    );
}

/// The next frame `session` wants to send at `now`, if any. Every harness and test polls
/// frames through this one function.
pub fn next_frame(session: &mut Session, replica: &Replica, now: u64) -> Option<Vec<u8>> {
    session.handle_tick(replica, now).expect("no local failure");
    session.poll_frame()
}

/// The code a session closed with, if it closed.
pub fn closed_code(session: &mut Session) -> Option<ErrorCode> {
    std::iter::from_fn(|| session.poll_event()).find_map(|event| match event {
        SessionEvent::Closed { code, .. } => Some(code),
        _ => None,
    })
}
