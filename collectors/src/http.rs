//! One HTTP/1.1 request on a connection the caller has made (TCP, TLS or a Unix socket), with hyper's
//! client: request formatting, Content-Length and chunked bodies and the end of the reply are hyper's.
//! The agent's clients (the spalloc REST client here, agentctl and `accel-agent npd` on the control
//! socket) and the tests' helpers all send their requests through [`exchange`].
//!
//! The caller makes the connection, so it can tell its own failures apart (refused, TLS, permission), and
//! puts one deadline around connecting and [`exchange`] together: nothing here waits without end only
//! because nothing here waits at all once the caller's deadline drops the future.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// What went wrong after the connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("HTTP handshake: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("sending the request or reading the reply's head: {0}")]
    Request(#[source] hyper::Error),
    #[error("reading the reply's body: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the reply's body is over {max} bytes")]
    TooLarge { max: usize },
}

/// A whole reply: the body read to its end (de-chunked, never decompressed).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Every value of the header `name`, in order, as text (values that are not text are skipped).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.get_all(name).iter().filter_map(|v| v.to_str().ok())
    }
}

/// Sends `request` on `stream` and reads the reply, refusing a body over `max_body` bytes.
///
/// The connection is driven here, alongside the request, rather than on a spawned task: dropping this
/// future (the caller's deadline) closes the connection, and any tokio runtime will do, agentctl's
/// current-thread one included.
pub async fn exchange<S>(stream: S, request: Request<Full<Bytes>>, max_body: usize) -> Result<Reply, ExchangeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(ExchangeError::Handshake)?;
    let work = async move {
        let reply = sender.send_request(request).await.map_err(ExchangeError::Request)?;
        read_whole(reply, max_body).await
    };
    tokio::pin!(work, connection);
    tokio::select! {
        reply = &mut work => reply,
        ended = &mut connection => match ended {
            // The connection is done (the peer closed after the reply): what was read is in the body.
            Ok(()) => work.await,
            Err(e) => Err(ExchangeError::Request(e)),
        },
    }
}

async fn read_whole(reply: hyper::Response<Incoming>, max_body: usize) -> Result<Reply, ExchangeError> {
    let (parts, body) = reply.into_parts();
    let body = Limited::new(body, max_body).collect().await.map_err(|e| {
        if e.downcast_ref::<LengthLimitError>().is_some() {
            ExchangeError::TooLarge { max: max_body }
        } else {
            ExchangeError::Body(e)
        }
    })?;
    Ok(Reply { status: parts.status, headers: parts.headers, body: body.to_bytes() })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A server on loopback that reads one request and writes `answer` as it is, then closes.
    async fn answering(answer: &'static [u8]) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer).await;
        });
        addr
    }

    fn get(path: &str) -> Request<Full<Bytes>> {
        Request::get(path).header("host", "test").body(Full::new(Bytes::new())).unwrap()
    }

    #[tokio::test]
    async fn a_chunked_body_is_read_whole() {
        let addr = answering(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n\
              3\r\n{\"a\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n",
        )
        .await;
        let r = exchange(TcpStream::connect(addr).await.unwrap(), get("/x"), 1024).await.unwrap();
        assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"{\"a\":1}"[..]));
        assert_eq!(r.header_values("set-cookie").collect::<Vec<_>>(), ["a=1", "b=2"]);
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_chunked_or_not() {
        let addr = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a").await;
        let e = exchange(TcpStream::connect(addr).await.unwrap(), get("/"), 10).await.unwrap_err();
        assert!(matches!(e, ExchangeError::TooLarge { max: 10 }), "{e}");
        assert_eq!(e.to_string(), "the reply's body is over 10 bytes");
        let addr =
            answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n6789ab\r\n0\r\n\r\n")
                .await;
        let e = exchange(TcpStream::connect(addr).await.unwrap(), get("/"), 10).await.unwrap_err();
        assert!(matches!(e, ExchangeError::TooLarge { max: 10 }), "{e}");
    }

    #[tokio::test]
    async fn a_reply_cut_short_or_not_http_is_an_error() {
        let addr = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}").await;
        let e = exchange(TcpStream::connect(addr).await.unwrap(), get("/"), 100).await.unwrap_err();
        assert!(matches!(e, ExchangeError::Body(_)), "{e}");
        let addr = answering(b"garbage\r\n\r\n").await;
        let e = exchange(TcpStream::connect(addr).await.unwrap(), get("/"), 100).await.unwrap_err();
        assert!(matches!(e, ExchangeError::Request(_)), "{e}");
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_held_to_the_callers_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts, keeps the connection open, and never writes.
        let held = tokio::spawn(async move { listener.accept().await.unwrap() });
        let started = std::time::Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(300), exchange(stream, get("/"), 100)).await;
        assert!(r.is_err(), "no reply, so the deadline fired: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        drop(held);
    }
}
