//! The SCP client against simulated BMPs on loopback: replies, retries, faults, concurrency, power.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use accel_sim::bmp_sim::{BmpSim, Fault, SimBoard, SimOptions};
use collectors::spinnaker::{
    ClientOptions, Command, Firmware, FirmwareVersion, RetryPolicy, ScpClient, ScpError, ScpStats, board_mask,
};

/// Short tries keep the fault tests fast; loopback answers in well under a millisecond.
const TRY: Duration = Duration::from_millis(100);

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy { timeout: TRY, attempts, power_on_extra: Duration::from_millis(100) }
}

async fn client(attempts: u32) -> ScpClient {
    ScpClient::new(policy(attempts)).await.unwrap()
}

/// Waits (bounded) until the client's counters satisfy `done`; for datagrams that arrive after a call.
async fn stats_until(client: &ScpClient, done: impl Fn(&ScpStats) -> bool) -> ScpStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = client.stats();
        if done(&stats) || Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn ver_from_a_bmp() {
    let sim = BmpSim::with_options(SimOptions { boards: 4, frame: 2, ..SimOptions::default() }).unwrap();
    let c = client(3).await;
    let v = c.ver(sim.addr(), 3).await.unwrap();
    assert_eq!(v.text, "BC&MP/SpiNN-5");
    assert_eq!(v.firmware(), Firmware::Bmp);
    assert!(v.is_bmp());
    assert_eq!(v.hardware(), "SpiNN-5");
    assert_eq!(v.version, FirmwareVersion::Text("2.1.0".into()));
    assert_eq!((v.code_block, v.frame, v.can, v.board), (1, 2, 3, 3));
    assert_eq!(v.max_payload, 256);
    assert_eq!(v.build_time, 1_700_000_000);

    let seen = sim.recent_requests();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].cmd, seen[0].board, seen[0].flags, seen[0].tag, seen[0].src), (0, 3, 0x87, 0xFF, 0xFF));
    assert_eq!(c.stats(), ScpStats { sent: 1, replies: 1, ..ScpStats::default() });
}

#[tokio::test]
async fn ver_from_a_booted_board_says_scamp() {
    let sim = BmpSim::with_options(SimOptions { boards: 1, text: "SC&MP/SpiNNaker".into(), ..SimOptions::default() })
        .unwrap();
    let v = client(3).await.ver(sim.addr(), 0).await.unwrap();
    assert_eq!(v.firmware(), Firmware::Scamp);
    assert!(!v.is_bmp());
}

#[tokio::test]
async fn adc_reads_the_simulated_board() {
    let sim = BmpSim::start(8).unwrap();
    sim.set_board(
        5,
        SimBoard {
            temp_top: 36.5,
            temp_bottom: 30.25,
            temp_ext0: Some(22.0),
            temp_ext1: None,
            v1v2a: 1.25,
            v1v2b: 1.1,
            v1v2c: 1.2,
            v1v8: 1.8,
            v3v3: 3.3,
            supply: 11.9,
            fan0: Some(4200),
            fan1: None,
            warning: 3,
            shutdown: 0,
            serial: None,
        },
    );
    let s = client(3).await.adc(sim.addr(), 5).await.unwrap();
    assert_eq!((s.temp_top, s.temp_bottom, s.temp_ext0, s.temp_ext1), (36.5, 30.25, Some(22.0), None));
    // 1.25 V is exactly 2048 counts; the others are within one count.
    assert_eq!(s.v1v2a, 1.25);
    let count = 2.5 / 4096.0;
    assert!((s.v1v2b - 1.1).abs() <= count, "{}", s.v1v2b);
    assert!((s.v1v2c - 1.2).abs() <= count, "{}", s.v1v2c);
    assert!((s.v1v8 - 1.8).abs() <= count, "{}", s.v1v8);
    assert!((s.v3v3 - 3.3).abs() <= 3.75 / 4096.0, "{}", s.v3v3);
    assert!((s.supply - 11.9).abs() <= 15.0 / 4096.0, "{}", s.supply);
    assert_eq!((s.fan0, s.fan1, s.warning, s.shutdown), (Some(4200), None, 3, 0));

    // Changed while running, seen on the next read.
    sim.update_board(5, |b| b.temp_top = 71.0);
    assert_eq!(client(3).await.adc(sim.addr(), 5).await.unwrap().temp_top, 71.0);
}

#[tokio::test]
async fn seq_wraps_after_ffff() {
    let sim = BmpSim::start(1).unwrap();
    let c = ScpClient::with_options(ClientOptions { policy: policy(3), first_seq: Some(0xFFFE), ..Default::default() })
        .await
        .unwrap();
    for _ in 0..3 {
        c.ver(sim.addr(), 0).await.unwrap();
    }
    let seqs: Vec<u16> = sim.recent_requests().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, [0xFFFE, 0xFFFF, 0x0000]);
}

#[tokio::test]
async fn silent_bmp_times_out_after_every_try() {
    let sim = BmpSim::start(1).unwrap();
    sim.set_fault(Fault::Silent);
    let c = client(4).await;
    let err = c.ver(sim.addr(), 0).await.unwrap_err();
    assert!(matches!(err, ScpError::Timeout { attempts: 4, cmd: Command::VER, .. }), "{err:?}");
    assert!(err.is_timeout());
    assert_eq!(err.addr(), sim.addr());
    assert!(err.to_string().contains(&sim.addr().to_string()), "{err}");
    assert_eq!(c.stats(), ScpStats { sent: 4, retries: 3, timeouts: 4, ..ScpStats::default() });
    assert_eq!(sim.request_count(), 4);
    // Every try resends the same seq.
    let seqs: Vec<u16> = sim.recent_requests().iter().map(|r| r.seq).collect();
    assert!(seqs.iter().all(|s| *s == seqs[0]), "{seqs:?}");
    assert_eq!(c.in_flight(), 0);
}

#[tokio::test]
async fn retryable_codes_are_resent_until_success() {
    for rc in [0x86, 0x8D, 0x81, 0x82, 0x8B, 0x8E] {
        let sim = BmpSim::start(1).unwrap();
        sim.set_fault_for(Fault::ReturnCode(rc), 2);
        let c = client(5).await;
        let v = c.ver(sim.addr(), 0).await;
        assert!(v.is_ok(), "{rc:#x}: {v:?}");
        assert_eq!(
            c.stats(),
            ScpStats { sent: 3, retries: 2, replies: 3, error_replies: 2, ..ScpStats::default() },
            "{rc:#x}"
        );
    }
}

#[tokio::test]
async fn retryable_code_on_every_try_is_an_error_naming_it() {
    let sim = BmpSim::start(1).unwrap();
    sim.set_fault(Fault::ReturnCode(0x86));
    let c = client(3).await;
    let err = c.adc(sim.addr(), 0).await.unwrap_err();
    match &err {
        ScpError::ReturnCode { rc, attempts, addr, cmd } => {
            assert_eq!((rc.0, *attempts, *addr, *cmd), (0x86, 3, sim.addr(), Command::BMP_INFO));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("0x86 (TIMEOUT)"), "{err}");
    assert_eq!(c.stats().sent, 3);
}

#[tokio::test]
async fn other_codes_fail_at_once() {
    let sim = BmpSim::start(1).unwrap();
    sim.set_fault(Fault::ReturnCode(0x84));
    let c = client(5).await;
    let err = c.ver(sim.addr(), 0).await.unwrap_err();
    assert!(matches!(err, ScpError::ReturnCode { rc, attempts: 1, .. } if rc.0 == 0x84), "{err:?}");
    assert!(err.to_string().contains(&format!("{}: VER failed with return code 0x84 (ARG)", sim.addr())), "{err}");
    assert_eq!(c.stats(), ScpStats { sent: 1, replies: 1, error_replies: 1, ..ScpStats::default() });
}

#[tokio::test]
async fn wrong_seq_is_foreign_and_a_later_try_succeeds() {
    let sim = BmpSim::start(1).unwrap();
    sim.set_fault_for(Fault::WrongSeq, 2);
    let c = client(5).await;
    c.ver(sim.addr(), 0).await.unwrap();
    assert_eq!(c.stats(), ScpStats { sent: 3, retries: 2, timeouts: 2, foreign: 2, replies: 1, ..ScpStats::default() });
}

#[tokio::test]
async fn wrong_seq_on_every_try_times_out() {
    let sim = BmpSim::start(1).unwrap();
    sim.set_fault(Fault::WrongSeq);
    let c = client(3).await;
    assert!(c.ver(sim.addr(), 0).await.unwrap_err().is_timeout());
    let stats = c.stats();
    assert_eq!((stats.foreign, stats.timeouts, stats.replies), (3, 3, 0));
}

#[tokio::test]
async fn garbage_is_counted_malformed() {
    let sim = BmpSim::start(1).unwrap();
    sim.set_fault_for(Fault::Garbage, 1);
    let c = client(3).await;
    c.ver(sim.addr(), 0).await.unwrap();
    assert_eq!(
        c.stats(),
        ScpStats { sent: 2, retries: 1, timeouts: 1, malformed: 1, replies: 1, ..ScpStats::default() }
    );
}

#[tokio::test]
async fn replies_after_the_call_gave_up_are_counted_late_and_ignored() {
    let sim = BmpSim::start(1).unwrap();
    // Far beyond the two tries' 200 ms, so both replies arrive after the call has failed.
    sim.set_fault(Fault::Slow(Duration::from_millis(800)));
    let c = client(2).await;
    assert!(c.ver(sim.addr(), 0).await.unwrap_err().is_timeout());
    let stats = stats_until(&c, |s| s.late_or_duplicate == 2).await;
    assert_eq!(stats, ScpStats { sent: 2, retries: 1, timeouts: 2, late_or_duplicate: 2, ..ScpStats::default() });

    sim.set_fault(Fault::None);
    c.ver(sim.addr(), 0).await.unwrap();
    assert_eq!(c.stats().replies, 1);
}

#[tokio::test]
async fn a_slow_reply_to_an_earlier_try_answers_the_call() {
    let sim = BmpSim::start(1).unwrap();
    // Later than one try, sooner than the five: the first try's reply lands during a later try.
    sim.set_fault(Fault::Slow(Duration::from_millis(150)));
    let c = client(5).await;
    c.ver(sim.addr(), 0).await.unwrap();
    let stats = c.stats();
    assert!(stats.retries >= 1, "{stats:?}");
    assert_eq!(stats.replies, 1);
    // Each resend draws one more reply, all of them after the first answered.
    let stats = stats_until(&c, |s| s.late_or_duplicate == s.sent - 1).await;
    assert_eq!(stats.late_or_duplicate, stats.sent - 1, "{stats:?}");
}

#[tokio::test]
async fn duplicate_replies_are_counted_once_answered() {
    let sim = BmpSim::start(1).unwrap();
    sim.set_fault(Fault::Duplicate);
    let c = client(3).await;
    c.adc(sim.addr(), 0).await.unwrap();
    let stats = stats_until(&c, |s| s.late_or_duplicate == 1).await;
    assert_eq!(stats, ScpStats { sent: 1, replies: 1, late_or_duplicate: 1, ..ScpStats::default() });
}

#[tokio::test]
async fn short_adc_is_a_malformed_reply_error() {
    let sim = BmpSim::start(1).unwrap();
    sim.set_fault(Fault::ShortAdc);
    let c = client(3).await;
    let err = c.adc(sim.addr(), 0).await.unwrap_err();
    assert!(matches!(err, ScpError::Malformed { cmd: Command::BMP_INFO, .. }), "{err:?}");
    assert!(err.to_string().contains("40 data bytes"), "{err}");
    assert_eq!(err.addr(), sim.addr());
    assert_eq!(c.stats().malformed, 1);
    // VER is unaffected by this fault.
    c.ver(sim.addr(), 0).await.unwrap();
}

#[tokio::test]
async fn foreign_datagrams_from_elsewhere_are_counted_and_harmless() {
    let sim = BmpSim::start(1).unwrap();
    let c = client(3).await;
    let port = c.local_addr().unwrap().port();
    let stranger = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    stranger.send_to(&[0, 0, 7, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0x80, 0, 1, 0], target).unwrap();
    stranger.send_to(&[1, 2, 3], target).unwrap();
    stranger.send_to(&vec![0xAB; 4000], target).unwrap();
    let stats = stats_until(&c, |s| s.foreign + s.malformed == 3).await;
    assert_eq!((stats.foreign, stats.malformed), (2, 1), "{stats:?}");
    c.ver(sim.addr(), 0).await.unwrap();
}

#[tokio::test]
async fn boards_the_frame_lacks_time_out_and_bad_board_numbers_are_refused() {
    let sim = BmpSim::start(2).unwrap();
    let c = client(2).await;
    assert!(c.ver(sim.addr(), 5).await.unwrap_err().is_timeout());
    let err = c.ver(sim.addr(), 32).await.unwrap_err();
    assert!(matches!(err, ScpError::InvalidRequest { .. }), "{err:?}");
    assert_eq!(sim.request_count(), 2);
}

#[tokio::test]
async fn a_cancelled_call_leaves_nothing_in_flight() {
    let sim = BmpSim::start(1).unwrap();
    sim.set_fault(Fault::Silent);
    let c = client(5).await;
    let pending = c.ver(sim.addr(), 0);
    assert!(tokio::time::timeout(Duration::from_millis(20), pending).await.is_err());
    assert_eq!(c.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_in_flight_to_many_bmps() {
    let sims: Vec<BmpSim> = (0..10).map(|_| BmpSim::start(24).unwrap()).collect();
    for (i, sim) in sims.iter().enumerate() {
        for b in 0..24u8 {
            sim.update_board(b, |s| s.temp_top = i as f64 * 10.0 + f64::from(b) / 4.0);
        }
    }
    let c = ScpClient::new(RetryPolicy { timeout: Duration::from_secs(2), ..RetryPolicy::default() }).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, sim) in sims.iter().enumerate() {
        for b in 0..24u8 {
            let (c, addr) = (c.clone(), sim.addr());
            tasks.spawn(async move { (i, b, c.adc(addr, b).await) });
        }
    }
    let mut n = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, b, status) = joined.unwrap();
        assert_eq!(status.unwrap().temp_top, i as f64 * 10.0 + f64::from(b) / 4.0, "frame {i} board {b}");
        n += 1;
    }
    assert_eq!(n, 240);
    let stats = c.stats();
    assert_eq!((stats.replies, stats.foreign, stats.late_or_duplicate, stats.malformed), (240, 0, 0, 0));
    // Requests to one BMP overlapped, so each needed its own seq.
    for sim in &sims {
        let mut seqs: Vec<u16> = sim.recent_requests().iter().map(|r| r.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs.len(), 24);
    }
}

#[tokio::test]
async fn power_cycle_is_sent_to_board_0_with_the_mask() {
    let sim = BmpSim::start(8).unwrap();
    let c = client(3).await;
    let mask = board_mask(&[5]);
    c.power(sim.addr(), mask, false, 0).await.unwrap();
    assert_eq!(sim.powered(5), Some(false));
    assert_eq!(sim.powered(4), Some(true));
    // Off: the switched rails read 0 V, the BMP still answers.
    let off = c.adc(sim.addr(), 5).await.unwrap();
    assert_eq!((off.v1v2a, off.v3v3), (0.0, 0.0));
    assert!(off.supply > 11.0);

    c.power(sim.addr(), mask, true, 250).await.unwrap();
    let log = sim.wait_power_commands(2, Duration::from_secs(5));
    let seen: Vec<(bool, u32, u16, u8)> = log.iter().map(|p| (p.on, p.mask, p.delay_ms, p.board)).collect();
    assert_eq!(seen, [(false, 0x20, 0, 0), (true, 0x20, 250, 0)]);
    assert!(log[0].at <= log[1].at);
    assert_eq!(sim.powered(5), Some(true));
    assert!(c.adc(sim.addr(), 5).await.unwrap().v1v2a > 1.0);

    let err = c.power(sim.addr(), 0, true, 0).await.unwrap_err();
    assert!(matches!(err, ScpError::InvalidRequest { .. }), "{err:?}");
    assert_eq!(sim.power_commands().len(), 2);
}

#[tokio::test]
async fn power_on_waits_longer_than_an_ordinary_try() {
    let sim = BmpSim::start(2).unwrap();
    // Slower than a try, within a try plus the power-on allowance: only power-on can see this reply in time.
    sim.set_fault(Fault::Slow(Duration::from_millis(300)));
    let c = ScpClient::new(RetryPolicy { timeout: TRY, attempts: 1, power_on_extra: Duration::from_secs(5) })
        .await
        .unwrap();
    c.power(sim.addr(), 1, true, 0).await.unwrap();
    assert!(c.power(sim.addr(), 1, false, 0).await.unwrap_err().is_timeout());
    assert_eq!(sim.wait_power_commands(2, Duration::from_secs(5)).len(), 2);
}

#[tokio::test]
async fn led_is_acknowledged() {
    let sim = BmpSim::start(4).unwrap();
    let c = client(3).await;
    c.led(sim.addr(), 2, 1, collectors::spinnaker::LedAction::On).await.unwrap();
    let req = sim.recent_requests()[0];
    assert_eq!((req.cmd, req.board, req.args[0], req.args[1]), (25, 2, 3 << 2, 1 << 2));
}

#[tokio::test]
async fn serial_numbers_and_can_status() {
    let sim = BmpSim::start(4).unwrap();
    sim.update_board(2, |b| b.serial = Some([0x1122_3344, 0x5566_7788, 0x99AA_BBCC, 0xDDEE_FF00]));
    let c = client(3).await;
    let s = c.serial(sim.addr(), 2).await.unwrap();
    assert_eq!(s.serial, [0x1122_3344, 0x5566_7788, 0x99AA_BBCC, 0xDDEE_FF00]);
    assert_eq!(s.serial_string(), "11223344-55667788-99aabbcc-ddeeff00");
    assert_eq!(s.hardware_version, 0);
    let other = c.serial(sim.addr(), 1).await.unwrap();
    assert_eq!(other.serial, accel_sim::bmp_sim::default_serial(0, 1));
    assert_ne!(other.serial, c.serial(sim.addr(), 0).await.unwrap().serial, "one per board");

    let can = c.can_status(sim.addr(), 0).await.unwrap();
    assert_eq!(can.len(), 32, "the firmware sends every slot");
    assert_eq!(&can[..5], [true, true, true, true, false]);
    // Board 3's BMP drops off the CAN bus: the others no longer see it, and it no longer answers.
    assert!(sim.set_on_can(3, false));
    assert_eq!(&c.can_status(sim.addr(), 0).await.unwrap()[..5], [true, true, true, false, false]);
    assert!(matches!(c.serial(sim.addr(), 3).await, Err(ScpError::Timeout { .. })));
}
