//! Reading the arguments of the `weft_*` SQL functions: they are callable from plain SQL too,
//! with any arguments, so every read says which argument was wrong instead of trusting it.

use crate::error::{Error, Result};
use crate::rules::stored_clock::{StoredClock, StoredStamp};
use rusqlite::functions::Context;
use rusqlite::types::ValueRef;

/// The connection running the function, to read from inside it.
#[allow(unsafe_code)] // the one unsafe call, reasoned beside it
pub(crate) fn context_connection<'a>(
    ctx: &'a Context<'_>,
) -> rusqlite::Result<rusqlite::functions::ConnectionRef<'a>> {
    // SAFETY: the handle is the connection running this function; it outlives the call, and
    // we only run read queries on it (PRAGMA data_version, the meta and clock tables), which
    // SQLite allows from inside a function. This is how the first write of a transaction learns
    // what other connections committed (a measured need: the alternative, a subquery in every
    // trigger, costs every row).
    unsafe { ctx.get_connection() }
}

/// An engine error as the SQL function's error.
pub(crate) fn user_error(error: Error) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(error))
}

/// Argument `index`, or an error naming it if the call has fewer: these functions are also
/// callable from plain SQL, with any arguments.
pub(crate) fn raw_arg<'a>(ctx: &'a Context<'_>, index: usize) -> Result<ValueRef<'a>> {
    if index >= ctx.len() {
        return Err(Error::Corrupt(format!(
            "a weft_* function needs argument {} and got {}",
            index + 1,
            ctx.len()
        )));
    }
    Ok(ctx.get_raw(index))
}

/// Argument `index` as a counter (NULL reads as 0).
pub(crate) fn int_arg(ctx: &Context<'_>, index: usize) -> Result<u64> {
    match raw_arg(ctx, index)? {
        ValueRef::Integer(v) if v >= 0 => Ok(v as u64),
        ValueRef::Null => Ok(0),
        other => Err(Error::Corrupt(format!(
            "argument {index} is not a counter: {other:?}"
        ))),
    }
}

/// Argument `index` as a blob, if it is one.
pub(crate) fn blob_arg<'a>(ctx: &'a Context<'_>, index: usize) -> Option<&'a [u8]> {
    match raw_arg(ctx, index) {
        Ok(ValueRef::Blob(b)) => Some(b),
        _ => None,
    }
}

/// The arguments from `at` on of a function that updates a live clock row's cells: `cells,
/// clock, site, db_version` as stored, then the transaction's `clock, db_version`.
pub(crate) fn update_args(ctx: &Context<'_>, at: usize) -> Result<(StoredClock, StoredStamp)> {
    let stored = StoredClock {
        cl: 1,
        row: StoredStamp {
            clock: int_arg(ctx, at + 1)?,
            site: int_arg(ctx, at + 2)? as u32,
            db_version: int_arg(ctx, at + 3)?,
        },
        cells: blob_arg(ctx, at).map(<[u8]>::to_vec),
    };
    let fresh = StoredStamp {
        clock: int_arg(ctx, at + 4)?,
        site: 0,
        db_version: int_arg(ctx, at + 5)?,
    };
    Ok((stored, fresh))
}

/// The arguments `cl, clock, site, cells` from `at` on of a function that hashes a stored clock
/// row; its db_version is not hashed and reads as 0.
pub(crate) fn hashed_clock_args(ctx: &Context<'_>, at: usize) -> Result<StoredClock> {
    Ok(StoredClock {
        cl: int_arg(ctx, at)?,
        row: StoredStamp {
            clock: int_arg(ctx, at + 1)?,
            site: int_arg(ctx, at + 2)? as u32,
            db_version: 0,
        },
        cells: blob_arg(ctx, at + 3).map(<[u8]>::to_vec),
    })
}
