//! Enough file descriptors for the open-attribute budget, and a budget that fits the descriptors there are.
//!
//! Collectors keep attribute files open to re-read them with one `pread` each (see
//! `collectors::sysfs::io`); `[collectors] max_open_files` bounds how many. The usual soft limit of 1024 is
//! below what a large host needs, so the agent raises its soft `RLIMIT_NOFILE` to the budget plus
//! [`HEADROOM`], never beyond the hard limit; if the hard limit is lower, the budget shrinks to fit and
//! the rest of the files are opened per read.

/// Descriptors kept for everything else: scrape and agentctl connections, the journal, followed logs,
/// probes' pipes, sockets to SpiNNaker boards.
pub const HEADROOM: u64 = 1024;

/// What to set and what fits: the soft limit to ask for and the budget that leaves [`HEADROOM`] under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// The soft limit to set; equal to the current one when nothing needs to change.
    pub soft: u64,
    /// Attribute files that may stay open.
    pub budget: usize,
}

/// Pure arithmetic, so it can be tested without touching the process's limits.
pub fn fit(wanted_budget: u32, soft: u64, hard: u64) -> Fit {
    let needed = u64::from(wanted_budget) + HEADROOM;
    // Never lower a limit someone raised on purpose.
    let soft = soft.max(needed.min(hard));
    let budget = soft.saturating_sub(HEADROOM).min(u64::from(wanted_budget));
    Fit { soft, budget: usize::try_from(budget).unwrap_or(usize::MAX) }
}

/// Raises the soft limit as far as the budget needs and the hard limit allows; returns the budget that
/// fits. Called at start and on every reload (the budget may have changed).
pub fn apply(wanted_budget: u32) -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!("cannot read RLIMIT_NOFILE: {}", std::io::Error::last_os_error());
        return usize::try_from(wanted_budget).unwrap_or(usize::MAX);
    }
    let mut f = fit(wanted_budget, lim.rlim_cur, lim.rlim_max);
    if f.soft != lim.rlim_cur {
        let raised = libc::rlimit { rlim_cur: f.soft, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::debug!(from = lim.rlim_cur, to = f.soft, "raised the open-file soft limit");
        } else {
            tracing::warn!("cannot raise RLIMIT_NOFILE to {}: {}", f.soft, std::io::Error::last_os_error());
            f = fit(wanted_budget, lim.rlim_cur, lim.rlim_cur);
        }
    }
    if f.budget < usize::try_from(wanted_budget).unwrap_or(usize::MAX) {
        tracing::warn!(
            max_open_files = wanted_budget,
            hard_limit = lim.rlim_max,
            "the open-file limit leaves room for {} attribute files only; the rest are opened per read \
             (raise LimitNOFILE in the unit, or lower [collectors] max_open_files)",
            f.budget
        );
    }
    f.budget
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_soft_limit_to_the_budget_plus_headroom() {
        assert_eq!(fit(4096, 1024, 524_288), Fit { soft: 5120, budget: 4096 });
    }

    #[test]
    fn never_lowers_a_higher_soft_limit() {
        assert_eq!(fit(4096, 65_536, 65_536), Fit { soft: 65_536, budget: 4096 });
    }

    #[test]
    fn a_low_hard_limit_shrinks_the_budget() {
        assert_eq!(fit(4096, 1024, 2048), Fit { soft: 2048, budget: 1024 });
        assert_eq!(fit(4096, 1024, 1024), Fit { soft: 1024, budget: 0 });
        assert_eq!(fit(4096, 512, 512), Fit { soft: 512, budget: 0 });
    }

    #[test]
    fn a_zero_budget_keeps_no_file_open() {
        assert_eq!(fit(0, 1024, 4096), Fit { soft: 1024, budget: 0 });
    }
}
