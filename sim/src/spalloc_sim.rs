//! A spalloc v1 server on loopback TCP: newline-delimited JSON, the commands a monitoring client uses.
//!
//! Answers version, list_machines, list_jobs, where_is (machine, x, y, z), notify_job / notify_machine
//! (and their no_ forms) from settable machines and jobs. It can push unsolicited notification lines before
//! each reply, raise an exception for a command, or send one raw line instead of a reply. A server that is
//! down is simply one not started: connect to a port nothing listens on.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimMachine {
    pub name: String,
    pub tags: Vec<String>,
    pub width: u32,
    pub height: u32,
    pub dead_boards: Vec<[u32; 3]>,
    pub dead_links: Vec<[u32; 4]>,
}

impl SimMachine {
    pub fn new(name: &str, width: u32, height: u32) -> SimMachine {
        SimMachine {
            name: name.into(),
            tags: vec!["default".into()],
            width,
            height,
            dead_boards: Vec::new(),
            dead_links: Vec::new(),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name, "tags": self.tags, "width": self.width, "height": self.height,
            "dead_boards": self.dead_boards, "dead_links": self.dead_links,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimJob {
    pub job_id: u64,
    pub owner: String,
    /// 0 unknown, 1 queued, 2 power, 3 ready, 4 destroyed; anything else is sent as is.
    pub state: u64,
    pub power: Option<bool>,
    pub machine: Option<String>,
    pub boards: Option<Vec<[u32; 3]>>,
    pub start_time: f64,
    pub keepalive: Option<f64>,
    /// The keywords the job was created with, as spalloc-server lists them (`machine` or `tags` select
    /// where a queued job waits).
    pub kwargs: Value,
}

impl SimJob {
    /// A ready, powered job holding `boards` of `machine`.
    pub fn ready(job_id: u64, owner: &str, machine: &str, boards: Vec<[u32; 3]>) -> SimJob {
        SimJob {
            job_id,
            owner: owner.into(),
            state: 3,
            power: Some(true),
            machine: Some(machine.into()),
            boards: Some(boards),
            start_time: 1_700_000_000.0,
            keepalive: Some(60.0),
            kwargs: json!({"tags": null}),
        }
    }

    /// A job waiting for boards, created with `kwargs` (e.g. `{"machine": "m"}` or `{"tags": ["big"]}`);
    /// like spalloc-server, it has no machine, no boards and no power state yet.
    pub fn queued(job_id: u64, owner: &str, kwargs: Value) -> SimJob {
        SimJob {
            state: 1,
            power: None,
            machine: None,
            boards: None,
            kwargs,
            ..SimJob::ready(job_id, owner, "", vec![])
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "job_id": self.job_id, "owner": self.owner, "start_time": self.start_time,
            "keepalive": self.keepalive, "state": self.state, "power": self.power,
            "args": [1], "kwargs": self.kwargs, "allocated_machine_name": self.machine,
            "boards": self.boards, "keepalivehost": "127.0.0.1",
        })
    }
}

struct Conn {
    writer: Arc<Mutex<TcpStream>>,
    notify_jobs: bool,
    notify_machines: bool,
}

struct State {
    version: String,
    machines: Vec<SimMachine>,
    jobs: Vec<SimJob>,
    notifications_before_reply: usize,
    exceptions: HashMap<String, String>,
    raw_next: HashMap<String, String>,
    commands: Vec<String>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    connections_accepted: u64,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake spalloc server; stops and closes every connection when dropped.
pub struct SpallocSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl SpallocSim {
    pub fn start() -> io::Result<SpallocSim> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                version: "0.4.0".into(),
                machines: Vec::new(),
                jobs: Vec::new(),
                notifications_before_reply: 0,
                exceptions: HashMap::new(),
                raw_next: HashMap::new(),
                commands: Vec::new(),
                conns: HashMap::new(),
                next_conn: 0,
                connections_accepted: 0,
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("spalloc-sim".into()).spawn(move || accept(&listener, &shared))?
        };
        Ok(SpallocSim { shared, addr, thread: Some(thread) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set_version(&self, version: &str) {
        self.shared.lock().version = version.into();
    }

    pub fn set_machines(&self, machines: Vec<SimMachine>) {
        self.shared.lock().machines = machines;
    }

    pub fn set_jobs(&self, jobs: Vec<SimJob>) {
        self.shared.lock().jobs = jobs;
    }

    /// Marks a board of a machine dead; false if there is no such machine.
    pub fn add_dead_board(&self, machine: &str, board: [u32; 3]) -> bool {
        let mut state = self.shared.lock();
        match state.machines.iter_mut().find(|m| m.name == machine) {
            Some(m) => {
                m.dead_boards.push(board);
                true
            }
            None => false,
        }
    }

    /// Before every reply, push `n` notification lines the client did not ask for.
    pub fn set_notifications_before_reply(&self, n: usize) {
        self.shared.lock().notifications_before_reply = n;
    }

    /// Answer `command` with {"exception": message} until cleared with None.
    pub fn set_exception(&self, command: &str, message: Option<&str>) {
        let mut state = self.shared.lock();
        match message {
            Some(m) => state.exceptions.insert(command.into(), m.into()),
            None => state.exceptions.remove(command),
        };
    }

    /// Send `line` (a newline is added) instead of the next reply to `command`.
    pub fn send_raw_next(&self, command: &str, line: &str) {
        self.shared.lock().raw_next.insert(command.into(), line.into());
    }

    /// Every command received, in order, across connections.
    pub fn commands(&self) -> Vec<String> {
        self.shared.lock().commands.clone()
    }

    pub fn connections_accepted(&self) -> u64 {
        self.shared.lock().connections_accepted
    }

    /// Waits until at least `n` commands were received or `timeout` passes; returns them all.
    pub fn wait_commands(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.commands.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = match self.shared.changed.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
        state.commands.clone()
    }

    /// Pushes {"jobs_changed": ids} to connections that asked with notify_job; returns how many.
    pub fn notify_jobs_changed(&self, ids: &[u64]) -> usize {
        self.push(|c| c.notify_jobs, &json!({ "jobs_changed": ids }))
    }

    /// Pushes {"machines_changed": names} to connections that asked with notify_machine.
    pub fn notify_machines_changed(&self, names: &[&str]) -> usize {
        self.push(|c| c.notify_machines, &json!({ "machines_changed": names }))
    }

    fn push(&self, wanted: impl Fn(&Conn) -> bool, msg: &Value) -> usize {
        let writers: Vec<_> =
            self.shared.lock().conns.values().filter(|c| wanted(c)).map(|c| Arc::clone(&c.writer)).collect();
        writers.iter().filter(|w| write_line(w, &msg.to_string()).is_ok()).count()
    }
}

impl Drop for SpallocSim {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let writers: Vec<_> = self.shared.lock().conns.values().map(|c| Arc::clone(&c.writer)).collect();
        for w in writers {
            if let Ok(s) = w.lock() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        // The accept loop blocks in accept(); a connection wakes it to see the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let Ok(writer) = stream.try_clone() else { continue };
        let id = {
            let mut state = shared.lock();
            let id = state.next_conn;
            state.next_conn += 1;
            state.connections_accepted += 1;
            let writer = Arc::new(Mutex::new(writer));
            state.conns.insert(id, Conn { writer, notify_jobs: false, notify_machines: false });
            id
        };
        let shared = Arc::clone(shared);
        let _ = std::thread::Builder::new().name("spalloc-sim-conn".into()).spawn(move || {
            serve(stream, id, &shared);
            shared.lock().conns.remove(&id);
        });
    }
}

fn write_line(writer: &Mutex<TcpStream>, line: &str) -> io::Result<()> {
    let mut w = writer.lock().map_err(|_| io::Error::other("writer lock poisoned"))?;
    // One write per line, so a pushed notification cannot land inside a reply.
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    w.write_all(&buf)
}

fn serve(stream: TcpStream, id: u64, shared: &Shared) {
    let Some(writer) = shared.lock().conns.get(&id).map(|c| Arc::clone(&c.writer)) else { return };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let (pushes, reply) = handle(&line, id, shared);
        for _ in 0..pushes {
            if write_line(&writer, &json!({"jobs_changed": [1]}).to_string()).is_err() {
                return;
            }
        }
        if write_line(&writer, &reply).is_err() {
            return;
        }
    }
}

/// The notification lines to push first and the reply line.
fn handle(line: &str, conn: u64, shared: &Shared) -> (usize, String) {
    let mut state = shared.lock();
    let request: Value = serde_json::from_str(line).unwrap_or(Value::Null);
    let command = request.get("command").and_then(Value::as_str).unwrap_or("").to_owned();
    state.commands.push(command.clone());
    shared.changed.notify_all();
    let pushes = state.notifications_before_reply;
    if let Some(raw) = state.raw_next.remove(&command) {
        return (pushes, raw);
    }
    if let Some(message) = state.exceptions.get(&command) {
        return (pushes, json!({ "exception": message }).to_string());
    }
    let kwargs = request.get("kwargs").cloned().unwrap_or(Value::Null);
    let result = match command.as_str() {
        "version" => Ok(json!(state.version)),
        "list_machines" => Ok(Value::Array(state.machines.iter().map(SimMachine::to_json).collect())),
        "list_jobs" => Ok(Value::Array(state.jobs.iter().map(SimJob::to_json).collect())),
        "notify_job" | "no_notify_job" | "notify_machine" | "no_notify_machine" => {
            if let Some(c) = state.conns.get_mut(&conn) {
                match command.as_str() {
                    "notify_job" => c.notify_jobs = true,
                    "no_notify_job" => c.notify_jobs = false,
                    "notify_machine" => c.notify_machines = true,
                    _ => c.notify_machines = false,
                }
            }
            Ok(Value::Null)
        }
        "where_is" => where_is(&state, &kwargs),
        "" => Err("malformed request".to_owned()),
        other => Err(format!("unknown command {other}")),
    };
    let reply = match result {
        Ok(v) => json!({ "return": v }),
        Err(message) => json!({ "exception": message }),
    };
    (pushes, reply.to_string())
}

/// where_is(machine, x, y, z): null for a board the machine does not have.
fn where_is(state: &State, kwargs: &Value) -> Result<Value, String> {
    let name = kwargs.get("machine").and_then(Value::as_str).ok_or("where_is needs machine")?;
    let coord = |k: &str| kwargs.get(k).and_then(Value::as_u64).ok_or(format!("where_is needs {k}"));
    let (x, y, z) = (coord("x")?, coord("y")?, coord("z")?);
    let Some(m) = state.machines.iter().find(|m| m.name == name) else {
        return Ok(Value::Null);
    };
    if x >= u64::from(m.width) || y >= u64::from(m.height) || z >= 3 {
        return Ok(Value::Null);
    }
    let board = [x as u32, y as u32, z as u32];
    let job_id = state
        .jobs
        .iter()
        .find(|j| j.machine.as_deref() == Some(name) && j.boards.as_ref().is_some_and(|b| b.contains(&board)))
        .map(|j| j.job_id);
    // A made-up but stable physical position: one frame per (x, y), boards numbered by z.
    let frame = y * u64::from(m.width) + x;
    Ok(json!({
        "machine": name, "logical": [x, y, z], "physical": [0, frame, z],
        "chip": null, "board_chip": null, "job_chip": null, "job_id": job_id,
    }))
}
