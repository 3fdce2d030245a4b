//! A SpiNNaker frame's Board Management Processor on a loopback UDP socket, speaking real SCP.
//!
//! One thread per frame answers VER, BMP_INFO (ADC, CAN status), BMP_POWER, LED and the FPGA register
//! reads and writes (SCP 17 and 18) for boards 0..N from settable per-board readings, and can be told to misbehave (silent, slow, wrong seq, garbage, error
//! codes, duplicates, short ADC replies) while running. The encoder here is written independently of
//! the collectors crate on purpose: the client is tested against the wire format, not against itself.
//!
//! Behaviour worth knowing:
//! - A board that is powered off still answers: each board's BMP runs on standby power. Its ADC then
//!   reads 0 V on the switched rails (1v2a/b/c, 1v8, 3v3) while the supply and temperatures still read.
//! - BMP_POWER acts only when addressed to board 0, like the real firmware; every one is recorded.
//! - A request for a board the frame does not have gets no reply, as from a BMP that is not on the CAN bus;
//!   `set_on_can(board, false)` makes a board's BMP drop off the bus the same way, and the CAN status
//!   (BMP_INFO 2, one byte per board slot) shows it as 0.
//! - BMP_INFO 0 returns the 32-byte serial vector of `cmd_bmp_info`: hardware version 0, the board's
//!   four-word serial number (`SimBoard::serial`, or `default_serial`), then three addresses.
//! - FPGA registers, as the BMP firmware's `cmd_fpga_read`/`cmd_fpga_write` serve them (bmp_cmd.c in the
//!   BMP sources; SpiNNMan's `ReadFPGARegister`/`WriteFPGARegister` send them): arg1 = register address,
//!   arg2 = length in bytes (at most 256), arg3 = FPGA 0..=2, otherwise RC_ARG. A read returns the words
//!   in place of the reply's arguments; a write takes them from the data. Each board's three FPGAs read
//!   their own number in the FLAG register (0x40004, bits 1..0; spalloc-server checks it after every
//!   power-on), remember what is written, and start afresh on power-on (the BMP reloads them then);
//!   an unpowered FPGA reads 0. Every write is recorded.
//! - It binds where it is told (`SimOptions::bind`): spalloc-server talks to BMPs only on UDP 17893, so
//!   a frame for it binds a loopback address of its own at that port.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CMD_VER: u16 = 0;
const CMD_FPGA_READ: u16 = 17;
const CMD_FPGA_WRITE: u16 = 18;
const CMD_LED: u16 = 25;
const CMD_BMP_INFO: u16 = 48;
const CMD_BMP_POWER: u16 = 57;
const RC_OK: u16 = 0x80;
const RC_CMD: u16 = 0x83;
const RC_ARG: u16 = 0x84;

/// The FPGA register holding the FPGA's own number in bits 1..0 (spio's spinnaker_fpgas design).
pub const FPGA_FLAG_REGISTER: u32 = 0x40004;
/// The BMP firmware's SDP buffer: the most one FPGA request may move.
const SDP_BUF_SIZE: u32 = 256;

/// Requests remembered for [`BmpSim::recent_requests`].
const RECENT: usize = 1024;

/// What a board's ADC reports, in base units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimBoard {
    pub temp_top: f64,
    pub temp_bottom: f64,
    pub temp_ext0: Option<f64>,
    pub temp_ext1: Option<f64>,
    pub v1v2a: f64,
    pub v1v2b: f64,
    pub v1v2c: f64,
    pub v1v8: f64,
    pub v3v3: f64,
    pub supply: f64,
    pub fan0: Option<u16>,
    pub fan1: Option<u16>,
    pub warning: u32,
    pub shutdown: u32,
    /// The LPC1768 serial number BMP_INFO 0 reports; None: one made from the frame and board numbers.
    pub serial: Option<[u32; 4]>,
}

impl Default for SimBoard {
    /// A healthy SpiNN-5 board in a frame without its own fans.
    fn default() -> SimBoard {
        SimBoard {
            temp_top: 35.0,
            temp_bottom: 32.5,
            temp_ext0: None,
            temp_ext1: None,
            v1v2a: 1.2,
            v1v2b: 1.2,
            v1v2c: 1.2,
            v1v8: 1.8,
            v3v3: 3.3,
            supply: 12.0,
            fan0: None,
            fan1: None,
            warning: 0,
            shutdown: 0,
            serial: None,
        }
    }
}

/// How the BMP misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// No reply at all.
    Silent,
    /// The right reply, this much later (sent from another thread, so other requests are not held up).
    Slow(Duration),
    /// The right reply with the seq's top bit flipped.
    WrongSeq,
    /// Seven bytes of noise instead of a reply: too short to be SCP.
    Garbage,
    /// A reply with this return code and no payload.
    ReturnCode(u16),
    /// The right reply, twice.
    Duplicate,
    /// ADC replies cut to 40 data bytes; other commands unaffected.
    ShortAdc,
}

/// One BMP_POWER as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerCommand {
    pub on: bool,
    pub mask: u32,
    pub delay_ms: u16,
    /// The board (cpu field) it was addressed to; the firmware acts only on board 0's.
    pub board: u8,
    pub at: Instant,
}

/// One FPGA register write as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FpgaWrite {
    pub board: u8,
    pub fpga: u8,
    pub register: u32,
    pub value: u32,
}

/// One request as received, for tests that check what went on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenRequest {
    pub cmd: u16,
    pub board: u8,
    pub seq: u16,
    pub flags: u8,
    pub tag: u8,
    pub src: u8,
    pub args: [u32; 3],
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub boards: u8,
    /// Reported in VER's arg1 (the board number goes in both its can and board bytes).
    pub frame: u8,
    pub code_block: u8,
    /// VER text before the NUL; "SC&MP/SpiNNaker" makes it look like a booted chip.
    pub text: String,
    /// Sent after the text's NUL with version field 0xFFFF.
    pub version: String,
    /// Where to listen (default 127.0.0.1, a fresh port).
    pub bind: SocketAddr,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            boards: 24,
            frame: 0,
            code_block: 1,
            text: "BC&MP/SpiNN-5".into(),
            version: "2.1.0".into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

struct State {
    boards: Vec<SimBoard>,
    powered: Vec<bool>,
    /// Boards whose BMP has dropped off the frame's CAN bus: they get no reply and CAN status shows 0.
    off_can: Vec<bool>,
    fault: Fault,
    /// A fault for the next `n` requests, before `fault` applies again.
    fault_next: Option<(Fault, u32)>,
    power_log: Vec<PowerCommand>,
    /// Per board, per FPGA: register -> value written since the board was last powered on.
    fpga: Vec<[BTreeMap<u32, u32>; 3]>,
    fpga_writes: Vec<FpgaWrite>,
    recent: VecDeque<SeenRequest>,
}

struct Shared {
    options: SimOptions,
    state: Mutex<State>,
    power_changed: Condvar,
    requests: AtomicU64,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle to a running simulator, for another thread; the simulator stops when its [`BmpSim`] drops.
#[derive(Clone)]
pub struct BmpSimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

/// A simulated frame; stops (and frees its port) when dropped.
pub struct BmpSim {
    handle: BmpSimHandle,
    thread: Option<JoinHandle<()>>,
}

impl BmpSim {
    /// A frame of `boards` healthy, powered boards on 127.0.0.1, a fresh port.
    pub fn start(boards: u8) -> io::Result<BmpSim> {
        BmpSim::with_options(SimOptions { boards, ..SimOptions::default() })
    }

    pub fn with_options(options: SimOptions) -> io::Result<BmpSim> {
        let socket = UdpSocket::bind(options.bind)?;
        let addr = socket.local_addr()?;
        let n = usize::from(options.boards);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                boards: vec![SimBoard::default(); n],
                powered: vec![true; n],
                off_can: vec![false; n],
                fault: Fault::None,
                fault_next: None,
                power_log: Vec::new(),
                fpga: vec![Default::default(); n],
                fpga_writes: Vec::new(),
                recent: VecDeque::new(),
            }),
            options,
            power_changed: Condvar::new(),
            requests: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let socket = Arc::new(socket);
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("bmp-sim-{}", addr.port()))
                .spawn(move || serve(&socket, &shared))?
        };
        Ok(BmpSim { handle: BmpSimHandle { shared, addr }, thread: Some(thread) })
    }

    pub fn handle(&self) -> BmpSimHandle {
        self.handle.clone()
    }
}

impl std::ops::Deref for BmpSim {
    type Target = BmpSimHandle;
    fn deref(&self) -> &BmpSimHandle {
        &self.handle
    }
}

impl Drop for BmpSim {
    fn drop(&mut self) {
        self.handle.shared.stop.store(true, Ordering::SeqCst);
        // The serving thread blocks in recv_from; any datagram wakes it to see the flag.
        if let Ok(waker) = UdpSocket::bind("127.0.0.1:0") {
            let _ = waker.send_to(&[], self.handle.addr);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl BmpSimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn board(&self, board: u8) -> Option<SimBoard> {
        self.shared.lock().boards.get(usize::from(board)).copied()
    }

    /// Replaces a board's readings; false if the frame has no such board.
    pub fn set_board(&self, board: u8, readings: SimBoard) -> bool {
        self.update_board(board, |b| *b = readings)
    }

    pub fn update_board(&self, board: u8, f: impl FnOnce(&mut SimBoard)) -> bool {
        let mut state = self.shared.lock();
        match state.boards.get_mut(usize::from(board)) {
            Some(b) => {
                f(b);
                true
            }
            None => false,
        }
    }

    /// The fault that applies from now on (after any `set_fault_for` count runs out).
    pub fn set_fault(&self, fault: Fault) {
        let mut state = self.shared.lock();
        state.fault = fault;
        state.fault_next = None;
    }

    /// `fault` for the next `requests` requests, then back to the standing fault.
    pub fn set_fault_for(&self, fault: Fault, requests: u32) {
        self.shared.lock().fault_next = Some((fault, requests));
    }

    /// Takes a board's BMP off the frame's CAN bus (or puts it back): it stops answering, and the CAN
    /// status the other BMPs report shows it absent. False if the frame has no such board.
    pub fn set_on_can(&self, board: u8, on: bool) -> bool {
        let mut state = self.shared.lock();
        match state.off_can.get_mut(usize::from(board)) {
            Some(off) => {
                *off = !on;
                true
            }
            None => false,
        }
    }

    pub fn powered(&self, board: u8) -> Option<bool> {
        self.shared.lock().powered.get(usize::from(board)).copied()
    }

    pub fn power_commands(&self) -> Vec<PowerCommand> {
        self.shared.lock().power_log.clone()
    }

    /// Waits until at least `n` power commands were received or `timeout` passes; returns them all.
    pub fn wait_power_commands(&self, n: usize, timeout: Duration) -> Vec<PowerCommand> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.power_log.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = match self.shared.power_changed.wait_timeout(state, left) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
        state.power_log.clone()
    }

    /// What a read of an FPGA register of a board returns now; None for a board or FPGA it lacks.
    pub fn fpga_register(&self, board: u8, fpga: u8, register: u32) -> Option<u32> {
        let state = self.shared.lock();
        let b = usize::from(board);
        (b < state.boards.len() && fpga < 3).then(|| fpga_read(&state, b, fpga, register))
    }

    /// Every FPGA register write received, oldest first.
    pub fn fpga_writes(&self) -> Vec<FpgaWrite> {
        self.shared.lock().fpga_writes.clone()
    }

    /// Requests received, well-formed or not.
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The last 1,024 well-formed requests, oldest first.
    pub fn recent_requests(&self) -> Vec<SeenRequest> {
        self.shared.lock().recent.iter().copied().collect()
    }
}

fn serve(socket: &Arc<UdpSocket>, shared: &Shared) {
    let mut buf = [0u8; 2048];
    loop {
        let received = socket.recv_from(&mut buf);
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((n, from)) = received else { continue };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let Some(req) = parse(&buf[..n]) else { continue };
        let (fault, reply) = {
            let mut state = shared.lock();
            if state.recent.len() == RECENT {
                state.recent.pop_front();
            }
            state.recent.push_back(req.seen);
            let fault = match &mut state.fault_next {
                Some((f, left)) if *left > 0 => {
                    *left -= 1;
                    *f
                }
                _ => state.fault,
            };
            if fault == Fault::Silent {
                continue;
            }
            let reply = answer(&req, &mut state, &shared.options, fault);
            if req.seen.cmd == CMD_BMP_POWER {
                shared.power_changed.notify_all();
            }
            (fault, reply)
        };
        let Some(reply) = reply else { continue };
        match fault {
            Fault::Slow(delay) => {
                let socket = Arc::clone(socket);
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let _ = socket.send_to(&reply, from);
                });
            }
            Fault::Duplicate => {
                let _ = socket.send_to(&reply, from);
                let _ = socket.send_to(&reply, from);
            }
            _ => {
                let _ = socket.send_to(&reply, from);
            }
        }
    }
}

struct Request {
    header: [u8; 10],
    seen: SeenRequest,
    /// What follows the three arguments.
    data: Vec<u8>,
}

fn parse(buf: &[u8]) -> Option<Request> {
    let header: [u8; 10] = buf.get(..10)?.try_into().ok()?;
    let word = |at: usize| buf.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let cmd = u16::from_le_bytes([*buf.get(10)?, *buf.get(11)?]);
    let seq = u16::from_le_bytes([*buf.get(12)?, *buf.get(13)?]);
    let args = [word(14).unwrap_or(0), word(18).unwrap_or(0), word(22).unwrap_or(0)];
    let seen =
        SeenRequest { cmd, board: header[4] & 0x1F, seq, flags: header[2], tag: header[3], src: header[5], args };
    Some(Request { header, seen, data: buf.get(26..).unwrap_or_default().to_vec() })
}

/// The reply datagram, or None for no reply.
fn answer(req: &Request, state: &mut State, options: &SimOptions, fault: Fault) -> Option<Vec<u8>> {
    let seen = &req.seen;
    let board = usize::from(seen.board);
    if board >= state.boards.len() || state.off_can[board] {
        return None;
    }
    let seq = if fault == Fault::WrongSeq { seen.seq ^ 0x8000 } else { seen.seq };
    match fault {
        Fault::Garbage => return Some(vec![0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x01, 0x02]),
        Fault::ReturnCode(rc) => return Some(reply(&req.header, rc, seq, &[])),
        _ => {}
    }
    let payload = match seen.cmd {
        CMD_VER => {
            let arg1 = u32::from_be_bytes([options.code_block, options.frame, seen.board, seen.board]);
            let mut p = words(&[arg1, 0xFFFF_0000 | 256, 1_700_000_000]);
            p.extend_from_slice(options.text.as_bytes());
            p.push(0);
            p.extend_from_slice(options.version.as_bytes());
            p.push(0);
            p
        }
        CMD_BMP_INFO => match seen.args[0] {
            3 => {
                let mut p = adc_block(&state.boards[board], state.powered[board]);
                if fault == Fault::ShortAdc {
                    p.truncate(40);
                }
                p
            }
            // hw_ver, the four serial words, then flash buffer, board_stat and boot vector addresses.
            0 => {
                let serial = state.boards[board].serial.unwrap_or(default_serial(options.frame, seen.board));
                let mut p = words(&[0]);
                p.extend(words(&serial));
                p.extend(words(&[0x1000_0000, 0x1000_1000 + 48 * board as u32, 0x0001_0000]));
                p
            }
            2 => (0..32).map(|i| u8::from(i < state.boards.len() && !state.off_can[i])).collect(),
            _ => return Some(reply(&req.header, RC_ARG, seq, &[])),
        },
        CMD_BMP_POWER => {
            let on = seen.args[0] & 1 == 1;
            let mask = seen.args[1];
            state.power_log.push(PowerCommand {
                on,
                mask,
                delay_ms: (seen.args[0] >> 16) as u16,
                board: seen.board,
                at: Instant::now(),
            });
            if seen.board == 0 {
                for i in 0..state.powered.len().min(32) {
                    if mask & (1 << i) != 0 {
                        state.powered[i] = on;
                        // Power-on reloads the FPGAs: whatever was written is gone.
                        state.fpga[i] = Default::default();
                    }
                }
            }
            Vec::new()
        }
        CMD_FPGA_READ | CMD_FPGA_WRITE => {
            let [register, len, fpga] = seen.args;
            if len > SDP_BUF_SIZE || fpga > 2 {
                return Some(reply(&req.header, RC_ARG, seq, &[]));
            }
            let fpga = fpga as u8;
            let register = register & !3;
            if seen.cmd == CMD_FPGA_READ {
                let values: Vec<u32> =
                    (0..len / 4).map(|i| fpga_read(state, board, fpga, register.wrapping_add(4 * i))).collect();
                words(&values)
            } else {
                for (i, w) in req.data.chunks_exact(4).take((len / 4) as usize).enumerate() {
                    let (register, value) =
                        (register.wrapping_add(4 * i as u32), u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
                    state.fpga[board][usize::from(fpga)].insert(register, value);
                    state.fpga_writes.push(FpgaWrite { board: seen.board, fpga, register, value });
                }
                Vec::new()
            }
        }
        CMD_LED => Vec::new(),
        _ => return Some(reply(&req.header, RC_CMD, seq, &[])),
    };
    Some(reply(&req.header, RC_OK, seq, &payload))
}

/// The serial number of a board that was given none: distinct per frame and board, and never zero.
pub fn default_serial(frame: u8, board: u8) -> [u32; 4] {
    [0x0A01_C00F, 0x5350_0000 | (u32::from(frame) << 8) | u32::from(board), 0x4E4B_2F35, 0x0000_0005]
}

/// A register of a board's FPGA: 0 while unpowered, else what was written or, for FLAG, its number.
fn fpga_read(state: &State, board: usize, fpga: u8, register: u32) -> u32 {
    if !state.powered[board] {
        return 0;
    }
    match state.fpga[board][usize::from(fpga)].get(&register) {
        Some(v) => *v,
        None if register == FPGA_FLAG_REGISTER => u32::from(fpga),
        None => 0,
    }
}

/// A reply to the request whose SDP header is `req`: source and destination swapped, no reply expected.
fn reply(req: &[u8; 10], rc: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(14 + payload.len());
    out.extend_from_slice(&[0, 0, 0x07, req[3], req[5], req[4], req[8], req[9], req[6], req[7]]);
    out.extend_from_slice(&rc.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The 48-byte ADC block for `b`, the inverse of the reference's scaling.
pub fn adc_block(b: &SimBoard, powered: bool) -> Vec<u8> {
    let rail = |v: f64, full: f64| if powered { (v * 4096.0 / full).round() as u16 } else { 0 };
    let mut adc = [0u16; 8];
    adc[1] = rail(b.v1v2c, 2.5);
    adc[2] = rail(b.v1v2b, 2.5);
    adc[3] = rail(b.v1v2a, 2.5);
    adc[4] = rail(b.v1v8, 2.5);
    adc[6] = rail(b.v3v3, 3.75);
    adc[7] = (b.supply * 4096.0 / 15.0).round() as u16;
    let temp = |t: f64| (t * 256.0).round() as i16;
    let t_int = [temp(b.temp_top), temp(b.temp_bottom), 0, 0];
    let t_ext = [b.temp_ext0.map_or(i16::MIN, temp), b.temp_ext1.map_or(i16::MIN, temp), i16::MIN, i16::MIN];
    let fan = |f: Option<u16>| f.map_or(-1, |rpm| rpm.min(i16::MAX as u16) as i16);
    let fans = [fan(b.fan0), fan(b.fan1), -1, -1];
    let mut out = Vec::with_capacity(48);
    out.extend(adc.iter().flat_map(|v| v.to_le_bytes()));
    out.extend(t_int.iter().chain(&t_ext).chain(&fans).flat_map(|v| v.to_le_bytes()));
    out.extend_from_slice(&b.warning.to_le_bytes());
    out.extend_from_slice(&b.shutdown.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adc_block_layout() {
        let b = SimBoard { temp_top: 36.5, temp_ext1: Some(-1.0), fan0: Some(3000), ..SimBoard::default() };
        let block = adc_block(&b, true);
        assert_eq!(block.len(), 48);
        assert_eq!(&block[16..18], &0x2480i16.to_le_bytes());
        assert_eq!(&block[24..26], &i16::MIN.to_le_bytes());
        assert_eq!(&block[26..28], &(-256i16).to_le_bytes());
        assert_eq!(&block[32..34], &3000i16.to_le_bytes());
        assert_eq!(&block[34..36], &(-1i16).to_le_bytes());
        let off = adc_block(&b, false);
        assert_eq!(&off[6..8], &[0, 0]);
        assert_eq!(&off[14..16], &block[14..16]);
    }

    /// One SCP request to `board` and its reply's (return code, payload after cmd_rc and seq).
    fn ask(sim: &BmpSim, board: u8, cmd: u16, args: [u32; 3], data: &[u8]) -> (u16, Vec<u8>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = vec![0, 0, 0x87, 0xFF, board, 0xFF, 0, 0, 0, 0];
        req.extend_from_slice(&cmd.to_le_bytes());
        req.extend_from_slice(&7u16.to_le_bytes());
        req.extend(words(&args));
        req.extend_from_slice(data);
        socket.send_to(&req, sim.addr()).unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        (u16::from_le_bytes([buf[10], buf[11]]), buf[14..n].to_vec())
    }

    #[test]
    fn fpga_registers_as_the_bmp_firmware_serves_them() {
        let sim = BmpSim::start(2).unwrap();
        // Each FPGA's FLAG register holds its number.
        for fpga in 0..3 {
            let (rc, data) = ask(&sim, 1, CMD_FPGA_READ, [FPGA_FLAG_REGISTER, 4, fpga], &[]);
            assert_eq!((rc, data), (RC_OK, fpga.to_le_bytes().to_vec()));
        }
        // A write (the address rounded down to a word) reads back, two words at a time too.
        let (rc, data) = ask(&sim, 1, CMD_FPGA_WRITE, [0x1005C + 2, 4, 2], &1u32.to_le_bytes());
        assert_eq!((rc, data.len()), (RC_OK, 0));
        let (rc, data) = ask(&sim, 1, CMD_FPGA_READ, [0x10058, 8, 2], &[]);
        assert_eq!((rc, data), (RC_OK, words(&[0, 1])));
        assert_eq!(sim.fpga_writes(), [FpgaWrite { board: 1, fpga: 2, register: 0x1005C, value: 1 }]);
        assert_eq!(sim.fpga_register(0, 2, 0x1005C), Some(0), "board 0's FPGAs are its own");
        // No fourth FPGA, and no more than the BMP's 256-byte buffer.
        assert_eq!(ask(&sim, 1, CMD_FPGA_READ, [0, 4, 3], &[]).0, RC_ARG);
        assert_eq!(ask(&sim, 1, CMD_FPGA_READ, [0, 260, 0], &[]).0, RC_ARG);
        // Off, the FPGAs read 0; on again, they are reloaded: the write is gone.
        assert_eq!(ask(&sim, 0, CMD_BMP_POWER, [0, 0b10, 0], &[]).0, RC_OK);
        assert_eq!(sim.fpga_register(1, 0, FPGA_FLAG_REGISTER), Some(0));
        assert_eq!(ask(&sim, 0, CMD_BMP_POWER, [1, 0b10, 0], &[]).0, RC_OK);
        assert_eq!(sim.fpga_register(1, 2, 0x1005C), Some(0));
        assert_eq!(sim.fpga_register(1, 2, FPGA_FLAG_REGISTER), Some(2));
    }

    #[test]
    fn binds_where_it_is_told() {
        let options = SimOptions { boards: 1, bind: SocketAddr::from(([127, 0, 0, 3], 0)), ..SimOptions::default() };
        let sim = BmpSim::with_options(options).unwrap();
        assert_eq!(sim.addr().ip(), std::net::IpAddr::from([127, 0, 0, 3]));
        assert_eq!(ask(&sim, 0, CMD_VER, [0; 3], &[]).0, RC_OK);
    }

    #[test]
    fn replies_swap_source_and_destination() {
        let req = [0, 0, 0x87, 0xFF, 0x03, 0xFF, 0, 0, 0, 0];
        let r = reply(&req, RC_OK, 0x1234, &[1]);
        assert_eq!(r, [0, 0, 0x07, 0xFF, 0xFF, 0x03, 0, 0, 0, 0, 0x80, 0, 0x34, 0x12, 1]);
    }
}
