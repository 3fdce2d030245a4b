//! Which config the agent runs on: the file named on the command line, the default file, or the embedded
//! default, with the command line's overrides. Used at start, by `scan` and the demo, and by every reload.

use std::path::{Path, PathBuf};

use config::Config;

use crate::app::cli::Cli;

/// Where the config came from, for the startup log line.
#[derive(Debug)]
pub enum ConfigSource {
    File(PathBuf),
    Embedded,
}

/// Loads the config named on the command line, or the default file if present, or the embedded default;
/// then applies command-line overrides.
///
/// Errors name file, line, column and key but no value of the file (it may hold a token in a command
/// line); `accel-agent check-config FILE` shows the values to whoever may read the file.
pub fn load_config(cli: &Cli) -> Result<(Config, ConfigSource), ConfigLoadError> {
    let default_file = Path::new(config::DEFAULT_CONFIG_PATH);
    let load = |path: &Path| {
        config::load_file(path).map_err(|e| ConfigLoadError { path: path.to_owned(), errors: e.without_values() })
    };
    let (mut config, source) = match &cli.config {
        Some(path) => (load(path)?, ConfigSource::File(path.clone())),
        None if default_file.exists() => (load(default_file)?, ConfigSource::File(default_file.into())),
        None => (Config::default(), ConfigSource::Embedded),
    };
    if let Some(v) = cli.listen {
        config.listen = v;
    }
    if let Some(v) = &cli.sysfs_root {
        config.sysfs_root = v.clone();
    }
    if let Some(v) = &cli.state_dir {
        config.state_dir = v.clone();
    }
    if let Some(v) = &cli.socket {
        config.socket = v.clone();
    }
    Ok((config, source))
}

/// A config that did not load, described without its values.
#[derive(Debug, thiserror::Error)]
#[error("{errors}\n(values are left out here; `accel-agent check-config {}` shows them)", path.display())]
pub struct ConfigLoadError {
    pub path: PathBuf,
    pub errors: String,
}
