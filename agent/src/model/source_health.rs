//! Which sources of evidence are failing now, since when and why: host collectors, BMPs, spalloc servers,
//! probes and followed logs. The owner feeds it what every round, poll, probe and log note said; it
//! answers with transitions (started failing, recovered), so that each is logged and journalled once, not
//! once per poll. Reasons arrive redacted (where tool and server output enters the agent).

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::spinnaker::SpinnakerSnapshot;

/// What kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Collector,
    Bmp,
    Spalloc,
    Probe,
    Log,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Collector => "collector",
            SourceKind::Bmp => "bmp",
            SourceKind::Spalloc => "spalloc",
            SourceKind::Probe => "probe",
            SourceKind::Log => "log",
        }
    }
}

/// One source: its kind and name (a collector's name, a board's device id for its BMP, a machine's
/// name for its spalloc server, "device/probe" for a probe, "device/source" for a log).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceId {
    pub kind: SourceKind,
    pub name: String,
}

impl std::fmt::Display for SourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.name)
    }
}

/// A failing source as `/api/v1/status` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceFailing {
    pub source: SourceKind,
    pub name: String,
    #[serde(with = "super::unix_time::unix")]
    pub since: SystemTime,
    /// The latest reason (it may change while the source keeps failing).
    pub reason: String,
}

/// A change worth one log line and one journal event.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Failing { id: SourceId, reason: String },
    Recovered { id: SourceId, since: SystemTime },
}

#[derive(Debug, Default)]
pub struct SourceHealth {
    failing: BTreeMap<SourceId, (SystemTime, String)>,
}

impl SourceHealth {
    /// What one source said now: why it fails, or None while it answers.
    pub fn observe(&mut self, id: SourceId, failing: Option<String>, now: SystemTime) -> Option<Transition> {
        match (failing, self.failing.get_mut(&id)) {
            (Some(reason), Some((_, was))) => {
                // Still failing: the reason shown follows, the log and journal do not.
                *was = reason;
                None
            }
            (Some(reason), None) => {
                self.failing.insert(id.clone(), (now, reason.clone()));
                Some(Transition::Failing { id, reason })
            }
            (None, Some(_)) => {
                let (since, _) = self.failing.remove(&id)?;
                Some(Transition::Recovered { id, since })
            }
            (None, None) => None,
        }
    }

    /// Forgets the sources of `kind` that `keep` rejects (a reload removed them): no longer failing,
    /// and no longer there to recover either.
    pub fn forget(&mut self, kind: SourceKind, keep: impl Fn(&str) -> bool) {
        self.failing.retain(|id, _| id.kind != kind || keep(&id.name));
    }

    /// A SpiNNaker poll: every board's BMP and every machine's spalloc server. Boards and machines the
    /// poll no longer covers are forgotten.
    pub fn observe_spinnaker(&mut self, snap: &SpinnakerSnapshot, now: SystemTime) -> Vec<Transition> {
        self.forget(SourceKind::Bmp, |name| snap.boards.contains_key(name));
        self.forget(SourceKind::Spalloc, |name| snap.machines.contains_key(name));
        let boards = snap.boards.iter().map(|(id, b)| {
            let result = match (&b.error, b.bmp_alive) {
                (Some(e), _) => Some(e.clone()),
                (None, false) => Some("the BMP did not answer".to_owned()),
                (None, true) => None,
            };
            (SourceId { kind: SourceKind::Bmp, name: id.clone() }, result)
        });
        let machines = snap.machines.iter().map(|(name, m)| {
            let result = match (&m.error, m.spalloc_up) {
                (Some(e), _) => Some(e.clone()),
                (None, false) => Some("spalloc did not answer".to_owned()),
                (None, true) => None,
            };
            (SourceId { kind: SourceKind::Spalloc, name: name.clone() }, result)
        });
        let all: Vec<_> = boards.chain(machines).collect();
        all.into_iter().filter_map(|(id, result)| self.observe(id, result, now)).collect()
    }

    pub fn failing(&self) -> Vec<SourceFailing> {
        self.failing
            .iter()
            .map(|(id, (since, reason))| SourceFailing {
                source: id.kind,
                name: id.name.clone(),
                since: *since,
                reason: reason.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::model::spinnaker::{BoardReading, MachineReport};

    fn t(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn one_transition_per_change_not_per_poll_and_since_stays() {
        let mut h = SourceHealth::default();
        let id = SourceId { kind: SourceKind::Collector, name: "hwmon".into() };
        assert_eq!(h.observe(id.clone(), None, t(0)), None);
        let first = h.observe(id.clone(), Some("read failed".into()), t(5));
        assert_eq!(first, Some(Transition::Failing { id: id.clone(), reason: "read failed".into() }));
        assert_eq!(h.observe(id.clone(), Some("still failing".into()), t(10)), None);
        let failing = h.failing();
        assert_eq!(failing.len(), 1);
        assert_eq!((failing[0].since, failing[0].reason.as_str()), (t(5), "still failing"));
        assert_eq!(h.observe(id.clone(), None, t(15)), Some(Transition::Recovered { id: id.clone(), since: t(5) }));
        assert_eq!(h.observe(id, None, t(20)), None);
        assert!(h.failing().is_empty());
    }

    #[test]
    fn a_spinnaker_poll_judges_each_bmp_and_spalloc_server() {
        let mut h = SourceHealth::default();
        let mut snap = SpinnakerSnapshot::default();
        snap.boards.insert("spin5-c0-f0-b0".into(), BoardReading { bmp_alive: true, ..Default::default() });
        snap.boards.insert(
            "spin5-c0-f0-b1".into(),
            BoardReading { error: Some("no answer within 100ms".into()), ..Default::default() },
        );
        snap.machines.insert(
            "spin5".into(),
            MachineReport { error: Some("login refused for user monitor".into()), ..Default::default() },
        );
        let transitions = h.observe_spinnaker(&snap, t(0));
        assert_eq!(transitions.len(), 2, "{transitions:?}");
        let names: Vec<(SourceKind, String)> = h.failing().into_iter().map(|f| (f.source, f.name)).collect();
        assert_eq!(names, [(SourceKind::Bmp, "spin5-c0-f0-b1".into()), (SourceKind::Spalloc, "spin5".into())]);
        assert!(h.observe_spinnaker(&snap, t(1)).is_empty(), "the same poll again: nothing new");
        // The machine is removed by a reload: forgotten, not recovered.
        snap.machines.clear();
        assert!(h.observe_spinnaker(&snap, t(2)).is_empty());
        assert_eq!(h.failing().len(), 1);
    }
}
