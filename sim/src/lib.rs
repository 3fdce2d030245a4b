//! Simulators and helpers for accel-agent's tests and its `--demo`: fake sysfs trees (and the real captured
//! one, unpacked from its text archive), a SpiNNaker BMP simulator on loopback UDP, a spalloc server on loopback
//! TCP, and a whole simulated accelerator host built from them. This crate depends on none of the agent's
//! crates, so each of them can use it.

pub mod bmp_sim;
pub mod demo_host;
pub mod kubelet_sim;
pub mod large_tree;
pub mod peers;
pub mod spalloc_rest_sim;
pub mod spalloc_sim;
pub mod sysfs_archive;
pub mod sysfs_tree;
