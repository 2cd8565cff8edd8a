//! Deciding, per change, whether a peer may write it.

use crate::rules::change::Change;

/// Decides whether a change received from the other side may be applied. A refused change is
/// not applied and is reported back to its sender with the reason (a `Reject`), never dropped
/// silently. Implementations must be cheap: they run once per received change.
pub trait Authorizer: Send + Sync {
    /// `Ok(())` to apply the change, `Err(reason)` to refuse it.
    fn authorize(&self, change: &Change) -> Result<(), String>;
}

/// Accepts every change.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _change: &Change) -> Result<(), String> {
        Ok(())
    }
}

/// Refuses every change: the other side may read, not write.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOnly;

impl Authorizer for ReadOnly {
    fn authorize(&self, _change: &Change) -> Result<(), String> {
        Err("read-only access".into())
    }
}
