//! A probe the agent cannot start for want of descriptors is the agent's fault, not the tool's. Alone in
//! its test binary: it uses up this process's descriptors, which would break tests running beside it.

use std::fs::File;
use std::time::Duration;

use collectors::fault::AgentFault;
use collectors::probes::{CommandProbe, ProbeStatus, TcpProbe};

/// Opens /dev/null until the process's open-file limit says no.
fn use_up_descriptors() -> Vec<File> {
    let mut held = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return held,
            Err(e) => panic!("opening /dev/null: {e}"),
        }
        assert!(held.len() < 1_000_000, "no open-file limit in sight");
    }
}

#[tokio::test]
async fn a_probe_that_cannot_start_for_want_of_descriptors_is_not_run() {
    // A runtime, a listener and a connected probe first, so that only the probes' own descriptors are missing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = use_up_descriptors();

    let command = CommandProbe::new(["true"], Duration::from_secs(5)).run().await;
    let tcp = TcpProbe::new(addr.to_string().as_str(), Duration::from_secs(1)).run().await;
    drop(held);

    assert_eq!(command.status, ProbeStatus::NotRun(AgentFault::Descriptors), "{command:?}");
    assert_eq!(command.status.label(), "not_run");
    assert_eq!(tcp.fault, Some(AgentFault::Descriptors), "{tcp:?}");
    // With descriptors back, the same probes run and succeed: it was never about the target.
    assert_eq!(CommandProbe::new(["true"], Duration::from_secs(5)).run().await.status, ProbeStatus::Ok);
    let tcp = TcpProbe::new(addr.to_string().as_str(), Duration::from_secs(1)).run().await;
    assert!(tcp.ok && tcp.fault.is_none(), "{tcp:?}");
}
