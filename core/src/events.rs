//! Change events: one committed transaction of a replica (local or merged) as the rows it
//! changed, in one JSON shape shared by the server's feed, webhooks, NATS and local listeners
//! (`docs/events.md`).
//!
//! ```json
//! {"database": "notes", "db_version": 12, "origin": "5f0c…",
//!  "changes": [{"table": "note", "pk": {"id": 7}, "op": "insert",
//!               "columns": {"title": "milk", "done": 0}}]}
//! ```
//!
//! Events are built from the registers `Replica::changes` reads, grouped by the db_version
//! that wrote them: an existence register with an odd causal length is an `insert`, with an
//! even one a `delete`; column registers alone are an `update`. The engine keeps each
//! register's latest write only, so an event read long after its commit holds what of that
//! transaction is still current (a column written again later appears with the later event).
//!
//! A row of the buckets' listing (`weft_bucket_entries`) also carries a `bucket` object that
//! says the same in bucket terms (`{"bucket": "photos", "name": "cat.jpg", "hash": "…",
//! "size": 1234, "mime": "image/jpeg"}`, see [`BucketChange`]); a rename is a delete and an
//! insert in one event.
//!
//! [`EventReader`] reads them in bounded steps and knows how far it is complete, which is the
//! cursor feeds and webhooks resume from.

use crate::blobs::BUCKET_TABLE;
use crate::{Change, Cursor, Replica, SiteId, Value};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};

/// The largest integer a JSON number carries exactly in every common parser (2^53 - 1).
pub const JSON_SAFE_INTEGER_MAX: i64 = (1 << 53) - 1;

pub use crate::limits::EVENT_REGISTERS_MAX;
use crate::limits::KEY_NAMES_CACHED_MAX;

/// What a transaction did to one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The row came into existence (or back, after a delete).
    Insert,
    /// Columns of an existing row changed.
    Update,
    /// The row was deleted.
    Delete,
}

/// One changed row of an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowChange {
    /// The table.
    pub table: String,
    /// The key: key column name to value, or, where the replica has no schema for the table
    /// (a server), the key's position (`"0"`, `"1"`, ...) to value.
    pub pk: Map<String, Json>,
    /// What happened to the row.
    pub op: Op,
    /// The columns written, name to value (see [`value_to_json`]); empty for a delete.
    pub columns: Map<String, Json>,
    /// For a row of the buckets' listing (table `weft_bucket_entries`), the same change in
    /// bucket terms; absent for other tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<BucketChange>,
}

/// A change to a bucket's listing, in bucket terms: which entry, and what of it this
/// transaction wrote. An insert names its hash, size and MIME type; an update only what
/// changed; a delete (also the old name of a rename) only the bucket and name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketChange {
    /// The bucket.
    pub bucket: String,
    /// The entry's name.
    pub name: String,
    /// The BLAKE3 hash (64 hex digits) of the entry's bytes, if written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// Size in bytes, if written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// MIME type, if written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// When the entry was put (milliseconds since the Unix epoch, the writer's clock), if
    /// written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_ms: Option<u64>,
}

impl BucketChange {
    /// The bucket change of a listing row with key `pk` (bucket, name) and the `columns`
    /// written; `None` for a key of another shape.
    pub fn of_row(pk: &[Value], columns: &Map<String, Json>) -> Option<BucketChange> {
        let [Value::Text(bucket), Value::Text(name)] = pk else {
            return None;
        };
        let text = |column: &str| {
            columns
                .get(column)
                .and_then(Json::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        let number = |column: &str| columns.get(column).and_then(Json::as_u64);
        Some(BucketChange {
            bucket: bucket.clone(),
            name: name.clone(),
            hash: text("hash"),
            size: number("size"),
            mime: columns
                .get("mime")
                .and_then(Json::as_str)
                .map(str::to_owned),
            created_ms: number("created_ms"),
        })
    }
}

/// One committed transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The database (on a server, its name; for a local replica, the file's stem).
    pub database: String,
    /// The replica's db_version of the transaction: increasing, the cursor to resume after.
    pub db_version: u64,
    /// The site id (hex) of the replica whose writes these are, when they all come from one
    /// replica (always, for a local transaction); `null` when one merge brought writes of
    /// several replicas.
    pub origin: Option<String>,
    /// The changed rows.
    pub changes: Vec<RowChange>,
    /// True when more of this transaction follows in the next event (only for transactions
    /// over [`EVENT_REGISTERS_MAX`] registers).
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl Event {
    /// The event as one line of JSON.
    pub fn to_json_line(&self) -> String {
        // Serialising maps of JSON values and plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A SQLite value as JSON, keeping its type: NULL → `null`; INTEGER → a number, or
/// `{"$int": "<decimal>"}` beyond ±(2^53 - 1) where parsers would round it; REAL → a number
/// (always written with a fraction or exponent), or `{"$real": "inf"|"-inf"}`; TEXT → a
/// string; BLOB → `{"$blob": "<standard base64>"}`.
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Integer(v) if (-JSON_SAFE_INTEGER_MAX..=JSON_SAFE_INTEGER_MAX).contains(v) => {
            Json::from(*v)
        }
        Value::Integer(v) => tagged("$int", v.to_string()),
        Value::Real(v) if v.is_finite() => Json::from(*v),
        Value::Real(v) if *v > 0.0 => tagged("$real", "inf".into()),
        Value::Real(_) => tagged("$real", "-inf".into()),
        Value::Text(v) => Json::String(v.clone()),
        Value::Blob(v) => tagged("$blob", base64::engine::general_purpose::STANDARD.encode(v)),
    }
}

fn tagged(tag: &str, text: String) -> Json {
    let mut map = Map::new();
    map.insert(tag.into(), Json::String(text));
    Json::Object(map)
}

/// The SQLite value a [`value_to_json`] result stands for; `None` for JSON it never writes.
pub fn value_from_json(json: &Json) -> Option<Value> {
    match json {
        Json::Null => Some(Value::Null),
        Json::Number(n) if n.is_i64() => n.as_i64().map(Value::Integer),
        Json::Number(n) => n.as_f64().map(Value::Real),
        Json::String(s) => Some(Value::Text(s.clone())),
        Json::Object(map) if map.len() == 1 => {
            let (tag, text) = map.iter().next()?;
            let text = text.as_str()?;
            match tag.as_str() {
                "$int" => text.parse().ok().map(Value::Integer),
                "$real" => match text {
                    "inf" => Some(Value::Real(f64::INFINITY)),
                    "-inf" => Some(Value::Real(f64::NEG_INFINITY)),
                    _ => None,
                },
                "$blob" => base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .ok()
                    .map(Value::Blob),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Builds the event of one transaction from its registers, in the order read.
/// `key_names` gives a table's key column names, if known.
pub fn build_event(
    database: &str,
    db_version: u64,
    registers: &[Change],
    mut key_names: impl FnMut(&str) -> Option<Vec<String>>,
) -> Event {
    let mut origin: Option<Option<SiteId>> = None;
    let mut rows: Vec<RowChange> = Vec::new();
    // The keys of listing rows, by position in `rows`, to describe them in bucket terms.
    let mut listing_keys: Vec<(usize, &[Value])> = Vec::new();
    let mut index: HashMap<(&str, Vec<u8>), usize> = HashMap::new();
    for change in registers {
        // A column register of a deleted incarnation is dead: its row is gone.
        if change.column.is_some() && change.cl % 2 == 0 {
            continue;
        }
        origin = match origin {
            None => Some(Some(change.site)),
            Some(Some(site)) if site == change.site => Some(Some(site)),
            Some(_) => Some(None),
        };
        let position = *index
            .entry((&*change.table, crate::rules::value::encode_key(&change.pk)))
            .or_insert_with(|| {
                rows.push(RowChange {
                    table: change.table.to_string(),
                    pk: key_object(&change.pk, key_names(&change.table)),
                    op: Op::Update,
                    columns: Map::new(),
                    bucket: None,
                });
                if &*change.table == BUCKET_TABLE {
                    listing_keys.push((rows.len() - 1, change.pk.as_slice()));
                }
                rows.len() - 1
            });
        let row = &mut rows[position];
        match &change.column {
            None if change.cl % 2 == 1 => row.op = Op::Insert,
            None => {
                row.op = Op::Delete;
                row.columns.clear();
            }
            Some(column) if row.op != Op::Delete => {
                row.columns
                    .insert(column.to_string(), value_to_json(&change.value));
            }
            Some(_) => {}
        }
    }
    for (position, pk) in listing_keys {
        let row = &mut rows[position];
        row.bucket = BucketChange::of_row(pk, &row.columns);
    }
    Event {
        database: database.to_owned(),
        db_version,
        origin: origin.flatten().map(|site| site.to_hex()),
        changes: rows,
        partial: false,
    }
}

fn key_object(pk: &[Value], names: Option<Vec<String>>) -> Map<String, Json> {
    let names = names.filter(|names| names.len() == pk.len());
    pk.iter()
        .enumerate()
        .map(|(i, value)| {
            let name = names
                .as_ref()
                .map_or_else(|| i.to_string(), |names| names[i].clone());
            (name, value_to_json(value))
        })
        .collect()
}

/// The key column names of `table` in key order, if the replica has that table.
pub fn table_key_names(replica: &Replica, table: &str) -> Option<Vec<String>> {
    let mut statement = replica
        .connection()
        .prepare_cached("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
        .ok()?;
    let names = statement
        .query_map([table], |row| row.get::<_, String>(0))
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    (!names.is_empty()).then_some(names)
}

/// Events read in one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventBatch {
    /// Whole transactions (and parts of one over [`EVENT_REGISTERS_MAX`]), in db_version order.
    pub events: Vec<Event>,
    /// Whether the read reached what the replica holds.
    pub caught_up: bool,
}

/// Reads a replica's transactions as events, from a db_version on, in bounded steps.
///
/// On a server (whose registers live in the relay, one per row of it) every event is whole
/// and resuming after its db_version misses nothing. In replicated tables the engine stores
/// a row's registers together under the row's latest db_version, so a register written
/// before a later change of its row is delivered with that later change; a reader resumed
/// from a bare db_version may then miss such a register of a row it had not reached. Local
/// listeners never resume that way.
#[derive(Debug)]
pub struct EventReader {
    database: String,
    cursor: Cursor,
    /// The db_version through which every event has been returned.
    through: u64,
    /// Registers of the transaction at the end of the last step, not known whole yet.
    pending: Option<(u64, Vec<Change>)>,
    key_names: HashMap<String, Option<Vec<String>>>,
}

/// Why events could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read changes: {0}")]
pub struct EventError(#[from] crate::Error);

impl EventReader {
    /// A reader of the transactions after `since`, named `database` in its events.
    pub fn new(database: impl Into<String>, since: u64) -> EventReader {
        EventReader {
            database: database.into(),
            cursor: Cursor::since(since),
            through: since,
            pending: None,
            key_names: HashMap::new(),
        }
    }

    /// The db_version through which every transaction has been returned whole: the cursor
    /// to store and resume from.
    pub fn through(&self) -> u64 {
        self.through
    }

    /// Reads up to `max_registers` registers (bounded by the replica's batch limit) and
    /// returns the transactions they complete.
    pub fn read(
        &mut self,
        replica: &Replica,
        max_registers: usize,
    ) -> Result<EventBatch, EventError> {
        let batch = replica.changes(&self.cursor, max_registers.max(1))?;
        if self.key_names.len() > KEY_NAMES_CACHED_MAX {
            self.key_names.clear();
        }
        self.learn_keys(replica, &batch.changes);
        let mut groups: BTreeMap<u64, Vec<Change>> = BTreeMap::new();
        if let Some((db_version, registers)) = self.pending.take() {
            groups.insert(db_version, registers);
        }
        for change in batch.changes {
            // A register older than what was returned already rides with its row's change.
            let db_version = change.db_version.max(self.through + 1);
            groups.entry(db_version).or_default().push(change);
        }
        let complete_below = match (&batch.done, &batch.next.position) {
            (true, _) => u64::MAX,
            (false, Some(position)) => position.db_version,
            (false, None) => batch.next.since + 1,
        };
        self.cursor = batch.next;
        let mut events = Vec::new();
        for (db_version, registers) in groups {
            if db_version >= complete_below {
                if registers.len() >= EVENT_REGISTERS_MAX {
                    let mut event = self.build(db_version, &registers);
                    event.partial = true;
                    events.push(event);
                } else {
                    self.pending = Some((db_version, registers));
                }
                continue;
            }
            events.push(self.build(db_version, &registers));
            self.through = db_version;
        }
        if batch.done {
            self.through = self.through.max(self.cursor.since);
        }
        debug_assert!(events
            .windows(2)
            .all(|w| w[0].db_version <= w[1].db_version));
        Ok(EventBatch {
            events,
            caught_up: batch.done,
        })
    }

    fn build(&self, db_version: u64, registers: &[Change]) -> Event {
        build_event(&self.database, db_version, registers, |table| {
            self.key_names.get(table).cloned().flatten()
        })
    }

    /// Learns the key column names of the tables of `registers` (once per table).
    fn learn_keys(&mut self, replica: &Replica, registers: &[Change]) {
        for change in registers {
            if !self.key_names.contains_key(&*change.table) {
                let names = table_key_names(replica, &change.table);
                self.key_names.insert(change.table.to_string(), names);
            }
        }
    }
}
