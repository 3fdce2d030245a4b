//! The accel_spinnaker_* metric families, from the pollers' latest snapshot.

use collectors::export::{Families, lv};

use crate::model::spinnaker::SpinnakerSnapshot;

/// The accel_spinnaker_* families.
pub fn export(snap: &SpinnakerSnapshot, out: &mut Families) {
    for (id, b) in &snap.boards {
        if let Some(serial) = &b.serial {
            out.gauge(
                "accel_spinnaker_board_info",
                "1 for each board whose BMP has given its serial number (the LPC1768's, BMP_INFO 0)",
                vec![("device", lv(id)), ("serial", lv(serial))],
                1.0,
            );
        }
        if let Some(on) = b.on_can {
            out.gauge(
                "accel_spinnaker_board_on_can",
                "Whether the frame's BMP sees the board's BMP on the frame's CAN bus (BMP_INFO 2)",
                vec![("device", lv(id))],
                f64::from(u8::from(on)),
            );
        }
        if let Some(s) = &b.status {
            let d = vec![("device", lv(id))];
            out.gauge(
                "accel_spinnaker_board_warning_bits",
                "The BMP's warning word for the board, as reported (bits per the BMP firmware)",
                d.clone(),
                f64::from(s.warning),
            );
            out.gauge(
                "accel_spinnaker_board_shutdown_bits",
                "The BMP's shutdown word for the board, as reported (bits per the BMP firmware)",
                d,
                f64::from(s.shutdown),
            );
        }
    }
    for (name, m) in &snap.machines {
        let machine = vec![("machine", lv(name))];
        out.gauge(
            "accel_spinnaker_spalloc_up",
            "Whether the machine's spalloc server answered the last poll",
            machine.clone(),
            f64::from(u8::from(m.spalloc_up)),
        );
        if let Some(n) = m.dead_boards {
            out.gauge("accel_spinnaker_machine_dead_boards", "Boards spalloc lists as dead", machine.clone(), n as f64);
        }
        if let Some(n) = m.dead_links {
            out.gauge("accel_spinnaker_machine_dead_links", "Links spalloc lists as dead", machine.clone(), n as f64);
        }
        if m.spalloc_up {
            for (state, n) in &m.jobs {
                out.gauge(
                    "accel_spinnaker_jobs",
                    "spalloc jobs on the machine by state",
                    vec![("machine", lv(name)), ("state", lv(state))],
                    *n as f64,
                );
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
        out.counter(
            "accel_spinnaker_scp_packets_total",
            "SCP datagrams by what happened to them: sent (with retries), timeouts, and received (replies, \
             error replies, malformed, foreign, late or duplicate; all but replies are dropped)",
            vec![("kind", lv(kind))],
            n as f64,
        );
    }
    if let Some(d) = snap.poll_duration {
        out.gauge(
            "accel_spinnaker_poll_duration_seconds",
            "How long the last poll of every BMP, SC&MP and spalloc server took",
            vec![],
            d.as_secs_f64(),
        );
    }
}
