//! What the agent does about its decisions: device actions (throttle, reconnect, hooks) and the journal.

pub mod actions;
pub mod diagnostics;
pub(crate) mod events;
pub mod faults;
pub mod journal;
