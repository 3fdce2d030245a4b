//! The composition root: command line, logging, the daemon and its reload, `--demo`, `scan`, and the
//! systemd notifications.

pub mod cli;
pub(crate) mod daemon;
#[cfg(feature = "demo")]
pub(crate) mod demo;
pub(crate) mod diagnostic_effects;
pub(crate) mod fdlimit;
pub(crate) mod hooks;
pub(crate) mod loading;
pub(crate) mod logging;
pub(crate) mod owner;
pub(crate) mod reload;
pub(crate) mod scan;
pub(crate) mod sdnotify;
pub(crate) mod source_watch;
