//! Parsing one /dev/kmsg record (Documentation/ABI/testing/dev-kmsg):
//!
//! ```text
//! 6,1234,5678901,-;pcieport 0000:00:1c.0: AER: Corrected error received
//!  SUBSYSTEM=pci
//!  DEVICE=+pci:0000:00:1c.0
//! ```
//!
//! The header is `prefix,seq,timestamp_us,flags[,more...];message`, where `prefix` is
//! `facility << 3 | level`. Newer kernels append fields after the flags (e.g. `caller=T123`); they are
//! ignored. The lines after the first start with a space and are `KEY=value` properties; `DEVICE` names
//! the device the message is about. The kernel escapes control characters in the message as `\xNN`;
//! the message is kept in that form.

use std::fmt;

/// One kernel log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Syslog level: 0 (emerg) to 7 (debug).
    pub priority: u8,
    /// Syslog facility: 0 for the kernel, others for messages written to /dev/kmsg by user space.
    pub facility: u8,
    pub seq: u64,
    /// Microseconds since boot (CLOCK_MONOTONIC).
    pub timestamp_us: u64,
    pub message: String,
    /// The continuation lines' `KEY=value` pairs, e.g. ("SUBSYSTEM", "pci"), ("DEVICE", "+pci:0000:00:1c.0").
    pub properties: Vec<(String, String)>,
}

impl KmsgRecord {
    /// The value of a continuation property, e.g. `DEVICE`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Why a record was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedRecord {
    /// No `;` between header and message.
    NoHeader,
    /// Fewer than the four header fields.
    MissingField(&'static str),
    /// A header field that is not a number in range.
    BadNumber(&'static str),
    /// A line after the first that does not start with a space.
    BadContinuation,
}

impl fmt::Display for MalformedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MalformedRecord::NoHeader => f.write_str("no ';' after the header"),
            MalformedRecord::MissingField(name) => write!(f, "header has no {name}"),
            MalformedRecord::BadNumber(name) => write!(f, "header field {name} is not a number in range"),
            MalformedRecord::BadContinuation => f.write_str("a continuation line does not start with a space"),
        }
    }
}

impl std::error::Error for MalformedRecord {}

/// Parses one record: a header line and its continuation lines, with or without the final newline.
pub fn parse_record(bytes: &[u8]) -> Result<KmsgRecord, MalformedRecord> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut lines = bytes.split(|&b| b == b'\n');
    let first = lines.next().unwrap_or_default();
    let semi = first.iter().position(|&b| b == b';').ok_or(MalformedRecord::NoHeader)?;
    let (header, message) = (&first[..semi], &first[semi + 1..]);

    let mut fields = header.split(|&b| b == b',');
    let mut field = |name| fields.next().filter(|f| !f.is_empty()).ok_or(MalformedRecord::MissingField(name));
    let prefix: u32 = number(field("prefix")?, "prefix")?;
    let seq: u64 = number(field("seq")?, "seq")?;
    let timestamp_us: u64 = number(field("timestamp")?, "timestamp")?;
    field("flags")?;
    let facility = u8::try_from(prefix >> 3).map_err(|_| MalformedRecord::BadNumber("prefix"))?;

    let mut properties = Vec::new();
    for line in lines {
        let prop = line.strip_prefix(b" ").ok_or(MalformedRecord::BadContinuation)?;
        let text = String::from_utf8_lossy(prop);
        let (k, v) = text.split_once('=').unwrap_or((&text, ""));
        properties.push((k.to_owned(), v.to_owned()));
    }
    Ok(KmsgRecord {
        priority: (prefix & 7) as u8,
        facility,
        seq,
        timestamp_us,
        message: String::from_utf8_lossy(message).into_owned(),
        properties,
    })
}

fn number<T: std::str::FromStr>(b: &[u8], name: &'static str) -> Result<T, MalformedRecord> {
    std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).ok_or(MalformedRecord::BadNumber(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_record_with_properties() {
        let r = parse_record(
            b"3,1234,5678901,-;pcieport 0000:00:1c.0: AER: Uncorrected (Fatal) error received\n SUBSYSTEM=pci\n DEVICE=+pci:0000:00:1c.0\n",
        )
        .unwrap();
        assert_eq!(r.priority, 3);
        assert_eq!(r.facility, 0);
        assert_eq!(r.seq, 1234);
        assert_eq!(r.timestamp_us, 5_678_901);
        assert_eq!(r.message, "pcieport 0000:00:1c.0: AER: Uncorrected (Fatal) error received");
        assert_eq!(r.property("SUBSYSTEM"), Some("pci"));
        assert_eq!(r.property("DEVICE"), Some("+pci:0000:00:1c.0"));
        assert_eq!(r.property("DRIVER"), None);
    }

    #[test]
    fn user_space_facility_extra_header_fields_and_semicolons_in_the_message() {
        let r = parse_record(b"30,7,100,c,caller=T42;systemd[1]: a; b; c").unwrap();
        assert_eq!((r.facility, r.priority), (3, 6));
        assert_eq!(r.message, "systemd[1]: a; b; c");
        assert!(r.properties.is_empty());
    }

    #[test]
    fn an_empty_message_is_a_record() {
        let r = parse_record(b"6,1,2,-;\n").unwrap();
        assert_eq!(r.message, "");
    }

    #[test]
    fn malformed_records_say_what_is_wrong() {
        assert_eq!(parse_record(b""), Err(MalformedRecord::NoHeader));
        assert_eq!(parse_record(b"6,1,2,- no semicolon\n"), Err(MalformedRecord::NoHeader));
        assert_eq!(parse_record(b"6,1,2;msg"), Err(MalformedRecord::MissingField("flags")));
        assert_eq!(parse_record(b"6,,2,-;msg"), Err(MalformedRecord::MissingField("seq")));
        assert_eq!(parse_record(b"x,1,2,-;msg"), Err(MalformedRecord::BadNumber("prefix")));
        assert_eq!(parse_record(b"6,1,-5,-;msg"), Err(MalformedRecord::BadNumber("timestamp")));
        assert_eq!(parse_record(b"6,99999999999999999999,2,-;msg"), Err(MalformedRecord::BadNumber("seq")));
        assert_eq!(parse_record(b"4096,1,2,-;msg"), Err(MalformedRecord::BadNumber("prefix")));
        assert_eq!(parse_record(b"6,1,2,-;msg\nnot a continuation"), Err(MalformedRecord::BadContinuation));
    }

    #[test]
    fn invalid_utf8_in_the_message_is_replaced() {
        let r = parse_record(b"6,1,2,-;nvme \xff ok").unwrap();
        assert_eq!(r.message, "nvme \u{FFFD} ok");
    }
}
