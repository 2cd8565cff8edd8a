//! # weft-client: a local replica that syncs with a Weft server
//!
//! Apps keep their data in a local [`weft_core::Replica`] and write to it with plain SQL,
//! offline or not: offline writes are just local commits. This crate moves them:
//! [`sync_once`] syncs until both sides hold the same state, and [`LiveSync`] syncs in the
//! background — connect, resume from the stored cursor, push each new commit, reconnect with
//! exponential back-off and jitter when the connection drops.
//!
//! [`on_change_event`] calls back with every committed transaction (local or merged) as an
//! [`Event`], and [`reactive_query`] re-runs a query when a table it reads changes
//! (`docs/events.md`).
//!
//! ```no_run
//! # async fn example() -> Result<(), weft_client::ClientError> {
//! use weft_client::{sync_once, SyncTarget};
//! let target = SyncTarget::new("ws://127.0.0.1:7400/v1/sync/notes", Some("TOKEN".into()));
//! let report = sync_once("notes.db".as_ref(), &target, |_, _| {}).await?;
//! assert!(report.in_sync);
//! # Ok(()) }
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod background;
mod error;
pub mod limits;
pub mod listen;
mod once;

pub use background::{Credentials, LiveEvent, LiveOptions, LiveSync};
pub use error::ClientError;
pub use listen::{on_change_event, reactive_query, ListenOptions, QueryResult, Subscription};
pub use once::{sync_once, sync_once_with, OnceOptions, SyncReport};
pub use weft_core::events::{self, Event, EventReader, Op, RowChange};
pub use weft_net::{DialError, SyncTarget};

/// The README's Rust example, compiled and run by `cargo test --doc -p weft-client`.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
