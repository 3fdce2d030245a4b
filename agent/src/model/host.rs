//! What devices bind: the host collectors' latest readings and the SpiNNaker pollers' latest boards, as
//! the owner last received them.

use std::collections::BTreeMap;
use std::sync::Arc;

use collectors::HostReadings;
use config::CollectorKind;

use super::spinnaker::{BoardReading, SpinnakerSnapshot};

/// The host collectors' latest readings and the SpiNNaker pollers' latest boards: what devices bind.
/// It holds the published values themselves (shared, not copied), so the engine can keep the evidence it
/// last bound and tell, by identity, whether anything was published since.
#[derive(Debug, Default, Clone)]
pub struct HostEvidence {
    pub readings: BTreeMap<CollectorKind, Arc<HostReadings>>,
    pub spinnaker: Option<Arc<SpinnakerSnapshot>>,
}

impl HostEvidence {
    pub fn readings(&self, kind: CollectorKind) -> Option<&HostReadings> {
        self.readings.get(&kind).map(|r| &**r)
    }

    /// The board bound to `device`, by device id.
    pub fn board(&self, device: &str) -> Option<&BoardReading> {
        self.spinnaker.as_ref()?.boards.get(device)
    }

    /// Whether `kind`'s readings are the same publication in both, or absent in both.
    pub fn same_readings(&self, other: &HostEvidence, kind: CollectorKind) -> bool {
        same_publication(self.readings.get(&kind), other.readings.get(&kind))
    }

    /// Whether the SpiNNaker boards are the same poll in both.
    pub fn same_boards(&self, other: &HostEvidence) -> bool {
        same_publication(self.spinnaker.as_ref(), other.spinnaker.as_ref())
    }
}

/// The same publication (compared by identity, which is sound because both sides hold it alive), or
/// absent in both.
fn same_publication<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}
