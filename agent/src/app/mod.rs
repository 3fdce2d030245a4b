//! The composition root: command line, logging, the daemon and its reload, `--demo`, `scan`, and the
//! systemd notifications.

pub mod cli;
pub mod daemon;
#[cfg(feature = "demo")]
pub mod demo;
pub mod hooks;
pub mod logging;
pub mod owner;
pub mod reload;
pub mod scan;
pub mod sdnotify;
