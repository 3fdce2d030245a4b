//! What the agent shows: the published snapshot and everything that reads it (metrics, JSON API, landing
//! page, the HTTP listener and its TLS/auth config).

pub(crate) mod api;
pub(crate) mod device_page;
pub(crate) mod encode;
pub mod exposition;
pub(crate) mod gzip;
pub(crate) mod html;
pub(crate) mod http;
pub(crate) mod landing;
pub(crate) mod plot;
pub(crate) mod spinnaker;
pub mod state;
pub(crate) mod webconfig;
