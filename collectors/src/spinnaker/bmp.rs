//! Board Management Processor commands: VER, BMP_INFO (ADC), BMP_POWER, LED, and decoding their replies.

use std::net::SocketAddr;

use super::client::{ScpClient, ScpError};
use super::scp::{Args, Command, Dest, ScpReply, ScpRequest, read_i16, read_u16, read_u32};

/// The cpu field is five bits; a frame holds at most 24 boards anyway.
const MAX_BOARD: u8 = 31;

/// BMP_INFO type selecting the serial vector (hardware version, LPC1768 serial number, addresses).
const BMP_INFO_SERIAL: u32 = 0;
/// BMP_INFO type selecting the CAN status: one byte per BMP of the frame.
const BMP_INFO_CAN_STATUS: u32 = 2;
/// BMP_INFO type selecting the ADC / board status block.
const BMP_INFO_ADC: u32 = 3;

/// Bytes of the BMP_INFO ADC reply the decoder reads.
pub const ADC_LEN: usize = 48;

/// Which firmware answered VER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// "BC&MP": a Board Management Processor; alive.
    Bmp,
    /// "SC&MP": the monitor of a booted SpiNNaker chip.
    Scamp,
    Other,
}

/// The version field of VER: version x 100, or a string that follows the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirmwareVersion {
    Hundredths(u16),
    Text(String),
}

impl std::fmt::Display for FirmwareVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FirmwareVersion::Hundredths(v) => write!(f, "{}.{:02}", v / 100, v % 100),
            FirmwareVersion::Text(s) => f.write_str(s),
        }
    }
}

/// A decoded VER reply. The position fields are what a BMP reports in arg1; a booted chip packs other
/// things there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub code_block: u8,
    pub frame: u8,
    pub can: u8,
    pub board: u8,
    pub max_payload: u16,
    pub version: FirmwareVersion,
    /// Unix seconds.
    pub build_time: u32,
    /// Up to the first NUL, e.g. "BC&MP/SpiNN-5".
    pub text: String,
}

impl VersionInfo {
    /// Decodes a VER reply's payload (three args, then text); None if it is shorter than the args.
    pub fn decode(reply: &ScpReply) -> Option<VersionInfo> {
        let ([arg1, arg2, arg3], data) = reply.args::<3>()?;
        let [code_block, frame, can, board] = arg1.to_be_bytes();
        let (text, rest) = match data.iter().position(|b| *b == 0) {
            Some(nul) => (&data[..nul], &data[nul + 1..]),
            None => (data, &[][..]),
        };
        let version_field = (arg2 >> 16) as u16;
        let version = if version_field == 0xFFFF {
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            FirmwareVersion::Text(String::from_utf8_lossy(&rest[..end]).into_owned())
        } else {
            FirmwareVersion::Hundredths(version_field)
        };
        Some(VersionInfo {
            code_block,
            frame,
            can,
            board,
            max_payload: arg2 as u16,
            version,
            build_time: arg3,
            text: String::from_utf8_lossy(text).into_owned(),
        })
    }

    pub fn firmware(&self) -> Firmware {
        match self.text.split('/').next() {
            Some("BC&MP") => Firmware::Bmp,
            Some("SC&MP") => Firmware::Scamp,
            _ => Firmware::Other,
        }
    }

    pub fn is_bmp(&self) -> bool {
        self.firmware() == Firmware::Bmp
    }

    /// What follows the firmware name, e.g. "SpiNN-5".
    pub fn hardware(&self) -> &str {
        self.text.split_once('/').map_or("", |(_, hw)| hw)
    }
}

/// One board's ADC block, in base units. A value the board reports as absent is None.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoardStatus {
    /// Degrees Celsius.
    pub temp_top: f64,
    pub temp_bottom: f64,
    pub temp_ext0: Option<f64>,
    pub temp_ext1: Option<f64>,
    /// Volts.
    pub v1v2a: f64,
    pub v1v2b: f64,
    pub v1v2c: f64,
    pub v1v8: f64,
    pub v3v3: f64,
    pub supply: f64,
    /// Revolutions per minute.
    pub fan0: Option<u16>,
    pub fan1: Option<u16>,
    pub warning: u32,
    pub shutdown: u32,
}

/// What a sensor measures, i.e. which metric family it belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorKind {
    Temperature,
    Voltage,
    Fan,
}

/// One reading of a board, named as in DESIGN.md's spinnaker-board sensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoardSensor {
    pub kind: SensorKind,
    pub name: &'static str,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{len} data bytes, the ADC block needs {ADC_LEN}")]
pub struct ShortAdc {
    pub len: usize,
}

impl BoardStatus {
    /// Decodes the 48-byte block of a BMP_INFO type 3 reply; extra bytes are ignored.
    pub fn decode(data: &[u8]) -> Result<BoardStatus, ShortAdc> {
        if data.len() < ADC_LEN {
            return Err(ShortAdc { len: data.len() });
        }
        // Bounds are checked above, so the zeros never show.
        let adc = |i: usize| f64::from(read_u16(data, 2 * i).unwrap_or(0));
        let t_int = |i: usize| f64::from(read_i16(data, 16 + 2 * i).unwrap_or(0)) / 256.0;
        let t_ext = |i: usize| match read_i16(data, 24 + 2 * i).unwrap_or(i16::MIN) {
            i16::MIN => None,
            raw => Some(f64::from(raw) / 256.0),
        };
        // -1 is "no fan"; other negatives cannot be a speed either.
        let fan = |i: usize| u16::try_from(read_i16(data, 32 + 2 * i).unwrap_or(-1)).ok();
        Ok(BoardStatus {
            temp_top: t_int(0),
            temp_bottom: t_int(1),
            temp_ext0: t_ext(0),
            temp_ext1: t_ext(1),
            v1v2a: adc(3) * 2.5 / 4096.0,
            v1v2b: adc(2) * 2.5 / 4096.0,
            v1v2c: adc(1) * 2.5 / 4096.0,
            v1v8: adc(4) * 2.5 / 4096.0,
            v3v3: adc(6) * 3.75 / 4096.0,
            supply: adc(7) * 15.0 / 4096.0,
            fan0: fan(0),
            fan1: fan(1),
            warning: read_u32(data, 40).unwrap_or(0),
            shutdown: read_u32(data, 44).unwrap_or(0),
        })
    }

    /// Every present reading; absent ones (no probe, no fan) are left out rather than reported as 0.
    pub fn sensors(&self) -> Vec<BoardSensor> {
        use SensorKind::{Fan, Temperature, Voltage};
        let mut out = Vec::with_capacity(12);
        let mut push = |kind, name, value: Option<f64>| {
            if let Some(value) = value {
                out.push(BoardSensor { kind, name, value });
            }
        };
        push(Temperature, "top", Some(self.temp_top));
        push(Temperature, "bottom", Some(self.temp_bottom));
        push(Temperature, "ext0", self.temp_ext0);
        push(Temperature, "ext1", self.temp_ext1);
        push(Voltage, "1v2a", Some(self.v1v2a));
        push(Voltage, "1v2b", Some(self.v1v2b));
        push(Voltage, "1v2c", Some(self.v1v2c));
        push(Voltage, "1v8", Some(self.v1v8));
        push(Voltage, "3v3", Some(self.v3v3));
        push(Voltage, "supply", Some(self.supply));
        push(Fan, "fan0", self.fan0.map(f64::from));
        push(Fan, "fan1", self.fan1.map(f64::from));
        out
    }
}

/// LED actions as the BMP's LED command encodes them.
/// BMP_INFO 0, the serial vector, as the firmware's `cmd_bmp_info` fills it (bmp_cmd.c; JavaSpiNNaker's
/// `ReadSerialVector` reads the same 32 bytes): hardware version, the LPC1768's four-word serial number
/// (from the chip's IAP "read device serial number"), then three firmware addresses this decoder skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BmpSerial {
    pub hardware_version: u32,
    pub serial: [u32; 4],
}

/// Bytes of the serial vector the decoder reads.
pub const SERIAL_LEN: usize = 20;

impl BmpSerial {
    pub fn decode(data: &[u8]) -> Option<BmpSerial> {
        let w = |i: usize| read_u32(data, 4 * i);
        Some(BmpSerial { hardware_version: w(0)?, serial: [w(1)?, w(2)?, w(3)?, w(4)?] })
    }

    /// The serial number as four 8-digit hex words, e.g. "0a01c00f-4e4b2f35-3d3a0b01-ed9e1c5f".
    pub fn serial_string(&self) -> String {
        let [a, b, c, d] = self.serial;
        format!("{a:08x}-{b:08x}-{c:08x}-{d:08x}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedAction {
    Toggle = 1,
    Off = 2,
    On = 3,
}

/// The BMP_POWER mask for a list of boards; boards above 31 do not fit and are left out.
pub fn board_mask(boards: &[u8]) -> u32 {
    boards.iter().filter(|b| **b <= MAX_BOARD).fold(0, |mask, b| mask | (1 << b))
}

fn check_board(addr: SocketAddr, board: u8) -> Result<(), ScpError> {
    if board > MAX_BOARD {
        return Err(ScpError::InvalidRequest { addr, what: format!("board {board} is out of range 0..={MAX_BOARD}") });
    }
    Ok(())
}

impl ScpClient {
    /// VER to board `board` of the frame whose BMP is at `addr`.
    pub async fn ver(&self, addr: SocketAddr, board: u8) -> Result<VersionInfo, ScpError> {
        check_board(addr, board)?;
        let req = ScpRequest::new(Dest::bmp(board), Command::VER, Args::None);
        let reply = self.call(addr, &req).await?;
        VersionInfo::decode(&reply).ok_or_else(|| {
            self.count_malformed();
            ScpError::Malformed {
                addr,
                cmd: Command::VER,
                reason: format!("{} payload bytes, fewer than the 12 of three args", reply.payload.len()),
            }
        })
    }

    /// BMP_INFO type 3: the board's temperatures, voltages and fans.
    pub async fn adc(&self, addr: SocketAddr, board: u8) -> Result<BoardStatus, ScpError> {
        check_board(addr, board)?;
        let req = ScpRequest::new(Dest::bmp(board), Command::BMP_INFO, Args::One(BMP_INFO_ADC));
        let reply = self.call(addr, &req).await?;
        BoardStatus::decode(&reply.payload).map_err(|e| {
            self.count_malformed();
            ScpError::Malformed { addr, cmd: Command::BMP_INFO, reason: format!("board {board}: {e}") }
        })
    }

    /// BMP_POWER for the boards in `boards_mask`, `delay_ms` between boards. Always addressed to board 0,
    /// which is the only one whose firmware acts on it. Power-on gets the policy's extra time per try.
    /// The board's BMP serial vector (BMP_INFO 0).
    pub async fn serial(&self, addr: SocketAddr, board: u8) -> Result<BmpSerial, ScpError> {
        check_board(addr, board)?;
        let req = ScpRequest::new(Dest::bmp(board), Command::BMP_INFO, Args::One(BMP_INFO_SERIAL));
        let reply = self.call(addr, &req).await?;
        BmpSerial::decode(&reply.payload).ok_or_else(|| {
            self.count_malformed();
            let reason = format!("board {board}: {} serial bytes, fewer than {SERIAL_LEN}", reply.payload.len());
            ScpError::Malformed { addr, cmd: Command::BMP_INFO, reason }
        })
    }

    /// Which BMPs of the frame the asked BMP sees on the CAN bus (BMP_INFO 2): entry i is board i. The
    /// firmware sends its whole status array (one byte per board slot, non-zero when that BMP answers).
    pub async fn can_status(&self, addr: SocketAddr, board: u8) -> Result<Vec<bool>, ScpError> {
        check_board(addr, board)?;
        let req = ScpRequest::new(Dest::bmp(board), Command::BMP_INFO, Args::One(BMP_INFO_CAN_STATUS));
        let reply = self.call(addr, &req).await?;
        Ok(reply.payload.iter().map(|b| *b != 0).collect())
    }

    pub async fn power(&self, addr: SocketAddr, boards_mask: u32, on: bool, delay_ms: u16) -> Result<(), ScpError> {
        if boards_mask == 0 {
            return Err(ScpError::InvalidRequest { addr, what: "BMP_POWER with an empty board mask".into() });
        }
        let arg1 = (u32::from(delay_ms) << 16) | u32::from(on);
        let req = ScpRequest::new(Dest::bmp(0), Command::BMP_POWER, Args::Two(arg1, boards_mask));
        let policy = self.policy();
        let per_try = if on { policy.timeout + policy.power_on_extra } else { policy.timeout };
        self.call_with_timeout(addr, &req, per_try).await.map(drop)
    }

    /// Sets LED `led` (0..=7) of `board`.
    pub async fn led(&self, addr: SocketAddr, board: u8, led: u8, action: LedAction) -> Result<(), ScpError> {
        check_board(addr, board)?;
        if led > 7 {
            return Err(ScpError::InvalidRequest { addr, what: format!("LED {led} is out of range 0..=7") });
        }
        let arg1 = (action as u32) << (2 * u32::from(led));
        let req = ScpRequest::new(Dest::bmp(board), Command::LED, Args::Two(arg1, 1 << board));
        self.call(addr, &req).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spinnaker::scp::ReturnCode;

    fn ver_reply(arg2: u32, data: &[u8]) -> ScpReply {
        let mut payload = Vec::new();
        for w in [0x01_02_03_04u32, arg2, 1_700_000_000] {
            payload.extend_from_slice(&w.to_le_bytes());
        }
        payload.extend_from_slice(data);
        ScpReply { rc: ReturnCode::OK, seq: 0, payload }
    }

    #[test]
    fn ver_with_numeric_version() {
        let v = VersionInfo::decode(&ver_reply((133 << 16) | 256, b"SC&MP/SpiNNaker\0")).unwrap();
        assert_eq!((v.code_block, v.frame, v.can, v.board), (1, 2, 3, 4));
        assert_eq!(v.max_payload, 256);
        assert_eq!(v.version, FirmwareVersion::Hundredths(133));
        assert_eq!(v.version.to_string(), "1.33");
        assert_eq!(v.build_time, 1_700_000_000);
        assert_eq!(v.text, "SC&MP/SpiNNaker");
        assert_eq!(v.firmware(), Firmware::Scamp);
        assert!(!v.is_bmp());
        assert_eq!(v.hardware(), "SpiNNaker");
    }

    #[test]
    fn ver_with_version_string() {
        let v = VersionInfo::decode(&ver_reply(0xFFFF_0100, b"BC&MP/SpiNN-5\x002.1.0\0")).unwrap();
        assert_eq!(v.version, FirmwareVersion::Text("2.1.0".into()));
        assert_eq!(v.max_payload, 256);
        assert!(v.is_bmp());
        assert_eq!(v.hardware(), "SpiNN-5");
    }

    #[test]
    fn ver_without_nul_or_args() {
        let v = VersionInfo::decode(&ver_reply(0, b"junk")).unwrap();
        assert_eq!(v.text, "junk");
        assert_eq!(v.firmware(), Firmware::Other);
        let short = ScpReply { rc: ReturnCode::OK, seq: 0, payload: vec![0; 11] };
        assert_eq!(VersionInfo::decode(&short), None);
    }

    #[test]
    fn masks() {
        assert_eq!(board_mask(&[0, 3, 23]), 0b1000_0000_0000_0000_0000_1001);
        assert_eq!(board_mask(&[32, 255]), 0);
    }
}
