//! SpiNNaker boards: every poll asks each frame's BMP for every board's VER and ADC, optionally each
//! board's SC&MP for VER, and each machine's spalloc server for its dead boards, links and jobs. The
//! results go into the snapshot; the device engine turns them into readings and conditions.
//!
//! A BMP or spalloc server that does not answer is a fact about the machine (boards Offline, spalloc
//! down), never a failure of the agent: every call has a deadline and the poll goes on.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use collectors::spinnaker::{
    Frame, JobState, PollOptions, RestAuth, RestError, RestOptions, ScpClient, ScpStats, SpallocClient, SpallocError,
    SpallocOptions, SpallocRestClient,
};
use config::Config;
use config::spinnaker::{SPALLOC_PORT, socket_addr};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::model::evidence::{Evidence, EvidenceTx};
pub use crate::model::spinnaker::{BoardReading, MachineReport, SpinnakerSnapshot};
use crate::model::spinnaker::{ScampError, retry_policy};

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
    base: ScpStats,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    let boards = boards(config);
    if boards.is_empty() {
        evidence.send(Evidence::Spinnaker(Arc::new(SpinnakerSnapshot::default())));
        return;
    }
    let interval = config.spinnaker.interval.unwrap_or(config.poll_interval).get();
    let policy = retry_policy(config);
    let spalloc: Vec<Spalloc> = config.spinnaker.machines.iter().filter_map(Spalloc::of).collect();
    let (evidence, shutdown) = (evidence.clone(), shutdown.clone());
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
            rest: HashMap::new(),
        };
        // Counters go on from the previous config's poller (`base`): a reload is not a counter reset.
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
            evidence.send(Evidence::Spinnaker(Arc::new(snap)));
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
    spalloc: Vec<Spalloc>,
    /// One REST client (its session) per machine, kept between polls; made again after an error that
    /// may mean the credentials changed.
    rest: HashMap<String, SpallocRestClient>,
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
                        Ok(Ok(v)) => Err(ScampError::AnsweredAsBmp { addr, version: v.text }),
                        Ok(Err(e)) => Err(ScampError::Scp(e.to_string())),
                        Err(_) => Err(ScampError::NoAnswer { addr, deadline }),
                    };
                    (id, result)
                });
            }
        }
        let mut scamp_results: HashMap<String, Result<String, ScampError>> = HashMap::new();
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
        for source in self.spalloc.clone() {
            let (machine, server) = match source {
                Spalloc::V1 { machine, server } => (machine, server),
                Spalloc::Rest { machine, url, ca_file, credentials } => {
                    let report = match self.ask_rest(&machine, &url, ca_file, &credentials).await {
                        Ok((report, places)) => {
                            dead.extend(places.into_iter().map(|(c, f, b)| (machine.clone(), c, f, b)));
                            report
                        }
                        Err(e) => unreachable_report(&e),
                    };
                    reports.insert(machine, report);
                    continue;
                }
            };
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
                Err(e) => unreachable_report(&e),
            };
            reports.insert(machine, report);
        }
        (reports, dead)
    }
}

impl Poller {
    /// One machine from the Java spalloc service: the report, and the dead boards' (cabinet, frame,
    /// board), which the service lists with each dead board.
    async fn ask_rest(
        &mut self,
        machine: &str,
        url: &str,
        ca_file: Option<PathBuf>,
        credentials: &Credentials,
    ) -> Result<(MachineReport, Vec<Place>), AskError> {
        let client = match self.rest.entry(machine.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let auth = credentials.read()?;
                let mut options = RestOptions::default();
                if let Some(ca) = ca_file {
                    options.ca_file = ca;
                }
                e.insert(SpallocRestClient::new(url, auth, options)?)
            }
        };
        let result = async {
            let machines = client.list_machines().await?;
            let jobs = client.list_jobs().await?;
            Ok::<_, RestError>((machines, jobs))
        }
        .await;
        let (machines, jobs) = match result {
            Ok(r) => r,
            Err(e) => {
                // A refused login may be fixed by new credentials: read them again next poll.
                if matches!(e, RestError::Login { .. } | RestError::Ca { .. }) {
                    self.rest.remove(machine);
                }
                return Err(e.into());
            }
        };
        let m = machines.iter().find(|m| m.name == machine);
        let mut by_state: BTreeMap<&'static str, usize> = JobState::LISTED.iter().map(|s| (s.as_str(), 0)).collect();
        for j in jobs.iter().filter(|j| JobState::LISTED.contains(&j.state) && j.machines(&machines).contains(&machine))
        {
            *by_state.entry(j.state.as_str()).or_default() += 1;
        }
        let places = m
            .map(|m| m.dead_boards.iter().filter_map(|b| Some((b.cabinet?, b.frame?, b.board?))).collect())
            .unwrap_or_default();
        let report = MachineReport {
            spalloc_up: true,
            error: m.is_none().then(|| format!("spalloc does not list a machine named {machine:?}")),
            dead_boards: m.map(|m| m.dead_boards.len()),
            dead_links: m.map(|m| m.dead_links.len()),
            jobs: by_state,
        };
        Ok((report, places))
    }
}

/// Where a machine's spalloc is, and how to speak to it.
#[derive(Debug, Clone)]
enum Spalloc {
    V1 { machine: String, server: String },
    Rest { machine: String, url: String, ca_file: Option<PathBuf>, credentials: Credentials },
}

impl Spalloc {
    fn of(m: &config::spinnaker::Machine) -> Option<Spalloc> {
        let server = m.spalloc.clone()?;
        if !server.starts_with("https://") {
            return Some(Spalloc::V1 { machine: m.name.clone(), server });
        }
        // Validation guarantees exactly one source of credentials for a URL.
        let credentials = match (&m.spalloc_credentials_file, &m.spalloc_credentials_env) {
            (Some(f), _) => Credentials::File(f.clone()),
            (None, Some(v)) => Credentials::Env(v.clone()),
            (None, None) => Credentials::Env(String::new()),
        };
        Some(Spalloc::Rest { machine: m.name.clone(), url: server, ca_file: m.spalloc_ca_file.clone(), credentials })
    }
}

/// Where the REST credentials are kept; never the credentials themselves.
#[derive(Debug, Clone)]
enum Credentials {
    File(PathBuf),
    Env(String),
}

impl Credentials {
    /// Reads and parses them; an error says where they are and what is wrong, never what they say.
    fn read(&self) -> Result<RestAuth, CredentialsError> {
        let text = match self {
            Credentials::File(path) => {
                std::fs::read_to_string(path).map_err(|source| CredentialsError::File { path: path.clone(), source })?
            }
            Credentials::Env(name) => {
                std::env::var(name).map_err(|_| CredentialsError::Unset { name: name.clone() })?
            }
        };
        RestAuth::parse(&text).ok_or_else(|| CredentialsError::Unparsable { place: self.clone() })
    }
}

impl std::fmt::Display for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::File(path) => write!(f, "spalloc credentials file {}", path.display()),
            Credentials::Env(name) => write!(f, "spalloc credentials variable {name}"),
        }
    }
}

/// Why the REST credentials could not be used: where they are and what is wrong, never what they say.
#[derive(Debug, thiserror::Error)]
enum CredentialsError {
    #[error("spalloc credentials file {}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error("spalloc credentials variable {name} is not set")]
    Unset { name: String },
    #[error("{place}: its first line is neither \"username:password\" nor \"Bearer TOKEN\"")]
    Unparsable { place: Credentials },
}

/// Why a machine's spalloc could not be asked; shown, redacted, in the machine's report.
#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Rest(#[from] RestError),
    #[error(transparent)]
    V1(#[from] SpallocError),
}

/// A machine whose spalloc server did not answer. The error can quote the server's own exception text
/// ("server raised: ...") and the service's URL, so it is redacted here, where it enters the agent.
fn unreachable_report(error: &(impl std::fmt::Display + ?Sized)) -> MachineReport {
    MachineReport {
        spalloc_up: false,
        error: Some(config::redact::redact_text(&error.to_string())),
        ..Default::default()
    }
}

async fn spalloc_report(client: &mut SpallocClient, machine: &str) -> Result<(MachineReport, Vec<[u32; 3]>), AskError> {
    let machines = client.list_machines().await?;
    let jobs = client.list_jobs().await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spalloc_error_is_shown_without_the_secrets_it_quotes() {
        let e = "spalloc https://ops:hunter2@spalloc.example/: list_jobs: server raised: bad token --token s3cr3t";
        let report = unreachable_report(e);
        assert!(!report.spalloc_up);
        assert_eq!(
            report.error.as_deref(),
            Some(
                "spalloc https://ops:<redacted>@spalloc.example/: list_jobs: server raised: bad token --token <redacted>"
            )
        );
    }
}
