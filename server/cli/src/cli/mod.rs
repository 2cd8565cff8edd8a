//! The command line: what each subcommand takes, and the dispatch to its module.

mod blob;
mod crr;
mod digest;
mod export;
mod gc;
mod import;
mod info;
mod open;
mod peers;
mod progress;
mod render;
mod serve;
mod sql;
mod sync;
mod token;
mod watch;
mod words;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;
use weft_server::token::DEFAULT_SUBJECT;

/// Weft: local-first sync over SQLite.
///
/// A replica is a SQLite file. Make tables replicated with `weft crr`, write to them with
/// plain SQL, and move the changes to another replica with `weft export` and `weft import`.
/// Errors print one line starting with `error:` on stderr, and the exit status is non-zero.
#[derive(Debug, Parser)]
#[command(
    name = "weft",
    version,
    after_help = "Example:
  weft sql laptop.db 'CREATE TABLE todo(id INTEGER PRIMARY KEY, title TEXT)'
  weft crr laptop.db todo
  weft sql laptop.db \"INSERT INTO todo(title) VALUES ('milk')\"
  weft export laptop.db --out milk.bundle
  weft import phone.db milk.bundle
  weft digest laptop.db; weft digest phone.db    # equal digests: equal state"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run SQL on a replica (created if missing) and print the rows of the last statement.
    ///
    /// The statements run one after another, each committing on its own unless the SQL says
    /// BEGIN ... COMMIT; when one fails, those before it stay done. Writes to replicated
    /// tables are recorded for sync. A `;` inside a string, a comment or a trigger body does
    /// not end a statement.
    ///
    /// Rows print one per line with columns separated by tabs: NULL prints as `NULL`, blobs
    /// as `x'0aff'`, reals always with a `.` or an exponent (`1.0`, `1e20`), text as stored
    /// (use --json for text holding tabs or newlines). A last statement that returns no rows
    /// prints nothing.
    #[command(
        after_help = "Example:\n  weft sql app.db \"INSERT INTO todo(title) VALUES ('a;b'); SELECT * FROM todo\""
    )]
    Sql {
        /// The replica's database file; its directory must exist.
        db: PathBuf,
        /// One or more SQL statements separated by `;` (quote them for the shell).
        #[arg(allow_hyphen_values = true)]
        sql: String,
        /// Print the rows as one JSON array of arrays: integers and reals as numbers, text as
        /// strings, NULL (and infinite reals) as null, blobs as base64 strings. A query with
        /// no rows prints `[]`; a statement that is not a query prints nothing.
        #[arg(long)]
        json: bool,
    },
    /// Make a table replicated: its writes are recorded and merge with other replicas'.
    ///
    /// The table needs a PRIMARY KEY. Run it again after `ALTER TABLE ... ADD COLUMN` to
    /// replicate the new column; otherwise running it again changes nothing.
    Crr {
        /// The replica's database file (must exist).
        db: PathBuf,
        /// The table to replicate.
        table: String,
    },
    /// Print the replica's state digest: 64 hex characters; equal digests, equal state.
    Digest {
        /// The replica's database file (must exist).
        db: PathBuf,
    },
    /// Write the replica's changes as a bundle file, to carry them to another replica.
    ///
    /// The bundle goes to standard output unless --out names a file; standard output must
    /// then not be a terminal. A summary line goes to stderr.
    Export {
        /// The replica's database file (must exist).
        db: PathBuf,
        /// Only the changes after this db_version (the "through db_version" of an earlier
        /// export, to send only what is new since).
        #[arg(long, value_name = "DB_VERSION", default_value_t = 0)]
        since: u64,
        /// Write the bundle to this file (replaced if it exists) instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Apply a bundle written by `weft export`: checked whole first, then applied whole.
    ///
    /// A truncated or corrupted bundle is refused and nothing of it is applied. Importing the
    /// same bundle again changes nothing. A summary line goes to stderr.
    Import {
        /// The replica's database file; created if missing (its directory must exist).
        db: PathBuf,
        /// The bundle file.
        file: PathBuf,
    },
    /// Show the replica's site id, incarnation, db_version, replicated tables, relayed
    /// registers and buckets.
    Info {
        /// The replica's database file (must exist).
        db: PathBuf,
        /// Print one JSON object: site_id, incarnation, db_version, tables (name to row
        /// count), relayed_registers and buckets (name to entries, bytes, bytes_here, lazy).
        #[arg(long)]
        json: bool,
    },
    /// Give a replica restored from a backup (or copied back) a new incarnation.
    ///
    /// Run it on the restored file before it syncs again (for a server: on each file under
    /// DATA/dbs/ while the server is stopped). Other replicas hold cursors into the replica's
    /// old life; under a new incarnation they stop trusting them and compare rows with it
    /// instead, so the db_versions the copy reuses for new commits are never skipped.
    RenewIncarnation {
        /// The replica's database file (must exist).
        db: PathBuf,
    },
    /// Sync a replica with a database on a Weft server.
    ///
    /// Pushes the local changes the server lacks and pulls the ones the replica lacks,
    /// resuming where the last sync stopped. With --once it exits 0 when both sides hold the
    /// same state (their digests compared), and non-zero if the server refused local changes
    /// (they stay in the replica) or the states still differ. Without --once it stays
    /// connected, pushing each new local commit and pulling the server's, and reconnects with
    /// back-off until interrupted.
    ///
    /// A wss:// URL syncs over TLS, trusting the bundled Mozilla roots and the certificates in
    /// --ca-file; a refused certificate is an error, not retried.
    #[command(
        after_help = "Examples:\n  weft sync notes.db ws://127.0.0.1:7400/v1/sync/notes --token \"$TOKEN\" --once\n  weft sync notes.db wss://sync.example.org/v1/sync/notes --token \"$TOKEN\" --ca-file org-ca.pem"
    )]
    Sync {
        /// The replica's database file; created if missing (its directory must exist).
        db: PathBuf,
        /// The server database: ws://HOST:PORT/v1/sync/DATABASE, or wss:// for TLS.
        url: String,
        /// The bearer token the server's `weft token` printed (or WEFT_TOKEN).
        #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// For wss://: a PEM file of CA certificates to trust besides the bundled roots, such
        /// as an organisation's own CA (or WEFT_CA_FILE).
        #[arg(long, value_name = "PATH", env = "WEFT_CA_FILE", value_parser = ca_file_parser())]
        ca_file: Option<PathBuf>,
        /// Sync until both sides are caught up and equal, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Run the sync server: many databases, one SQLite file each, synced over WebSocket.
    ///
    /// Clients sync at ws://ADDR/v1/sync/DATABASE; each database is created on its first
    /// sync, as DATA/dbs/DATABASE.db. A name is 1 to 64 ASCII letters, digits, '_' or '-',
    /// starting with a letter or digit. GET /healthz answers "ok". Every client needs a token
    /// (see `weft token`) signed with the server's secret: --auth-secret, --auth-secret-file,
    /// or else DATA/auth-secret, generated on first start. Runs until SIGINT or SIGTERM.
    /// Prints `listening on HOST:PORT` on stdout; logs go to stderr (RUST_LOG filters them).
    #[command(
        after_help = "Example:\n  weft serve --data ./weft-data --listen 127.0.0.1:7400\n  weft token --secret-file ./weft-data/auth-secret --db notes"
    )]
    Serve(serve::Flags),
    /// Remove the blob bytes of a server's databases that no bucket entry references.
    ///
    /// Bytes become garbage when the last entry naming them is removed or replaced; a run
    /// first marks them, and removes them once they have stayed unreferenced for --grace
    /// (so a run with --grace 0s removes them at once). Bytes that an entry names are never
    /// removed, even if the entry arrives while the run goes on. Safe while the server
    /// runs. Prints one line per database and a total.
    #[command(
        after_help = "Example:\n  weft gc --data ./weft-data --grace 24h\n  weft gc --data ./weft-data --blobs s3://my-bucket/weft --db notes"
    )]
    Gc(gc::Flags),
    /// Follow a database's change events on a server and print one per line as JSON.
    ///
    /// Reads GET /v1/changes/DATABASE (Server-Sent Events) with a token that opens the
    /// database, and keeps following until interrupted; when the connection drops it
    /// reconnects with back-off and resumes after the last event printed. A refusal (bad
    /// token, no such database) ends it with an error.
    #[command(
        after_help = "Example:\n  weft watch http://127.0.0.1:7400/v1/changes/notes --token \"$TOKEN\" --since 0"
    )]
    Watch {
        /// The feed: http://HOST:PORT/v1/changes/DATABASE.
        url: String,
        /// Start after this db_version (0: from the beginning).
        #[arg(long, value_name = "DB_VERSION", default_value_t = 0)]
        since: u64,
        /// The bearer token (or WEFT_TOKEN).
        #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Exit after printing this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Show a server's peer links: connected or not, how far behind, last error.
    ///
    /// Reads GET /v1/peers, which needs a peer token (`weft token --peer`) unless the server
    /// runs with --no-auth. One row per peer and database.
    #[command(
        after_help = "Example:\n  weft peers --server http://127.0.0.1:7400 --token \"$(weft token --secret-file ./weft-data/auth-secret --peer)\""
    )]
    Peers {
        /// The server: http://HOST:PORT (or ws://HOST:PORT).
        #[arg(long, value_name = "URL")]
        server: String,
        /// A peer token for that server (or WEFT_TOKEN).
        #[arg(long, env = "WEFT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print the server's JSON answer as it is.
        #[arg(long)]
        json: bool,
    },
    /// Files and images in a replica's buckets: put, get, ls, rm, mv, lazy (works offline).
    ///
    /// The bytes live in a store beside the database file (DB.blobs/) and travel with
    /// `weft sync`; the listing syncs like rows.
    #[command(
        subcommand,
        after_help = "Example:\n  weft blob put app.db photos cat.jpg ./cat.jpg\n  weft blob ls app.db photos\n  weft blob get app.db photos cat.jpg ./copy.jpg"
    )]
    Blob(blob::BlobCommand),
    /// Print a bearer token for clients of a server started with the same secret.
    ///
    /// The token (a JWT, HS256) names the principal (--sub), the databases it may sync
    /// (--db, repeatable; '*' for all), whether it may write, and when it expires.
    #[command(
        after_help = "Example:\n  weft token --secret-file ./weft-data/auth-secret --db notes --db todo --ttl 7d"
    )]
    Token {
        /// The server's secret.
        #[arg(
            long,
            value_name = "SECRET",
            required_unless_present = "secret_file",
            conflicts_with = "secret_file"
        )]
        secret: Option<String>,
        /// A file holding the server's secret (as `weft serve` generates in DATA/auth-secret).
        #[arg(long, value_name = "FILE")]
        secret_file: Option<PathBuf>,
        /// A database the token opens, or '*' for every database (repeatable).
        #[arg(long = "db", value_name = "NAME", required_unless_present = "peer")]
        dbs: Vec<String>,
        /// The token may read, not write: the server refuses its changes.
        #[arg(long)]
        read_only: bool,
        /// A peer token, as servers mint for each other: every database, read and write,
        /// and GET /v1/databases and /v1/peers (for tests and operators).
        #[arg(long, conflicts_with_all = ["dbs", "read_only"])]
        peer: bool,
        /// How long the token is valid, like 30m, 24h or 7d.
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The principal's name, as the server's logs and authorizer see it.
        #[arg(long, value_name = "NAME", default_value = DEFAULT_SUBJECT)]
        sub: String,
    },
}

/// Runs one parsed command line.
pub fn run(mut cli: Cli) -> anyhow::Result<()> {
    cli.command.forget_empty_token();
    let token_given = cli.command.token_given();
    let result = dispatch(cli);
    match result {
        Err(error) if token_given == Some(false) && server_wants_a_token(&error) => Err(error
            .context(
                "no token given: pass --token TOKEN or set WEFT_TOKEN (`weft token` mints one)",
            )),
        other => other,
    }
}

/// `--ca-file`'s parser: any path, the empty one included (see [`non_empty`]).
fn ca_file_parser() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// An empty `--ca-file` (`WEFT_CA_FILE=` set to nothing) is no CA file, as an empty token
/// is no token.
fn non_empty(ca_file: Option<PathBuf>) -> Option<PathBuf> {
    ca_file.filter(|path| !path.as_os_str().is_empty())
}

impl Command {
    /// An empty token (`WEFT_TOKEN=` left by a `$(weft token ...)` that failed) is no token.
    fn forget_empty_token(&mut self) {
        let token = match self {
            Command::Sync { token, .. }
            | Command::Watch { token, .. }
            | Command::Peers { token, .. } => token,
            Command::Blob(command) => match command.token_mut() {
                Some(token) => token,
                None => return,
            },
            _ => return,
        };
        if token.as_deref().is_some_and(str::is_empty) {
            *token = None;
        }
    }

    /// For a command that talks to a server: whether it was given a token. `None` for the
    /// others.
    fn token_given(&self) -> Option<bool> {
        match self {
            Command::Sync { token, .. }
            | Command::Watch { token, .. }
            | Command::Peers { token, .. } => Some(token.is_some()),
            Command::Blob(command) => command.token_given(),
            _ => None,
        }
    }
}

/// Whether `error` is a server's refusal for want of a token (the server's words are
/// `missing token: send 'Authorization: Bearer TOKEN' ...`, meant for any HTTP client).
fn server_wants_a_token(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.to_string().contains("missing token"))
}

/// Runs the command.
fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sql { db, sql, json } => {
            let format = if json {
                sql::Format::Json
            } else {
                sql::Format::Text
            };
            sql::run(&db, &sql, format)
        }
        Command::Crr { db, table } => crr::run(&db, &table),
        Command::Digest { db } => digest::run(&db),
        Command::Export { db, since, out } => export::run(&db, since, out.as_deref()),
        Command::Import { db, file } => import::run(&db, &file),
        Command::Info { db, json } => info::run(&db, json),
        Command::RenewIncarnation { db } => info::renew_incarnation(&db),
        Command::Sync {
            db,
            url,
            token,
            ca_file,
            once,
        } => sync::run(&db, &url, token, non_empty(ca_file), once),
        Command::Serve(flags) => serve::run(flags),
        Command::Gc(flags) => gc::run(flags),
        Command::Watch {
            url,
            since,
            token,
            count,
        } => watch::run(watch::WatchRequest {
            url,
            since,
            token,
            count,
        }),
        Command::Peers {
            server,
            token,
            json,
        } => peers::run(&server, token, json),
        Command::Blob(command) => blob::run(command),
        Command::Token {
            secret,
            secret_file,
            dbs,
            read_only,
            peer,
            ttl,
            sub,
        } => token::run(token::Request {
            secret: match (secret, secret_file) {
                (Some(text), _) => token::SecretSource::Given(text),
                (None, Some(file)) => token::SecretSource::File(file),
                (None, None) => anyhow::bail!("give --secret or --secret-file"),
            },
            dbs,
            read_only,
            peer,
            ttl,
            sub,
        }),
    }
}
