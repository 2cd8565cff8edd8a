//! The command line: what each subcommand takes, and the dispatch to its module.

mod bundle;
mod info;
mod open;
mod render;
mod sql;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Weft: local-first sync over SQLite.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run SQL on a replica (created if missing) and print the rows of the last statement.
    ///
    /// Rows print one per line, columns separated by tabs; NULL prints as `NULL` and blobs as
    /// `x'hex'`. Writes to replicated tables are recorded for sync.
    Sql {
        /// The replica's database file.
        db: PathBuf,
        /// One or more SQL statements, separated by `;`.
        sql: String,
        /// Print the rows as a JSON array of arrays (blobs as base64 strings).
        #[arg(long)]
        json: bool,
    },
    /// Make a table replicated: every write to it is recorded and merges with other replicas.
    ///
    /// Run it again after `ALTER TABLE ... ADD COLUMN` to replicate the new column.
    Crr {
        /// The replica's database file.
        db: PathBuf,
        /// The table to replicate.
        table: String,
    },
    /// Print the replica's state digest (64 hex characters): equal digests, equal state.
    Digest {
        /// The replica's database file.
        db: PathBuf,
    },
    /// Write the replica's changes as a bundle, to move them to another replica by file.
    Export {
        /// The replica's database file.
        db: PathBuf,
        /// Only changes after this db_version.
        #[arg(long, default_value_t = 0)]
        since: u64,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Apply a bundle written by `weft export`: checked whole first, then applied whole.
    Import {
        /// The replica's database file.
        db: PathBuf,
        /// The bundle file.
        file: PathBuf,
    },
    /// Show the replica's site id, db_version and replicated tables.
    Info {
        /// The replica's database file.
        db: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sql { db, sql, json } => sql::run(&db, &sql, json),
        Command::Crr { db, table } => {
            let replica = open::replica(&db)?;
            replica.enable_crr(&table)?;
            eprintln!("{table} is replicated");
            Ok(())
        }
        Command::Digest { db } => {
            println!("{}", open::replica(&db)?.digest()?.to_hex());
            Ok(())
        }
        Command::Export { db, since, out } => bundle::export(&db, since, out.as_deref()),
        Command::Import { db, file } => bundle::import(&db, &file),
        Command::Info { db, json } => info::run(&db, json),
    }
}
