//! Readers of the machine for accel-agent: sysfs (hwmon, thermal, power supplies, powercap, PCI AER).
//! Every reader takes its root as a parameter, so tests and the demo point it at a fake tree.
//!
//! Readers are synchronous and may block in the kernel; the agent runs each on its own thread with a
//! deadline (see `sysfs::watch`).

pub mod catalogue;
pub mod export;
pub mod fault;
pub mod host;
pub mod http;
pub mod intern;
pub mod logs;
pub mod probes;
pub mod resources;
pub mod spinnaker;
pub mod sysfs;

pub use export::{Families, Family, MetricKind, Sample};
pub use host::{HostCollector, HostReadings};
