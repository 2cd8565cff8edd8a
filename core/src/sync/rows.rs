//! The compact form of a batch's changes on the wire: names and site ids once per batch,
//! then rows that refer to them by index, each row with its cells.
//!
//! `[tables, columns, sites, rows]`, where `tables` and `columns` are arrays of strings,
//! `sites` an array of 16-byte binaries, and each row is `[table, pk, cells]`: `table` an
//! index into `tables`, `pk` an array of values, and each cell
//! `[column, value, clock, site, cl, db_version]` with `column` an index into `columns` or nil
//! for the row's existence, and `site` an index into `sites`.

use super::message::{decode_whole, ErrorCode, FrameError};
use crate::rules::change::Change;
use crate::rules::site::SiteId;
use crate::rules::value::Value;
use foldhash::HashMap;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Serialize, Deserialize)]
struct WireRows(Vec<String>, Vec<String>, Vec<SiteId>, Vec<WireRow>);

#[derive(Serialize, Deserialize)]
struct WireRow(u32, Vec<Value>, Vec<WireCell>);

#[derive(Serialize, Deserialize)]
struct WireCell(Option<u32>, Value, u64, u32, u64, u64);

/// The same shapes, borrowing the changes they encode (no copies of keys and values).
#[derive(Serialize)]
struct WireRowsRef<'a>(Vec<&'a str>, Vec<&'a str>, Vec<SiteId>, Vec<WireRowRef<'a>>);

#[derive(Serialize)]
struct WireRowRef<'a>(u32, &'a [Value], Vec<WireCellRef<'a>>);

#[derive(Serialize)]
struct WireCellRef<'a>(Option<u32>, &'a Value, u64, u32, u64, u64);

/// Interns names and sites, handing out indices in first-seen order.
struct Interner<K> {
    index: HashMap<K, u32>,
    items: Vec<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Interner<K> {
    fn new() -> Self {
        Interner {
            index: HashMap::default(),
            items: Vec::new(),
        }
    }

    fn intern(&mut self, key: &K) -> u32 {
        if let Some(i) = self.index.get(key) {
            return *i;
        }
        let i = self.items.len() as u32;
        self.index.insert(key.clone(), i);
        self.items.push(key.clone());
        i
    }
}

/// Encodes changes in their wire form. Consecutive changes of one row share the row.
pub fn encode_rows(changes: &[Change]) -> Vec<u8> {
    let mut tables = Interner::new();
    let mut columns = Interner::new();
    let mut sites = Interner::new();
    let mut rows: Vec<WireRowRef> = Vec::new();
    for group in changes.chunk_by(|a, b| a.table == b.table && a.pk == b.pk) {
        let table = tables.intern(&&*group[0].table);
        let cells = group
            .iter()
            .map(|c| {
                WireCellRef(
                    c.column.as_deref().map(|name| columns.intern(&name)),
                    &c.value,
                    c.clock,
                    sites.intern(&c.site),
                    c.cl,
                    c.db_version,
                )
            })
            .collect();
        rows.push(WireRowRef(table, &group[0].pk, cells));
    }
    let wire = WireRowsRef(tables.items, columns.items, sites.items, rows);
    rmp_serde::to_vec(&wire).expect("rows always encode")
}

/// Decodes the wire form, refusing bytes after it ([`ErrorCode::TrailingBytes`]), dangling
/// indices ([`ErrorCode::DanglingIndex`]) and more than `max_changes` changes
/// ([`ErrorCode::TooLarge`]).
pub fn decode_rows(bytes: &[u8], max_changes: usize) -> Result<Vec<Change>, FrameError> {
    let bad = |message: String| FrameError::new(ErrorCode::DanglingIndex, message);
    let WireRows(tables, columns, sites, rows) = decode_whole(bytes, "batch's rows")?;
    // Every change of the batch shares its table's and column's name.
    let tables: Vec<Arc<str>> = tables.into_iter().map(Arc::from).collect();
    let columns: Vec<Arc<str>> = columns.into_iter().map(Arc::from).collect();
    let total = rows
        .iter()
        .map(|WireRow(_, _, cells)| cells.len())
        .sum::<usize>();
    if total > max_changes {
        return Err(FrameError::new(
            ErrorCode::TooLarge,
            format!("a batch holds more than {max_changes} changes"),
        ));
    }
    let mut changes = Vec::with_capacity(total);
    for WireRow(table, pk, cells) in rows {
        let table = tables
            .get(table as usize)
            .ok_or_else(|| bad(format!("row names table #{table}, which the batch lacks")))?;
        for WireCell(column, value, clock, site, cl, db_version) in cells {
            let column = match column {
                None => None,
                Some(i) => Some(columns.get(i as usize).cloned().ok_or_else(|| {
                    bad(format!("cell names column #{i}, which the batch lacks"))
                })?),
            };
            let site = *sites
                .get(site as usize)
                .ok_or_else(|| bad(format!("cell names site #{site}, which the batch lacks")))?;
            changes.push(Change {
                table: table.clone(),
                pk: pk.clone(),
                column,
                value,
                clock,
                site,
                cl,
                db_version,
            });
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(table: &str, key: i64, column: Option<&str>, site: u8) -> Change {
        Change {
            table: table.into(),
            pk: vec![Value::Integer(key)],
            column: column.map(Into::into),
            value: column.map_or(Value::Null, |c| Value::Text(c.repeat(2))),
            clock: 1 << 20,
            site: SiteId([site; 16]),
            cl: 1,
            db_version: 3,
        }
    }

    #[test]
    fn rows_round_trip_and_share_names() {
        let changes = vec![
            change("t", 1, None, 1),
            change("t", 1, Some("a"), 1),
            change("t", 2, Some("a"), 2),
            change("u", 2, Some("b"), 1),
        ];
        let bytes = encode_rows(&changes);
        assert_eq!(decode_rows(&bytes, 100).unwrap(), changes);
        assert!(decode_rows(&bytes, 3).is_err(), "over the limit");
    }

    #[test]
    fn dangling_indices_are_refused() {
        let wire = WireRows(
            vec!["t".into()],
            vec![],
            vec![SiteId([1; 16])],
            vec![WireRow(
                0,
                vec![Value::Integer(1)],
                vec![WireCell(Some(4), Value::Null, 1, 0, 1, 1)],
            )],
        );
        let bytes = rmp_serde::to_vec(&wire).unwrap();
        let error = decode_rows(&bytes, 100).unwrap_err();
        assert_eq!(error.code, ErrorCode::DanglingIndex);
        assert!(error.message.contains("column #4"), "{}", error.message);
    }
}
