//! An axum server guarded by rampart's BBR limiter, with a Prometheus `/metrics` endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use rampart::fault::{FaultConfig, FaultHandle, FaultLayer};
use rampart::http::ErrorStatus;
use rampart::ratelimit::{BbrConfig, BbrLimitLayer};
use tower::{BoxError, ServiceBuilder};

/// The handler's own work: a few milliseconds, as a small database query would take.
const WORK: Duration = Duration::from_millis(2);

/// A running server.
pub struct Server {
    /// Where it listens (on 127.0.0.1).
    pub addr: SocketAddr,
    /// Counts what reached its handler stack, and changes its faults at run time.
    pub faults: FaultHandle,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers a refusal from one of rampart's layers with its status and `Retry-After`, anything
/// else with 500.
async fn to_response(error: BoxError) -> Response {
    match ErrorStatus::default().of(&*error) {
        Some(mapped) => (mapped.status, mapped.headers(), error.to_string()).into_response(),
        None => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}

async fn work() -> &'static str {
    tokio::time::sleep(WORK).await;
    "done"
}

/// The application: `GET /work` behind the limiter named `name` (and `faults`, injected
/// between the limiter and the handler: a bad disk, a failing dependency), and `GET /metrics`,
/// unguarded, rendering `metrics`.
///
/// # Errors
///
/// If the limiter cannot be built (no CPU reading on this machine).
pub fn app(name: &str, faults: FaultLayer, metrics: PrometheusHandle) -> Result<Router, BoxError> {
    let guarded = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(to_response))
        .layer(BbrLimitLayer::new(
            BbrConfig::default().with_name(name.to_owned()),
        )?)
        .layer(faults);
    Ok(Router::new()
        .route("/work", get(work))
        .route_layer(guarded)
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        ))
}

/// Starts the application on an ephemeral port of 127.0.0.1, injecting `faults`.
///
/// # Errors
///
/// If the port cannot be bound or the limiter built.
pub async fn start(
    name: &str,
    faults: FaultConfig,
    metrics: PrometheusHandle,
) -> Result<Server, BoxError> {
    let (layer, handle) = FaultLayer::pair(faults)?;
    let app = app(name, layer, metrics)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // Serving ends when the task is aborted.
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server {
        addr,
        faults: handle,
        task,
    })
}

/// Installs the process's Prometheus recorder (once): install it before building any layer,
/// so that their metrics register with it.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .expect("no other recorder is installed")
        })
        .clone()
}
