//! The engine's tests: what a device looks like, and what may be done to it, at the times passed in.

use std::time::{Instant, SystemTime};

use collectors::probes::ReadingKind;

use crate::model::diagnostics::{Decision, Report};
use crate::model::host::HostEvidence;
use crate::model::view::{LogUpdate, ProbeResult, ProbeState};
use crate::model::window_set::{OpenWindow, WindowChange};

use super::device::*;
use super::state::*;
use crate::model::State;

/// A status probe that read 95 °C.
fn hot_probe() -> ProbeResult {
    ProbeResult {
        probe: "status".into(),
        status: ProbeState::Ok,
        success: true,
        sdk_problem: false,
        duration: std::time::Duration::ZERO,
        message: String::new(),
        readings: vec![(ReadingKind::Temperature, 95.0)],
        not_run: None,
    }
}

#[test]
fn maintenance_overrides_the_state_until_it_ends() {
    let cfg = config::parse_str("[[device]]\nid = \"d0\"\nkind = \"generic\"\n", "t.toml").unwrap();
    let wall = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let mut e = DeviceEngine::new(&cfg, Instant::now(), wall);
    assert_eq!(e.views(wall)[0].state, State::Unknown);
    e.set_maintenance("d0", true, Some(wall + std::time::Duration::from_secs(3600))).unwrap();
    let v = &e.views(wall)[0];
    assert_eq!((v.state, v.maintenance), (State::Maintenance, true));
    e.set_maintenance("d0", true, Some(wall - std::time::Duration::from_secs(1))).unwrap();
    assert_eq!(e.views(wall)[0].state, State::Unknown, "an end in the past");
    e.set_maintenance("d0", true, None).unwrap();
    assert_eq!(e.views(wall)[0].state, State::Maintenance, "no end: until turned off");
    e.set_maintenance("d0", false, None).unwrap();
    assert_eq!(e.views(wall)[0].state, State::Unknown);
    let err = e.set_maintenance("nope", true, None).unwrap_err();
    assert_eq!(err.to_string(), "no device \"nope\"; known devices: d0");
}

/// The model reads no clock: what a device looks like, and whether it may be throttled, depend only on
/// the times its caller passes in. A maintenance window ending at T holds at T-1s and not at T+1s,
/// however far the real clock is from T.
#[test]
fn maintenance_is_judged_at_the_time_passed_in() {
    let cfg = config::parse_str(
        "[[device]]\nid = \"d0\"\nkind = \"generic\"\n\
         [device.thresholds]\ntemperature_warn = 100.0\ntemperature_crit = 110.0\n\
         [device.throttle]\nthreshold = 80.0\nhold = \"0s\"\n\
         [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 1 }\n",
        "t.toml",
    )
    .unwrap();
    // Far from the real clock on purpose: a hidden SystemTime::now() would see the window long over.
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let second = std::time::Duration::from_secs(1);
    let t0 = Instant::now();
    let mut e = DeviceEngine::new(&cfg, t0, t - 10 * second);
    e.set_maintenance("d0", true, Some(t)).unwrap();
    e.apply_probe("d0", hot_probe(), t0, t - 2 * second);

    let before = &e.views(t - second)[0];
    assert_eq!((before.state, before.maintenance), (State::Maintenance, true), "at T-1s");
    assert_eq!(e.throttle_requests(|_| 0, t0, t - second), vec![], "no throttling in maintenance");

    let after = &e.views(t + second)[0];
    assert_eq!((after.state, after.maintenance), (State::Healthy, false), "at T+1s");
    assert_eq!(e.throttle_requests(|_| 0, t0 + second, t + second), vec![("d0".to_owned(), 1)]);
}

/// A maintenance window holds the devices it names while open, as manual maintenance does (state,
/// no throttling), says why and until when, and is told apart from manual maintenance: turning that
/// off leaves the window's hold. All at the times passed in.
#[test]
fn a_maintenance_window_holds_its_devices_while_open() {
    let device = |id: &str| {
        format!(
            "[[device]]\nid = \"{id}\"\nkind = \"generic\"\n\
             [device.thresholds]\ntemperature_warn = 100.0\ntemperature_crit = 110.0\n\
             [device.throttle]\nthreshold = 80.0\nhold = \"0s\"\n\
             [[device.throttle.level]]\ncooling_device = {{ device = \"cooling_device0\", state = 1 }}\n"
        )
    };
    let window = "[[maintenance.window]]\nname = \"sunday-night\"\ndays = [\"sun\"]\nstart = \"02:00\"\n\
                  duration = \"2h\"\ntimezone = \"UTC\"\ndevices = [\"d0\"]\n";
    let cfg = config::parse_str(&format!("{}{}{window}", device("d0"), device("d1")), "t.toml").unwrap();
    let at = |s: &str| SystemTime::from(s.parse::<jiff::Timestamp>().unwrap());
    let (before, inside, end) = (at("2026-12-06T01:59:00Z"), at("2026-12-06T03:00:00Z"), at("2026-12-06T04:00:00Z"));
    let t0 = Instant::now();
    let mut e = DeviceEngine::new(&cfg, t0, before);
    for id in ["d0", "d1"] {
        e.apply_probe(id, hot_probe(), t0, before);
    }
    assert_eq!(e.window_changes(before), vec![]);
    assert_eq!(e.views(before)[0].state, State::Healthy);

    assert_eq!(
        e.window_changes(inside),
        vec![WindowChange::Opened {
            name: "sunday-night".into(),
            devices: vec!["d0".into()],
            until: end,
            until_local: "Sun 04:00 UTC".into()
        }]
    );
    assert_eq!(e.window_changes(inside), vec![], "told once");
    assert_eq!(e.window_devices(&["d0".to_owned()]), vec!["d0".to_owned()]);
    let views = e.views(inside);
    let (d0, d1) = (&views[0], &views[1]);
    assert_eq!((d0.state, d0.maintenance, d0.maintenance_manual), (State::Maintenance, true, false));
    assert_eq!(
        d0.maintenance_windows.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["maintenance window sunday-night until Sun 04:00 UTC"]
    );
    assert_eq!((d1.state, d1.maintenance), (State::Healthy, false), "a device the window does not name");
    assert_eq!(e.throttle_requests(|_| 0, t0, inside), vec![("d1".to_owned(), 1)], "d0 is not throttled");
    let started = at("2026-12-06T02:00:00Z");
    assert_eq!(e.open_windows("d0", inside), vec![OpenWindow { name: "sunday-night".into(), started, ends: end }]);
    assert_eq!(e.open_windows("d1", inside), vec![]);
    assert_eq!(e.open_windows("nope", inside), vec![], "an unknown device");

    // Manual maintenance on and off again: the window still holds.
    e.set_maintenance("d0", true, None).unwrap();
    assert!(e.views(inside)[0].maintenance_manual);
    e.set_maintenance("d0", false, None).unwrap();
    let d0 = &e.views(inside)[0];
    assert_eq!((d0.state, d0.maintenance_manual, d0.maintenance_windows.len()), (State::Maintenance, false, 1));
    assert_eq!(e.window_holds("d0", inside)[0].until, end);

    // The end is not inside: the device is back to what its evidence says, and may be throttled.
    let closed = vec![WindowChange::Closed { name: "sunday-night".into(), devices: vec!["d0".into()] }];
    assert_eq!(e.window_changes(end), closed);
    assert_eq!(e.views(end)[0].state, State::Healthy);
    assert_eq!(e.throttle_requests(|d| usize::from(d == "d1"), t0, end), vec![("d0".to_owned(), 1)]);
    let status = e.window_views(end);
    assert_eq!((status[0].active, status[0].next_start), (false, Some(at("2026-12-13T02:00:00Z"))));
}

/// A diagnostic that names a window runs once per occurrence of it, at its local start across a
/// daylight-saving change, and only on the devices the window covers.
#[test]
#[cfg_attr(not(has_tzdata), ignore = "needs the tz database (Debian package tzdata)")]
fn a_window_runs_its_diagnostics_once_per_occurrence_across_a_dst_change() {
    let cfg = config::parse_str(
        "[diagnostics]\nenabled = true\nconcurrency = 2\n\
         [[maintenance.window]]\nname = \"night\"\ndays = [\"sun\"]\nstart = \"01:30\"\n\
         duration = \"2h\"\ntimezone = \"America/New_York\"\ndevices = [\"p0\"]\n\
         [[device]]\nid = \"p0\"\nkind = \"photonic\"\n\
         [[device.diagnostic]]\nname = \"deep\"\nlevel = 3\nargv = [\"check\", \"{id}\"]\nwindows = [\"night\"]\n\
         [[device]]\nid = \"p1\"\nkind = \"photonic\"\n\
         [[device.diagnostic]]\nname = \"deep\"\nlevel = 3\nargv = [\"check\", \"{id}\"]\n",
        "t.toml",
    )
    .unwrap();
    let at = |s: &str| SystemTime::from(s.parse::<jiff::Timestamp>().unwrap());
    let t0 = Instant::now();
    // 25 October 2026 is summer time (EDT, UTC-4); 1 November, the clocks go back at 02:00 EDT, and
    // 01:30 happens twice: the window starts at the first (EDT), 05:30 UTC.
    let (before, summer, autumn) = (at("2026-10-25T05:00:00Z"), at("2026-10-25T05:31:00Z"), at("2026-11-01T05:31:00Z"));
    let mut e = DeviceEngine::new(&cfg, t0, before);
    assert_eq!(e.diagnostics_in_windows(before), vec![], "not open yet");
    let queued = |e: &mut DeviceEngine, wall| {
        e.diagnostics_in_windows(wall).into_iter().map(|(d, n, w)| format!("{d} {n} {w}")).collect::<Vec<_>>()
    };
    assert_eq!(queued(&mut e, summer), ["p0 deep night"], "p1's diagnostic names no window over p1");
    let started = |e: &mut DeviceEngine, wall| {
        e.diagnostic_decisions(|_| 0, wall)
            .into_iter()
            .map(|d| match d {
                Decision::Start(s) => format!("{} {} ({})", s.device, s.argv.join(" "), s.trigger),
                other => panic!("{other:?}"),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(started(&mut e, summer), ["p0 check p0 (in maintenance window night)"]);
    let report = Report {
        device: "p0".into(),
        name: "deep".into(),
        outcome: crate::model::diagnostics::Outcome::Passed,
        duration: std::time::Duration::from_secs(60),
        remedy: None,
        fault: None,
    };
    e.diagnostic_finished(&report, t0, summer + std::time::Duration::from_secs(60));
    assert_eq!(
        queued(&mut e, summer + std::time::Duration::from_secs(120)),
        Vec::<String>::new(),
        "once per occurrence"
    );
    assert_eq!(queued(&mut e, at("2026-11-01T05:29:00Z")), Vec::<String>::new(), "01:29 EDT: not yet");
    assert_eq!(queued(&mut e, autumn), ["p0 deep night"], "the next Sunday's occurrence, at 01:30 EDT");
}

/// A reload that removes an open window closes it (once); one that keeps its name does not reopen it.
#[test]
fn a_reload_keeps_an_open_window_open_and_closes_a_removed_one() {
    let window = "[[maintenance.window]]\nname = \"w\"\ndays = [\"sun\"]\nstart = \"02:00\"\nduration = \"2h\"\n\
                  timezone = \"UTC\"\n";
    let cfg = config::parse_str(window, "t.toml").unwrap();
    let inside = SystemTime::from("2026-12-06T03:00:00Z".parse::<jiff::Timestamp>().unwrap());
    let mut e = DeviceEngine::new(&cfg, Instant::now(), inside);
    assert_eq!(e.window_changes(inside).len(), 1);
    e.reconfigure(&config::parse_str(&window.replace("2h", "3h"), "t.toml").unwrap(), Instant::now(), inside);
    assert_eq!(e.window_changes(inside), vec![]);
    e.reconfigure(&config::Config::default(), Instant::now(), inside);
    assert_eq!(e.window_changes(inside), vec![WindowChange::Closed { name: "w".into(), devices: vec![] }]);
    assert_eq!(e.window_views(inside), vec![]);
}

/// A reload carries everything learnt about a device across, whole: the learnt state is compared as
/// a whole (Debug of `Learnt`), so a field added to it later is covered without touching this test.
#[test]
fn a_reload_keeps_everything_learnt() {
    let toml = "[[device]]\nid = \"d0\"\nkind = \"generic\"\nmodel = \"A\"\n\
         [device.thresholds]\ntemperature_warn = 80.0\ntemperature_crit = 95.0\npower_max = 100.0\n\
         energy_per_inference_max = 0.005\n\
         [[device.probe]]\nname = \"sdk\"\ncommand = [\"sdk-status\"]\noffline_after = 1\n\
         [[device.log]]\npath = \"/var/log/d0.log\"\n\
         [[device.log.rule]]\nname = \"err\"\npattern = \"error\"\naction = \"LogErrors\"\nlatch = true\n\
         [device.throttle]\nthreshold = 80.0\nhold = \"10s\"\n\
         [[device.throttle.level]]\ncooling_device = { device = \"cooling_device0\", state = 1 }\n\
         [device.reconnect]\nsteps = [\"vendor\"]\ncommand = [\"vendor-reconnect\"]\nsettle = \"5s\"\n";
    let cfg = config::parse_str(toml, "t.toml").unwrap();
    let s = std::time::Duration::from_secs(1);
    let (t0, w0) = (Instant::now(), SystemTime::UNIX_EPOCH + 1_700_000_000 * s);
    let at = |t: u32| (t0 + t * s, w0 + t * s);
    let mut e = DeviceEngine::new(&cfg, t0, w0);
    let probe = |status: ProbeState, readings: Vec<(ReadingKind, f64)>| ProbeResult {
        probe: "sdk".into(),
        status,
        success: status == ProbeState::Ok,
        sdk_problem: false,
        duration: std::time::Duration::from_millis(30),
        message: String::new(),
        readings,
        not_run: None,
    };
    // Readings, counters and an energy per inference; a burst of log lines; a pending throttle step.
    for (t, joules, inferences) in [(1, 100.0, 1000.0), (2, 106.0, 2000.0)] {
        let readings = vec![
            (ReadingKind::Temperature, 90.0),
            (ReadingKind::Power, 120.0),
            (ReadingKind::Energy, joules),
            (ReadingKind::Inferences, inferences),
        ];
        let (now, wall) = at(t);
        e.apply_probe("d0", probe(ProbeState::Ok, readings), now, wall);
        e.evaluate(&HostEvidence::default(), now, wall);
        e.throttle_requests(|_| 0, now, wall);
    }
    let burst = collectors::logs::Signal::ConditionSet {
        rule: "err".into(),
        condition: "LogErrors".into(),
        count_in_window: 5,
    };
    let update = LogUpdate {
        source: "log:/var/log/d0.log".into(),
        lines: 40,
        matches: vec![("err".into(), 7)],
        signals: vec![burst],
    };
    e.apply_log("d0", update, at(3).0, at(3).1);
    // Offline, one reconnect attempt that failed, a second one in flight.
    for t in [4, 9, 20] {
        let (now, wall) = at(t);
        e.apply_probe("d0", probe(ProbeState::Failed, Vec::new()), now, wall);
        e.reconnect_decisions(now, wall);
    }
    e.set_maintenance("d0", true, Some(at(3600).1)).unwrap();
    e.set_manual_throttle("d0", Some(1), Some(at(7200).1)).unwrap();

    let learnt = |e: &DeviceEngine| format!("{:#?}", e.devices[0].learnt);
    let before = learnt(&e);
    for (what, needle) in [
        ("a log match count", "\"err\": 7"),
        ("a latched log condition", "latched: true"),
        ("a throttle ladder", "ThrottleLadder"),
        ("a pending throttle step (the judgement it waits on: over the threshold)", "Over,"),
        ("a reconnect attempt", "Vendor"),
        ("an energy per inference", "energy_per_inference: Some("),
        ("maintenance", "maintenance: Some("),
    ] {
        assert!(before.contains(needle), "the test must have learnt {what}:\n{before}");
    }
    let views_before = e.views(at(21).1);

    let (now, wall) = at(21);
    e.reconfigure(&cfg, now, wall);
    assert_eq!(learnt(&e), before, "a reload with the same config");

    // A changed config that does not touch what was learnt goes through the rebuild, and still keeps it.
    let renamed = config::parse_str(&toml.replace("model = \"A\"", "model = \"B\""), "t.toml").unwrap();
    e.reconfigure(&renamed, now, wall);
    assert_eq!(learnt(&e), before, "a reload with a changed model");
    let views_after = e.views(at(21).1);
    assert_eq!(views_after[0].model, "B");
    let (b, a) = (&views_before[0], &views_after[0]);
    assert_eq!(
        (&a.conditions, &a.log_matches, &a.probes, &a.reconnect_attempts, a.state, a.circuit),
        (&b.conditions, &b.log_matches, &b.probes, &b.reconnect_attempts, b.state, b.circuit)
    );

    // New thresholds: the trackers start afresh (their pending transitions were against the old
    // numbers), and so does the throttle, whose threshold of 80 is no longer the warning's: it gets a
    // tracker of its own. Everything else is kept.
    let warmer =
        config::parse_str(&toml.replace("temperature_warn = 80.0", "temperature_warn = 85.0"), "t.toml").unwrap();
    let old = e.devices[0].learnt.clone();
    e.reconfigure(&warmer, now, wall);
    let mut kept = e.devices[0].learnt.clone();
    assert_ne!(format!("{:?}", kept.trackers), format!("{:?}", old.trackers), "fresh trackers");
    kept.trackers = old.trackers;
    assert!(matches!(kept.throttle.as_ref().map(|t| &t.judge), Some(ThrottleJudge::Own(_))), "{:?}", kept.throttle);
    kept.throttle = old.throttle;
    assert_eq!(format!("{kept:#?}"), before, "everything but the trackers and the throttle is kept");
}
