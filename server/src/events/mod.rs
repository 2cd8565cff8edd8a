//! Change events on the server: every committed transaction of every database, as the JSON
//! events of [`weft_core::events`], for backend services.
//!
//! - [`feed`]: `GET /v1/changes/{database}?since=N`, Server-Sent Events, resumable with
//!   `Last-Event-ID`, live after catching up.
//! - Sinks the server pushes to, each following every database from a durable cursor in the
//!   data directory ([`sinks`]): webhooks ([`webhook`], signed with HMAC-SHA256) and a NATS
//!   subject ([`nats`]).
//!
//! Everything reads the database files by db_version after commits (woken by the registry's
//! commit watch), on its own connection and task: a slow subscriber or a failing sink delays
//! only itself, never a sync connection.

pub mod feed;
pub mod nats;
pub mod sinks;
pub mod webhook;

pub use nats::NatsConfig;
pub use webhook::WebhookConfig;

/// Registers read from a database per step (bounds the memory of one step of a feed or sink).
pub const REGISTERS_PER_READ: usize = 1_000;

/// A short stable id of `text`, for the names of the sinks' cursor files.
pub(crate) fn short_hash(text: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
}
