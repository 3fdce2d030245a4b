//! What the agent shows: the published snapshot and everything that reads it (metrics, JSON API, landing
//! page, the HTTP listener and its TLS/auth config).

pub mod api;
pub mod device_page;
pub mod exposition;
pub mod http;
pub mod landing;
pub mod spinnaker;
pub mod state;
pub mod webconfig;
