//! Helpers the client's integration tests share: a minimal sync server and a TLS proxy in
//! front of it. Each test file uses some.
// Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

pub mod server;
pub mod tls;
