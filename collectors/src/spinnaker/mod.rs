//! SpiNNaker: the SCP/BMP protocol over UDP and the spalloc protocol over TCP (../shared/reference/spinnaker.md).
//!
//! - [`scp`]: packet encoding and decoding, no I/O.
//! - [`ScpClient`]: one UDP socket, many requests in flight, retries as the public clients do them.
//! - BMP commands on the client ([`ScpClient::ver`], [`ScpClient::adc`], [`ScpClient::power`],
//!   [`ScpClient::led`]) and a whole-machine poll ([`ScpClient::poll_frames`]).
//! - [`SpallocClient`]: machines, dead boards and links, and jobs from a spalloc v1 server.
//! - [`SpallocRestClient`]: the same, read-only, from the Java spalloc service's REST API.
//!
//! docs/spinnaker.md describes the timing, the counters and the measured cost.

mod bmp;
mod client;
mod cookies;
mod poll;
mod rest;
pub mod scp;
mod spalloc;
mod table;

pub use bmp::{
    ADC_LEN, BmpSerial, BoardSensor, BoardStatus, Firmware, FirmwareVersion, LedAction, SERIAL_LEN, SensorKind,
    ShortAdc, VersionInfo, board_mask,
};
pub use client::{ClientOptions, RetryPolicy, ScpClient, ScpError, ScpStats};
pub use poll::{BoardPoll, Frame, PollOptions};
pub use rest::{RestAuth, RestBoard, RestError, RestJob, RestMachine, RestOptions, SpallocRestClient};
pub use scp::{Command, ReturnCode, SCP_PORT};
pub use spalloc::{Job, JobState, Machine, SPALLOC_PORT, SpallocClient, SpallocError, SpallocOptions};
