//! Logs go to stderr (journald picks them up under systemd), as text or one JSON object per line.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::app::cli::LogFormat;

pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("invalid --log-level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Redacting(std::io::stderr()))
        // A log line that cannot be written (stderr piped into `head`, which has exited) is dropped;
        // reporting that on stderr would panic on the same broken pipe.
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

/// stderr through the redaction every output uses: a line that quotes a command loses its secrets before
/// it reaches journald. The formatter writes each event in one call, so each call is one whole line.
struct Redacting(std::io::Stderr);

impl Write for Redacting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(config::redact::redact_text(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
