//! A SpiNNaker board's BMP binding: where a device's board is and how to reach it.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// The SCP port of BMPs and SC&MP.
pub const SCP_PORT: u16 = 17893;

/// A board's place: its BMP and, for matching spalloc's dead boards, its machine and physical position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmpBinding {
    /// The frame's BMP: "ip" or "ip:port".
    pub address: String,
    pub board: u8,
    /// The board's SC&MP address ("ip" or "ip:port"), probed with VER while its BMP answers.
    #[serde(default)]
    pub scamp: Option<String>,
    #[serde(default)]
    pub machine: Option<String>,
    #[serde(default)]
    pub cabinet: u32,
    #[serde(default)]
    pub frame: u32,
}

impl BmpBinding {
    pub fn bmp_addr(&self) -> Option<SocketAddr> {
        socket_addr(&self.address, SCP_PORT)
    }

    pub fn scamp_addr(&self) -> Option<SocketAddr> {
        socket_addr(self.scamp.as_deref()?, SCP_PORT)
    }
}

/// "ip" or "ip:port" with the default port.
pub fn socket_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, default_port)))
}
