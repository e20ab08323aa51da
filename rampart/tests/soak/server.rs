//! A server of the examples' application (`GET /work` behind the BBR limiter and a fault
//! layer, `GET /metrics`) that can stop and return on the same address, and that counts the
//! `/work` requests it receives.
//!
//! Stopping closes every connection once its request in flight (if any) is answered, and
//! closes new connections unread, so that a request either reaches the application (and is
//! answered) or fails on the client's side without reaching it: nothing is half-served. The
//! port stays bound, so the server returns where clients look for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::PrometheusHandle;
use rampart::fault::{FaultConfig, FaultHandle, FaultLayer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::{BoxError, ServiceExt};

use crate::support::server::app;

/// A running server.
pub struct Server {
    /// Where it listens, on 127.0.0.1.
    pub addr: SocketAddr,
    /// Its fault layer (between the limiter and the handler), changed at run time.
    pub faults: FaultHandle,
    arrivals: Arc<AtomicU64>,
    stopped: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Starts the application with the limiter named `name` on an ephemeral port.
    ///
    /// # Errors
    ///
    /// If the port cannot be bound or the limiter built.
    pub async fn start(name: &str, metrics: PrometheusHandle) -> Result<Self, BoxError> {
        let (layer, faults) = FaultLayer::pair(FaultConfig::default())?;
        let app = app(name, layer, metrics)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let arrivals = Arc::new(AtomicU64::new(0));
        let (stopped, stop) = watch::channel(false);
        let task = tokio::spawn(serve(listener, app, Arc::clone(&arrivals), stop));
        Ok(Self {
            addr,
            faults,
            arrivals,
            stopped,
            task,
        })
    }

    /// Stops serving (`true`) or serves again (`false`).
    pub fn set_stopped(&self, stopped: bool) {
        self.stopped.send_replace(stopped);
    }

    /// `GET /work` requests that reached the application so far.
    pub fn arrivals(&self) -> u64 {
        self.arrivals.load(Ordering::Relaxed)
    }
}

/// Accepts connections until aborted, closing them unread while stopped.
async fn serve(
    listener: TcpListener,
    app: Router,
    arrivals: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: let connections close, then accept again.
            tokio::task::yield_now().await;
            continue;
        };
        if *stop.borrow() {
            drop(stream);
            continue;
        }
        tokio::spawn(connection(
            stream,
            app.clone(),
            Arc::clone(&arrivals),
            stop.clone(),
        ));
    }
}

/// Serves one connection until the client closes it, or until the server stops (after
/// answering the request in flight).
async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    arrivals: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        if request.uri().path() == "/work" {
            arrivals.fetch_add(1, Ordering::Relaxed);
        }
        app.clone().oneshot(request)
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    // `false` if the server is gone: the connection then simply runs its course.
    let stopping = async move { stop.wait_for(|stopped| *stopped).await.is_ok() };
    tokio::select! {
        _ = connection.as_mut() => {}
        true = stopping => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
