//! The built-in replicated key-value table: keys are text, values any SQLite value.

use crate::error::Result;
use crate::limits::KV_SCAN_PAIRS_MAX;
use crate::rules::value::Value;
use rusqlite::{params, Connection, OptionalExtension};

/// The name of the built-in key-value table.
pub const KV_TABLE: &str = "weft_kv";

/// Key-value access to a replica's `weft_kv` table, which replicates like any CRR table.
pub struct Kv<'a> {
    conn: &'a Connection,
}

impl<'a> Kv<'a> {
    /// Key-value access through `conn`: a replica's connection, or the one
    /// [`crate::Replica::write`] hands its work (the fast recorded path).
    pub fn new(conn: &'a Connection) -> Self {
        Kv { conn }
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<Value>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT value FROM {KV_TABLE} WHERE key = ?1"))?
            .query_row([key], |r| r.get(0))
            .optional()?)
    }

    /// Stores `value` under `key`, replacing what was there.
    pub fn put(&self, key: &str, value: &Value) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO {KV_TABLE}(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            ))?
            .execute(params![key, value])?;
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete(&self, key: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(&format!("DELETE FROM {KV_TABLE} WHERE key = ?1"))?
            .execute([key])?
            > 0)
    }

    /// Pairs whose key starts with `prefix`, in key order, at most 100,000 (`KV_SCAN_PAIRS_MAX`).
    pub fn scan(&self, prefix: &str) -> Result<Vec<(String, Value)>> {
        // Text compares bytewise; every key with the prefix sorts at or after it and before
        // the prefix followed by the largest code point. The filter keeps the edge exact.
        let upper = format!("{prefix}\u{10FFFF}");
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT key, value FROM {KV_TABLE} WHERE key >= ?1 AND key <= ?2 ORDER BY key LIMIT {KV_SCAN_PAIRS_MAX}"
        ))?;
        let rows = statement.query_map(params![prefix, upper], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Value>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, value) = row?;
            if key.starts_with(prefix) {
                out.push((key, value));
            }
        }
        Ok(out)
    }
}
