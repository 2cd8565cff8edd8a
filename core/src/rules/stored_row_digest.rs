//! A stored row's share of the state digest, from its clock row as stored (the compact forms
//! of [`crate::rules::stored_clock`]) and its base values: what the digest fold, the triggers'
//! `weft_row_hash` and the capture's `weft_pending_base` all compute.

use crate::error::{Error, Result};
use crate::rules::digest::{row_hash, Digest};
use crate::rules::merge::{Register, Slot, Stamp};
use crate::rules::site::SiteId;
use crate::rules::stored_clock::{StoredClock, ROW_SLOT_ID};
use crate::rules::value::{encode_key, Value};

/// The digest contribution of a stored clock row and its base values `(id, name, value)`;
/// `site_of` names the site of a stored site ordinal.
pub(crate) fn hash_stored_row(
    mut site_of: impl FnMut(u32) -> Result<SiteId>,
    table: &str,
    key: &[Value],
    stored: &StoredClock,
    columns: &[(u32, &str, &Value)],
) -> Result<Digest> {
    let ids: Vec<u32> = columns.iter().map(|c| c.0).collect();
    let mut registers = Vec::new();
    for (id, stamp) in stored.expand(&ids)? {
        let site = site_of(stamp.site)?;
        let stamp_full = Stamp {
            cl: stored.cl,
            clock: stamp.clock,
            site,
        };
        let (slot, value) = if id == ROW_SLOT_ID {
            (Slot::Row, Value::Null)
        } else {
            match columns.iter().find(|c| c.0 == id) {
                Some((_, name, value)) => (Slot::Column((*name).into()), (*value).clone()),
                None => {
                    return Err(Error::Corrupt(format!(
                        "{table}: clock cells name unknown column id {id}"
                    )))
                }
            }
        };
        registers.push((
            slot,
            Register {
                stamp: stamp_full,
                value,
                db_version: stamp.db_version,
            },
        ));
    }
    Ok(row_hash(
        table,
        &encode_key(key),
        registers.iter().map(|(s, r)| (s, r)),
    ))
}
