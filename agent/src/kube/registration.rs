//! Registering a plugin with kubelet's `v1beta1.Registration` service at `<device_plugin_dir>/kubelet.sock`.

use std::path::Path;
use std::time::Duration;

use kubelet_api::deviceplugin as dp;

use super::error::KubeletError;
use super::uds;

/// The first retry after a failed registration; each failure doubles it up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Tells kubelet that `resource` is served at `endpoint` (a socket name in the device-plugin directory).
/// The whole call, connecting included, has the deadline `timeout`.
pub async fn register(kubelet: &Path, endpoint: &str, resource: &str, timeout: Duration) -> Result<(), KubeletError> {
    let call = async {
        let channel = uds::connect(kubelet, timeout).await?;
        let mut client = dp::registration_client::RegistrationClient::new(channel);
        let request = dp::RegisterRequest {
            version: dp::VERSION.to_owned(),
            endpoint: endpoint.to_owned(),
            resource_name: resource.to_owned(),
            options: Some(super::plugin::options()),
        };
        uds::within(kubelet, timeout, client.register(request)).await.map(|_| ())
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(KubeletError::Deadline { path: kubelet.to_owned(), timeout }),
    }
}

/// The wait after `failures` failed registrations in a row.
pub fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(5)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(6), Duration::from_secs(30));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }
}
