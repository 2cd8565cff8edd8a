//! SQLite values as they travel between replicas, and their canonical byte form.
//!
//! The canonical form is what the state digest hashes and what relay storage keys on: one tag
//! byte, then a fixed-width big-endian integer or float, or a length-prefixed byte string.
//! It is injective, so two values hash alike exactly when they are the same SQLite value.

use rusqlite::types::{ToSqlOutput, ValueRef};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One SQLite value: the five storage classes.
///
/// On the wire it is the natural MessagePack type (nil, integer, float, string, binary), so
/// clients in other languages need no wrapper types.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// An IEEE-754 double (SQLite never stores NaN).
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Arbitrary bytes.
    Blob(Vec<u8>),
}

const TAG_NULL: u8 = 0;
const TAG_INTEGER: u8 = 1;
const TAG_REAL: u8 = 2;
const TAG_TEXT: u8 = 3;
const TAG_BLOB: u8 = 4;

impl Value {
    /// Borrows a SQLite value, copying text and bytes.
    pub fn from_sql_ref(value: ValueRef<'_>) -> Value {
        match value {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Integer(v),
            ValueRef::Real(v) => Value::Real(v),
            ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
            ValueRef::Blob(v) => Value::Blob(v.to_vec()),
        }
    }

    /// Appends the canonical form of this value to `out`.
    pub fn write_canonical(&self, out: &mut Vec<u8>) {
        write_canonical_ref(self.as_ref(), out);
    }

    /// This value as a borrowed SQLite value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Integer(v) => ValueRef::Integer(*v),
            Value::Real(v) => ValueRef::Real(*v),
            Value::Text(v) => ValueRef::Text(v.as_bytes()),
            Value::Blob(v) => ValueRef::Blob(v),
        }
    }
}

/// Appends the canonical form of a borrowed SQLite value to `out`.
pub(crate) fn write_canonical_ref(value: ValueRef<'_>, out: &mut Vec<u8>) {
    match value {
        ValueRef::Null => out.push(TAG_NULL),
        ValueRef::Integer(v) => {
            out.push(TAG_INTEGER);
            out.extend_from_slice(&v.to_be_bytes());
        }
        ValueRef::Real(v) => {
            out.push(TAG_REAL);
            // -0.0 and 0.0 are the same SQLite value; give them one form.
            let v = if v == 0.0 { 0.0f64 } else { v };
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        ValueRef::Text(v) => {
            out.push(TAG_TEXT);
            out.extend_from_slice(&(v.len() as u64).to_be_bytes());
            out.extend_from_slice(v);
        }
        ValueRef::Blob(v) => {
            out.push(TAG_BLOB);
            out.extend_from_slice(&(v.len() as u64).to_be_bytes());
            out.extend_from_slice(v);
        }
    }
}

/// Encodes a primary key (its column values in key order) canonically.
pub fn encode_key(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * values.len());
    for value in values {
        value.write_canonical(&mut out);
    }
    out
}

/// Why canonical bytes could not be read back as values.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KeyDecodeError {
    /// The bytes end inside a value.
    #[error("primary key bytes end inside a value")]
    Truncated,
    /// A tag byte names no SQLite storage class.
    #[error("primary key bytes hold an unknown type tag {0}")]
    UnknownTag(u8),
    /// Text that is not UTF-8.
    #[error("primary key text is not UTF-8")]
    InvalidText,
}

/// Decodes bytes written by [`encode_key`]; refuses anything else.
pub(crate) fn decode_key(mut bytes: &[u8]) -> Result<Vec<Value>, KeyDecodeError> {
    let mut values = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        bytes = rest;
        let value = match tag {
            TAG_NULL => Value::Null,
            TAG_INTEGER => Value::Integer(i64::from_be_bytes(take_array(&mut bytes)?)),
            TAG_REAL => Value::Real(f64::from_bits(u64::from_be_bytes(take_array(&mut bytes)?))),
            TAG_TEXT | TAG_BLOB => {
                let len = u64::from_be_bytes(take_array(&mut bytes)?);
                let len = usize::try_from(len).map_err(|_| KeyDecodeError::Truncated)?;
                if bytes.len() < len {
                    return Err(KeyDecodeError::Truncated);
                }
                let (data, rest) = bytes.split_at(len);
                bytes = rest;
                if tag == TAG_TEXT {
                    let text =
                        std::str::from_utf8(data).map_err(|_| KeyDecodeError::InvalidText)?;
                    Value::Text(text.to_owned())
                } else {
                    Value::Blob(data.to_vec())
                }
            }
            other => return Err(KeyDecodeError::UnknownTag(other)),
        };
        values.push(value);
    }
    Ok(values)
}

fn take_array<const N: usize>(bytes: &mut &[u8]) -> Result<[u8; N], KeyDecodeError> {
    if bytes.len() < N {
        return Err(KeyDecodeError::Truncated);
    }
    let (head, rest) = bytes.split_at(N);
    *bytes = rest;
    let mut out = [0u8; N];
    out.copy_from_slice(head);
    Ok(out)
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(self.as_ref()))
    }
}

impl rusqlite::types::FromSql for Value {
    fn column_result(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Ok(Value::from_sql_ref(value))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_none(),
            Value::Integer(v) => serializer.serialize_i64(*v),
            Value::Real(v) => serializer.serialize_f64(*v),
            Value::Text(v) => serializer.serialize_str(v),
            Value::Blob(v) => serializer.serialize_bytes(v),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("nil, an integer, a float, a string or bytes")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Integer(i64::from(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Integer)
            .map_err(|_| E::custom("integer does not fit in 64 signed bits"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Real(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Text(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Text(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Blob(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Blob(v))
    }
}

/// A SQLite value copied exactly: text is kept as its bytes, as SQLite stores them.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Held {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Held {
    pub(crate) fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Held::Null => ValueRef::Null,
            Held::Integer(v) => ValueRef::Integer(*v),
            Held::Real(v) => ValueRef::Real(*v),
            Held::Text(v) => ValueRef::Text(v),
            Held::Blob(v) => ValueRef::Blob(v),
        }
    }

    /// Bytes held beyond the value itself.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Held::Text(v) | Held::Blob(v) => v.len(),
            _ => 0,
        }
    }

    /// Whether a stored value is this same SQLite value: same storage class and the same
    /// content (0.0 and -0.0 are the same value, as the digest's canonical form has it; 1 and
    /// 1.0 are not, unlike SQL's `IS`).
    pub(crate) fn is_same_as_ref(&self, other: ValueRef<'_>) -> bool {
        match (self, other) {
            (Held::Null, ValueRef::Null) => true,
            (Held::Integer(a), ValueRef::Integer(b)) => *a == b,
            (Held::Real(a), ValueRef::Real(b)) => *a == b,
            (Held::Text(a), ValueRef::Text(b)) | (Held::Blob(a), ValueRef::Blob(b)) => a == b,
            _ => false,
        }
    }
}

impl rusqlite::ToSql for Held {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(self.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_round_trips_and_rejects_garbage() {
        let key = vec![
            Value::Integer(-5),
            Value::Text("héllo".into()),
            Value::Blob(vec![0, 1, 2]),
            Value::Real(1.5),
            Value::Null,
        ];
        assert_eq!(decode_key(&encode_key(&key)).unwrap(), key);
        let bytes = encode_key(&key[..4]);
        assert_eq!(
            decode_key(&bytes[..bytes.len() - 1]),
            Err(KeyDecodeError::Truncated),
            "cut inside the float"
        );
        assert_eq!(decode_key(&[9]), Err(KeyDecodeError::UnknownTag(9)));
    }

    #[test]
    fn message_pack_uses_native_types() {
        let values = vec![
            Value::Null,
            Value::Integer(7),
            Value::Text("a".into()),
            Value::Blob(vec![1]),
        ];
        let bytes = rmp_serde::to_vec(&values).unwrap();
        // fixarray(4), nil, fixint 7, fixstr "a", bin8 len 1
        assert_eq!(bytes, vec![0x94, 0xc0, 0x07, 0xa1, b'a', 0xc4, 0x01, 0x01]);
        assert_eq!(rmp_serde::from_slice::<Vec<Value>>(&bytes).unwrap(), values);
    }
}
