//! SQLite's preupdate hook, reached through its C API.
//!
//! rusqlite's `preupdate_hook` feature needs bindgen and libclang at build time; the four
//! functions used here are declared instead. They exist only in a SQLite compiled with
//! `SQLITE_ENABLE_PREUPDATE_HOOK`, which this workspace's `.cargo/config.toml` passes to the
//! bundled build (`core/build.rs` refuses a build without it, saying so).
//!
//! This is the only place in the crate that calls SQLite's C API directly. The reason is
//! measured: recording a bulk insert through the hook instead of triggers costs about half of
//! what the triggers cost (docs/benchmarks.md, "Writes recorded below the triggers").
#![allow(unsafe_code)] // the preupdate hook has no safe binding; every block says why it holds

use super::recorder::{Recorder, RowEvent};
use crate::rules::value::Held;
use rusqlite::ffi;
use rusqlite::Connection;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr};

unsafe extern "C" {
    fn sqlite3_preupdate_hook(
        db: *mut ffi::sqlite3,
        callback: Option<PreupdateCallback>,
        arg: *mut c_void,
    ) -> *mut c_void;
    fn sqlite3_preupdate_old(
        db: *mut ffi::sqlite3,
        column: c_int,
        out: *mut *mut ffi::sqlite3_value,
    ) -> c_int;
    fn sqlite3_preupdate_new(
        db: *mut ffi::sqlite3,
        column: c_int,
        out: *mut *mut ffi::sqlite3_value,
    ) -> c_int;
    fn sqlite3_preupdate_count(db: *mut ffi::sqlite3) -> c_int;
}

type PreupdateCallback = unsafe extern "C" fn(
    arg: *mut c_void,
    db: *mut ffi::sqlite3,
    op: c_int,
    database: *const c_char,
    table: *const c_char,
    old_rowid: i64,
    new_rowid: i64,
);

/// The preupdate hook installed on one connection, feeding a [`Recorder`]. Dropping it removes
/// the hook; [`HookGuard::finish`] removes it and hands the recorder back.
pub(crate) struct HookGuard<'c> {
    conn: &'c Connection,
    /// Only the connection's own thread reaches it: SQLite calls the hook from the statement
    /// being stepped, and the guard borrows the connection.
    recorder: *mut RefCell<Recorder>,
}

impl<'c> HookGuard<'c> {
    /// Installs the hook on `conn`. The connection must have no preupdate hook already.
    pub(crate) fn install(conn: &'c Connection, recorder: Recorder) -> HookGuard<'c> {
        let recorder = Box::into_raw(Box::new(RefCell::new(recorder)));
        // SAFETY: `conn.handle()` is the open connection this guard borrows, so it outlives the
        // hook; `recorder` stays allocated until the hook is removed in `take`.
        let previous =
            unsafe { sqlite3_preupdate_hook(conn.handle(), Some(on_preupdate), recorder.cast()) };
        assert!(
            previous.is_null(),
            "a preupdate hook was already installed on this connection"
        );
        HookGuard { conn, recorder }
    }

    /// Removes the hook and returns what it recorded.
    pub(crate) fn finish(mut self) -> Recorder {
        let recorder = self.take();
        std::mem::forget(self);
        recorder
    }

    fn take(&mut self) -> Recorder {
        // SAFETY: removing the hook first means SQLite no longer holds `recorder`, which came
        // from `Box::into_raw` in `install` and is reclaimed exactly once (here).
        unsafe {
            sqlite3_preupdate_hook(self.conn.handle(), None, std::ptr::null_mut());
            Box::from_raw(self.recorder).into_inner()
        }
    }
}

impl Drop for HookGuard<'_> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// Called by SQLite before every row change on the connection. Must not unwind into C.
unsafe extern "C" fn on_preupdate(
    arg: *mut c_void,
    db: *mut ffi::sqlite3,
    op: c_int,
    database: *const c_char,
    table: *const c_char,
    old_rowid: i64,
    new_rowid: i64,
) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: SQLite passes the `arg` given at installation, a live `RefCell<Recorder>`,
        // and NUL-terminated names valid for the call.
        let (recorder, database, table) = unsafe {
            (
                &*(arg as *const RefCell<Recorder>),
                CStr::from_ptr(database).to_bytes(),
                CStr::from_ptr(table).to_bytes(),
            )
        };
        let mut recorder = recorder.borrow_mut();
        if database != b"main" {
            return;
        }
        let Some(index) = recorder.table_index(table) else {
            return;
        };
        let values = PreupdateValues { db };
        let event = match op {
            ffi::SQLITE_INSERT => RowEvent::Insert { new_rowid },
            ffi::SQLITE_UPDATE => RowEvent::Update {
                old_rowid,
                new_rowid,
            },
            // A DELETE, or an incremental blob write (reported as a DELETE of the row).
            _ => RowEvent::Delete { old_rowid },
        };
        recorder.record(index, event, &values);
    }));
    if outcome.is_err() {
        // SAFETY: as above; the closure's borrow ended when it unwound.
        let recorder = unsafe { &*(arg as *const RefCell<Recorder>) };
        match recorder.try_borrow_mut() {
            Ok(mut recorder) => recorder.fail("recording a row change panicked".into()),
            // Unreachable (the borrow ended with the unwinding); were it reached, a row change
            // could go unrecorded and still commit, so stop rather than lose it.
            Err(_) => std::process::abort(),
        }
    }
}

/// The old and new values of the row change SQLite is about to make.
pub(crate) struct PreupdateValues {
    db: *mut ffi::sqlite3,
}

impl PreupdateValues {
    /// Number of columns of the changed row.
    pub(crate) fn count(&self) -> usize {
        // SAFETY: only called from inside the preupdate callback, for its connection.
        unsafe { sqlite3_preupdate_count(self.db) }.max(0) as usize
    }

    /// The row's value of table column `column` before the change (DELETE and UPDATE).
    pub(crate) fn before(&self, column: usize) -> Result<Held, String> {
        self.read(column, sqlite3_preupdate_old)
    }

    /// The row's value of table column `column` after the change (INSERT and UPDATE).
    pub(crate) fn after(&self, column: usize) -> Result<Held, String> {
        self.read(column, sqlite3_preupdate_new)
    }

    fn read(
        &self,
        column: usize,
        reader: unsafe extern "C" fn(
            *mut ffi::sqlite3,
            c_int,
            *mut *mut ffi::sqlite3_value,
        ) -> c_int,
    ) -> Result<Held, String> {
        let mut value = std::ptr::null_mut();
        // SAFETY: inside the callback, for its connection; SQLite checks the column index.
        let rc = unsafe { reader(self.db, column as c_int, &mut value) };
        if rc != ffi::SQLITE_OK || value.is_null() {
            return Err(format!(
                "SQLite could not read column {column} of a changed row (code {rc})"
            ));
        }
        // SAFETY: `value` is valid until the callback returns; its bytes are copied now.
        Ok(unsafe { held(value) })
    }
}

/// Copies a SQLite value, text and bytes exactly as stored.
unsafe fn held(value: *mut ffi::sqlite3_value) -> Held {
    // SAFETY: the caller hands a valid value; `_text`/`_blob` before `_bytes`, as SQLite asks.
    unsafe {
        let bytes = |data: *const u8| -> Vec<u8> {
            let length = ffi::sqlite3_value_bytes(value).max(0) as usize;
            if data.is_null() || length == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data, length).to_vec()
            }
        };
        match ffi::sqlite3_value_type(value) {
            ffi::SQLITE_INTEGER => Held::Integer(ffi::sqlite3_value_int64(value)),
            ffi::SQLITE_FLOAT => Held::Real(ffi::sqlite3_value_double(value)),
            ffi::SQLITE_TEXT => Held::Text(bytes(ffi::sqlite3_value_text(value))),
            ffi::SQLITE_BLOB => Held::Blob(bytes(ffi::sqlite3_value_blob(value).cast())),
            _ => Held::Null,
        }
    }
}
