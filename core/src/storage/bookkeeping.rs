//! The replica's own bookkeeping tables and the counters kept in them.

use crate::error::{Error, Result};
use crate::limits::MERGED_RUN_MAX;
use crate::rules::change::{CursorMove, PeerCursor};
use crate::rules::digest::Digest;
use crate::rules::site::{IdSource, Incarnation, SiteId};
use crate::storage::schema::{ColumnDef, TableSchema};
use crate::storage::sql_names::quoted_clock;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;

/// The bookkeeping tables but the relay ([`relay_table_sql`]).
pub(crate) const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS weft_meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS weft_sites(ordinal INTEGER PRIMARY KEY, site_id BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS weft_tables(name TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS weft_columns(tbl TEXT NOT NULL, name TEXT NOT NULL, id INTEGER NOT NULL, PRIMARY KEY(tbl, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS weft_peers(
  site BLOB PRIMARY KEY, incarnation BLOB NOT NULL, cursor BLOB NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS weft_merged_from(db_version INTEGER PRIMARY KEY, site BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS weft_blobs_held(
  hash TEXT PRIMARY KEY, size INTEGER NOT NULL, unreferenced_since_ms INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS weft_buckets_lazy(bucket TEXT PRIMARY KEY) WITHOUT ROWID;
";

/// `weft_relay` holds changes for tables or columns this replica's schema lacks, one row per
/// register, until the schema catches up. It is stored in db_version order, the order every
/// sync reads it in; [`RELAY_KEY_INDEX_SQL`] finds a row's registers for a merge.
pub(crate) fn relay_table_sql(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name}(
           tbl TEXT NOT NULL, pk BLOB NOT NULL, col TEXT NOT NULL,
           cl INTEGER NOT NULL, clock INTEGER NOT NULL, site INTEGER NOT NULL, db_version INTEGER NOT NULL, value,
           PRIMARY KEY(db_version, tbl, pk, col)) WITHOUT ROWID;"
    )
}

/// One register per `(table, key, column)` in the relay, and the way to find them.
pub(crate) const RELAY_KEY_INDEX_SQL: &str =
    "CREATE UNIQUE INDEX IF NOT EXISTS weft_relay_key ON weft_relay(tbl, pk, col);";

/// The tables an initialised replica has; a file lacking one is set up again (idempotently).
pub(crate) const SCHEMA_TABLES: [&str; 8] = [
    "weft_meta",
    "weft_sites",
    "weft_tables",
    "weft_relay",
    "weft_peers",
    "weft_merged_from",
    "weft_blobs_held",
    "weft_buckets_lazy",
];

/// The relay's name for the row-existence register.
pub(crate) const RELAY_ROW_SLOT: &str = "";

/// Counters kept in `weft_meta`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    /// No db_version at or below this is ever handed out again.
    pub db_version_floor: u64,
    /// A clock every later clock must exceed.
    pub clock_floor: u64,
    /// Rows above this db_version may hold clocks above `clock_floor`.
    pub clock_floor_db_version: u64,
    /// Rows at or below this db_version are folded into `digest_sum`.
    pub digest_version: u64,
    /// The digest of the state as of `digest_version` (see `Replica::digest`).
    pub digest_sum: Digest,
}

pub(crate) fn get_u64(conn: &Connection, key: &str) -> Result<u64> {
    let value: Option<i64> = conn
        .query_row("SELECT value FROM weft_meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(value.unwrap_or(0).max(0) as u64)
}

pub(crate) fn set_value(conn: &Connection, key: &str, value: impl rusqlite::ToSql) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO weft_meta(key, value) VALUES (?1, ?2)",
        params![key, value],
    )?;
    Ok(())
}

pub(crate) fn read_counters(conn: &Connection) -> Result<Counters> {
    let sum: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM weft_meta WHERE key = 'digest_sum'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let digest_sum = match sum {
        None => Digest::ZERO,
        Some(bytes) => Digest::from_bytes(&bytes)
            .ok_or_else(|| Error::Corrupt("digest_sum is not 32 bytes".into()))?,
    };
    Ok(Counters {
        db_version_floor: get_u64(conn, "db_version_floor")?,
        clock_floor: get_u64(conn, "clock_floor")?,
        clock_floor_db_version: get_u64(conn, "clock_floor_db_version")?,
        digest_version: get_u64(conn, "digest_version")?,
        digest_sum,
    })
}

pub(crate) fn write_digest(conn: &Connection, sum: &Digest, version: u64) -> Result<()> {
    set_value(conn, "digest_sum", sum.to_bytes().to_vec())?;
    set_value(conn, "digest_version", version as i64)
}

pub(crate) fn write_clock_floor(conn: &Connection, clock: u64, db_version: u64) -> Result<()> {
    set_value(conn, "clock_floor", clock as i64)?;
    set_value(conn, "clock_floor_db_version", db_version as i64)
}

pub(crate) fn read_sites(conn: &Connection) -> Result<Vec<SiteId>> {
    let mut statement =
        conn.prepare_cached("SELECT ordinal, site_id FROM weft_sites ORDER BY ordinal")?;
    let rows = statement.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut sites = Vec::new();
    for row in rows {
        let (ordinal, bytes) = row?;
        let site = SiteId::from_slice(&bytes)
            .ok_or_else(|| Error::Corrupt("a site id is not 16 bytes".into()))?;
        if ordinal as usize != sites.len() {
            return Err(Error::Corrupt("site ordinals have a gap".into()));
        }
        sites.push(site);
    }
    Ok(sites)
}

pub(crate) fn replicated_table_names(conn: &Connection) -> Result<Vec<String>> {
    let mut statement = conn.prepare_cached("SELECT name FROM weft_tables ORDER BY name")?;
    let names = statement
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(names)
}

/// The largest db_version and clock among rows above `since` (0, 0 if none).
pub(crate) fn max_version_and_clock_since(conn: &Connection, since: u64) -> Result<(u64, u64)> {
    let mut best = (since, 0u64);
    let mut queries: Vec<String> = replicated_table_names(conn)?
        .iter()
        .map(|t| -> Result<Vec<String>> {
            let clock = quoted_clock(t);
            Ok(if crate::storage::run_log::exists(conn, t)? {
                // The rows the engine wrote, through the log; those the triggers wrote,
                // through the partial index (`crate::storage::run_log`).
                vec![
                    format!(
                        "SELECT max(c.__weft_db_version), max(c.__weft_clock) FROM {} WHERE r.db_version > ?1",
                        crate::storage::run_log::join(t, &clock, "r.first")
                    ),
                    format!(
                        "SELECT max(__weft_db_version), max(__weft_clock) FROM {clock} \
                         WHERE __weft_logged IS NULL AND __weft_db_version > ?1"
                    ),
                ]
            } else {
                vec![format!("SELECT max(__weft_db_version), max(__weft_clock) FROM {clock} WHERE __weft_db_version > ?1")]
            })
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect();
    queries.push("SELECT max(db_version), max(clock) FROM weft_relay WHERE db_version > ?1".into());
    for sql in queries {
        // Cached: every refresh after another connection's commit asks.
        let (version, clock): (Option<i64>, Option<i64>) = conn
            .prepare_cached(&sql)?
            .query_row([since as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        best.0 = best.0.max(version.unwrap_or(0) as u64);
        best.1 = best.1.max(clock.unwrap_or(0) as u64);
    }
    Ok(best)
}

/// Loads every replicated table's schema as registered, checking it against the live table.
pub(crate) fn load_catalog(conn: &Connection) -> Result<BTreeMap<String, TableSchema>> {
    let mut catalog = BTreeMap::new();
    for name in replicated_table_names(conn)? {
        let schema = registered_schema(conn, &name)?;
        catalog.insert(name, schema);
    }
    Ok(catalog)
}

pub(crate) fn registered_schema(conn: &Connection, table: &str) -> Result<TableSchema> {
    let mut statement = conn.prepare_cached("SELECT name, id FROM weft_columns WHERE tbl = ?1")?;
    let ids: BTreeMap<String, u32> = statement
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut statement =
        conn.prepare_cached("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1)")?;
    let mut pk: Vec<(i64, ColumnDef)> = Vec::new();
    let mut columns = Vec::new();
    let mut column_ids = Vec::new();
    let rows = statement.query_map([table], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (name, decl_type, pk_position, hidden) = row?;
        let def = ColumnDef {
            name: name.clone(),
            decl_type,
        };
        if pk_position > 0 {
            pk.push((pk_position, def));
        } else if hidden == 0 {
            if let Some(id) = ids.get(&name) {
                columns.push(def);
                column_ids.push(*id);
            }
        }
    }
    if pk.is_empty() {
        return Err(Error::Corrupt(format!(
            "replicated table {table:?} is missing or lost its primary key"
        )));
    }
    if columns.len() != ids.len() {
        let missing: Vec<&String> = ids
            .keys()
            .filter(|n| !columns.iter().any(|c| &c.name == *n))
            .collect();
        return Err(Error::Corrupt(format!(
            "replicated table {table:?} lost columns {missing:?}"
        )));
    }
    pk.sort_by_key(|(position, _)| *position);
    let run_log = crate::storage::run_log::exists(conn, table)?;
    if run_log && pk.len() != 1 {
        return Err(Error::Corrupt(format!(
            "replicated table {table:?} has a run log but a key of {} columns",
            pk.len()
        )));
    }
    Ok(TableSchema {
        name: table.to_owned(),
        pk: pk.into_iter().map(|(_, d)| d).collect(),
        columns,
        column_ids,
        run_log,
    })
}

/// This replica's incarnation, if set.
pub(crate) fn incarnation(conn: &Connection) -> Result<Option<Incarnation>> {
    let bytes: Option<Vec<u8>> = conn
        .query_row(
            "SELECT value FROM weft_meta WHERE key = 'incarnation'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    bytes
        .map(|b| {
            Incarnation::from_slice(&b)
                .ok_or_else(|| Error::Corrupt("the incarnation is not 16 bytes".into()))
        })
        .transpose()
}

/// Sets a fresh incarnation from `ids` unless one is set; returns the one in force.
pub(crate) fn ensure_incarnation(conn: &Connection, ids: &dyn IdSource) -> Result<Incarnation> {
    if let Some(incarnation) = incarnation(conn)? {
        return Ok(incarnation);
    }
    let fresh = Incarnation(ids.fresh_id());
    set_value(conn, "incarnation", fresh.0.to_vec())?;
    Ok(fresh)
}

/// Replaces the incarnation with a fresh one from `ids` (a restored copy starts a new life).
pub(crate) fn renew_incarnation(conn: &Connection, ids: &dyn IdSource) -> Result<Incarnation> {
    let fresh = Incarnation(ids.fresh_id());
    set_value(conn, "incarnation", fresh.0.to_vec())?;
    Ok(fresh)
}

/// A `weft_peers` row, selected as `site, incarnation, cursor`, as a [`PeerCursor`].
fn peer_cursor_from(row: &rusqlite::Row<'_>) -> Result<PeerCursor> {
    let (site, incarnation, cursor): (Vec<u8>, Vec<u8>, Vec<u8>) =
        (row.get(0)?, row.get(1)?, row.get(2)?);
    Ok(PeerCursor {
        site: SiteId::from_slice(&site)
            .ok_or_else(|| Error::Corrupt("a peer site id is not 16 bytes".into()))?,
        incarnation: Incarnation::from_slice(&incarnation)
            .ok_or_else(|| Error::Corrupt("a peer incarnation is not 16 bytes".into()))?,
        cursor: rmp_serde::from_slice(&cursor)
            .map_err(|e| Error::Corrupt(format!("a stored cursor: {e}")))?,
    })
}

/// The cursor stored for `site`, if any (of whatever incarnation).
pub(crate) fn peer_cursor(conn: &Connection, site: &SiteId) -> Result<Option<PeerCursor>> {
    let mut statement =
        conn.prepare_cached("SELECT site, incarnation, cursor FROM weft_peers WHERE site = ?1")?;
    let mut rows = statement.query([site.0.as_slice()])?;
    rows.next()?.map(peer_cursor_from).transpose()
}

/// The cursors most recently updated, newest first, at most `max`.
pub(crate) fn recent_peer_cursors(conn: &Connection, max: usize) -> Result<Vec<PeerCursor>> {
    let mut statement = conn.prepare_cached(
        "SELECT site, incarnation, cursor FROM weft_peers ORDER BY updated_ms DESC, site LIMIT ?1",
    )?;
    let mut rows = statement.query([max as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(peer_cursor_from(row)?);
    }
    Ok(out)
}

/// Records how far this replica has applied another's changes. A [`CursorMove::Forward`]
/// never moves the stored cursor of the same life of that replica backwards: when it stands
/// further on (a second session with the same replica applied more meanwhile), it stays, since
/// everything up to it was applied.
pub(crate) fn write_peer_cursor(
    conn: &Connection,
    peer: &PeerCursor,
    now_ms: u64,
    how: CursorMove,
) -> Result<()> {
    if how == CursorMove::Forward {
        if let Some(stored) = peer_cursor(conn, &peer.site)? {
            if stored.incarnation == peer.incarnation && stored.cursor.since > peer.cursor.since {
                return Ok(());
            }
        }
    }
    let cursor = rmp_serde::to_vec(&peer.cursor)
        .map_err(|e| Error::Corrupt(format!("encoding a cursor: {e}")))?;
    conn.execute(
        "INSERT OR REPLACE INTO weft_peers(site, incarnation, cursor, updated_ms) VALUES (?1, ?2, ?3, ?4)",
        params![peer.site.0.as_slice(), peer.incarnation.0.as_slice(), cursor, now_ms as i64],
    )?;
    Ok(())
}

/// Records that the transaction at `db_version` merged only changes received from `site`.
pub(crate) fn write_merged_from(conn: &Connection, db_version: u64, site: &SiteId) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO weft_merged_from(db_version, site) VALUES (?1, ?2)",
        params![db_version as i64, site.0.as_slice()],
    )?;
    Ok(())
}

/// The db_versions in `[low, high]` whose transactions merged only changes from `site`.
pub(crate) fn merged_from(
    conn: &Connection,
    site: &SiteId,
    low: u64,
    high: u64,
) -> Result<std::collections::HashSet<u64>> {
    let mut statement = conn.prepare_cached(
        "SELECT db_version FROM weft_merged_from WHERE db_version BETWEEN ?1 AND ?2 AND site = ?3",
    )?;
    let versions = statement
        .query_map(params![low as i64, high as i64, site.0.as_slice()], |r| {
            r.get::<_, i64>(0)
        })?
        .map(|v| v.map(|v| v as u64))
        .collect::<rusqlite::Result<_>>()?;
    Ok(versions)
}

/// The end of the unbroken run of db_versions after `since` whose transactions merged only
/// changes from `site` (`since` itself if the next one did not).
pub(crate) fn merged_from_run(conn: &Connection, site: &SiteId, since: u64) -> Result<u64> {
    let mut statement = conn.prepare_cached(
        "SELECT db_version FROM weft_merged_from WHERE db_version > ?1 AND site = ?2 ORDER BY db_version LIMIT ?3",
    )?;
    let mut rows = statement.query(params![since as i64, site.0.as_slice(), MERGED_RUN_MAX])?;
    let mut through = since;
    while let Some(row) = rows.next()? {
        let version = row.get::<_, i64>(0)? as u64;
        if version != through + 1 {
            break;
        }
        through = version;
    }
    Ok(through)
}
