//! How SQLite values print: tab-separated text or JSON.

use base64::Engine;
use weft_core::rusqlite::types::ValueRef;

/// A value as text: NULL as `NULL`, blobs as `x'hex'`.
pub(super) fn text(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(v) => v.to_string(),
        ValueRef::Real(v) => v.to_string(),
        ValueRef::Text(v) => String::from_utf8_lossy(v).into_owned(),
        ValueRef::Blob(v) => format!("x'{}'", hex::encode(v)),
    }
}

/// A value as JSON: numbers, strings, null; blobs as base64 strings.
pub(super) fn json(value: ValueRef<'_>) -> serde_json::Value {
    match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(v) => v.into(),
        ValueRef::Real(v) => serde_json::Number::from_f64(v)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        ValueRef::Text(v) => String::from_utf8_lossy(v).into_owned().into(),
        ValueRef::Blob(v) => base64::engine::general_purpose::STANDARD.encode(v).into(),
    }
}
