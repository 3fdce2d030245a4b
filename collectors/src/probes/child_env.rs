//! The environment every child of the agent starts with: probes, hooks, throttle and reconnect commands.
//!
//! The agent's own environment holds what its children must not see: the spalloc credentials variable
//! (`spalloc_credentials_env`), systemd's `NOTIFY_SOCKET`, whatever the unit or the shell that started it
//! exported. So a child gets none of it except a short allowlist that tools need to run and to format
//! their output; anything else a tool needs is named in its command (`env NAME=VALUE tool ...`) or set by
//! the agent for that child (a hook's `ACCEL_DEVICE`, ...).

use std::ffi::OsString;

/// The variables a child keeps from the agent's environment.
pub const KEPT: [&str; 4] = ["PATH", "LANG", "LC_ALL", "TZ"];

/// The `PATH` a child gets when the agent has none (systemd's default for services).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Out of `parent` (the agent's environment, `std::env::vars_os()`), the variables a child keeps: those
/// in [`KEPT`], and `PATH` always, [`DEFAULT_PATH`] when the agent has none, so a child can find the
/// programs it runs.
pub fn minimal(parent: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    let mut kept: Vec<(OsString, OsString)> =
        parent.into_iter().filter(|(k, _)| KEPT.iter().any(|n| k.as_os_str() == *n)).collect();
    if !kept.iter().any(|(k, _)| k.as_os_str() == "PATH") {
        kept.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
    }

    #[test]
    fn only_the_allowlist_is_kept() {
        let parent = vars(&[
            ("PATH", "/opt/vendor/bin:/usr/bin"),
            ("SPALLOC_CREDENTIALS", "ops:hunter2"),
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("HOME", "/root"),
            ("LANG", "C.UTF-8"),
            ("TZ", "UTC"),
            ("LC_ALL", "C"),
            ("PATHX", "no"),
        ]);
        assert_eq!(
            minimal(parent),
            vars(&[("PATH", "/opt/vendor/bin:/usr/bin"), ("LANG", "C.UTF-8"), ("TZ", "UTC"), ("LC_ALL", "C")])
        );
    }

    #[test]
    fn a_child_always_has_a_path() {
        assert_eq!(minimal(vars(&[("API_TOKEN", "x")])), vars(&[("PATH", DEFAULT_PATH)]));
    }
}
