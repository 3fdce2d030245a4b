//! The accel_spinnaker_* metric families, from the pollers' latest snapshot.

use collectors::catalogue as c;
use collectors::export::{Families, labels, lv};

use crate::model::spinnaker::SpinnakerSnapshot;

/// The accel_spinnaker_* families.
pub fn export(snap: &SpinnakerSnapshot, out: &mut Families) {
    for (id, b) in &snap.boards {
        if let Some(serial) = &b.serial {
            out.sample(&c::SPINNAKER_BOARD_INFO, labels![("device", lv(id)), ("serial", lv(serial))], 1.0);
        }
        if let Some(on) = b.on_can {
            out.sample(&c::SPINNAKER_BOARD_ON_CAN, labels![("device", lv(id))], f64::from(u8::from(on)));
        }
        if let Some(s) = &b.status {
            let d = labels![("device", lv(id))];
            out.sample(&c::SPINNAKER_BOARD_WARNING_BITS, d.clone(), f64::from(s.warning));
            out.sample(&c::SPINNAKER_BOARD_SHUTDOWN_BITS, d, f64::from(s.shutdown));
        }
    }
    for (name, m) in &snap.machines {
        let machine = labels![("machine", lv(name))];
        out.sample(&c::SPINNAKER_SPALLOC_UP, machine.clone(), f64::from(u8::from(m.spalloc_up)));
        if let Some(n) = m.dead_boards {
            out.sample(&c::SPINNAKER_MACHINE_DEAD_BOARDS, machine.clone(), n as f64);
        }
        if let Some(n) = m.dead_links {
            out.sample(&c::SPINNAKER_MACHINE_DEAD_LINKS, machine.clone(), n as f64);
        }
        if m.spalloc_up {
            for (state, n) in &m.jobs {
                out.sample(&c::SPINNAKER_JOBS, labels![("machine", lv(name)), ("state", lv(state))], *n as f64);
            }
        }
    }
    if snap.boards.is_empty() {
        return;
    }
    let s = snap.scp;
    for (kind, n) in [
        ("sent", s.sent),
        ("retry", s.retries),
        ("timeout", s.timeouts),
        ("reply", s.replies),
        ("error_reply", s.error_replies),
        ("malformed", s.malformed),
        ("foreign", s.foreign),
        ("late_or_duplicate", s.late_or_duplicate),
    ] {
        out.sample(&c::SPINNAKER_SCP_PACKETS, labels![("kind", lv(kind))], n as f64);
    }
    if let Some(d) = snap.poll_duration {
        out.sample(&c::SPINNAKER_POLL_DURATION, vec![], d.as_secs_f64());
    }
}
