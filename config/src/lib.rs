//! accel-agent configuration: the TOML schema, its defaults, and a loader that reports every error in a
//! file as `FILE:LINE:COL: message`.

pub mod bmp;
pub mod device;
mod device_kubernetes;
pub mod diagnostics;
pub mod duration;
pub mod file;
pub mod finding;
pub mod id;
pub mod kubernetes;
pub mod load;
pub mod maintenance;
pub mod model;
pub mod pattern;
pub mod redact;
pub mod spinnaker;

pub use device::{DeviceConfig, DeviceKind, EventSeverity, Profile, Thresholds};
pub use duration::{BoundedDuration, Hold, Interval, Period, Timeout};
pub use load::{ConfigError, ConfigErrors, LoadError, load_file, parse_str};
pub use model::*;
pub use pattern::{Filter, Pattern};
