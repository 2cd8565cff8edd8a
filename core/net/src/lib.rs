//! # weft-net: Weft's sync protocol on a socket
//!
//! `weft-core`'s [`Session`](weft_core::sync::Session) is sans-I/O: frames in, frames out,
//! time passed in. This crate is the thin async layer around it that the server and the
//! client share: [`driver`] runs one session over one connection (with the SQLite work on
//! tokio's blocking pool), and [`dial`] opens a WebSocket to a server's sync endpoint
//! (`ws://`, or `wss://` through rustls).
//! Neither knows about apps (`weft-client`) or hosting many databases (`weft-server`).

#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod dial;
pub mod driver;
pub mod limits;
mod tls;

pub use dial::{connect, DialError, FrameSocket, SyncTarget};
pub use driver::{drive, drive_pooled, DriveError, Driven, Outcome, ReplicaLender, Wakeups};
