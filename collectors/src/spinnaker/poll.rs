//! One poll of a whole machine: VER and ADC for every board of every frame, concurrently.
//!
//! A frame's boards all sit behind one BMP address, so a frame whose first board does not answer at all is
//! not asked about the rest: that costs one call's timeout instead of one per board, which is what keeps a
//! machine with a dead frame inside its poll interval.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use super::bmp::{BoardStatus, VersionInfo};
use super::client::{ScpClient, ScpError};

/// A frame: its BMP's address (port 17893 on real hardware) and the boards in it to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub addr: SocketAddr,
    pub boards: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollOptions {
    /// Requests in flight to one BMP at a time. The BMP forwards requests for other boards over CAN and
    /// has few buffers; the public clients send to it one at a time, 8 is a cautious window.
    pub per_frame: usize,
    /// Requests in flight across the whole poll. Replies come back in bursts to one socket; this keeps a
    /// burst within what its receive buffer holds even where net.core.rmem_max is small.
    pub max_in_flight: usize,
    /// Boards not finished by then are reported with [`ScpError::Deadline`]; None: only the per-call
    /// budgets bound the poll.
    pub deadline: Option<Duration>,
    /// Skip a frame's other boards when its first board's VER and ADC both get no reply.
    pub skip_silent_frames: bool,
}

impl Default for PollOptions {
    fn default() -> PollOptions {
        PollOptions { per_frame: 8, max_in_flight: 128, deadline: None, skip_silent_frames: true }
    }
}

/// What one board said.
#[derive(Debug)]
pub struct BoardPoll {
    pub addr: SocketAddr,
    pub board: u8,
    pub version: Result<VersionInfo, ScpError>,
    pub status: Result<BoardStatus, ScpError>,
}

impl BoardPoll {
    /// The BMP of this board answered VER as a BMP.
    pub fn alive(&self) -> bool {
        self.version.as_ref().is_ok_and(VersionInfo::is_bmp)
    }
}

impl ScpClient {
    /// Polls every board of every frame; results come in the order of `frames` and their boards.
    pub async fn poll_frames(&self, frames: &[Frame], options: &PollOptions) -> Vec<BoardPoll> {
        let deadline = options.deadline.map(|d| Instant::now() + d);
        let global = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
        let mut tasks = JoinSet::new();
        for (i, frame) in frames.iter().enumerate() {
            let client = self.clone();
            let frame = frame.clone();
            let options = *options;
            let global = Arc::clone(&global);
            tasks.spawn(async move { (i, client.poll_frame_until(&frame, &options, global, deadline).await) });
        }
        let mut results: Vec<Option<Vec<BoardPoll>>> = frames.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, polls)) = joined {
                results[i] = Some(polls);
            }
        }
        let mut out = Vec::with_capacity(frames.iter().map(|f| f.boards.len()).sum());
        for (frame, polls) in frames.iter().zip(results) {
            match polls {
                Some(polls) => out.extend(polls),
                None => out.extend(frame.boards.iter().map(|&board| {
                    let err = || ScpError::Internal { addr: frame.addr, board, reason: "task panicked".into() };
                    BoardPoll { addr: frame.addr, board, version: Err(err()), status: Err(err()) }
                })),
            }
        }
        out
    }

    /// Polls the boards of one frame; for callers that schedule frames independently.
    pub async fn poll_frame(&self, frame: &Frame, options: &PollOptions) -> Vec<BoardPoll> {
        let global = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
        self.poll_frame_until(frame, options, global, options.deadline.map(|d| Instant::now() + d)).await
    }

    async fn poll_frame_until(
        &self,
        frame: &Frame,
        options: &PollOptions,
        global: Arc<Semaphore>,
        deadline: Option<Instant>,
    ) -> Vec<BoardPoll> {
        let addr = frame.addr;
        let permits = Permits { frame: Arc::new(Semaphore::new(options.per_frame.max(1))), global };
        let Some((&first, rest)) = frame.boards.split_first() else {
            return Vec::new();
        };
        let probe = poll_board(self.clone(), addr, first, permits.clone(), deadline).await;
        let silent = probe.version.as_ref().is_err_and(ScpError::is_timeout)
            && probe.status.as_ref().is_err_and(ScpError::is_timeout);
        let mut out = Vec::with_capacity(frame.boards.len());
        out.push(probe);
        if silent && options.skip_silent_frames {
            let skipped = |board| ScpError::FrameUnreachable { addr, board, probe: first };
            out.extend(rest.iter().map(|&board| BoardPoll {
                addr,
                board,
                version: Err(skipped(board)),
                status: Err(skipped(board)),
            }));
            return out;
        }
        let mut tasks = JoinSet::new();
        for (i, &board) in rest.iter().enumerate() {
            let fut = poll_board(self.clone(), addr, board, permits.clone(), deadline);
            tasks.spawn(async move { (i, fut.await) });
        }
        let mut polls: Vec<Option<BoardPoll>> = rest.iter().map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, poll)) = joined {
                polls[i] = Some(poll);
            }
        }
        for (&board, poll) in rest.iter().zip(polls) {
            out.push(poll.unwrap_or_else(|| {
                let err = || ScpError::Internal { addr, board, reason: "task panicked".into() };
                BoardPoll { addr, board, version: Err(err()), status: Err(err()) }
            }));
        }
        out
    }
}

/// A request needs one of its frame's permits and one of the poll's.
#[derive(Clone)]
struct Permits {
    frame: Arc<Semaphore>,
    global: Arc<Semaphore>,
}

async fn poll_board(
    client: ScpClient,
    addr: SocketAddr,
    board: u8,
    permits: Permits,
    deadline: Option<Instant>,
) -> BoardPoll {
    let version = limited(&permits, deadline, addr, board, client.ver(addr, board));
    let status = limited(&permits, deadline, addr, board, client.adc(addr, board));
    let (version, status) = tokio::join!(version, status);
    BoardPoll { addr, board, version, status }
}

/// Runs `call` holding its permits, and within the poll's deadline if it has one.
async fn limited<T>(
    permits: &Permits,
    deadline: Option<Instant>,
    addr: SocketAddr,
    board: u8,
    call: impl Future<Output = Result<T, ScpError>>,
) -> Result<T, ScpError> {
    let run = async {
        // The semaphores are never closed, so acquiring fails only in theory; run unthrottled if it does.
        // Frame first, then global, always in that order, so no two requests wait on each other's.
        let _frame = permits.frame.acquire().await.ok();
        let _global = permits.global.acquire().await.ok();
        call.await
    };
    match deadline {
        Some(deadline) => timeout_at(deadline, run).await.unwrap_or(Err(ScpError::Deadline { addr, board })),
        None => run.await,
    }
}
