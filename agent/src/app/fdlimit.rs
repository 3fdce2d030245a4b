//! A descriptor budget that adds up: every part of the agent that holds file descriptors gets a share, and
//! the shares together fit the soft `RLIMIT_NOFILE` the agent sets.
//!
//! The parts: attribute files the collectors keep open (`[collectors] max_open_files`), HTTP connections
//! (`[http] max_connections`), control-socket connections, the journal, children (probes, hooks, actions)
//! and [`HEADROOM`] for everything not counted one by one. At start and on every reload the agent raises its
//! soft limit toward the sum, never beyond the hard limit. When the sum does not fit, budgets give in this
//! order, so that a full limit costs speed, then capacity, but never an action or a probe:
//! 1. the attribute cache shrinks (files beyond it are opened per read: same values, more syscalls);
//! 2. then the HTTP connection cap shrinks, down to [`MIN_HTTP_CONNECTIONS`];
//! 3. the reserve (control socket, journal, children, headroom) never gives.
//!
//! Without this, ~4,000 idle TCP connections could take the descriptors a probe needed to start, and the
//! agent would have read its own shortage as a device failing.

/// Descriptors kept for everything not budgeted one by one: followed logs, sockets to SpiNNaker boards and
/// BMPs, attribute files opened per read, the runtime's own (epoll, eventfd, signal pipes), stdio.
pub const HEADROOM: u64 = 1024;

/// The journal: its connections (the writer and the reader) each hold the database, its `-wal` and its
/// `-shm`; 16 leaves room for a third connection (one for API queries alone) and SQLite's temporary files.
pub const JOURNAL_FDS: u64 = 16;

/// One child at its peak: while spawning, both ends of its stdout and stderr pipes (4) and the pipe that
/// reports a failed exec (2); while running, the two read ends and a pidfd. Actions' commands get
/// `/dev/null` for stdio and need fewer.
pub const FDS_PER_CHILD: u64 = 6;

/// Children running at once besides probes and hooks: the actions worker runs one command at a time
/// (a vendor reconnect step or a throttle command).
pub const ACTION_CHILDREN: u32 = 1;

/// The HTTP cap never shrinks below this: a scraper, a dashboard and an operator's curl must get in even
/// on a host whose limit is too low for anything else.
pub const MIN_HTTP_CONNECTIONS: usize = 16;

/// What each part would like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// `[collectors] max_open_files`.
    pub open_files: u32,
    /// `[http] max_connections`.
    pub http_connections: u32,
    /// Control-socket connections held at once.
    pub control_connections: u32,
    /// Children that may run at once: one per probe and hook, plus [`ACTION_CHILDREN`].
    pub children: u32,
}

impl Wanted {
    /// What `config` asks for.
    pub fn from_config(config: &config::Config) -> Wanted {
        let probes: usize = config.devices.iter().map(|d| d.probes.len()).sum();
        let children = probes + config.actions.hooks.len() + ACTION_CHILDREN as usize;
        Wanted {
            open_files: config.collectors.max_open_files,
            http_connections: config.http.max_connections,
            control_connections: u32::try_from(crate::control::MAX_CONNECTIONS).unwrap_or(u32::MAX),
            children: u32::try_from(children).unwrap_or(u32::MAX),
        }
    }

    /// The part that never gives: control socket, journal, children and headroom.
    pub fn reserve(&self) -> u64 {
        u64::from(self.control_connections) + JOURNAL_FDS + u64::from(self.children) * FDS_PER_CHILD + HEADROOM
    }

    /// Everything together.
    pub fn total(&self) -> u64 {
        self.reserve() + u64::from(self.open_files) + u64::from(self.http_connections)
    }
}

/// What to set and what fits under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The soft limit to set; equal to the current one when nothing needs to change.
    pub soft: u64,
    /// Attribute files that may stay open.
    pub open_files: usize,
    /// HTTP connections held at once.
    pub http_connections: usize,
    /// Kept for the control socket, the journal, children and headroom.
    pub reserve: u64,
}

impl Budget {
    /// Whether the soft limit holds the reserve and both budgets; false only when even the smallest HTTP
    /// cap does not fit beside the reserve.
    pub fn fits(&self) -> bool {
        self.reserve + self.open_files as u64 + self.http_connections as u64 <= self.soft
    }
}

/// Pure arithmetic, so it can be tested without touching the process's limits.
pub fn fit(wanted: Wanted, soft: u64, hard: u64) -> Budget {
    // Never lower a limit someone raised on purpose.
    let soft = soft.max(wanted.total().min(hard));
    let reserve = wanted.reserve();
    let room = soft.saturating_sub(reserve);
    // HTTP before the attribute cache: a file not kept open costs a few syscalls per read, a connection
    // refused costs a scrape.
    let http_wanted = u64::from(wanted.http_connections);
    // Below even its floor HTTP keeps the floor: refusing every scrape would not free a descriptor that
    // matters more than the metrics endpoint.
    let http = http_wanted.min(room).max(http_wanted.min(MIN_HTTP_CONNECTIONS as u64));
    let open_files = u64::from(wanted.open_files).min(room.saturating_sub(http));
    Budget {
        soft,
        open_files: usize::try_from(open_files).unwrap_or(usize::MAX),
        http_connections: usize::try_from(http).unwrap_or(usize::MAX),
        reserve,
    }
}

/// Raises the soft limit as far as the budget needs and the hard limit allows; returns the budget that
/// fits. Called at start and on every reload (the budget may have changed).
pub fn apply(wanted: Wanted) -> Budget {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!("cannot read RLIMIT_NOFILE: {}", std::io::Error::last_os_error());
        return fit(wanted, u64::MAX, u64::MAX);
    }
    let mut b = fit(wanted, lim.rlim_cur, lim.rlim_max);
    if b.soft != lim.rlim_cur {
        let raised = libc::rlimit { rlim_cur: b.soft, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::debug!(from = lim.rlim_cur, to = b.soft, "raised the open-file soft limit");
        } else {
            tracing::warn!("cannot raise RLIMIT_NOFILE to {}: {}", b.soft, std::io::Error::last_os_error());
            b = fit(wanted, lim.rlim_cur, lim.rlim_cur);
        }
    }
    let gave = b.open_files < wanted.open_files as usize || b.http_connections < wanted.http_connections as usize;
    if gave {
        tracing::warn!(
            limit = b.soft,
            hard_limit = lim.rlim_max,
            reserve = b.reserve,
            max_open_files = wanted.open_files,
            max_connections = wanted.http_connections,
            "the open-file limit leaves room for {} attribute files (the rest are opened per read) and {} HTTP \
             connections; raise LimitNOFILE in the unit, or lower [collectors] max_open_files or \
             [http] max_connections",
            b.open_files,
            b.http_connections,
        );
    }
    if !b.fits() {
        tracing::warn!(
            limit = b.soft,
            reserve = b.reserve,
            "the open-file limit is below what the control socket, journal, probes and hooks need; \
             raise LimitNOFILE in the unit"
        );
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host like the one in issue 23: the default budgets and one probe.
    fn wanted(open_files: u32, http: u32) -> Wanted {
        Wanted { open_files, http_connections: http, control_connections: 64, children: 2 }
    }

    #[test]
    fn the_reserve_is_control_journal_children_and_headroom() {
        // 64 + 16 + 2 children x 6 + 1024
        assert_eq!(wanted(4096, 1024).reserve(), 1116);
        assert_eq!(wanted(4096, 1024).total(), 1116 + 4096 + 1024);
    }

    #[test]
    fn raises_the_soft_limit_to_everything_together() {
        let b = fit(wanted(4096, 1024), 1024, 524_288);
        assert_eq!(b, Budget { soft: 6236, open_files: 4096, http_connections: 1024, reserve: 1116 });
        assert!(b.fits());
    }

    #[test]
    fn the_packaged_units_8192_hold_the_defaults() {
        let b = fit(wanted(4096, 1024), 8192, 8192);
        assert_eq!((b.soft, b.open_files, b.http_connections), (8192, 4096, 1024));
    }

    #[test]
    fn never_lowers_a_higher_soft_limit() {
        assert_eq!(fit(wanted(4096, 1024), 65_536, 65_536).soft, 65_536);
    }

    #[test]
    fn at_a_hard_limit_of_5120_the_attribute_cache_gives_first() {
        // Issue 23's host: max_open_files 4096 under a hard limit of 5120. HTTP keeps its 1024; the
        // attribute cache gets 5120 - 1116 - 1024 = 2980.
        let b = fit(wanted(4096, 1024), 1024, 5120);
        assert_eq!(b, Budget { soft: 5120, open_files: 2980, http_connections: 1024, reserve: 1116 });
        assert!(b.fits());
        // The old HTTP cap of 4096 cannot fit beside the reserve: the cache is gone and HTTP shrinks to
        // what is left, 5120 - 1116 = 4004, instead of running the agent out of descriptors.
        let b = fit(wanted(4096, 4096), 1024, 5120);
        assert_eq!((b.open_files, b.http_connections), (0, 4004));
        assert!(b.fits());
    }

    #[test]
    fn a_limit_of_2048_leaves_http_932_and_no_attribute_cache() {
        // 2048 - 1116 = 932, all of it for HTTP; files are then opened per read.
        let b = fit(wanted(4096, 1024), 2048, 2048);
        assert_eq!(b, Budget { soft: 2048, open_files: 0, http_connections: 932, reserve: 1116 });
        assert!(b.fits());
    }

    #[test]
    fn below_the_reserve_http_keeps_its_floor_and_says_it_does_not_fit() {
        let b = fit(wanted(4096, 1024), 1024, 1024);
        assert_eq!((b.soft, b.open_files, b.http_connections), (1024, 0, 16));
        assert!(!b.fits());
        // A cap asked below the floor is kept as asked.
        assert_eq!(fit(wanted(0, 4), 512, 512).http_connections, 4);
    }

    #[test]
    fn a_zero_attribute_budget_keeps_no_file_open() {
        let b = fit(wanted(0, 1024), 1024, 4096);
        assert_eq!((b.soft, b.open_files, b.http_connections), (2140, 0, 1024));
    }

    #[test]
    fn each_probe_and_hook_reserves_its_pipes() {
        let mut c = config::Config::default();
        let hook = config::Hook { on: vec!["unhealthy".into()], command: vec!["drain".into()], timeout: None };
        c.actions.hooks = vec![hook; 3];
        let w = Wanted::from_config(&c);
        // 3 hooks + the actions worker.
        assert_eq!(w.children, 4);
        assert_eq!(w.reserve(), 64 + 16 + 4 * 6 + 1024);
        assert_eq!((w.open_files, w.http_connections), (4096, 1024));
    }
}
