//! The engine: recording local writes ([`capture`]), merging changes from elsewhere ([`apply`],
//! one batch inside a transaction: [`merge_batch`]) and reading changes out in bounded batches
//! ([`read_changes`]).

pub(crate) mod apply;
pub(crate) mod capture;
pub(crate) mod merge_batch;
pub(crate) mod read_changes;
