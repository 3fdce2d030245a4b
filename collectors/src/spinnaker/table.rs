//! Which (address, seq) pairs are waiting for a reply, and which finished recently.
//!
//! Remembering finished requests for a while is what lets the receive task tell a late or duplicated reply
//! (ours, but no longer wanted) from a foreign one, and lets the allocator avoid handing a recently used seq
//! to a new request, where a straggling reply to the old one would be taken for the new one's answer.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

/// How long a finished request's seq is remembered. Replies later than this are counted as foreign; a
/// BMP that answers ten seconds late is broken in a way the counters show anyway.
pub(crate) const LINGER: Duration = Duration::from_secs(10);

/// What a received (address, seq) corresponds to.
pub(crate) enum Lookup<'a, W> {
    Pending(&'a W),
    Finished,
    Unknown,
}

pub(crate) struct Table<W> {
    first_seq: u16,
    next: HashMap<SocketAddr, u16>,
    pending: HashMap<(SocketAddr, u16), W>,
    finished: HashMap<(SocketAddr, u16), Instant>,
    finished_order: VecDeque<(Instant, SocketAddr, u16)>,
    linger: Duration,
}

impl<W> Table<W> {
    pub(crate) fn new(first_seq: u16, linger: Duration) -> Table<W> {
        Table {
            first_seq,
            next: HashMap::new(),
            pending: HashMap::new(),
            finished: HashMap::new(),
            finished_order: VecDeque::new(),
            linger,
        }
    }

    /// Registers a new request to `addr` and returns its seq: the next in that address's sequence that is
    /// neither in flight nor recently finished. A recently finished one is reused only when all 65,536 are
    /// taken; None only if every seq is in flight to that address.
    pub(crate) fn allocate(&mut self, addr: SocketAddr, waiter: W, now: Instant) -> Option<u16> {
        self.expire(now);
        let next = self.next.entry(addr).or_insert(self.first_seq);
        let start = *next;
        let mut fallback = None;
        let mut candidate = start;
        loop {
            let key = (addr, candidate);
            if !self.pending.contains_key(&key) {
                if !self.finished.contains_key(&key) {
                    break;
                }
                fallback.get_or_insert(candidate);
            }
            candidate = candidate.wrapping_add(1);
            if candidate == start {
                match fallback {
                    Some(seq) => {
                        candidate = seq;
                        break;
                    }
                    None => return None,
                }
            }
        }
        *next = candidate.wrapping_add(1);
        self.finished.remove(&(addr, candidate));
        self.pending.insert((addr, candidate), waiter);
        Some(candidate)
    }

    pub(crate) fn lookup(&mut self, addr: SocketAddr, seq: u16, now: Instant) -> Lookup<'_, W> {
        self.expire(now);
        if let Some(w) = self.pending.get(&(addr, seq)) {
            Lookup::Pending(w)
        } else if self.finished.contains_key(&(addr, seq)) {
            Lookup::Finished
        } else {
            Lookup::Unknown
        }
    }

    /// Moves a request from in flight to recently finished; finishing twice is harmless.
    pub(crate) fn finish(&mut self, addr: SocketAddr, seq: u16, now: Instant) {
        if self.pending.remove(&(addr, seq)).is_some() {
            self.finished.insert((addr, seq), now);
            self.finished_order.push_back((now, addr, seq));
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.pending.len()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, addr, seq)) = self.finished_order.front() {
            if now.saturating_duration_since(at) < self.linger {
                break;
            }
            self.finished_order.pop_front();
            // The seq may have been reused and finished again since; only the entry this record made goes.
            if self.finished.get(&(addr, seq)) == Some(&at) {
                self.finished.remove(&(addr, seq));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        ([127, 0, 0, 1], port).into()
    }

    #[test]
    fn seqs_wrap_at_ffff() {
        let now = Instant::now();
        let mut t = Table::new(0xFFFE, LINGER);
        let seqs: Vec<u16> = (0..3).filter_map(|_| t.allocate(addr(1), (), now)).collect();
        assert_eq!(seqs, [0xFFFE, 0xFFFF, 0x0000]);
    }

    #[test]
    fn each_address_has_its_own_sequence() {
        let now = Instant::now();
        let mut t = Table::new(10, LINGER);
        assert_eq!(t.allocate(addr(1), (), now), Some(10));
        assert_eq!(t.allocate(addr(2), (), now), Some(10));
        assert_eq!(t.allocate(addr(1), (), now), Some(11));
    }

    #[test]
    fn in_flight_and_recent_seqs_are_skipped_after_wrapping() {
        let now = Instant::now();
        let mut t = Table::new(0xFFFF, LINGER);
        assert_eq!(t.allocate(addr(1), (), now), Some(0xFFFF));
        assert_eq!(t.allocate(addr(1), (), now), Some(0));
        t.finish(addr(1), 0, now);
        // Walk the sequence all the way round: 0xFFFF is still in flight and 0 finished a moment ago.
        t.next.insert(addr(1), 0xFFFF);
        assert_eq!(t.allocate(addr(1), (), now), Some(1));
        assert!(matches!(t.lookup(addr(1), 0, now), Lookup::Finished));
        assert!(matches!(t.lookup(addr(1), 0xFFFF, now), Lookup::Pending(())));
        assert!(matches!(t.lookup(addr(1), 2, now), Lookup::Unknown));
        assert!(matches!(t.lookup(addr(2), 1, now), Lookup::Unknown));
    }

    #[test]
    fn finished_entries_expire_after_linger() {
        let now = Instant::now();
        let mut t = Table::new(5, Duration::from_secs(1));
        let seq = t.allocate(addr(1), (), now).unwrap();
        t.finish(addr(1), seq, now);
        assert!(matches!(t.lookup(addr(1), seq, now + Duration::from_millis(999)), Lookup::Finished));
        assert!(matches!(t.lookup(addr(1), seq, now + Duration::from_secs(1)), Lookup::Unknown));
        assert!(t.finished_order.is_empty());
    }

    #[test]
    fn a_full_sequence_reuses_finished_seqs_but_never_pending_ones() {
        let now = Instant::now();
        let mut t = Table::new(0, LINGER);
        for _ in 0..=u16::MAX {
            assert!(t.allocate(addr(1), (), now).is_some());
        }
        assert_eq!(t.in_flight(), 65_536);
        assert_eq!(t.allocate(addr(1), (), now), None);
        t.finish(addr(1), 42, now);
        assert_eq!(t.allocate(addr(1), (), now), Some(42));
    }
}
