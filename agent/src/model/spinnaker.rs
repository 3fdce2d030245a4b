//! What the SpiNNaker pollers saw: each board's BMP (and SC&MP) and each machine's spalloc server.

use std::collections::BTreeMap;
use std::time::Duration;

use collectors::spinnaker::{BoardStatus, RetryPolicy, ScpStats};
use config::Config;

/// The SCP timing the config asks for, for the pollers and the power commands alike.
pub fn retry_policy(config: &Config) -> RetryPolicy {
    RetryPolicy { timeout: config.spinnaker.timeout.get(), attempts: config.spinnaker.tries, ..RetryPolicy::default() }
}

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
    pub scamp: Option<Result<String, ScampError>>,
    /// spalloc lists the board among its machine's dead boards; None when spalloc was not asked.
    pub dead_in_spalloc: Option<bool>,
}

/// Why the SC&MP probe got no version from a board.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScampError {
    /// What the SCP client said (its text names the address); kept as text so readings compare.
    #[error("{0}")]
    Scp(String),
    #[error("{addr} answered as a BMP ({version})")]
    AnsweredAsBmp { addr: std::net::SocketAddr, version: String },
    #[error("{addr}: no answer within {deadline:?}")]
    NoAnswer { addr: std::net::SocketAddr, deadline: Duration },
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
