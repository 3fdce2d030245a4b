//! Device logs: following files across rotation, reading /dev/kmsg, and matching lines against rules.
//!
//! Everything here is synchronous and takes its clock (`now: Instant`) as a parameter: the agent calls
//! [`Follower::poll`] and [`KmsgReader::poll`] from a worker at its interval and feeds each line to a
//! per-device [`RuleTracker`], whose signals become events, conditions and `accel_log_matches_total`.

pub mod error;
pub mod follow;
pub mod kmsg;
pub mod lines;
pub mod rules;

pub use error::LogError;
pub use follow::{FollowOptions, Follower, PollStats, StartAt};
pub use kmsg::{KmsgOptions, KmsgReader, KmsgRecord, KmsgStats};
pub use lines::Line;
pub use rules::{ClearReason, RuleAction, RuleError, RuleSet, RuleSpec, RuleTracker, Severity, Signal, Threshold};
