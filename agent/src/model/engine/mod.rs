//! Devices: what each is bound to, what its readings are, and how healthy it is.
//!
//! The engine runs after each host collection. It reads the latest snapshot (never the hardware), binds
//! each device's sources, feeds the values through the threshold trackers, and judges each condition on
//! its evidence (one function each, in `conditions`). Condition changes come back as events for the
//! journal.

mod decisions;
mod device;
mod diagnostics;
mod judging;
mod operator;
mod state;
#[cfg(test)]
mod tests;
mod views;
mod windows;

pub use super::view::{ConditionChange, DeviceView, LogUpdate, ProbeResult, ProbeState, Reading};
pub use state::DeviceEngine;
