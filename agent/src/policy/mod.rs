//! Decision policies the model runs per device, with time passed in: when a value has crossed a threshold,
//! when to throttle, and the reconnect ladder with its backoff and circuit.

pub mod mode;
pub(crate) mod reconnect;
pub mod threshold;
pub(crate) mod throttle;
