//! Simulators and helpers for accel-agent's tests: fake sysfs trees (and the real captured one with its
//! symlinks restored). This crate depends on none of the agent's crates, so each of them can use it.

pub mod bmp_sim;
pub mod large_tree;
pub mod spalloc_sim;
pub mod sysfs_tree;
