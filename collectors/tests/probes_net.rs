//! Reachability probes against loopback sockets.

use std::net::SocketAddr;
use std::time::Duration;

use collectors::probes::{TcpProbe, UdpProbe};
use tokio::net::{TcpListener, UdpSocket};

/// Long enough that a probe reporting "refused" cannot have merely timed out.
const LONG: Duration = Duration::from_secs(30);
/// For probes that must wait out their timeout.
const SHORT: Duration = Duration::from_millis(300);

/// A loopback port with nothing listening on it.
async fn closed_tcp_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

async fn closed_udp_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

#[tokio::test]
async fn tcp_listening_port_is_reachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let outcome = TcpProbe::new(listener.local_addr().unwrap(), LONG).run().await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.error, None);
}

#[tokio::test]
async fn tcp_by_name_is_reachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // "localhost" may resolve to ::1 first, where nothing listens: the next address is tried.
    let outcome = TcpProbe::new(format!("localhost:{port}"), LONG).run().await;
    assert!(outcome.ok, "{outcome:?}");
}

#[tokio::test]
async fn tcp_closed_port_is_refused_promptly() {
    let addr = closed_tcp_port().await;
    let outcome = TcpProbe::new(addr, LONG).run().await;
    assert!(!outcome.ok);
    let error = outcome.error.unwrap();
    assert!(error.contains(&addr.to_string()), "{error}");
    assert!(error.contains("refused"), "{error}");
}

#[tokio::test]
async fn unresolvable_names_fail_within_the_timeout() {
    let timeout = Duration::from_secs(3);
    let outcome = TcpProbe::new("board-that-does-not-exist.invalid:5000", timeout).run().await;
    assert!(!outcome.ok);
    assert!(outcome.error.unwrap().contains("board-that-does-not-exist.invalid"));
    assert!(outcome.duration < timeout + Duration::from_secs(5), "took {:?}", outcome.duration);

    let outcome = TcpProbe::new("no-port-given", timeout).run().await;
    assert!(!outcome.ok);
    assert!(outcome.error.unwrap().contains("no-port-given"));
}

#[tokio::test]
async fn udp_echo_is_reachable() {
    let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = echo.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let (n, from) = echo.recv_from(&mut buf).await.unwrap();
        echo.send_to(&buf[..n], from).await.unwrap();
        buf[..n].to_vec()
    });

    let outcome = UdpProbe::new(addr, b"status?".to_vec(), true, LONG).run().await;

    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(server.await.unwrap(), b"status?", "the payload was sent as given");
}

#[tokio::test]
async fn udp_closed_port_is_refused() {
    let addr = closed_udp_port().await;
    for expect_reply in [true, false] {
        let outcome = UdpProbe::new(addr, b"status?".to_vec(), expect_reply, LONG).run().await;
        assert!(!outcome.ok, "expect_reply={expect_reply}");
        let error = outcome.error.unwrap();
        assert!(error.contains("refused") && error.contains(&addr.to_string()), "{error}");
    }
}

#[tokio::test]
async fn udp_silent_target_depends_on_whether_a_reply_is_expected() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();

    let waiting = UdpProbe::new(addr, b"status?".to_vec(), true, SHORT).run().await;
    assert!(!waiting.ok);
    assert!(waiting.error.unwrap().contains("no reply"));

    let fire_and_forget = UdpProbe::new(addr, b"status?".to_vec(), false, SHORT).run().await;
    assert!(fire_and_forget.ok, "no ICMP error means reachable: {fire_and_forget:?}");
}
