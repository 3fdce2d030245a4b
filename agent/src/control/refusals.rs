//! Refused control requests, rate-limited for the journal and the log with every one counted.
//!
//! Anyone who can reach the control socket can be refused as fast as they can send: one event and one
//! log line each let a flood fill the journal and the log (issue 23: 376k refusals in 10 s). Per peer
//! (uid) and kind of request, the first refusal is reported on its own; the rest until the interval ends
//! are one summary "refused N more ... since T"; a peer quiet for a whole interval starts over. Every
//! refusal is counted in `accel_control_refused_total{reason}`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// At most one summary per peer and kind of request per this long.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Peers tracked one by one; refusals of any further uid share one entry, so the table stays small
/// whatever the number of uids on the host.
const MAX_PEERS: usize = 64;

/// What a refused peer asked for: the `reason` label of `accel_control_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refused {
    /// A POST: a throttle, reconnect, maintenance, set-healthy or reload.
    Change,
    /// The matched log lines.
    Logs,
    /// The incident bundle.
    Bundle,
}

impl Refused {
    pub const ALL: [Refused; 3] = [Refused::Change, Refused::Logs, Refused::Bundle];

    pub fn label(self) -> &'static str {
        match self {
            Refused::Change => "change",
            Refused::Logs => "logs",
            Refused::Bundle => "bundle",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Refused::Change => "change request(s)",
            Refused::Logs => "read(s) of matched log lines",
            Refused::Bundle => "bundle request(s)",
        }
    }
}

/// Refusals of one peer and kind not yet reported.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    count: u64,
    since: SystemTime,
    /// The latest of them, e.g. "POST /api/v1/reload, pid 4242".
    last: String,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    pending: Option<Pending>,
}

/// Refusals not reported one by one, as one event and log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// None: uids beyond the first [`MAX_PEERS`] refused at once.
    pub uid: Option<u32>,
    pub what: Refused,
    pub count: u64,
    pub since: SystemTime,
    pub last: String,
}

impl Summary {
    /// "refused 4711 more change request(s) from uid 1000 since 2026-...Z: <why> (the last: POST ..., pid 42)".
    /// The count comes right after "refused", where `agentctl events` readers and scripts find it.
    pub fn message(&self, why: &str) -> String {
        let who = match self.uid {
            Some(uid) => format!("uid {uid}"),
            None => format!("other uids (more than {MAX_PEERS} refused at once)"),
        };
        let since = crate::effects::journal::rfc3339_utc_ms(crate::effects::journal::unix_ms(self.since));
        format!(
            "refused {} more {} from {who} since {since}: {why} (the last: {})",
            self.count,
            self.what.what(),
            self.last
        )
    }
}

/// The rate limiter, and the totals since start.
#[derive(Debug, Default)]
pub struct Refusals {
    windows: BTreeMap<(Option<u32>, Refused), Window>,
    totals: BTreeMap<Refused, u64>,
}

impl Refusals {
    /// Counts a refusal of `uid` asking for `what` (`detail` says what exactly); returns true when it is
    /// to be reported on its own, false when a later [`Refusals::due`] summary includes it.
    pub fn refuse(&mut self, uid: u32, what: Refused, detail: &str, now: Instant, wall: SystemTime) -> bool {
        *self.totals.entry(what).or_default() += 1;
        let mut key = (Some(uid), what);
        if !self.windows.contains_key(&key) && self.windows.len() >= MAX_PEERS {
            key = (None, what);
        }
        match self.windows.get_mut(&key) {
            None => {
                self.windows.insert(key, Window { opened: now, pending: None });
                true
            }
            Some(w) => {
                let p = w.pending.get_or_insert_with(|| Pending { count: 0, since: wall, last: String::new() });
                p.count += 1;
                p.last = detail.to_owned();
                false
            }
        }
    }

    /// The summaries of intervals that ended by `now`. A peer with nothing to summarise has been quiet
    /// for a whole interval and is forgotten: its next refusal is reported on its own again.
    pub fn due(&mut self, now: Instant) -> Vec<Summary> {
        let mut out = Vec::new();
        self.windows.retain(|&(uid, what), w| {
            if now.saturating_duration_since(w.opened) < INTERVAL {
                return true;
            }
            match w.pending.take() {
                Some(p) => {
                    out.push(Summary { uid, what, count: p.count, since: p.since, last: p.last });
                    w.opened = now;
                    true
                }
                None => false,
            }
        });
        out
    }

    /// Every summary not yet reported, due or not (at shutdown: counts are never lost).
    pub fn drain(&mut self) -> Vec<Summary> {
        let out = self
            .windows
            .iter_mut()
            .filter_map(|(&(uid, what), w)| {
                w.pending.take().map(|p| Summary { uid, what, count: p.count, since: p.since, last: p.last })
            })
            .collect();
        self.windows.clear();
        out
    }

    /// Refusals since start, for each kind (zero included).
    pub fn totals(&self) -> BTreeMap<&'static str, u64> {
        Refused::ALL.iter().map(|r| (r.label(), self.totals.get(r).copied().unwrap_or(0))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_one_event_then_one_summary_per_interval_and_every_refusal_counted() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut r = Refusals::default();
        let at = |ms: u64| (t0 + Duration::from_millis(ms), w0 + Duration::from_millis(ms));
        let mut reported = 0;
        // 1000 refusals a second for 25 s.
        let mut summaries = Vec::new();
        for i in 0..25_000u64 {
            let (now, wall) = at(i);
            if i % 1000 == 0 {
                summaries.extend(r.due(now));
            }
            if r.refuse(1000, Refused::Change, &format!("POST /x, pid {i}"), now, wall) {
                reported += 1;
            }
        }
        summaries.extend(r.drain());
        assert_eq!(reported, 1, "only the first is reported on its own");
        assert_eq!(summaries.len(), 3, "one summary per 10 s interval, the last at shutdown: {summaries:?}");
        assert_eq!(1 + summaries.iter().map(|s| s.count).sum::<u64>(), 25_000);
        assert_eq!(r.totals()["change"], 25_000);
        assert_eq!(r.totals()["logs"], 0, "every kind is there");
        assert_eq!(summaries[0].since, w0 + Duration::from_millis(1));
        assert_eq!(
            summaries[0].message("not root"),
            format!(
                "refused 9999 more change request(s) from uid 1000 since 2027-01-15T08:00:00.001Z: not root \
                 (the last: POST /x, pid 9999)"
            )
        );
    }

    #[test]
    fn a_peer_quiet_for_an_interval_is_reported_on_its_own_again() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        assert!(r.refuse(1000, Refused::Logs, "GET", t0, SystemTime::UNIX_EPOCH));
        assert!(r.refuse(1001, Refused::Logs, "GET", t0, SystemTime::UNIX_EPOCH), "another uid is another peer");
        assert!(r.refuse(1000, Refused::Bundle, "GET", t0, SystemTime::UNIX_EPOCH), "another kind too");
        assert!(r.due(t0 + INTERVAL).is_empty(), "nothing pending: nothing to say");
        assert!(r.refuse(1000, Refused::Logs, "GET", t0 + INTERVAL, SystemTime::UNIX_EPOCH));
    }

    #[test]
    fn uids_beyond_the_table_share_one_entry() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        for uid in 0..(MAX_PEERS as u32 + 100) {
            r.refuse(uid, Refused::Change, "POST", t0, SystemTime::UNIX_EPOCH);
            r.refuse(uid, Refused::Change, "POST", t0, SystemTime::UNIX_EPOCH);
        }
        assert!(r.windows.len() <= MAX_PEERS + Refused::ALL.len());
        let s = r.drain();
        assert_eq!(s.iter().map(|s| s.count).sum::<u64>(), MAX_PEERS as u64 + 199, "every refusal counted");
        assert!(s.iter().any(|s| s.uid.is_none() && s.message("x").contains("other uids")));
    }
}
