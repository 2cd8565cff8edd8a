//! The names Weft gives SQL objects, and quoting: a replicated table's clock table, run log
//! and db_version index are named after it here and nowhere else.

use crate::limits::IDENTIFIER_BYTES_MAX;

/// The clock table's name for a base table.
pub(crate) fn clock_table_name(table: &str) -> String {
    format!("{table}__weft_clock")
}

/// Whether `name` is a plain identifier that never needs quoting tricks.
pub(crate) fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= IDENTIFIER_BYTES_MAX
}

/// Quotes an identifier that [`is_plain_identifier`] accepted.
pub(crate) fn quote(name: &str) -> String {
    debug_assert!(is_plain_identifier(name) || name.contains("__weft"));
    format!("\"{name}\"")
}

/// Quoted name of a table's clock table.
pub(crate) fn quoted_clock(table: &str) -> String {
    quote(&clock_table_name(table))
}

/// The name of `table`'s run log.
pub(crate) fn log_name(table: &str) -> String {
    format!("{table}__weft_runs")
}

/// The quoted name of `table`'s run log.
pub(crate) fn quoted_log(table: &str) -> String {
    quote(&log_name(table))
}

/// The name of a clock table's index by db_version (made with the clock table).
pub(crate) fn version_index_name(table: &str) -> String {
    format!("{table}__weft_clock_db_version")
}
