//! Maintenance windows, as the engine answers for them.

use std::time::SystemTime;

use super::state::*;
use crate::model::window_set::{OpenWindow, WindowChange, WindowHold, WindowView};

impl DeviceEngine {
    /// The maintenance windows open at `wall` that cover `device` (none for a device the engine does not
    /// have): what scheduled work that must run inside a window asks.
    pub fn open_windows(&self, device: &str, wall: SystemTime) -> Vec<OpenWindow> {
        if !self.devices.iter().any(|d| d.config.id == device) {
            return Vec::new();
        }
        self.windows.at(wall).open_for(device)
    }

    /// The same, as the device's view shows them (with their ends in the windows' zones).
    pub fn window_holds(&self, device: &str, wall: SystemTime) -> Vec<WindowHold> {
        self.windows.at(wall).holds(device)
    }

    /// The maintenance windows that opened or closed since the last call.
    pub fn window_changes(&mut self, wall: SystemTime) -> Vec<WindowChange> {
        self.windows.changes(wall)
    }

    /// Every configured maintenance window as of `wall`.
    pub fn window_views(&self, wall: SystemTime) -> Vec<WindowView> {
        self.windows.views(wall)
    }

    /// The ids of the devices a window names that the engine has (every device when it names none).
    pub fn window_devices(&self, named: &[String]) -> Vec<String> {
        self.devices.iter().map(|d| &d.config.id).filter(|id| named.is_empty() || named.contains(id)).cloned().collect()
    }
}
