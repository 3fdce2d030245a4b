//! The kernel log: where AER reports, driver resets and hardware errors of devices without a log file
//! of their own appear.

pub mod reader;
pub mod record;

pub use reader::{KmsgOptions, KmsgReader, KmsgStats};
pub use record::{KmsgRecord, MalformedRecord, parse_record};
