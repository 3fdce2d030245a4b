//! Following a log file through what logrotate and writers do to it. Lines are numbered, so every test
//! can check that each line was seen exactly once and in order.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use collectors::logs::{FollowOptions, Follower, Line, PollStats, StartAt};

struct Log {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Log {
    fn new() -> Log {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device-0.log");
        Log { _dir: dir, path }
    }

    /// With an empty log file, as a logger creates it at startup.
    fn created() -> Log {
        let log = Log::new();
        File::create(&log.path).unwrap();
        log
    }

    fn sibling(&self, name: &str) -> PathBuf {
        self.path.with_file_name(name)
    }

    /// Appends lines `range` the way a logger does (O_APPEND, one write per line).
    fn append(&self, range: std::ops::RangeInclusive<u32>) {
        append_to(&self.path, range);
    }

    fn append_raw(&self, bytes: &[u8]) {
        OpenOptions::new().create(true).append(true).open(&self.path).unwrap().write_all(bytes).unwrap();
    }
}

fn append_to(path: &Path, range: std::ops::RangeInclusive<u32>) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    for n in range {
        f.write_all(line(n).as_bytes()).unwrap();
    }
}

fn line(n: u32) -> String {
    format!("photon-sdk[1234]: msg {n} ok\n")
}

fn numbers(lines: &[Line]) -> Vec<u32> {
    lines
        .iter()
        .map(|l| {
            assert!(!l.truncated, "{l:?}");
            l.text.strip_prefix("photon-sdk[1234]: msg ").and_then(|t| t.strip_suffix(" ok")).unwrap().parse().unwrap()
        })
        .collect()
}

fn poll(f: &mut Follower) -> (Vec<u32>, PollStats) {
    let mut out = Vec::new();
    let stats = f.poll(&mut out).unwrap();
    assert_eq!(stats.lines as usize, out.len());
    (numbers(&out), stats)
}

const NONE: [u32; 0] = [];

fn range(a: u32, b: u32) -> Vec<u32> {
    (a..=b).collect()
}

fn opts(start: StartAt) -> FollowOptions {
    FollowOptions { start, ..FollowOptions::default() }
}

#[test]
fn start_at_end_reads_only_new_lines() {
    let log = Log::new();
    log.append(1..=3);
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    assert_eq!(poll(&mut f).0, NONE);
    log.append(4..=6);
    assert_eq!(poll(&mut f).0, range(4, 6));
    assert_eq!(poll(&mut f).0, NONE);
}

#[test]
fn start_at_end_skips_the_rest_of_a_line_being_written() {
    let log = Log::new();
    log.append(1..=2);
    log.append_raw(b"photon-sdk[1234]: msg 3 o");
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    log.append_raw(b"k\n");
    log.append(4..=4);
    assert_eq!(poll(&mut f).0, [4]);
}

#[test]
fn start_at_beginning_reads_everything() {
    let log = Log::new();
    log.append(1..=5);
    let mut f = Follower::new(&log.path, opts(StartAt::Beginning)).unwrap();
    let (seen, stats) = poll(&mut f);
    assert_eq!(seen, range(1, 5));
    assert_eq!(stats.bytes, fs::metadata(&log.path).unwrap().len());
}

#[test]
fn lookback_starts_at_the_first_whole_line_in_range() {
    let log = Log::new();
    log.append(1..=9);
    let len = line(1).len() as u64; // all nine lines have the same length
    let lookback = |bytes| poll(&mut Follower::new(&log.path, opts(StartAt::Lookback { bytes })).unwrap()).0;
    assert_eq!(lookback(3 * len), range(7, 9), "exactly three lines back");
    assert_eq!(lookback(3 * len - 1), range(8, 9), "one byte short: line 7 is not whole");
    assert_eq!(lookback(3 * len + 1), range(7, 9), "one byte more: line 6 is not whole");
    assert_eq!(lookback(0), NONE);
    assert_eq!(lookback(1_000_000), range(1, 9), "more than the file");
}

#[test]
fn a_missing_file_is_waited_for_and_read_from_its_beginning() {
    let log = Log::new();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    assert!(!f.is_open());
    for _ in 0..3 {
        assert_eq!(poll(&mut f), (vec![], PollStats::default()));
    }
    log.append(1..=3);
    let (seen, stats) = poll(&mut f);
    assert_eq!(seen, range(1, 3));
    assert_eq!(stats.rotations, 0, "the first file to appear is not a rotation");
}

#[test]
fn rename_rotation_drains_the_old_file_then_reads_the_new_one() {
    let log = Log::new();
    log.append(1..=5);
    let mut f = Follower::new(&log.path, opts(StartAt::Beginning)).unwrap();
    assert_eq!(poll(&mut f).0, range(1, 5));
    log.append(6..=8);
    fs::rename(&log.path, log.sibling("device-0.log.1")).unwrap();
    // The writer has not reopened yet: it still appends to the renamed file.
    append_to(&log.sibling("device-0.log.1"), 9..=10);
    log.append(11..=14); // logrotate `create`, then the writer reopens
    let (seen, stats) = poll(&mut f);
    assert_eq!(seen, range(6, 14));
    assert_eq!(stats.rotations, 1);
    log.append(15..=16);
    assert_eq!(poll(&mut f).0, range(15, 16));
}

#[test]
fn a_rotation_noticed_only_after_several_rotations_keeps_the_lines_of_the_first_file() {
    let log = Log::created();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    log.append(1..=2);
    fs::rename(&log.path, log.sibling("a")).unwrap();
    log.append(3..=4);
    fs::rename(&log.path, log.sibling("b")).unwrap();
    log.append(5..=6);
    // Lines 3 and 4 went to a file that was renamed away before we ever looked: not reachable.
    let (seen, stats) = poll(&mut f);
    assert_eq!(seen, [1, 2, 5, 6]);
    assert_eq!(stats.rotations, 1);
}

#[test]
fn copytruncate_restarts_at_the_beginning() {
    let log = Log::new();
    log.append(1..=20);
    let mut f = Follower::new(&log.path, opts(StartAt::Beginning)).unwrap();
    assert_eq!(poll(&mut f).0, range(1, 20));
    fs::copy(&log.path, log.sibling("device-0.log.1")).unwrap();
    // The truncate and the writer's next lines, on the same inode.
    let new: String = (21..=23).map(line).collect();
    accel_sim::sysfs_tree::write_in_place(&log.path, &new);
    let (seen, stats) = poll(&mut f);
    assert_eq!(seen, range(21, 23));
    assert_eq!((stats.truncations, stats.rotations), (1, 0));
    log.append(24..=25);
    assert_eq!(poll(&mut f).0, range(24, 25));
}

#[test]
fn copytruncate_is_noticed_even_when_the_file_regrew_past_our_offset() {
    let log = Log::new();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    log.append(1..=3);
    assert_eq!(poll(&mut f).0, range(1, 3));
    File::options().write(true).open(&log.path).unwrap().set_len(0).unwrap();
    log.append(4..=10);
    let (seen, stats) = poll(&mut f);
    assert_eq!(seen, range(4, 10));
    assert_eq!(stats.truncations, 1);
}

#[test]
fn a_writer_without_o_append_leaves_a_hole_that_is_not_taken_for_lines() {
    // After a truncate, a writer that keeps its own offset writes there; the hole reads as NUL bytes.
    let log = Log::new();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    log.append(1..=3);
    assert_eq!(poll(&mut f).0, range(1, 3));
    let end = fs::metadata(&log.path).unwrap().len();
    let w = File::options().write(true).open(&log.path).unwrap();
    w.set_len(0).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&w, line(4).as_bytes(), end).unwrap();
    let mut out = Vec::new();
    let stats = f.poll(&mut out).unwrap();
    assert_eq!(stats.truncations, 1);
    let last = out.last().unwrap();
    assert!(last.text.ends_with("photon-sdk[1234]: msg 4 ok"), "{last:?}");
    assert_eq!(out.len(), 1, "the hole and line 4 form one line: {out:?}");
}

#[test]
fn deletion_drains_the_old_file_then_waits_quietly_for_a_new_one() {
    let log = Log::new();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    log.append(1..=3);
    assert_eq!(poll(&mut f).0, range(1, 3));
    log.append(4..=5);
    fs::remove_file(&log.path).unwrap();
    assert_eq!(poll(&mut f).0, range(4, 5), "lines written before the deletion");
    assert!(!f.is_open(), "the deleted file is closed once drained");
    for _ in 0..3 {
        assert_eq!(poll(&mut f), (vec![], PollStats::default()));
    }
    log.append(6..=8);
    let (seen, stats) = poll(&mut f);
    assert_eq!(seen, range(6, 8));
    assert_eq!(stats.rotations, 1);
}

#[test]
fn deletion_and_recreation_between_polls() {
    let log = Log::created();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    log.append(1..=3);
    fs::remove_file(&log.path).unwrap();
    // While we hold the old file open, its inode number cannot be reused, so the new file is seen as new.
    log.append(4..=6);
    let (seen, stats) = poll(&mut f);
    assert_eq!(seen, range(1, 6));
    assert_eq!(stats.rotations, 1);
}

#[test]
fn many_rotations_of_every_kind_lose_and_repeat_nothing() {
    let log = Log::created();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    let mut seen = Vec::new();
    let mut next = 1;
    let mut write = |n: u32| {
        log.append(next..=next + n - 1);
        next += n;
    };
    let (mut rotations, mut truncations) = (0, 0);
    for round in 0..40u32 {
        // Lines before the rotation, the rotation, lines after it, then a poll: one rotation per poll
        // interval, as with any real rotation schedule.
        write(1 + round % 5);
        match round % 4 {
            0 => fs::rename(&log.path, log.sibling(&format!("device-0.log.{round}"))).unwrap(),
            1 => fs::remove_file(&log.path).unwrap(),
            2 => {
                // copytruncate loses what was not read before the copy, by design: read it first.
                seen.extend(poll(&mut f).0);
                File::options().write(true).open(&log.path).unwrap().set_len(0).unwrap();
            }
            _ => {}
        }
        write(1 + round % 3);
        let (lines, stats) = poll(&mut f);
        seen.extend(lines);
        rotations += stats.rotations;
        truncations += stats.truncations;
    }
    assert_eq!(seen, range(1, next - 1));
    assert_eq!((rotations, truncations), (20, 10));
}

#[test]
fn a_partial_line_waits_for_its_end() {
    let log = Log::new();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    log.append_raw(b"photon-sdk[1234]: msg 1");
    assert_eq!(poll(&mut f).0, NONE);
    log.append_raw(b" ok\n");
    assert_eq!(poll(&mut f).0, [1]);
}

#[test]
fn a_partial_last_line_of_a_rotated_file_is_not_lost() {
    let log = Log::new();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    log.append(1..=1);
    log.append_raw(b"photon-sdk[1234]: msg 2 ok"); // the writer died mid-line
    assert_eq!(poll(&mut f).0, [1]);
    fs::rename(&log.path, log.sibling("old")).unwrap();
    log.append(3..=3);
    assert_eq!(poll(&mut f).0, [2, 3]);
}

#[test]
fn long_lines_are_cut_and_flagged() {
    let log = Log::new();
    let o = FollowOptions { max_line_bytes: 32, ..FollowOptions::default() };
    let mut f = Follower::new(&log.path, o).unwrap();
    let long = "x".repeat(100);
    log.append_raw(format!("{long}\nshort\n{long}").as_bytes());
    let mut out = Vec::new();
    let stats = f.poll(&mut out).unwrap();
    // The unfinished long line is emitted cut now: holding it back would need unbounded memory.
    assert_eq!(
        out,
        [
            Line { text: "x".repeat(32), truncated: true },
            Line { text: "short".into(), truncated: false },
            Line { text: "x".repeat(32), truncated: true },
        ]
    );
    assert_eq!(stats.cut_lines, 2);
    log.append_raw(format!("{long}\nnext\n").as_bytes());
    out.clear();
    f.poll(&mut out).unwrap();
    assert_eq!(out, [Line { text: "next".into(), truncated: false }], "the rest of the long line is dropped");
}

#[test]
fn invalid_utf8_is_kept_lossily() {
    let log = Log::new();
    let mut f = Follower::new(&log.path, FollowOptions::default()).unwrap();
    log.append_raw(b"loihi: bad \xc3\x28 byte\r\nnext\n");
    let mut out = Vec::new();
    f.poll(&mut out).unwrap();
    let texts: Vec<&str> = out.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["loihi: bad \u{FFFD}( byte", "next"]);
}

#[test]
fn a_flood_is_read_in_bounded_slices() {
    let log = Log::new();
    let budget = 4096;
    let o = FollowOptions { max_bytes_per_poll: budget, ..FollowOptions::default() };
    let mut f = Follower::new(&log.path, o).unwrap();
    log.append(1..=5000);
    let total = fs::metadata(&log.path).unwrap().len();
    let (mut seen, mut polls) = (Vec::new(), 0);
    loop {
        let (lines, stats) = poll(&mut f);
        polls += 1;
        assert!(stats.bytes <= budget as u64, "poll {polls} read {} bytes", stats.bytes);
        seen.extend(lines);
        if !stats.more_pending {
            break;
        }
        assert!(polls < 10_000);
    }
    assert_eq!(seen, range(1, 5000));
    assert_eq!(polls, total.div_ceil(budget as u64));
}

#[test]
fn a_flood_across_a_rotation_finishes_the_old_file_first() {
    let log = Log::created();
    let o = FollowOptions { max_bytes_per_poll: 1000, ..FollowOptions::default() };
    let mut f = Follower::new(&log.path, o).unwrap();
    log.append(1..=300);
    fs::rename(&log.path, log.sibling("old")).unwrap();
    log.append(301..=600);
    let mut seen = Vec::new();
    let mut rotations = 0;
    loop {
        let (lines, stats) = poll(&mut f);
        rotations += stats.rotations;
        if lines.is_empty() && !stats.more_pending {
            break;
        }
        seen.extend(lines);
    }
    assert_eq!(seen, range(1, 600));
    assert_eq!(rotations, 1);
}
