//! `todo`: a todo list in a local Weft replica that works offline and syncs through a
//! `weft serve` when asked. The whole of Weft from Rust in one page: open a replica, make a
//! table replicated, write through `Replica::write`, read, sync once.
//!
//! ```text
//! todo add "buy milk"            # works offline
//! todo list
//! todo done 1f3c
//! todo sync --url ws://127.0.0.1:7400/v1/sync/todos --token "$TOKEN"
//! ```

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use weft_client::{sync_once, SyncTarget};
use weft_core::Replica;

/// A todo list that keeps working offline and syncs through a weft server.
#[derive(Parser)]
struct Args {
    /// The local database file (created if missing).
    #[arg(long, env = "TODO_DB", default_value = "todo.db")]
    db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Adds an item.
    Add {
        /// What to do.
        title: String,
    },
    /// Lists the items (open first).
    List,
    /// Marks the item whose id starts with ID done.
    Done {
        /// The item's id, or the start of it.
        id: String,
    },
    /// Syncs with the server once: sends what it lacks, receives what this device lacks.
    Sync {
        /// The server's database, `ws://HOST:PORT/v1/sync/NAME` (or wss://).
        #[arg(long, env = "WEFT_URL")]
        url: String,
        /// A token from `weft token`.
        #[arg(long, env = "WEFT_TOKEN")]
        token: Option<String>,
    },
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS todo(
    id TEXT PRIMARY KEY NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL DEFAULT 0
)";

/// Opens the list, making its table (replicated) on first use.
fn open(path: &Path) -> anyhow::Result<Replica> {
    let replica = Replica::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if !replica.replicated_tables()?.iter().any(|t| t == "todo") {
        replica.write(|conn| Ok(conn.execute_batch(SCHEMA)?))?;
        replica.enable_crr("todo")?;
    }
    Ok(replica)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let replica = open(&args.db)?;
    match args.command {
        Command::Add { title } => {
            // A random id: two devices adding offline never collide.
            let id =
                replica.site_id().to_hex()[..8].to_owned() + &format!("{:x}", replica.now_ms());
            replica.write(|conn| {
                conn.execute(
                    "INSERT INTO todo(id, title, created_ms) VALUES (?1, ?2, ?3)",
                    (&id, &title, replica.now_ms() as i64),
                )?;
                Ok(())
            })?;
            println!("added {id}: {title}");
        }
        Command::List => {
            let mut statement = replica
                .connection()
                .prepare("SELECT id, title, done FROM todo ORDER BY done, created_ms, id")?;
            let items = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, bool>(2)?,
                ))
            })?;
            for item in items {
                let (id, title, done) = item?;
                println!("[{}] {id} {title}", if done { "x" } else { " " });
            }
        }
        Command::Done { id } => {
            let changed = replica.write(|conn| {
                Ok(conn.execute(
                    "UPDATE todo SET done = 1 WHERE id LIKE ?1 || '%' AND done = 0",
                    [&id],
                )?)
            })?;
            anyhow::ensure!(changed > 0, "no open item has an id starting with {id:?}");
            println!("done: {changed} item(s)");
        }
        Command::Sync { url, token } => {
            drop(replica);
            let target = SyncTarget::new(url, token);
            let runtime = tokio::runtime::Runtime::new()?;
            let report = runtime.block_on(sync_once(&args.db, &target, |_, _| {}))?;
            println!(
                "synced: {} received, {} sent{}",
                report.received,
                report.sent,
                if report.in_sync { ", in sync" } else { "" }
            );
            for reason in report.reject_reasons {
                println!("refused by the server: {reason}");
            }
        }
    }
    Ok(())
}
