//! Where evidence comes from: the host collectors and their schedule, device probes, log followers and the
//! SpiNNaker pollers.

pub mod collect;
pub mod logwatch;
pub mod probing;
pub mod schedule;
pub mod spinnaker;
