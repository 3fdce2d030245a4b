//! When a recurring maintenance window is open: pure functions of a window and the time passed in.
//!
//! The rules (docs/configuration.md): the start is wall-clock time in the window's zone; a start in a
//! spring-forward gap begins at the first instant after the gap; a start in a fall-back hour uses its
//! first occurrence; the duration is elapsed time; an occurrence belongs to the day it started.

use std::time::SystemTime;

use config::maintenance::Window;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::AmbiguousOffset;

/// One occurrence of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub start: SystemTime,
    pub end: SystemTime,
}

/// Durations are at most 7 days, so the occurrences that can cover a moment started at most 8 local days
/// earlier (one for the local date's offset), and the next start is at most 8 days later.
const REACH_DAYS: i64 = 8;

/// The occurrence open at `wall`, if any. Overlapping occurrences join: the earliest start and the latest
/// end among those that cover `wall`.
pub fn open_at(window: &Window, wall: SystemTime) -> Option<Occurrence> {
    let length = window.duration.get();
    let covering = starts_around(window, wall)?.filter_map(|s| {
        let end = s.checked_add(length)?;
        (s <= wall && wall < end).then_some(Occurrence { start: s, end })
    });
    covering.reduce(|a, b| Occurrence { start: a.start.min(b.start), end: a.end.max(b.end) })
}

/// The first start after `wall` (None only for a window without days, which the config refuses, or a
/// time beyond the calendar's range).
pub fn next_start(window: &Window, wall: SystemTime) -> Option<SystemTime> {
    starts_around(window, wall)?.filter(|s| *s > wall).min()
}

/// The starts of the occurrences from `REACH_DAYS` local days before `wall` to as many after.
fn starts_around(window: &Window, wall: SystemTime) -> Option<impl Iterator<Item = SystemTime> + '_> {
    let today = Timestamp::try_from(wall).ok()?.to_zoned(window.timezone.tz().clone()).date();
    let days = (-REACH_DAYS..=REACH_DAYS).filter_map(move |k| today.checked_add(jiff::Span::new().days(k)).ok());
    Some(
        days.filter(|d| window.days.iter().any(|w| w.to_jiff() == d.weekday()))
            .filter_map(|d| start_on(window, d))
            .map(SystemTime::from),
    )
}

/// The instant the window starts on `date`, by the rules above.
fn start_on(window: &Window, date: Date) -> Option<Timestamp> {
    let tz = window.timezone.tz();
    let local = date.to_datetime(window.start.time());
    let ambiguous = tz.to_ambiguous_timestamp(local);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
        // The wall time does not exist that day: the transition that skipped it is the first instant after
        // the gap. Read with the later offset the wall time lies before the transition.
        AmbiguousOffset::Gap { after, .. } => {
            let earlier = after.to_timestamp(local).ok()?;
            tz.following(earlier).next().map(|t| t.timestamp())
        }
    }
}

/// `wall` in the window's zone, as "Sun 04:00 UTC", for people.
pub fn local_time(window: &Window, wall: SystemTime) -> String {
    match Timestamp::try_from(wall) {
        Ok(t) => t.to_zoned(window.timezone.tz().clone()).strftime("%a %H:%M %Z").to_string(),
        Err(_) => "never".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window from config text, so the tests read like the file an operator writes. The tests of zones
    /// other than UTC are ignored where the build found no tz database (`has_tzdata`).
    fn window(days: &str, start: &str, duration: &str, zone: &str) -> Window {
        let text = format!(
            "[[maintenance.window]]\nname = \"w\"\ndays = {days}\nstart = \"{start}\"\nduration = \"{duration}\"\n\
             timezone = \"{zone}\"\n"
        );
        config::parse_str(&text, "test.toml").unwrap_or_else(|e| panic!("{e}")).maintenance.windows.remove(0)
    }

    /// An instant written as RFC 3339 with its offset, e.g. "2026-03-08T03:00:00-04:00".
    fn at(s: &str) -> SystemTime {
        SystemTime::from(s.parse::<Timestamp>().unwrap())
    }

    fn occurrence(start: &str, end: &str) -> Option<Occurrence> {
        Some(Occurrence { start: at(start), end: at(end) })
    }

    #[test]
    fn a_plain_weekly_window_in_utc() {
        let w = window("[\"sun\"]", "02:00", "2h", "UTC");
        // Sunday 6 December 2026.
        assert_eq!(open_at(&w, at("2026-12-06T01:59:59Z")), None);
        assert_eq!(open_at(&w, at("2026-12-06T02:00:00Z")), occurrence("2026-12-06T02:00:00Z", "2026-12-06T04:00:00Z"));
        assert_eq!(open_at(&w, at("2026-12-06T03:59:59Z")), occurrence("2026-12-06T02:00:00Z", "2026-12-06T04:00:00Z"));
        assert_eq!(open_at(&w, at("2026-12-06T04:00:00Z")), None, "the end is not inside");
        assert_eq!(next_start(&w, at("2026-12-06T02:00:00Z")), Some(at("2026-12-13T02:00:00Z")));
        assert_eq!(next_start(&w, at("2026-12-05T12:00:00Z")), Some(at("2026-12-06T02:00:00Z")));
        assert_eq!(local_time(&w, at("2026-12-06T04:00:00Z")), "Sun 04:00 UTC");
    }

    #[test]
    #[cfg_attr(not(has_tzdata), ignore = "needs the tz database (Debian package tzdata)")]
    fn new_york_spring_forward_gap_starts_after_the_gap() {
        // 8 March 2026: 02:00 EST jumps to 03:00 EDT; 02:30 does not exist that day.
        let w = window("[\"sun\"]", "02:30", "1h", "America/New_York");
        let o = open_at(&w, at("2026-03-08T03:10:00-04:00"));
        assert_eq!(o, occurrence("2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"));
        assert_eq!(open_at(&w, at("2026-03-08T01:59:59-05:00")), None);
        assert_eq!(next_start(&w, at("2026-03-07T12:00:00-05:00")), Some(at("2026-03-08T03:00:00-04:00")));
        // The week before and after, 02:30 exists.
        assert_eq!(next_start(&w, at("2026-03-01T00:00:00-05:00")), Some(at("2026-03-01T02:30:00-05:00")));
        assert_eq!(next_start(&w, at("2026-03-08T12:00:00-04:00")), Some(at("2026-03-15T02:30:00-04:00")));
    }

    #[test]
    #[cfg_attr(not(has_tzdata), ignore = "needs the tz database (Debian package tzdata)")]
    fn new_york_fall_back_uses_the_first_occurrence_and_lasts_elapsed_time() {
        // 1 November 2026: 02:00 EDT goes back to 01:00 EST; 01:30 happens twice.
        let w = window("[\"sunday\"]", "01:30", "1h", "America/New_York");
        let first = occurrence("2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00");
        assert_eq!(open_at(&w, at("2026-11-01T01:45:00-04:00")), first);
        assert_eq!(open_at(&w, at("2026-11-01T01:15:00-05:00")), first, "the repeated hour is still inside");
        assert_eq!(open_at(&w, at("2026-11-01T01:30:00-05:00")), None, "one elapsed hour, not until 02:30");
        // A window across the change lasts its elapsed duration: 00:00 EDT + 3h is 02:00 EST.
        let w = window("[\"sun\"]", "00:00", "3h", "America/New_York");
        assert_eq!(
            open_at(&w, at("2026-11-01T01:00:00-05:00")),
            occurrence("2026-11-01T00:00:00-04:00", "2026-11-01T02:00:00-05:00")
        );
    }

    #[test]
    #[cfg_attr(not(has_tzdata), ignore = "needs the tz database (Debian package tzdata)")]
    fn london_changes_on_its_own_dates() {
        // 29 March 2026 01:00 GMT -> 02:00 BST; 25 October 2026 02:00 BST -> 01:00 GMT.
        let w = window("[\"sun\"]", "01:30", "2h", "Europe/London");
        assert_eq!(next_start(&w, at("2026-03-28T12:00:00Z")), Some(at("2026-03-29T02:00:00+01:00")), "in the gap");
        assert_eq!(
            open_at(&w, at("2026-03-29T03:30:00+01:00")),
            occurrence("2026-03-29T02:00:00+01:00", "2026-03-29T04:00:00+01:00")
        );
        assert_eq!(next_start(&w, at("2026-10-24T12:00:00Z")), Some(at("2026-10-25T01:30:00+01:00")), "first 01:30");
        assert_eq!(
            open_at(&w, at("2026-10-25T02:15:00+00:00")),
            occurrence("2026-10-25T01:30:00+01:00", "2026-10-25T02:30:00+00:00")
        );
        // The same wall time keeps its local meaning either side of the change.
        assert_eq!(next_start(&w, at("2026-10-26T00:00:00Z")), Some(at("2026-11-01T01:30:00Z")));
        assert_eq!(local_time(&w, at("2026-10-25T02:30:00Z")), "Sun 02:30 GMT");
    }

    #[test]
    fn a_window_across_midnight_belongs_to_its_start_day() {
        let w = window("[\"sun\"]", "23:00", "3h", "UTC");
        // Monday 01:00 is inside Sunday's occurrence, though Monday is not one of its days.
        assert_eq!(open_at(&w, at("2026-12-07T01:00:00Z")), occurrence("2026-12-06T23:00:00Z", "2026-12-07T02:00:00Z"));
        assert_eq!(open_at(&w, at("2026-12-07T23:30:00Z")), None, "Monday starts none");
        assert_eq!(open_at(&w, at("2026-12-06T01:00:00Z")), None, "Saturday's night is not Sunday's");
    }

    #[test]
    fn overlapping_occurrences_join_and_a_week_long_window_wraps() {
        let w = window("[\"mon\", \"tue\"]", "02:00", "36h", "UTC");
        // Monday 7 December 2026 02:00 + 36 h overlaps Tuesday's 02:00 + 36 h.
        assert_eq!(open_at(&w, at("2026-12-08T03:00:00Z")), occurrence("2026-12-07T02:00:00Z", "2026-12-09T14:00:00Z"));
        let w = window("[\"wed\"]", "12:00", "7d", "UTC");
        assert_eq!(open_at(&w, at("2026-12-09T11:59:59Z")), occurrence("2026-12-02T12:00:00Z", "2026-12-09T12:00:00Z"));
    }
}
