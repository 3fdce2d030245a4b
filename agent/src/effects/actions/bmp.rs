//! A SpiNNaker board's power cycle through its frame's BMP (the reconnect step `power_cycle`).

use std::net::SocketAddr;
use std::time::Duration;

use collectors::spinnaker::{RetryPolicy, ScpClient, ScpError, board_mask};

/// Pause between power off and power on, so the board really loses power.
const POWER_OFF_PAUSE: Duration = Duration::from_secs(1);

/// Which step of a power cycle failed (the caller's message names the BMP).
#[derive(Debug, thiserror::Error)]
pub enum PowerCycleError {
    #[error("{0}")]
    Socket(#[source] ScpError),
    #[error("power off: {0}")]
    Off(#[source] ScpError),
    #[error("power on: {0}")]
    On(#[source] ScpError),
}

/// Off, a pause, then on; each command to board 0 of the frame with the board's bit set.
pub async fn power_cycle(policy: RetryPolicy, bmp: SocketAddr, board: u8) -> Result<(), PowerCycleError> {
    let client = ScpClient::new(policy).await.map_err(PowerCycleError::Socket)?;
    let mask = board_mask(&[board]);
    client.power(bmp, mask, false, 0).await.map_err(PowerCycleError::Off)?;
    tokio::time::sleep(POWER_OFF_PAUSE).await;
    client.power(bmp, mask, true, 0).await.map_err(PowerCycleError::On)?;
    Ok(())
}
