//! The pure rules: the merge rule, hybrid clocks, values and their canonical form, site ids,
//! the state digest and how a clock row stores its registers. No SQL runs here.

pub(crate) mod change;
pub(crate) mod clock;
pub(crate) mod digest;
pub(crate) mod merge;
pub(crate) mod site;
pub(crate) mod stored_clock;
pub(crate) mod stored_row_digest;
pub(crate) mod value;
