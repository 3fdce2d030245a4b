//! The agent's own trouble, told apart from a device's.
//!
//! A probe that cannot be started because the agent is out of file descriptors says nothing about the
//! device it was meant to check: judging the device on it once turned a connection flood against the
//! agent into a reset of healthy hardware. Every place that starts a process or opens a socket on a
//! device's behalf classifies its error here first; a fault is reported as the agent's, and the device's
//! evidence is left as it was.

use std::io;

/// A resource the agent itself ran out of. In JSON it is its label (`descriptors`, `memory`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentFault {
    /// EMFILE or ENFILE: the process's (or the system's) open-file limit.
    Descriptors,
    /// ENOMEM: no memory for the new process, pipe or socket.
    Memory,
    /// EAGAIN from fork: the process or thread limit.
    Processes,
    /// ENOSPC or EDQUOT: the agent's own files (journal, state) have no room.
    Disk,
}

impl AgentFault {
    /// Every kind, in label order, so that `accel_agent_faults_total` shows each from the start.
    pub const ALL: [AgentFault; 4] =
        [AgentFault::Descriptors, AgentFault::Disk, AgentFault::Memory, AgentFault::Processes];

    /// The `kind` label of `accel_agent_faults_total`.
    pub fn label(self) -> &'static str {
        match self {
            AgentFault::Descriptors => "descriptors",
            AgentFault::Memory => "memory",
            AgentFault::Processes => "processes",
            AgentFault::Disk => "disk",
        }
    }

    /// What a person reads in status, the log and diagnose.
    pub fn describe(self) -> &'static str {
        match self {
            AgentFault::Descriptors => "out of file descriptors",
            AgentFault::Memory => "out of memory",
            AgentFault::Processes => "at the process limit",
            AgentFault::Disk => "out of disk space",
        }
    }

    /// The agent's fault behind an error from starting a process or opening a pipe or socket, if it is
    /// one. Errors that concern the target (no such program, permission denied, connection refused) are
    /// not: they stay evidence about the device or its configuration.
    pub fn of(error: &io::Error) -> Option<AgentFault> {
        match error.raw_os_error()? {
            libc::EMFILE | libc::ENFILE => Some(AgentFault::Descriptors),
            libc::ENOMEM | libc::ENOBUFS => Some(AgentFault::Memory),
            libc::EAGAIN => Some(AgentFault::Processes),
            libc::ENOSPC | libc::EDQUOT => Some(AgentFault::Disk),
            _ => None,
        }
    }
}

impl std::fmt::Display for AgentFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_errors_are_the_agents_and_target_errors_are_not() {
        let of = |errno| AgentFault::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(of(libc::EMFILE), Some(AgentFault::Descriptors));
        assert_eq!(of(libc::ENFILE), Some(AgentFault::Descriptors));
        assert_eq!(of(libc::ENOMEM), Some(AgentFault::Memory));
        assert_eq!(of(libc::EAGAIN), Some(AgentFault::Processes));
        assert_eq!(of(libc::ENOSPC), Some(AgentFault::Disk));
        for target in [libc::ENOENT, libc::EACCES, libc::ECONNREFUSED, libc::EHOSTUNREACH, libc::ETIMEDOUT] {
            assert_eq!(of(target), None, "errno {target} concerns the target");
        }
        assert_eq!(AgentFault::of(&io::Error::other("no errno")), None);
    }
}
