//! Changes as they leave a replica: rows of `(table, pk, column, value, clock, site, cl,
//! db_version)`, read in bounded batches in db_version order.
//!
//! A clock row is found by its largest db_version (through an index, or a run log,
//! [`crate::storage::run_log`]), and carries registers written at older versions. So a reader that stops half-way must resume with the same `since` and a position,
//! not with a bare db_version: [`Cursor`] is both. Once a read is [`ChangeBatch::done`], the
//! cursor collapses to a plain db_version again.

use crate::error::Result;
use crate::limits::NAMES_HELD_MAX;
use crate::rules::change::{Change, ChangeBatch, Cursor, Position};
use crate::rules::stored_clock::{StoredClock, CLOCK_COLUMNS, CLOCK_COLUMN_COUNT, ROW_SLOT_ID};
use crate::rules::value::{decode_key, Value};
use crate::storage::bookkeeping::RELAY_ROW_SLOT;
use crate::storage::schema::{JoinSelect, TableSchema};
use crate::storage::transaction_state::ConnState;
use rusqlite::types::Value as SqlValue;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The columns [`relay_change`] reads, in its order.
pub(crate) const RELAY_COLUMNS: &str = "tbl, pk, col, cl, clock, site, db_version, value";

/// Shared copies of the table and column names a read meets: a batch names a few of them
/// thousands of times, and a copy of the name for every change was a third of a server's
/// work in a large download. Bounded: it starts over past [`NAMES_HELD_MAX`] names.
#[derive(Default)]
pub(crate) struct Names {
    held: Vec<Arc<str>>,
}

impl Names {
    /// A shared copy of `name`.
    pub(crate) fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(held) = self.held.iter().find(|held| ***held == *name) {
            return held.clone();
        }
        if self.held.len() >= NAMES_HELD_MAX {
            self.held.clear();
        }
        let shared: Arc<str> = name.into();
        self.held.push(shared.clone());
        shared
    }
}

/// A row of `weft_relay`, selected as [`RELAY_COLUMNS`], as the change it holds.
pub(crate) fn relay_change(
    conn: &Connection,
    state: &mut ConnState,
    names: &mut Names,
    row: &rusqlite::Row<'_>,
) -> Result<Change> {
    let text =
        |i: usize| -> Result<&str> { Ok(row.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?) };
    let column = text(2)?;
    let column = (column != RELAY_ROW_SLOT).then(|| names.get(column));
    let key = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
    Ok(Change {
        table: names.get(text(0)?),
        pk: decode_key(key)?,
        column,
        value: row.get(7)?,
        clock: row.get::<_, i64>(4)? as u64,
        site: state.site(conn, row.get::<_, i64>(5)? as u32)?,
        cl: row.get::<_, i64>(3)? as u64,
        db_version: row.get::<_, i64>(6)? as u64,
    })
}

struct Candidate {
    db_version: u64,
    source_index: usize,
    /// The row's key within its source; `None` for a relay row, whose key (table, encoded
    /// primary key, column) is rebuilt from its change when it ends a batch (building it for
    /// every relayed register was a measured share of a server's reads).
    key: Option<Vec<Value>>,
    changes: Vec<Change>,
}

/// The key a relay row has in the read order: table, encoded primary key, column.
fn relay_key(change: &Change) -> Vec<Value> {
    vec![
        Value::Text(change.table.to_string()),
        Value::Blob(crate::rules::value::encode_key(&change.pk)),
        Value::Text(
            change
                .column
                .as_deref()
                .unwrap_or(RELAY_ROW_SLOT)
                .to_owned(),
        ),
    ]
}

/// The relay pseudo-source sorts before every table.
const RELAY_SOURCE: &str = "";

pub(crate) fn read(
    conn: &Connection,
    state: &mut ConnState,
    catalog: &BTreeMap<String, TableSchema>,
    cursor: &Cursor,
    max_changes: usize,
    filtered: bool,
) -> Result<ChangeBatch> {
    assert!(max_changes > 0, "a batch must hold at least one change");
    let mut sources: Vec<Option<&TableSchema>> = vec![None];
    sources.extend(catalog.values().map(Some));
    let mut candidates = Vec::new();
    let mut exhausted = true;
    // Once a source filled a batch up to some db_version, nothing above it can be sent in
    // this batch: later sources read no further (without the bound, each batch of a long read
    // would scan every later source's rows up to its limit again).
    let mut horizon = u64::MAX;
    for (index, schema) in sources.iter().enumerate() {
        let name = schema.map_or(RELAY_SOURCE, |s| s.name.as_str());
        let filter = Filter::new(cursor, name, horizon);
        let found = match schema {
            None => read_relay(conn, state, &filter, max_changes, index, filtered)?,
            Some(schema) => read_table(conn, state, schema, &filter, max_changes, index, filtered)?,
        };
        if found.len() >= max_changes {
            exhausted = false;
            if let Some(reached) = found.iter().map(|c| c.db_version).max() {
                horizon = horizon.min(reached);
            }
        }
        candidates.extend(found);
    }
    candidates.sort_by_key(|c| (c.db_version, c.source_index));
    let mut changes = Vec::new();
    let mut last = None;
    let total = candidates.len();
    let mut taken = 0;
    for candidate in candidates {
        if !changes.is_empty() && changes.len() + candidate.changes.len() > max_changes {
            break;
        }
        changes.extend(candidate.changes);
        last = Some((candidate.db_version, candidate.source_index, candidate.key));
        taken += 1;
    }
    let last = last.map(|(db_version, source_index, key)| Position {
        db_version,
        source: sources[source_index]
            .map_or(RELAY_SOURCE, |s| s.name.as_str())
            .to_owned(),
        key: key.unwrap_or_else(|| {
            let change = changes.last().expect("a taken relay row left its change");
            relay_key(change)
        }),
    });
    let done = exhausted && taken == total;
    let next = match (done, last) {
        (true, last) => {
            let reached = last
                .as_ref()
                .or(cursor.position.as_ref())
                .map_or(cursor.since, |p| p.db_version);
            Cursor::since(reached.max(cursor.since))
        }
        (false, last) => Cursor {
            since: cursor.since,
            position: last.or_else(|| cursor.position.clone()),
        },
    };
    Ok(ChangeBatch {
        changes,
        next,
        done,
    })
}

/// Which rows of one source come after the cursor.
struct Filter {
    since: u64,
    sql: &'static str,
    version: u64,
    key: Option<Vec<Value>>,
    /// No row above this db_version is read.
    horizon: u64,
}

impl Filter {
    fn new(cursor: &Cursor, source: &str, horizon: u64) -> Filter {
        match &cursor.position {
            None => Filter {
                since: cursor.since,
                sql: ">",
                version: cursor.since,
                key: None,
                horizon,
            },
            Some(p) if source < p.source.as_str() => Filter {
                since: cursor.since,
                sql: ">",
                version: p.db_version,
                key: None,
                horizon,
            },
            Some(p) if source > p.source.as_str() => Filter {
                since: cursor.since,
                sql: ">=",
                version: p.db_version,
                key: None,
                horizon,
            },
            Some(p) => Filter {
                since: cursor.since,
                sql: "key",
                version: p.db_version,
                key: Some(p.key.clone()),
                horizon,
            },
        }
    }

    /// The WHERE clauses over `version_column` and `key_columns`, and their parameters, to run
    /// one after the other: a read resuming inside one db_version first takes the rest of that
    /// version (`version = ? AND keys > ?`), then the later versions. Each is an index seek;
    /// the single `OR` of both was not (SQLite scanned the whole version again for every
    /// batch, quadratic in the size of a large transaction).
    fn clauses(
        &self,
        version_column: &str,
        key_columns: &[String],
    ) -> Vec<(String, Vec<SqlValue>)> {
        let version = SqlValue::Integer(self.version as i64);
        let clauses = match (&self.key, self.sql) {
            (Some(key), _) if key.len() == key_columns.len() => {
                let marks: Vec<String> = (0..key.len()).map(|i| format!("?{}", i + 2)).collect();
                let mut params = vec![version.clone()];
                params.extend(key.iter().map(to_sql_value));
                vec![
                    (
                        format!(
                            "{version_column} = ?1 AND ({keys}) > ({marks})",
                            keys = key_columns.join(", "),
                            marks = marks.join(", ")
                        ),
                        params,
                    ),
                    (format!("{version_column} > ?1"), vec![version]),
                ]
            }
            (Some(_), _) => vec![(format!("{version_column} > ?1"), vec![version])],
            (None, op) => vec![(format!("{version_column} {op} ?1"), vec![version])],
        };
        clauses
            .into_iter()
            .map(|(clause, params)| self.below_horizon(version_column, clause, params))
            .collect()
    }

    /// `clause` and `params` with the horizon as a last parameter (a bound value, so the
    /// statement's text, and so its cached preparation, is the same from batch to batch).
    fn below_horizon(
        &self,
        version_column: &str,
        clause: String,
        mut params: Vec<SqlValue>,
    ) -> (String, Vec<SqlValue>) {
        params.push(SqlValue::Integer(
            i64::try_from(self.horizon).unwrap_or(i64::MAX),
        ));
        let clause = format!("{clause} AND {version_column} <= ?{}", params.len());
        (clause, params)
    }

    /// As [`Filter::clauses`], for a table with a run log (`r`, joined to its clock rows
    /// `c`): the lower bound of each entry's key range, the WHERE clause, its parameters. A
    /// read resuming inside a version starts inside the entry that holds its key, not at the
    /// entry's first key: a large entry would be read again from its start for every batch.
    fn log_clauses(&self) -> Vec<(&'static str, String, Vec<SqlValue>)> {
        let version = SqlValue::Integer(self.version as i64);
        let clauses = match (&self.key, self.sql) {
            (Some(key), _) if key.len() == 1 => vec![
                (
                    // `c.rowid > ?2` again: `?2 + 1` is a REAL past the largest integer.
                    "max(r.first, ?2 + 1)",
                    "r.db_version = ?1 AND r.last > ?2 AND c.rowid > ?2".to_owned(),
                    vec![version.clone(), to_sql_value(&key[0])],
                ),
                ("r.first", "r.db_version > ?1".to_owned(), vec![version]),
            ],
            (Some(_), _) => vec![("r.first", "r.db_version > ?1".to_owned(), vec![version])],
            (None, op) => vec![("r.first", format!("r.db_version {op} ?1"), vec![version])],
        };
        clauses
            .into_iter()
            .map(|(lower, clause, params)| {
                let (clause, params) = self.below_horizon("r.db_version", clause, params);
                (lower, clause, params)
            })
            .collect()
    }
}

fn to_sql_value(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Integer(v) => SqlValue::Integer(*v),
        Value::Real(v) => SqlValue::Real(*v),
        Value::Text(v) => SqlValue::Text(v.clone()),
        Value::Blob(v) => SqlValue::Blob(v.clone()),
    }
}

fn read_relay(
    conn: &Connection,
    state: &mut ConnState,
    filter: &Filter,
    limit: usize,
    source_index: usize,
    filtered: bool,
) -> Result<Vec<Candidate>> {
    let keys = ["tbl".to_owned(), "pk".to_owned(), "col".to_owned()];
    let row_filter = if filtered {
        " AND weft_relay_row_sent(db_version, tbl, pk)"
    } else {
        ""
    };
    let mut out = Vec::new();
    let mut names = Names::default();
    for (clause, params) in filter.clauses("db_version", &keys) {
        let limit = limit - out.len();
        if limit == 0 {
            break;
        }
        let sql = format!(
            "SELECT {RELAY_COLUMNS} FROM weft_relay WHERE {clause}{row_filter} \
             ORDER BY db_version, tbl, pk, col LIMIT {limit}"
        );
        let mut statement = conn.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let change = relay_change(conn, state, &mut names, row)?;
            let db_version = change.db_version;
            debug_assert!(db_version > filter.since);
            out.push(Candidate {
                db_version,
                source_index,
                key: None,
                changes: vec![change],
            });
        }
    }
    Ok(out)
}

fn read_table(
    conn: &Connection,
    state: &mut ConnState,
    schema: &TableSchema,
    filter: &Filter,
    limit: usize,
    source_index: usize,
    filtered: bool,
) -> Result<Vec<Candidate>> {
    let key_columns = schema.clock_join_keys();
    let row_filter = if filtered {
        format!(
            " AND weft_table_row_sent(c.__weft_db_version, '{}', {})",
            schema.name,
            key_columns.join(", ")
        )
    } else {
        String::new()
    };
    let key_count = schema.pk.len();
    let table: Arc<str> = schema.name.as_str().into();
    let columns: Vec<Arc<str>> = schema
        .columns
        .iter()
        .map(|c| c.name.as_str().into())
        .collect();
    let mut out = Vec::new();
    let queries = table_queries(schema, filter, &row_filter);
    let mut from_index = 0;
    for (sql, params, from_log) in queries {
        let taken = if from_log {
            out.len() - from_index
        } else {
            out.len()
        };
        let limit = limit - taken;
        if limit == 0 {
            continue;
        }
        let sql = format!("{sql} LIMIT {limit}");
        let mut statement = conn.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            let key: Vec<Value> = (0..key_count)
                .map(|i| row.get(i))
                .collect::<rusqlite::Result<_>>()?;
            let stored = StoredClock::from_row(row, key_count)?;
            let mut changes = Vec::new();
            for (id, stamp) in stored.expand(&schema.column_ids)? {
                if stamp.db_version <= filter.since {
                    continue;
                }
                let (column, value) = if id == ROW_SLOT_ID {
                    (None, Value::Null)
                } else {
                    let index = schema.position_of_id(id)?;
                    (
                        Some(columns[index].clone()),
                        row.get(key_count + CLOCK_COLUMN_COUNT + index)?,
                    )
                };
                changes.push(Change {
                    table: table.clone(),
                    pk: key.clone(),
                    column,
                    value,
                    clock: stamp.clock,
                    site: state.site(conn, stamp.site)?,
                    cl: stored.cl,
                    db_version: stamp.db_version,
                });
            }
            out.push(Candidate {
                db_version: stored.row.db_version,
                source_index,
                key: Some(key),
                changes,
            });
        }
        if !from_log {
            from_index = out.len();
        }
    }
    if schema.run_log && from_index > 0 && from_index < out.len() {
        out.sort_by_key(|c| (c.db_version, integer_key(c)));
    }
    Ok(out)
}

/// The statements that read `schema`'s rows after `filter`, to run in order, with their
/// parameters and whether they read through the run log (each still wants ` LIMIT n`).
///
/// With a run log, the rows come from two places, each in (db_version, key) order: the
/// log's (`crate::storage::run_log`) and the partial index's. Each is read up to the limit, and the two
/// merged: every row sent holds a change, so the batch never reaches past either's last.
fn table_queries(
    schema: &TableSchema,
    filter: &Filter,
    row_filter: &str,
) -> Vec<(String, Vec<SqlValue>, bool)> {
    let key_columns = schema.clock_join_keys();
    let unlogged = if schema.run_log {
        "c.__weft_logged IS NULL AND "
    } else {
        ""
    };
    let mut queries: Vec<(String, Vec<SqlValue>, bool)> = filter
        .clauses("c.__weft_db_version", &key_columns)
        .into_iter()
        .map(|(clause, params)| {
            let sql = schema.clock_join_select(&JoinSelect {
                columns: CLOCK_COLUMNS,
                filter: &format!("{unlogged}{clause}{row_filter}"),
                order: &format!("ORDER BY c.__weft_db_version, {}", key_columns.join(", ")),
            });
            (sql, params, false)
        })
        .collect();
    if schema.run_log {
        queries.extend(
            filter
                .log_clauses()
                .into_iter()
                .map(|(lower, clause, params)| {
                    let sql = schema.log_join_select(
                        lower,
                        &JoinSelect {
                            columns: CLOCK_COLUMNS,
                            filter: &format!("{clause}{row_filter}"),
                            order: "ORDER BY r.db_version, r.last, c.rowid",
                        },
                    );
                    (sql, params, true)
                }),
        );
    }
    queries
}

/// The integer key of a candidate from a table keyed by rowid.
fn integer_key(candidate: &Candidate) -> i64 {
    match candidate.key.as_deref() {
        Some([Value::Integer(key)]) => *key,
        _ => unreachable!("a clock table keyed by rowid holds integer keys"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read's statements each walk an index in the read's order: a sort or an index built
    /// per read (SQLite's automatic index) would make every batch cost the whole history.
    #[test]
    fn reads_walk_the_run_log_and_the_partial_index_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let replica = crate::Replica::open(dir.path().join("r.db")).unwrap();
        let conn = replica.connection();
        conn.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)")
            .unwrap();
        replica.enable_crr("t").unwrap();
        let schema = crate::storage::bookkeeping::registered_schema(conn, "t").unwrap();
        assert!(schema.run_log);
        let resumed = Cursor {
            since: 0,
            position: Some(Position {
                db_version: 3,
                source: "t".into(),
                key: vec![Value::Integer(5)],
            }),
        };
        for (cursor, statements) in [(Cursor::since(0), 2), (resumed, 4)] {
            let queries = table_queries(&schema, &Filter::new(&cursor, "t", 9), "");
            assert_eq!(queries.len(), statements);
            for (sql, params, from_log) in queries {
                let plan: Vec<String> = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql} LIMIT 10"))
                    .unwrap()
                    .query_map(rusqlite::params_from_iter(params), |r| r.get(3))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap();
                let plan = plan.join("; ");
                assert!(
                    !plan.contains("TEMP B-TREE") && !plan.contains("AUTOMATIC"),
                    "{sql}: {plan}"
                );
                let walks: &[&str] = if from_log {
                    &[
                        "SEARCH r USING PRIMARY KEY",
                        "SEARCH c USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
                    ]
                } else {
                    &["USING INDEX t__weft_clock_db_version"]
                };
                for walk in walks {
                    assert!(plan.contains(walk), "{sql}: {plan}");
                }
            }
        }
    }
}
