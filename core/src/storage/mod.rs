//! Storage: the replica file's tables and the state each connection keeps about them. Table
//! shapes, the bookkeeping tables, the run log, the file format and its upgrades, turning a
//! table into a CRR (clock table and triggers), each connection's transaction state, and the
//! commit notices.

pub(crate) mod bookkeeping;
pub(crate) mod clock_row_sql;
pub(crate) mod commit_notices;
pub(crate) mod crr;
pub(crate) mod file_format;
pub(crate) mod function_args;
pub(crate) mod pending_updates;
pub(crate) mod replica_connection;
pub(crate) mod run_log;
pub(crate) mod schema;
pub(crate) mod sql_functions;
pub(crate) mod sql_names;
pub(crate) mod transaction_state;
