//! What the actions layer does with a decision: nothing, record what it would do (dry run), or apply it.

use std::fmt;

/// The mode in force, as `[actions]` and `--dry-run` set it; a reload may change it. In JSON it is its
/// `as_str` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionsMode {
    /// Nothing is decided and nothing written (the default).
    #[default]
    Disabled,
    /// Decisions are made and recorded as what would be done; nothing is written.
    DryRun,
    /// Decisions are applied to the machine.
    Enabled,
}

impl ActionsMode {
    /// The mode of `[actions] enabled` and `dry_run` (either from the file or `--dry-run`): a dry run
    /// writes nothing even when actions are enabled.
    pub fn of(enabled: bool, dry_run: bool) -> ActionsMode {
        match (enabled, dry_run) {
            (_, true) => ActionsMode::DryRun,
            (true, false) => ActionsMode::Enabled,
            (false, false) => ActionsMode::Disabled,
        }
    }

    /// As `/api/v1/status`, `agentctl status` and the landing page show it.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionsMode::Disabled => "disabled",
            ActionsMode::DryRun => "dry-run",
            ActionsMode::Enabled => "enabled",
        }
    }

    /// Whether anything is decided at all.
    pub fn decides(self) -> bool {
        self != ActionsMode::Disabled
    }

    /// Whether decisions are written to the machine.
    pub fn writes(self) -> bool {
        self == ActionsMode::Enabled
    }

    /// For the atomic that the async side reads without waiting for the actions thread.
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            ActionsMode::Disabled => 0,
            ActionsMode::DryRun => 1,
            ActionsMode::Enabled => 2,
        }
    }

    pub(crate) fn from_u8(v: u8) -> ActionsMode {
        match v {
            1 => ActionsMode::DryRun,
            2 => ActionsMode::Enabled,
            _ => ActionsMode::Disabled,
        }
    }
}

impl fmt::Display for ActionsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_wins_over_enabled_and_the_mode_survives_the_atomic() {
        assert_eq!(ActionsMode::of(true, true), ActionsMode::DryRun);
        assert_eq!(ActionsMode::of(false, true), ActionsMode::DryRun);
        assert_eq!(ActionsMode::of(true, false), ActionsMode::Enabled);
        assert_eq!(ActionsMode::of(false, false), ActionsMode::Disabled);
        for m in [ActionsMode::Disabled, ActionsMode::DryRun, ActionsMode::Enabled] {
            assert_eq!(ActionsMode::from_u8(m.to_u8()), m);
        }
        assert!(!ActionsMode::DryRun.writes() && ActionsMode::DryRun.decides());
        assert_eq!(ActionsMode::DryRun.to_string(), "dry-run");
    }
}
