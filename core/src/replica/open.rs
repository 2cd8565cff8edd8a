//! Opening a replica: the file is set up once (bookkeeping tables, site id, incarnation, the
//! built-in tables), upgraded once from an older file format, and its triggers are made again
//! when an older build made them, without ever waiting for another writer.

use super::kv::KV_TABLE;
use super::{Options, Replica};
use crate::error::{Error, Result};
use crate::rules::site::{IdSource, SiteId};
use crate::storage::bookkeeping;
use crate::storage::crr;
use crate::storage::file_format;
use crate::storage::replica_connection::{finish, open_connection, wait_for_lock};
use crate::storage::transaction_state::ConnectionContext;
use rusqlite::{Connection, OptionalExtension};
use std::path::Path;

impl Replica {
    /// Opens (creating if missing) the replica at `path`, with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Replica> {
        Replica::open_with(path, Options::default())
    }

    /// Opens (creating if missing) the replica at `path`.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Replica> {
        let path = path.as_ref().to_path_buf();
        if path.as_os_str().is_empty() {
            // SQLite would open a private temporary database: never what a caller meant.
            return Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "an empty path names no database file",
            )));
        }
        let context = ConnectionContext::new(options.wall_clock.clone());
        let (conn, listeners, origin) = open_connection(&path, &context)?;
        // An initialised replica of the current file format opens without the write lock, so
        // opening never waits for another writer (a long import, a merge) and never writes.
        // One of an older format is upgraded once, under the write lock.
        let name = path.display().to_string();
        let site_id = match initialised_site_id(&conn)? {
            Some(site_id) => {
                let found = file_format::stored(&conn)?;
                file_format::check_supported(found)?;
                if found < file_format::FORMAT_VERSION {
                    conn.execute_batch("BEGIN IMMEDIATE")?;
                    finish(&conn, file_format::upgrade(&conn, &name))?;
                }
                site_id
            }
            None => {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                let setup = (|| -> Result<SiteId> {
                    conn.execute_batch(bookkeeping::SCHEMA_SQL)?;
                    conn.execute_batch(&bookkeeping::relay_table_sql("weft_relay"))?;
                    conn.execute_batch(bookkeeping::RELAY_KEY_INDEX_SQL)?;
                    file_format::upgrade(&conn, &name)?;
                    let site_id = ensure_site_id(&conn, &*options.ids)?;
                    bookkeeping::ensure_incarnation(&conn, &*options.ids)?;
                    // Every trigger this build makes is of its version.
                    crr::mark_triggers_current(&conn)?;
                    conn.execute_batch(&format!(
                        "CREATE TABLE IF NOT EXISTS {KV_TABLE}(key TEXT PRIMARY KEY NOT NULL, value)"
                    ))?;
                    conn.execute_batch(&crate::blobs::listing_table_sql())?;
                    Ok(site_id)
                })();
                finish(&conn, setup)?
            }
        };
        let mut replica = Replica {
            conn,
            context,
            listeners,
            origin,
            site_id,
            path,
            options,
            writes: Box::default(),
        };
        for table in BUILT_IN_TABLES {
            let registered: bool = replica.conn.query_row(
                "SELECT count(*) > 0 FROM weft_tables WHERE name = ?1",
                [table],
                |r| r.get(0),
            )?;
            if !registered {
                replica.enable_crr(table)?;
            }
        }
        if crr::triggers_outdated(&replica.conn)?
            || !crr::tables_missing_triggers(&replica.conn)?.is_empty()
        {
            replica.refresh_triggers(&name);
        }
        Ok(replica)
    }

    /// Makes the triggers of an older build again, once per file, and those a rebuilt table
    /// lost, if the write lock is free now: opening never waits for another writer, and a file
    /// that cannot be written (read only, or locked) keeps its triggers, which work as before,
    /// until a later open.
    fn refresh_triggers(&mut self, name: &str) {
        let attempt = (|| -> Result<()> {
            let begun = {
                let conn = &mut *self.conn;
                conn.busy_handler(None::<fn(i32) -> bool>)?;
                let begun = conn.execute_batch("BEGIN IMMEDIATE");
                conn.busy_handler(Some(wait_for_lock))?;
                begun
            };
            begun?;
            let conn: &Connection = &self.conn;
            let repaired = (|| {
                let lost = crr::tables_missing_triggers(conn)?;
                for table in &lost {
                    self.forget_rows_without_values(conn, table)?;
                }
                crr::refresh_triggers(conn, &lost)
            })();
            finish(conn, repaired)
        })();
        match attempt {
            Ok(()) => tracing::info!(
                replica = name,
                "triggers brought up to this build's version"
            ),
            Err(error) => tracing::warn!(
                replica = name,
                %error,
                "triggers of an older build kept; they are made again at a later open"
            ),
        }
    }
}

/// The replicated tables every replica has: the key-value table and the buckets' listing.
pub(super) const BUILT_IN_TABLES: [&str; 2] = [KV_TABLE, crate::blobs::BUCKET_TABLE];

/// The site id of a replica whose setup is complete (bookkeeping tables, site id, the KV table
/// replicated), or `None` if setup must run.
fn initialised_site_id(conn: &Connection) -> Result<Option<SiteId>> {
    let present: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({})",
            bookkeeping::SCHEMA_TABLES
                .map(|t| format!("'{t}'"))
                .join(", ")
        ),
        [],
        |r| r.get(0),
    )?;
    if present as usize != bookkeeping::SCHEMA_TABLES.len()
        || bookkeeping::incarnation(conn)?.is_none()
    {
        return Ok(None);
    }
    for table in BUILT_IN_TABLES {
        let registered: bool = conn.query_row(
            "SELECT count(*) > 0 FROM weft_tables WHERE name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if !registered {
            return Ok(None);
        }
    }
    local_site_id(conn)
}

/// The local site id (ordinal 0), if set.
fn local_site_id(conn: &Connection) -> Result<Option<SiteId>> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT site_id FROM weft_sites WHERE ordinal = 0",
            [],
            |r| r.get(0),
        )
        .optional()?;
    bytes
        .map(|b| {
            SiteId::from_slice(&b)
                .ok_or_else(|| Error::Corrupt("the local site id is not 16 bytes".into()))
        })
        .transpose()
}

fn ensure_site_id(conn: &Connection, ids: &dyn IdSource) -> Result<SiteId> {
    if let Some(site) = local_site_id(conn)? {
        return Ok(site);
    }
    let site = SiteId(ids.fresh_id());
    conn.execute(
        "INSERT INTO weft_sites(ordinal, site_id) VALUES (0, ?1)",
        [site.0.as_slice()],
    )?;
    Ok(site)
}
