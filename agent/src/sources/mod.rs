//! Where evidence comes from: the host collectors and their schedule, device probes, log followers and the
//! SpiNNaker pollers.

pub mod collect;
pub(crate) mod logwatch;
pub(crate) mod probing;
pub(crate) mod schedule;
pub(crate) mod spinnaker;
