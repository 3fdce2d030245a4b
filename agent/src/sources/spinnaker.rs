//! SpiNNaker boards: every poll asks each frame's BMP for every board's VER and ADC, optionally each
//! board's SC&MP for VER, and each machine's spalloc server for its dead boards, links and jobs. The
//! results go into the snapshot; the device engine turns them into readings and conditions.
//!
//! A BMP or spalloc server that does not answer is a fact about the machine (boards Offline, spalloc
//! down), never a failure of the agent: every call has a deadline and the poll goes on.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use collectors::export::{Families, lv};
use collectors::spinnaker::{
    BoardStatus, Frame, JobState, PollOptions, RetryPolicy, ScpClient, ScpStats, SpallocClient, SpallocOptions,
    board_mask,
};
use config::Config;
use config::spinnaker::{SPALLOC_PORT, socket_addr};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::evidence::{Evidence, EvidenceTx};
use crate::publish::state::AgentState;

/// Pause between power off and power on, so the board really loses power.
const POWER_OFF_PAUSE: Duration = Duration::from_secs(1);

/// What the last poll learnt about one board.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoardReading {
    /// Its BMP answered VER as a BMP.
    pub bmp_alive: bool,
    /// The BMP's firmware as VER names it, e.g. "BC&MP/SpiNN-5 2.1.0".
    pub firmware: Option<String>,
    /// The board's serial number from its BMP (BMP_INFO 0), once read.
    pub serial: Option<String>,
    /// Whether the frame's first BMP sees this board's BMP on the CAN bus (BMP_INFO 2); None when that
    /// BMP did not answer.
    pub on_can: Option<bool>,
    /// Why the BMP (or its ADC read) failed.
    pub error: Option<String>,
    pub status: Option<BoardStatus>,
    /// The SC&MP probe: None when not configured or the BMP is down; Some(Err) when the board did not
    /// answer (not booted).
    pub scamp: Option<Result<String, String>>,
    /// spalloc lists the board among its machine's dead boards; None when spalloc was not asked.
    pub dead_in_spalloc: Option<bool>,
}

/// What spalloc said about a machine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineReport {
    pub spalloc_up: bool,
    pub error: Option<String>,
    pub dead_boards: Option<usize>,
    pub dead_links: Option<usize>,
    /// Jobs on this machine by state.
    pub jobs: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpinnakerSnapshot {
    /// By device id.
    pub boards: BTreeMap<String, BoardReading>,
    /// By machine name, for machines with a spalloc server.
    pub machines: BTreeMap<String, MachineReport>,
    /// SCP counters since the agent started.
    pub scp: ScpStats,
    pub poll_duration: Option<Duration>,
}

/// The SCP timing the config asks for.
pub fn retry_policy(config: &Config) -> RetryPolicy {
    RetryPolicy { timeout: config.spinnaker.timeout.get(), attempts: config.spinnaker.tries, ..RetryPolicy::default() }
}

/// Off, a pause, then on; each command to board 0 of the frame with the board's bit set.
pub async fn power_cycle(policy: RetryPolicy, bmp: SocketAddr, board: u8) -> Result<(), String> {
    let client = ScpClient::new(policy).await.map_err(|e| e.to_string())?;
    let mask = board_mask(&[board]);
    client.power(bmp, mask, false, 0).await.map_err(|e| format!("power off: {e}"))?;
    tokio::time::sleep(POWER_OFF_PAUSE).await;
    client.power(bmp, mask, true, 0).await.map_err(|e| format!("power on: {e}"))?;
    Ok(())
}

/// One board as the poller sees it.
struct Board {
    id: String,
    bmp: SocketAddr,
    board: u8,
    scamp: Option<SocketAddr>,
    /// (machine, cabinet, frame) for matching spalloc's dead boards.
    place: Option<(String, u32, u32)>,
}

fn boards(config: &Config) -> Vec<Board> {
    config
        .devices
        .iter()
        .filter_map(|d| {
            let b = d.bmp.as_ref()?;
            Some(Board {
                id: d.id.clone(),
                bmp: b.bmp_addr()?,
                board: b.board,
                scamp: b.scamp_addr(),
                place: b.machine.clone().map(|m| (m, b.cabinet, b.frame)),
            })
        })
        .collect()
}

fn frames(boards: &[Board]) -> Vec<Frame> {
    let mut frames: BTreeMap<SocketAddr, Vec<u8>> = BTreeMap::new();
    for b in boards {
        frames.entry(b.bmp).or_default().push(b.board);
    }
    frames.into_iter().map(|(addr, boards)| Frame { addr, boards }).collect()
}

/// Starts the poll loop when the config has boards; it stops with `shutdown`.
pub fn spawn(
    config: &Config,
    evidence: &EvidenceTx,
    state: &Arc<AgentState>,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let boards = boards(config);
    if boards.is_empty() {
        state.publish_spinnaker(SpinnakerSnapshot::default());
        return;
    }
    let interval = config.spinnaker.interval.unwrap_or(config.poll_interval).get();
    let policy = retry_policy(config);
    let spalloc: Vec<(String, String)> =
        config.spinnaker.machines.iter().filter_map(|m| Some((m.name.clone(), m.spalloc.clone()?))).collect();
    let (evidence, state, shutdown) = (evidence.clone(), Arc::clone(state), shutdown.clone());
    tasks.spawn(async move {
        let client = match ScpClient::new(policy).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("SpiNNaker boards not polled: cannot open the SCP socket: {e}");
                return;
            }
        };
        let frames = frames(&boards);
        let mut poller = Poller {
            client,
            frames,
            boards,
            spalloc,
            clients: HashMap::new(),
            where_is: HashMap::new(),
            firmware: HashMap::new(),
            serials: HashMap::new(),
        };
        // Counters go on from the previous config's poller: a reload is not a counter reset.
        let base = state.snapshot().spinnaker.scp;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let started = Instant::now();
            // A poll never outlasts its interval: the next one starts on time with fresh answers.
            let deadline = interval.mul_f64(0.9);
            let mut snap = tokio::select! {
                s = poller.poll(deadline) => s,
                _ = shutdown.cancelled() => break,
            };
            snap.scp = base + poller.client.stats();
            snap.poll_duration = Some(started.elapsed());
            state.publish_spinnaker(snap);
            evidence.send(Evidence::Readings);
        }
    });
}

/// (cabinet, frame, board)
type Place = (u32, u32, u32);

/// A dead board by machine and physical place.
type DeadBoard = (String, u32, u32, u32);

struct Poller {
    client: ScpClient,
    /// The boards grouped by BMP, as every poll asks them.
    frames: Vec<Frame>,
    boards: Vec<Board>,
    /// (machine, spalloc server)
    spalloc: Vec<(String, String)>,
    /// One connection per spalloc server, kept between polls.
    clients: HashMap<String, SpallocClient>,
    /// (machine, x, y, z) -> (cabinet, frame, board), from spalloc's where_is; positions do not move.
    where_is: HashMap<(String, u32, u32, u32), Option<Place>>,
    /// The last firmware each board's BMP reported.
    firmware: HashMap<(SocketAddr, u8), String>,
    /// Serial numbers read so far; a board's is asked for until its BMP gives it.
    serials: HashMap<(SocketAddr, u8), String>,
}

impl Poller {
    async fn poll(&mut self, deadline: Duration) -> SpinnakerSnapshot {
        let options = PollOptions { deadline: Some(deadline), ..PollOptions::default() };
        let polls = self.client.poll_frames(&self.frames, &options).await;
        let mut by_board: HashMap<(SocketAddr, u8), BoardReading> = HashMap::new();
        for p in polls {
            let alive = p.alive();
            // The last firmware seen stays while the BMP is silent: the info series keeps its labels.
            if let Ok(v) = &p.version
                && v.is_bmp()
            {
                self.firmware.insert((p.addr, p.board), format!("{} {}", v.text, v.version));
            }
            let firmware = self.firmware.get(&(p.addr, p.board)).cloned();
            let (status, error) = match (p.version, p.status) {
                (Err(e), _) => (None, Some(e.to_string())),
                (Ok(_), Ok(s)) => (Some(s), None),
                (Ok(_), Err(e)) => (None, Some(format!("ADC: {e}"))),
            };
            by_board.insert(
                (p.addr, p.board),
                BoardReading { bmp_alive: alive, firmware, error, status, ..Default::default() },
            );
        }
        // SC&MP only where the BMP is up: a board behind a silent BMP is Offline anyway.
        let mut scamp = JoinSet::new();
        for b in &self.boards {
            if let Some(addr) = b.scamp
                && by_board.get(&(b.bmp, b.board)).is_some_and(|r| r.bmp_alive)
            {
                let (client, id) = (self.client.clone(), b.id.clone());
                scamp.spawn(async move {
                    let answer = tokio::time::timeout(deadline, client.ver(addr, 0)).await;
                    let result = match answer {
                        Ok(Ok(v)) if !v.is_bmp() => Ok(v.text),
                        Ok(Ok(v)) => Err(format!("{addr} answered as a BMP ({})", v.text)),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!("{addr}: no answer within {deadline:?}")),
                    };
                    (id, result)
                });
            }
        }
        let mut scamp_results: HashMap<String, Result<String, String>> = HashMap::new();
        while let Some(Ok((id, r))) = scamp.join_next().await {
            scamp_results.insert(id, r);
        }
        let can = self.ask_bmps(&by_board, deadline).await;
        let (machines, dead) = self.ask_spalloc().await;
        let mut snap = SpinnakerSnapshot { machines, ..Default::default() };
        for b in &self.boards {
            let mut r = by_board
                .remove(&(b.bmp, b.board))
                .unwrap_or_else(|| BoardReading { error: Some("not polled".into()), ..Default::default() });
            r.scamp = scamp_results.remove(&b.id);
            r.serial = self.serials.get(&(b.bmp, b.board)).cloned();
            r.on_can = can.get(&b.bmp).map(|seen| seen.get(usize::from(b.board)).copied().unwrap_or(false));
            if let Some((machine, cabinet, frame)) = &b.place
                && snap.machines.get(machine).is_some_and(|m| m.spalloc_up)
            {
                r.dead_in_spalloc = Some(dead.contains(&(machine.clone(), *cabinet, *frame, u32::from(b.board))));
            }
            snap.boards.insert(b.id.clone(), r);
        }
        snap
    }

    /// Serial numbers not yet known (once per board: they do not change), and from the first board of each
    /// frame whose BMP answered, which boards are on the frame's CAN bus. Returns the CAN status by BMP.
    async fn ask_bmps(
        &mut self,
        by_board: &HashMap<(SocketAddr, u8), BoardReading>,
        deadline: Duration,
    ) -> HashMap<SocketAddr, Vec<bool>> {
        let alive = |addr: SocketAddr, board: u8| by_board.get(&(addr, board)).is_some_and(|r| r.bmp_alive);
        // One serial request per frame and poll, on top of the poll's own: the frame's BMP forwards
        // over CAN with few buffers, and the serials are only needed once.
        let mut serials = JoinSet::new();
        for f in &self.frames {
            let missing = f.boards.iter().find(|b| !self.serials.contains_key(&(f.addr, **b)) && alive(f.addr, **b));
            if let Some(&board) = missing {
                let (client, addr) = (self.client.clone(), f.addr);
                serials.spawn(async move {
                    let serial = tokio::time::timeout(deadline, client.serial(addr, board)).await;
                    ((addr, board), serial.ok().and_then(Result::ok))
                });
            }
        }
        let mut can = JoinSet::new();
        for f in &self.frames {
            if let Some(&board) = f.boards.iter().find(|b| alive(f.addr, **b)) {
                let (client, addr) = (self.client.clone(), f.addr);
                can.spawn(async move { (addr, tokio::time::timeout(deadline, client.can_status(addr, board)).await) });
            }
        }
        while let Some(Ok((key, serial))) = serials.join_next().await {
            if let Some(s) = serial {
                self.serials.insert(key, s.serial_string());
            }
        }
        let mut out = HashMap::new();
        while let Some(Ok((addr, status))) = can.join_next().await {
            if let Ok(Ok(seen)) = status {
                out.insert(addr, seen);
            }
        }
        out
    }

    /// Asks every machine's spalloc server; returns the reports and the dead boards' physical places.
    async fn ask_spalloc(&mut self) -> (BTreeMap<String, MachineReport>, std::collections::HashSet<DeadBoard>) {
        let mut reports = BTreeMap::new();
        let mut dead = std::collections::HashSet::new();
        for (machine, server) in self.spalloc.clone() {
            let server = match socket_addr(&server, SPALLOC_PORT) {
                Some(a) => a.to_string(),
                None if server.contains(':') => server,
                None => format!("{server}:{SPALLOC_PORT}"),
            };
            let client = self
                .clients
                .entry(server.clone())
                .or_insert_with(|| SpallocClient::new(&server, SpallocOptions::default()));
            let report = match spalloc_report(client, &machine).await {
                Ok((report, dead_boards)) => {
                    for [x, y, z] in dead_boards {
                        let key = (machine.clone(), x, y, z);
                        if !self.where_is.contains_key(&key) {
                            let args = json!({"machine": machine, "x": x, "y": y, "z": z});
                            let place = client.call("where_is", args).await.ok().and_then(|v| {
                                let p = v.get("physical")?.as_array()?.clone();
                                let n = |i: usize| p.get(i).and_then(serde_json::Value::as_u64).map(|v| v as u32);
                                Some((n(0)?, n(1)?, n(2)?))
                            });
                            self.where_is.insert(key.clone(), place);
                        }
                        if let Some(Some((c, f, b))) = self.where_is.get(&key) {
                            dead.insert((machine.clone(), *c, *f, *b));
                        }
                    }
                    report
                }
                Err(e) => MachineReport { spalloc_up: false, error: Some(e), ..Default::default() },
            };
            reports.insert(machine, report);
        }
        (reports, dead)
    }
}

async fn spalloc_report(client: &mut SpallocClient, machine: &str) -> Result<(MachineReport, Vec<[u32; 3]>), String> {
    let machines = client.list_machines().await.map_err(|e| e.to_string())?;
    let jobs = client.list_jobs().await.map_err(|e| e.to_string())?;
    let m = machines.iter().find(|m| m.name == machine);
    let mut by_state: BTreeMap<&'static str, usize> = JobState::LISTED.iter().map(|s| (s.as_str(), 0)).collect();
    // A queued job has no machine yet: it counts under each machine the server queues it on. A state
    // no server lists (see JobState::LISTED) is not counted.
    for j in jobs.iter().filter(|j| JobState::LISTED.contains(&j.state) && j.machines(&machines).contains(&machine)) {
        *by_state.entry(j.state.as_str()).or_default() += 1;
    }
    let report = MachineReport {
        spalloc_up: true,
        error: m.is_none().then(|| format!("spalloc does not list a machine named {machine:?}")),
        dead_boards: m.map(|m| m.dead_boards.len()),
        dead_links: m.map(|m| m.dead_links.len()),
        jobs: by_state,
    };
    Ok((report, m.map(|m| m.dead_boards.clone()).unwrap_or_default()))
}

/// The accel_spinnaker_* families.
pub fn export(snap: &SpinnakerSnapshot, out: &mut Families) {
    for (id, b) in &snap.boards {
        if let Some(serial) = &b.serial {
            out.gauge(
                "accel_spinnaker_board_info",
                "1 for each board whose BMP has given its serial number (the LPC1768's, BMP_INFO 0)",
                vec![("device", lv(id)), ("serial", lv(serial))],
                1.0,
            );
        }
        if let Some(on) = b.on_can {
            out.gauge(
                "accel_spinnaker_board_on_can",
                "Whether the frame's BMP sees the board's BMP on the frame's CAN bus (BMP_INFO 2)",
                vec![("device", lv(id))],
                f64::from(u8::from(on)),
            );
        }
        if let Some(s) = &b.status {
            let d = vec![("device", lv(id))];
            out.gauge(
                "accel_spinnaker_board_warning_bits",
                "The BMP's warning word for the board, as reported (bits per the BMP firmware)",
                d.clone(),
                f64::from(s.warning),
            );
            out.gauge(
                "accel_spinnaker_board_shutdown_bits",
                "The BMP's shutdown word for the board, as reported (bits per the BMP firmware)",
                d,
                f64::from(s.shutdown),
            );
        }
    }
    for (name, m) in &snap.machines {
        let machine = vec![("machine", lv(name))];
        out.gauge(
            "accel_spinnaker_spalloc_up",
            "Whether the machine's spalloc server answered the last poll",
            machine.clone(),
            f64::from(u8::from(m.spalloc_up)),
        );
        if let Some(n) = m.dead_boards {
            out.gauge("accel_spinnaker_machine_dead_boards", "Boards spalloc lists as dead", machine.clone(), n as f64);
        }
        if let Some(n) = m.dead_links {
            out.gauge("accel_spinnaker_machine_dead_links", "Links spalloc lists as dead", machine.clone(), n as f64);
        }
        if m.spalloc_up {
            for (state, n) in &m.jobs {
                out.gauge(
                    "accel_spinnaker_jobs",
                    "spalloc jobs on the machine by state",
                    vec![("machine", lv(name)), ("state", lv(state))],
                    *n as f64,
                );
            }
        }
    }
    if snap.boards.is_empty() {
        return;
    }
    let s = snap.scp;
    for (kind, n) in [
        ("sent", s.sent),
        ("retry", s.retries),
        ("timeout", s.timeouts),
        ("reply", s.replies),
        ("error_reply", s.error_replies),
        ("malformed", s.malformed),
        ("foreign", s.foreign),
        ("late_or_duplicate", s.late_or_duplicate),
    ] {
        out.counter(
            "accel_spinnaker_scp_packets_total",
            "SCP datagrams by what happened to them: sent (with retries), timeouts, and received (replies, \
             error replies, malformed, foreign, late or duplicate; all but replies are dropped)",
            vec![("kind", lv(kind))],
            n as f64,
        );
    }
    if let Some(d) = snap.poll_duration {
        out.gauge(
            "accel_spinnaker_poll_duration_seconds",
            "How long the last poll of every BMP, SC&MP and spalloc server took",
            vec![],
            d.as_secs_f64(),
        );
    }
}
