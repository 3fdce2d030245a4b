//! The PCI AER series budget through the agent: a declared device's `pci_address` gets the per-error
//! breakdown even when its PCI class does not say "accelerator"; other quiet functions export only totals.

mod common;

use accel_sim::sysfs_tree::FakeSysfs;
use common::Agent;

const GPU: &str = "0000:3b:00.0";
const NIC: &str = "0000:5e:00.0";

fn host() -> FakeSysfs {
    let fs = FakeSysfs::new();
    for addr in [GPU, NIC] {
        fs.pci_device(addr, &[("RxErr", 0), ("Bad TLP", 0)], &[("Undefined", 0)], &[("DLP", 0)]);
    }
    fs.write(&format!("devices/pci0000:00/{GPU}/class"), "0x030000\n");
    fs.write(&format!("devices/pci0000:00/{NIC}/class"), "0x020000\n");
    fs
}

/// The pci_address of every `accel_pci_aer_errors_total` series, and how many series there are.
fn breakdown(agent: &Agent) -> (Vec<String>, usize) {
    let body = agent.get("/metrics").body;
    let samples: Vec<_> =
        common::parse_metrics(&body).into_iter().filter(|s| s.name == "accel_pci_aer_errors_total").collect();
    let mut addresses: Vec<String> =
        samples.iter().map(|s| s.label("pci_address").unwrap_or_default().to_owned()).collect();
    addresses.dedup();
    (addresses, samples.len())
}

#[test]
fn a_declared_device_gets_the_per_error_breakdown_and_a_quiet_nic_only_totals() {
    let fs = host();
    let config = format!(
        "poll_interval = \"1h\"\n[collectors.resources]\nenabled = false\n\
         [[device]]\nid = \"gpu0\"\nkind = \"pci-accel\"\npci_address = \"{GPU}\"\n"
    );
    let (agent, _cfg) = Agent::with_config(fs.root(), &config);
    agent.wait_ready();
    assert_eq!(breakdown(&agent), (vec![GPU.to_owned()], 4));
    for addr in [GPU, NIC] {
        let total = agent.metric("accel_pci_aer_device_errors_total", &[("pci_address", addr), ("severity", "fatal")]);
        assert_eq!(total, Some(0.0), "{addr}");
    }
}

#[test]
fn per_error_all_and_none_from_the_config() {
    let fs = host();
    let base = "poll_interval = \"1h\"\n[collectors.resources]\nenabled = false\n[collectors.pci_aer]\n";
    let (agent, _cfg) = Agent::with_config(fs.root(), &format!("{base}per_error = \"all\"\n"));
    agent.wait_ready();
    assert_eq!(breakdown(&agent), (vec![GPU.to_owned(), NIC.to_owned()], 8));
    drop(agent);
    let (agent, _cfg) = Agent::with_config(fs.root(), &format!("{base}per_error = \"none\"\n"));
    agent.wait_ready();
    assert_eq!(breakdown(&agent), (vec![], 0));
    assert_eq!(
        agent.metric("accel_pci_aer_device_errors_total", &[("pci_address", NIC), ("severity", "correctable")]),
        Some(0.0)
    );
}
