//! Storage: the replica file and what each connection keeps about it.
//!
//! - the file: table shapes ([`schema`]), the names of Weft's SQL objects ([`sql_names`]), the
//!   bookkeeping tables ([`bookkeeping`]), the run log ([`run_log`]), the file format and its
//!   upgrades ([`file_format`]), turning a table into a CRR ([`crr`]) and the SQL that writes
//!   clock rows ([`clock_row_sql`]);
//! - a connection: how one is opened and a transaction ends ([`replica_connection`]), its
//!   transaction state ([`transaction_state`]), the SQL functions and hooks it carries
//!   ([`sql_functions`], [`function_args`], [`pending_updates`]) and its commit notices
//!   ([`commit_notices`]).

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
