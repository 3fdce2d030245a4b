//! Whole-machine polls against simulated frames.

use std::time::Duration;

use accel_sim::bmp_sim::{BmpSim, Fault};
use collectors::spinnaker::{Frame, PollOptions, RetryPolicy, ScpClient, ScpError};

fn frame(sim: &BmpSim, boards: u8) -> Frame {
    Frame { addr: sim.addr(), boards: (0..boards).collect() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_board_of_every_frame_in_order() {
    let sims: Vec<BmpSim> = (0..6).map(|_| BmpSim::start(24).unwrap()).collect();
    for (i, sim) in sims.iter().enumerate() {
        for b in 0..24u8 {
            sim.update_board(b, |s| s.temp_bottom = 20.0 + i as f64 + f64::from(b) / 32.0);
        }
    }
    let frames: Vec<Frame> = sims.iter().map(|s| frame(s, 24)).collect();
    let c = ScpClient::new(RetryPolicy { timeout: Duration::from_secs(2), ..RetryPolicy::default() }).await.unwrap();
    let polls = c.poll_frames(&frames, &PollOptions::default()).await;
    assert_eq!(polls.len(), 6 * 24);
    for (k, p) in polls.iter().enumerate() {
        let (i, b) = (k / 24, (k % 24) as u8);
        assert_eq!((p.addr, p.board), (sims[i].addr(), b));
        assert!(p.alive(), "{p:?}");
        assert_eq!(p.version.as_ref().unwrap().board, b);
        assert_eq!(p.status.as_ref().unwrap().temp_bottom, 20.0 + i as f64 + f64::from(b) / 32.0);
    }
    let stats = c.stats();
    assert_eq!((stats.sent, stats.replies, stats.retries), (288, 288, 0));
}

#[tokio::test]
async fn a_silent_frame_is_given_up_after_its_first_board() {
    let live = BmpSim::start(4).unwrap();
    let dead = BmpSim::start(4).unwrap();
    dead.set_fault(Fault::Silent);
    let c = ScpClient::new(RetryPolicy { timeout: Duration::from_millis(80), attempts: 2, ..RetryPolicy::default() })
        .await
        .unwrap();
    let polls = c.poll_frames(&[frame(&dead, 4), frame(&live, 4)], &PollOptions::default()).await;
    assert_eq!(polls.len(), 8);
    assert!(polls[0].version.as_ref().is_err_and(ScpError::is_timeout));
    assert!(polls[0].status.as_ref().is_err_and(ScpError::is_timeout));
    for p in &polls[1..4] {
        assert!(
            matches!(p.version, Err(ScpError::FrameUnreachable { probe: 0, board, addr }) if board == p.board && addr == dead.addr()),
            "{p:?}"
        );
        assert!(matches!(p.status, Err(ScpError::FrameUnreachable { .. })), "{p:?}");
    }
    assert!(polls[4..].iter().all(|p| p.alive() && p.status.is_ok()));
    // VER and ADC to board 0, two tries each; nothing for boards 1..3.
    assert_eq!(dead.request_count(), 4);
    assert!(dead.recent_requests().iter().all(|r| r.board == 0));
}

#[tokio::test]
async fn without_skipping_every_board_of_a_silent_frame_is_asked() {
    let dead = BmpSim::start(3).unwrap();
    dead.set_fault(Fault::Silent);
    let c = ScpClient::new(RetryPolicy { timeout: Duration::from_millis(50), attempts: 1, ..RetryPolicy::default() })
        .await
        .unwrap();
    let options = PollOptions { skip_silent_frames: false, ..PollOptions::default() };
    let polls = c.poll_frames(&[frame(&dead, 3)], &options).await;
    assert!(polls.iter().all(|p| p.version.as_ref().is_err_and(ScpError::is_timeout)));
    assert_eq!(dead.request_count(), 6);
}

#[tokio::test]
async fn one_silent_board_does_not_take_the_frame_down() {
    let sim = BmpSim::start(4).unwrap();
    let c = ScpClient::new(RetryPolicy { timeout: Duration::from_millis(80), attempts: 2, ..RetryPolicy::default() })
        .await
        .unwrap();
    // Board 7 is not in the frame, so its BMP never answers; the others do.
    let polls = c.poll_frames(&[Frame { addr: sim.addr(), boards: vec![0, 7, 1] }], &PollOptions::default()).await;
    assert!(polls[0].alive() && polls[2].alive());
    assert!(polls[1].version.as_ref().is_err_and(ScpError::is_timeout));
    assert!(polls[1].status.as_ref().is_err_and(ScpError::is_timeout));
}

#[tokio::test]
async fn the_poll_deadline_cuts_slow_boards_short() {
    let sim = BmpSim::start(2).unwrap();
    sim.set_fault(Fault::Silent);
    let c = ScpClient::new(RetryPolicy { timeout: Duration::from_secs(5), attempts: 5, ..RetryPolicy::default() })
        .await
        .unwrap();
    let options = PollOptions { deadline: Some(Duration::from_millis(100)), ..PollOptions::default() };
    let polls = c.poll_frames(&[frame(&sim, 2)], &options).await;
    assert!(matches!(polls[0].version, Err(ScpError::Deadline { board: 0, .. })), "{:?}", polls[0]);
    assert!(matches!(polls[1].status, Err(ScpError::Deadline { board: 1, .. })), "{:?}", polls[1]);
    assert_eq!(c.in_flight(), 0);
}

#[tokio::test]
async fn empty_frames_and_single_frame_polls() {
    let sim = BmpSim::start(3).unwrap();
    let c = ScpClient::new(RetryPolicy::default()).await.unwrap();
    assert!(c.poll_frames(&[], &PollOptions::default()).await.is_empty());
    assert!(c.poll_frame(&Frame { addr: sim.addr(), boards: vec![] }, &PollOptions::default()).await.is_empty());
    // One request at a time, frame-wide and poll-wide: slow, but everything still answered.
    let one_at_a_time = PollOptions { per_frame: 1, max_in_flight: 1, ..PollOptions::default() };
    let polls = c.poll_frame(&frame(&sim, 3), &one_at_a_time).await;
    let boards: Vec<u8> = polls.iter().filter(|p| p.alive()).map(|p| p.board).collect();
    assert_eq!(boards, [0, 1, 2]);
}
