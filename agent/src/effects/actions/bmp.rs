//! A SpiNNaker board's power cycle through its frame's BMP (the reconnect step `power_cycle`).

use std::net::SocketAddr;
use std::time::Duration;

use collectors::spinnaker::{RetryPolicy, ScpClient, board_mask};

/// Pause between power off and power on, so the board really loses power.
const POWER_OFF_PAUSE: Duration = Duration::from_secs(1);

/// Off, a pause, then on; each command to board 0 of the frame with the board's bit set.
pub async fn power_cycle(policy: RetryPolicy, bmp: SocketAddr, board: u8) -> Result<(), String> {
    let client = ScpClient::new(policy).await.map_err(|e| e.to_string())?;
    let mask = board_mask(&[board]);
    client.power(bmp, mask, false, 0).await.map_err(|e| format!("power off: {e}"))?;
    tokio::time::sleep(POWER_OFF_PAUSE).await;
    client.power(bmp, mask, true, 0).await.map_err(|e| format!("power on: {e}"))?;
    Ok(())
}
