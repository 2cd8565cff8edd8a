//! The replicated key-value table (`weft_kv`), from apps.

use crate::database::Database;
use crate::error::Result;
use crate::value::SqlValue;
use weft_core::Kv;

/// One key and its value.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: SqlValue,
}

#[uniffi::export]
impl Database {
    /// The value stored under `key`, if any.
    pub fn kv_get(&self, key: String) -> Result<Option<SqlValue>> {
        let open = self.opened()?;
        let reader = open.reader();
        Ok(Kv::new(&reader).get(&key)?.map(SqlValue::from))
    }

    /// Stores `value` under `key`, replacing what was there; it replicates like a row.
    pub fn kv_put(&self, key: String, value: SqlValue) -> Result<()> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.write(|conn| Kv::new(conn).put(&key, &value.into()))?)
    }

    /// Removes `key`; returns whether it was there.
    pub fn kv_delete(&self, key: String) -> Result<bool> {
        let open = self.opened()?;
        let replica = open.writer()?;
        Ok(replica.write(|conn| Kv::new(conn).delete(&key))?)
    }

    /// The pairs whose key starts with `prefix`, in key order (at most 100,000).
    pub fn kv_scan(&self, prefix: String) -> Result<Vec<KvEntry>> {
        let open = self.opened()?;
        let reader = open.reader();
        Ok(Kv::new(&reader)
            .scan(&prefix)?
            .into_iter()
            .map(|(key, value)| KvEntry {
                key,
                value: value.into(),
            })
            .collect())
    }
}
