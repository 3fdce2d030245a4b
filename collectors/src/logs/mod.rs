//! Device logs: following files across rotation, reading /dev/kmsg, and matching lines against rules.
