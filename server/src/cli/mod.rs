//! The command line: what each subcommand takes, and the dispatch to its module.

mod crr;
mod digest;
mod export;
mod import;
mod info;
mod open;
mod progress;
mod render;
mod sql;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    /// Show the replica's site id, db_version, replicated tables and relayed registers.
    Info {
        /// The replica's database file (must exist).
        db: PathBuf,
        /// Print one JSON object: site_id, db_version, tables (name to row count) and
        /// relayed_registers.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
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
    }
}
