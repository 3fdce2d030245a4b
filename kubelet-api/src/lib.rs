//! The kubelet's gRPC APIs that accel-agent speaks, compiled from the project's own definitions in
//! proto/ (names and field numbers as in kubelet's; see build.rs for how, without `protoc`).
//!
//! - [`deviceplugin`]: `v1beta1.Registration` (kubelet serves it) and `v1beta1.DevicePlugin` (a plugin
//!   serves it; kubelet is the client).
//! - [`podresources`]: `v1.PodResourcesLister` (kubelet serves it).
//! - [`uds`]: calling and serving them over Unix sockets with hyper's HTTP/2.

pub mod uds;

// The generated code is not ours to lint.
#[allow(clippy::all, clippy::pedantic)]
pub mod deviceplugin {
    tonic::include_proto!("v1beta1");

    /// The only API version there is, sent in every registration.
    pub const VERSION: &str = "v1beta1";
    /// The value of `Device.health` for a device kubelet may allocate.
    pub const HEALTHY: &str = "Healthy";
    /// The value of `Device.health` for a device kubelet must not allocate.
    pub const UNHEALTHY: &str = "Unhealthy";
    /// kubelet's registration socket, relative to the device-plugin directory.
    pub const KUBELET_SOCKET: &str = "kubelet.sock";
}

#[allow(clippy::all, clippy::pedantic)]
pub mod podresources {
    tonic::include_proto!("v1");
}
