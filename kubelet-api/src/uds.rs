//! gRPC over a Unix socket with hyper's HTTP/2 directly: a client connection the generated clients call
//! through, and a server loop for the generated servers. kubelet speaks nothing but HTTP/2 on these
//! sockets, so tonic's own transport (its router, load-balancing channel and the stacks under them) would
//! only add code to every agent binary, including the many that never turn `[kubernetes]` on.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Incoming};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tonic::codegen::http::{self, Uri};
use tonic::codegen::{Service, StdError};

/// What can fail opening a connection to a gRPC server on a Unix socket.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {}: {source}", path.display())]
    Socket { path: PathBuf, source: std::io::Error },
    #[error("HTTP/2 handshake with {} failed: {source}", path.display())]
    Handshake { path: PathBuf, source: hyper::Error },
}

/// One HTTP/2 connection to a gRPC server on a Unix socket, for a generated client
/// (`XClient::new(channel)`). It ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Channel {
    send: SendRequest<tonic::body::Body>,
}

/// Connects to the gRPC server on the Unix socket `path`. No deadline: the caller sets one.
pub async fn connect(path: &Path) -> Result<Channel, ConnectError> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|source| ConnectError::Socket { path: path.to_owned(), source })?;
    let (send, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .map_err(|source| ConnectError::Handshake { path: path.to_owned(), source })?;
    // The connection's I/O runs on its own; it ends with an error only when the peer goes away, which
    // the pending call sees as its own error.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Channel { send })
}

/// The authority sent with every call: a Unix socket has no host name, and gRPC servers (kubelet's
/// included) accept any.
const ORIGIN: &str = "http://localhost";

impl Service<http::Request<tonic::body::Body>> for Channel {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        // The generated clients send only the path; HTTP/2 needs a scheme and an authority too.
        if request.uri().scheme().is_none() {
            let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
            if let Ok(uri) = format!("{ORIGIN}{path}").parse::<Uri>() {
                *request.uri_mut() = uri;
            }
        }
        Box::pin(self.send.send_request(request))
    }
}

/// Serves `service` (a generated `XServer`) on `listener`, one task per connection, until `shutdown`
/// completes; then stops accepting and waits for the open connections to finish their calls.
pub async fn serve<S, B>(
    listener: tokio::net::UnixListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<StdError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<StdError>,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let result = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service.clone()));
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
                Err(e) => break Err(e),
            },
            () = &mut shutdown => break Ok(()),
        }
    };
    graceful.shutdown().await;
    result
}
