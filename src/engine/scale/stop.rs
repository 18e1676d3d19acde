//! Why a scale run stopped early: one type for every shape, so that what
//! to tell the user next is decided by the kind of stop, never by the
//! wording of a sentence.

use crate::cluster::hpa::BoundsStop;
use crate::cluster::lease::Lost;

#[derive(Debug)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// A step failed (not ready in time, an API error, a forbidden watch).
    Step(String),
    /// Someone else wrote the instance's record: its Helm records, or a
    /// replica field of its `Milvus` resource. Their change stands, so
    /// there is no "continue with" that would undo it.
    OtherWriter(String),
    /// Someone else wrote the bounds of an HPA this run changes.
    OtherHpaWriter(String),
    /// The Lease was lost.
    LockLost(Lost),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Signal => f.write_str("interrupted by a signal"),
            Stop::Step(why) | Stop::OtherWriter(why) | Stop::OtherHpaWriter(why) => f.write_str(why),
            Stop::LockLost(lost) => write!(f, "{lost}"),
        }
    }
}

impl From<BoundsStop> for Stop {
    fn from(stop: BoundsStop) -> Stop {
        match stop {
            BoundsStop::Failed(why) => Stop::Step(why),
            BoundsStop::OtherWriter(why) => Stop::OtherHpaWriter(why),
        }
    }
}
