//! Decision policies the model runs per device, with time passed in: when to throttle, and the reconnect
//! ladder with its backoff and circuit.

pub mod mode;
pub(crate) mod reconnect;
pub(crate) mod throttle;
