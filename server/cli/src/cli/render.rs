//! How SQLite values print: as text for tab-separated rows, or as JSON.

use base64::Engine;
use weft_core::rusqlite::types::ValueRef;

/// A value as text: NULL as `NULL`, blobs as `x'hex'`, reals always with a `.` or an exponent
/// (`1.0`, `1e20`) so they read apart from integers, infinities as `Inf` and `-Inf`.
/// Text prints as stored, tabs and newlines included.
pub(super) fn text(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(v) => v.to_string(),
        ValueRef::Real(v) if v.is_infinite() => if v > 0.0 { "Inf" } else { "-Inf" }.to_owned(),
        ValueRef::Real(v) => format!("{v:?}"),
        ValueRef::Text(v) => String::from_utf8_lossy(v).into_owned(),
        ValueRef::Blob(v) => format!("x'{}'", hex::encode(v)),
    }
}

/// A value as JSON: integers and reals as numbers, text as strings, NULL as null, blobs as
/// base64 strings. JSON has no infinities: a real that is infinite prints as null.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reals_read_apart_from_integers() {
        assert_eq!(text(ValueRef::Real(1.0)), "1.0");
        assert_eq!(text(ValueRef::Real(2.5)), "2.5");
        assert_eq!(text(ValueRef::Real(1e20)), "1e20");
        assert_eq!(text(ValueRef::Real(f64::NEG_INFINITY)), "-Inf");
        assert_eq!(text(ValueRef::Integer(1)), "1");
        assert_eq!(json(ValueRef::Real(1.0)).to_string(), "1.0");
        assert_eq!(json(ValueRef::Real(f64::INFINITY)), serde_json::Value::Null);
    }

    #[test]
    fn blobs_print_as_hex_or_base64() {
        assert_eq!(text(ValueRef::Blob(&[0x0a, 0xff])), "x'0aff'");
        assert_eq!(json(ValueRef::Blob(&[0x0a, 0xff])), "Cv8=");
        assert_eq!(text(ValueRef::Blob(&[])), "x''");
    }
}
