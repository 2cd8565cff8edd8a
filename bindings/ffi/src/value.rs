//! Values as they cross the boundary: SQLite's five storage classes, and query results.

use weft_core::Value;

/// One SQLite value: what a statement's parameter is and what a query's cell holds.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// A 64-bit signed integer.
    Integer {
        /// The number.
        value: i64,
    },
    /// A double.
    Real {
        /// The number.
        value: f64,
    },
    /// UTF-8 text.
    Text {
        /// The text.
        value: String,
    },
    /// Bytes.
    Blob {
        /// The bytes.
        value: Vec<u8>,
    },
}

impl From<Value> for SqlValue {
    fn from(value: Value) -> SqlValue {
        match value {
            Value::Null => SqlValue::Null,
            Value::Integer(value) => SqlValue::Integer { value },
            Value::Real(value) => SqlValue::Real { value },
            Value::Text(value) => SqlValue::Text { value },
            Value::Blob(value) => SqlValue::Blob { value },
        }
    }
}

impl From<SqlValue> for Value {
    fn from(value: SqlValue) -> Value {
        match value {
            SqlValue::Null => Value::Null,
            SqlValue::Integer { value } => Value::Integer(value),
            SqlValue::Real { value } => Value::Real(value),
            SqlValue::Text { value } => Value::Text(value),
            SqlValue::Blob { value } => Value::Blob(value),
        }
    }
}

/// Converts parameters for a statement.
pub(crate) fn to_values(params: Vec<SqlValue>) -> Vec<Value> {
    params.into_iter().map(Value::from).collect()
}

/// What a query returned: its column names and its rows, each row one value per column.
#[derive(Clone, Debug, Default, PartialEq, uniffi::Record)]
pub struct QueryResult {
    /// The result's column names, in order.
    pub columns: Vec<String>,
    /// The rows, each as many values as there are columns.
    pub rows: Vec<Vec<SqlValue>>,
}
