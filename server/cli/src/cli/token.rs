//! `weft token`: mint a bearer token for a server.

use anyhow::{bail, Context};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use weft_server::token::{self, ALL_DATABASES};
use weft_server::{DatabaseName, Grant, Secret, TokenRole};

/// Where the signing secret comes from.
pub(super) enum SecretSource {
    /// `--secret`.
    Given(String),
    /// `--secret-file`.
    File(PathBuf),
}

/// What to put in the token.
pub(super) struct Request {
    /// The secret.
    pub(super) secret: SecretSource,
    /// `--db`, each a name or `*`.
    pub(super) dbs: Vec<String>,
    /// `--read-only`.
    pub(super) read_only: bool,
    /// `--peer`.
    pub(super) peer: bool,
    /// `--ttl`.
    pub(super) ttl: Duration,
    /// `--sub`.
    pub(super) sub: String,
}

/// Runs `weft token`: prints one token on stdout.
pub(super) fn run(request: Request) -> anyhow::Result<()> {
    let secret = match request.secret {
        SecretSource::Given(text) => Secret::new(&text).context("--secret")?,
        SecretSource::File(path) => Secret::read_file(&path)?,
    };
    for db in &request.dbs {
        if db != ALL_DATABASES {
            DatabaseName::new(db).with_context(|| format!("--db {db:?}"))?;
        }
    }
    if request.sub.trim().is_empty() {
        bail!("--sub must not be empty");
    }
    let grant = if request.peer {
        Grant::peer(request.sub, request.ttl)
    } else {
        Grant {
            sub: request.sub,
            dbs: request.dbs,
            write: !request.read_only,
            role: TokenRole::Client,
            ttl: request.ttl,
        }
    };
    let token = token::mint(&secret, &grant)?;
    writeln!(std::io::stdout(), "{token}")?;
    Ok(())
}
