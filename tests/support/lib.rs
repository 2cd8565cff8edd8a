//! The harness shared by Weft's cross-crate tests (the test files one folder up).
//!
//! - [`seeded`]: a virtual wall clock and seeded site ids and incarnations, so a run replays.
//! - [`node`]: a replica with its blob store, opened in a test's temporary folder.
//! - [`pair`]: two sessions over a perfect in-memory pipe, driven until they settle
//!   (`sessions.rs`, `blob_sessions.rs`).
//! - [`world`]: many replicas over a seeded faulty network, with a trace of what happened
//!   (`simulation.rs`).

pub mod node;
pub mod pair;
pub mod seeded;
pub mod world;
