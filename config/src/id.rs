//! What a name the agent puts in paths, arguments and labels may hold.

/// Whether `c` may appear in a device id (or a diagnostic's or window's name): letters, digits and
/// `- _ . :`. Ids go into URL paths (`/devices/{id}`), `agentctl` arguments, log path templates and label
/// values, where these need no quoting or escaping.
pub fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.:".contains(c)
}
