//! # weft-server: the Weft sync server
//!
//! Hosts many named databases, one SQLite file each under a data directory, and syncs each
//! with the clients that connect to `ws://HOST:PORT/v1/sync/{database}`. The server holds no
//! schema: every database is a relay-capable [`weft_core::Replica`]. A bearer token (a JWT
//! signed with the server's secret, see [`token`]) names who connects, the databases it may
//! open and whether it may write; a [`ChangeAuthorizer`] decides per change.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use weft_server::{AuthMode, DefaultChangeAuthorizer, Secret, ServerConfig};
//! let (secret, _generated) = Secret::load_or_generate("weft-data/auth-secret".as_ref())?;
//! let config = ServerConfig::new("weft-data", AuthMode::Token(secret));
//! weft_server::serve(config, Arc::new(DefaultChangeAuthorizer)).await?; // until SIGINT / SIGTERM
//! # Ok(()) }
//! ```
//!
//! With [`ServerConfig::peers`] set, the server also dials other servers of the same
//! organisation and syncs every database with them in the peer role (see [`peers`]).
//!
//! Every committed transaction of every database is a change event ([`events`]): a feed at
//! `GET /v1/changes/{database}` (Server-Sent Events), webhooks ([`ServerConfig::webhooks`])
//! and a NATS subject ([`ServerConfig::nats`]).
//!
//! Blob bytes (the buckets' files) are stored per database in an object store
//! ([`ServerConfig::blobs`]: a local directory by default, S3 by URL; see [`blobs`]).
//!
//! The `weft serve` command is this, with flags; `docs/server.md` describes running it.

#![deny(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod auth;
pub mod blobs;
pub mod config;
mod connection;
mod error;
pub mod events;
pub mod http;
pub mod limits;
pub mod names;
pub mod peers;
mod pool;
mod registry;
pub mod secret;
mod server;
mod state;
pub mod token;

pub use auth::{ChangeAuthorizer, DefaultChangeAuthorizer, Principal};
pub use config::{AuthMode, ConfigFile, ServerConfig};
pub use error::ServerError;
pub use names::DatabaseName;
pub use peers::PeerUrl;
pub use secret::Secret;
pub use server::{serve, shutdown_signal, Server};
pub use token::{Claims, Grant, TokenRole};
