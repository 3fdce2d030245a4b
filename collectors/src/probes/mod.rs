//! SDK status probes (commands) and reachability probes (TCP, UDP) with deadlines.
//!
//! Unlike the sysfs readers these are async: their waiting is on child processes and sockets, which tokio
//! can bound without a thread per probe.

mod capture;
pub mod child_env;
pub mod command;
pub mod net;
pub mod readings;

pub use command::{BaseEnv, CommandProbe, FailReason, ProbeOutcome, ProbeStatus};
pub use net::{NetOutcome, Target, TcpProbe, UdpProbe};
pub use readings::{FieldMap, OutputFormat, Parsed, PatternError, ReadingKind, RegexField};
