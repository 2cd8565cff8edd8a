//! Why a step of a session stopped: the other side broke the protocol, or this side failed.

use super::message::FrameError;

/// What ends a session in the middle of a step. The two are told apart because they travel
/// differently: a protocol error goes back to the other side with its code and its message
/// (what that side did wrong); a local failure goes back only as `internal` with a generic
/// message, and its typed error stays here (returned by the step, and named in the local
/// `SessionEvent::Closed`).
#[derive(Debug)]
pub(crate) enum StepError {
    /// The other side broke a rule of the protocol.
    Protocol(FrameError),
    /// This side failed: its replica, its blob store, its disk.
    Local(crate::Error),
}

impl From<FrameError> for StepError {
    fn from(error: FrameError) -> StepError {
        StepError::Protocol(error)
    }
}

impl From<crate::Error> for StepError {
    fn from(error: crate::Error) -> StepError {
        StepError::Local(error)
    }
}

impl From<std::io::Error> for StepError {
    fn from(error: std::io::Error) -> StepError {
        StepError::Local(crate::Error::Io(error))
    }
}
