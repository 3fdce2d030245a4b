//! SCP packets as they travel in one UDP datagram (reference: shared/reference/spinnaker.md).
//!
//! Pure encoding and decoding, no I/O: the client and the tests share it, and the simulators in accel-sim
//! deliberately carry their own encoder so that a mistake here cannot hide itself.

use std::fmt;

/// The UDP port both SC&MP and the BMP listen on.
pub const SCP_PORT: u16 = 17893;

/// Padding (2) + SDP header (8) + cmd_rc (2) + seq (2): the shortest datagram that can be a reply.
pub const HEADER_LEN: usize = 14;

const FLAGS_REPLY_EXPECTED: u8 = 0x87;
const TAG_FROM_HOST: u8 = 0xFF;
/// Port 7, cpu 31: "the host" in the source field.
const SRC_HOST: u8 = 0xFF;

/// An SCP command code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Command(pub u16);

impl Command {
    pub const VER: Command = Command(0);
    pub const READ: Command = Command(2);
    pub const WRITE: Command = Command(3);
    pub const LED: Command = Command(25);
    pub const BMP_INFO: Command = Command(48);
    pub const RESET: Command = Command(55);
    pub const BMP_POWER: Command = Command(57);

    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "VER",
            2 => "READ",
            3 => "WRITE",
            25 => "LED",
            48 => "BMP_INFO",
            55 => "RESET",
            57 => "BMP_POWER",
            _ => return None,
        })
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "command {}", self.0),
        }
    }
}

/// The cmd_rc field of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReturnCode(pub u16);

impl ReturnCode {
    pub const OK: ReturnCode = ReturnCode(0x80);
    pub const LEN: ReturnCode = ReturnCode(0x81);
    pub const SUM: ReturnCode = ReturnCode(0x82);
    pub const CMD: ReturnCode = ReturnCode(0x83);
    pub const ARG: ReturnCode = ReturnCode(0x84);
    pub const TIMEOUT: ReturnCode = ReturnCode(0x86);
    pub const P2P_NOREPLY: ReturnCode = ReturnCode(0x8B);
    pub const P2P_BUSY: ReturnCode = ReturnCode(0x8D);
    pub const P2P_TIMEOUT: ReturnCode = ReturnCode(0x8E);

    pub fn is_ok(self) -> bool {
        self == ReturnCode::OK
    }

    /// The codes the public clients (rig, spinnman) resend on: transient conditions on the path to the
    /// core, not a verdict on the request itself.
    pub fn is_retryable(self) -> bool {
        matches!(self.0, 0x81 | 0x82 | 0x86 | 0x8B | 0x8D | 0x8E)
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            0x80 => "OK",
            0x81 => "LEN",
            0x82 => "SUM",
            0x83 => "CMD",
            0x84 => "ARG",
            0x85 => "PORT",
            0x86 => "TIMEOUT",
            0x87 => "ROUTE",
            0x88 => "CPU",
            0x89 => "DEAD",
            0x8A => "BUF",
            0x8B => "P2P_NOREPLY",
            0x8C => "P2P_REJECT",
            0x8D => "P2P_BUSY",
            0x8E => "P2P_TIMEOUT",
            0x8F => "PKT_TX",
            _ => "unknown",
        }
    }
}

impl fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} ({})", self.0, self.name())
    }
}

/// Where on the machine a request goes. A BMP is x = y = 0, port 0, cpu = board number in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    pub x: u8,
    pub y: u8,
    pub port: u8,
    pub cpu: u8,
}

impl Dest {
    pub fn bmp(board: u8) -> Dest {
        Dest { x: 0, y: 0, port: 0, cpu: board }
    }

    /// The packed port/cpu byte; out-of-range values are masked as the hardware would.
    pub fn port_cpu(self) -> u8 {
        ((self.port & 0x7) << 5) | (self.cpu & 0x1F)
    }
}

/// Zero to three argument words; an enum so that a fourth cannot be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Args {
    None,
    One(u32),
    Two(u32, u32),
    Three(u32, u32, u32),
}

impl Args {
    fn words(self) -> ([u32; 3], usize) {
        match self {
            Args::None => ([0; 3], 0),
            Args::One(a) => ([a, 0, 0], 1),
            Args::Two(a, b) => ([a, b, 0], 2),
            Args::Three(a, b, c) => ([a, b, c], 3),
        }
    }
}

/// A request, everything but the sequence number, which the client assigns per send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpRequest {
    pub dest: Dest,
    pub cmd: Command,
    pub args: Args,
    pub data: Vec<u8>,
}

impl ScpRequest {
    pub fn new(dest: Dest, cmd: Command, args: Args) -> ScpRequest {
        ScpRequest { dest, cmd, args, data: Vec::new() }
    }

    /// The datagram for this request with `seq`.
    pub fn encode(&self, seq: u16) -> Vec<u8> {
        let (words, n) = self.args.words();
        let mut out = Vec::with_capacity(HEADER_LEN + 4 * n + self.data.len());
        out.extend_from_slice(&[0, 0, FLAGS_REPLY_EXPECTED, TAG_FROM_HOST, self.dest.port_cpu(), SRC_HOST]);
        // The host is chip (0, 0) as far as SDP is concerned.
        out.extend_from_slice(&[self.dest.y, self.dest.x, 0, 0]);
        out.extend_from_slice(&self.cmd.0.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        for w in &words[..n] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&self.data);
        out
    }
}

/// A datagram that cannot be an SCP reply at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("{len} bytes, shorter than the {HEADER_LEN}-byte SCP header")]
    Truncated { len: usize },
}

/// The parts of a reply the client needs; the payload is whatever follows seq (args and data), since only
/// the command knows how many argument words its reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScpReply {
    pub rc: ReturnCode,
    pub seq: u16,
    pub payload: Vec<u8>,
}

impl ScpReply {
    /// Only what dispatching needs, without copying the payload: most datagrams that fail to match are
    /// dropped right after this.
    pub fn peek(buf: &[u8]) -> Result<(ReturnCode, u16), PacketError> {
        if buf.len() < HEADER_LEN {
            return Err(PacketError::Truncated { len: buf.len() });
        }
        Ok((ReturnCode(u16::from_le_bytes([buf[10], buf[11]])), u16::from_le_bytes([buf[12], buf[13]])))
    }

    pub fn decode(buf: &[u8]) -> Result<ScpReply, PacketError> {
        let (rc, seq) = ScpReply::peek(buf)?;
        Ok(ScpReply { rc, seq, payload: buf[HEADER_LEN..].to_vec() })
    }

    /// The first `N` argument words and the data after them; None if the payload is too short.
    pub fn args<const N: usize>(&self) -> Option<([u32; N], &[u8])> {
        if self.payload.len() < 4 * N {
            return None;
        }
        let mut words = [0u32; N];
        for (i, w) in words.iter_mut().enumerate() {
            *w = read_u32(&self.payload, 4 * i)?;
        }
        Some((words, &self.payload[4 * N..]))
    }
}

pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

pub(crate) fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let b = buf.get(at..at + 2)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

pub(crate) fn read_i16(buf: &[u8], at: usize) -> Option<i16> {
    read_u16(buf, at).map(|v| v as i16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_layout() {
        let req = ScpRequest::new(Dest { x: 3, y: 4, port: 1, cpu: 17 }, Command::BMP_INFO, Args::Two(3, 0x0102_0304));
        let bytes = req.encode(0xABCD);
        assert_eq!(
            bytes,
            [0, 0, 0x87, 0xFF, (1 << 5) | 17, 0xFF, 4, 3, 0, 0, 48, 0, 0xCD, 0xAB, 3, 0, 0, 0, 4, 3, 2, 1]
        );
    }

    #[test]
    fn out_of_range_port_and_cpu_are_masked() {
        assert_eq!(Dest { x: 0, y: 0, port: 9, cpu: 33 }.port_cpu(), (1 << 5) | 1);
    }

    #[test]
    fn data_follows_args() {
        let mut req = ScpRequest::new(Dest::bmp(0), Command::WRITE, Args::Three(1, 2, 3));
        req.data = vec![9, 8, 7];
        let bytes = req.encode(1);
        assert_eq!(bytes.len(), HEADER_LEN + 12 + 3);
        assert_eq!(&bytes[HEADER_LEN + 12..], &[9, 8, 7]);
    }

    #[test]
    fn reply_decoding_and_args() {
        let mut buf = vec![0, 0, 0x07, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0x80, 0, 0x34, 0x12];
        buf.extend_from_slice(&7u32.to_le_bytes());
        buf.extend_from_slice(b"xy");
        let reply = ScpReply::decode(&buf).unwrap();
        assert_eq!(reply.rc, ReturnCode::OK);
        assert_eq!(reply.seq, 0x1234);
        let ([a], rest) = reply.args::<1>().unwrap();
        assert_eq!(a, 7);
        assert_eq!(rest, b"xy");
        assert!(reply.args::<2>().is_none());
    }

    #[test]
    fn short_datagrams_are_truncated_errors() {
        for len in 0..HEADER_LEN {
            assert_eq!(ScpReply::decode(&vec![0; len]), Err(PacketError::Truncated { len }));
        }
    }

    #[test]
    fn retryable_codes_match_the_public_clients() {
        let retryable: Vec<u16> = (0x80..=0x8F).filter(|c| ReturnCode(*c).is_retryable()).collect();
        assert_eq!(retryable, [0x81, 0x82, 0x86, 0x8B, 0x8D, 0x8E]);
        assert_eq!(ReturnCode(0x84).to_string(), "0x84 (ARG)");
    }
}
