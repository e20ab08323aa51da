//! The client and server stacks on real sockets: three servers on 127.0.0.1 (one failing half
//! its requests slowly), a bounded burst of HTTP requests through rampart's client stack, and
//! the metrics the servers expose; a request's criticality and its deadline carried over HTTP
//! from a client through a server to the service that server calls; and requests that cannot
//! finish in time answered 504.

#[path = "../examples/support/mod.rs"]
mod support;

use rampart_testkit::exposition::Exposition;
use support::chaos::{Fleet, Tally, compare, scrape};

const REQUESTS: u64 = 1_000;
const RATE: f64 = 500.0;

/// Every metric rampart reports (the README lists them), with the labels each must carry.
const METRICS: &[(&str, &[&str])] = &[
    (
        "rampart_breaker_requests_total",
        &["name", "outcome", "criticality"],
    ),
    ("rampart_breaker_drop_probability", &["name"]),
    (
        "rampart_ratelimit_requests_total",
        &["name", "outcome", "criticality"],
    ),
    ("rampart_ratelimit_inflight", &["name"]),
    ("rampart_ratelimit_max_inflight", &["name"]),
    ("rampart_ratelimit_cpu_ratio", &["name"]),
    (
        "rampart_retry_attempts_total",
        &["name", "kind", "criticality"],
    ),
    (
        "rampart_retry_budget_exhausted_total",
        &["name", "criticality"],
    ),
    ("rampart_balancer_endpoints", &["name"]),
    ("rampart_balancer_picks_total", &["name", "endpoint"]),
    ("rampart_balancer_endpoint_score", &["name", "endpoint"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_stack_avoids_the_failing_server_and_accounts_for_every_request() {
    let fleet = Fleet::start().await.expect("servers start");
    let [unprotected, protected] = compare(&fleet, REQUESTS, RATE).await.expect("valid stacks");
    println!(
        "{}",
        support::chaos::table(&[unprotected.clone(), protected.clone()])
    );

    for tally in [&unprotected, &protected] {
        assert_eq!(
            tally.succeeded + tally.rejected + tally.failed,
            tally.sent,
            "{}: a request is unaccounted for",
            tally.stack
        );
    }
    // Round robin feeds the failing server its third and loses half of that.
    assert!(
        (0.30..0.37).contains(&unprotected.bad_share.1),
        "{:?}",
        unprotected.bad_share
    );
    assert!(unprotected.success_rate() < 0.9);
    // rampart's balancer learns to avoid it: a shrinking share, and nearly every request served.
    let (early, late) = protected.bad_share;
    assert!(
        late < early && late <= 0.01,
        "the failing server's share went {early} → {late}"
    );
    assert!(
        protected.success_rate() >= 0.99,
        "success {}",
        protected.success_rate()
    );

    let samples = scrape_first(&fleet).await;
    assert_every_metric_is_exposed(&samples);
    assert_the_layers_agree(&samples, &fleet, &unprotected, &protected);
}

/// The first server's `/metrics`, scraped over HTTP as Prometheus would.
async fn scrape_first(fleet: &Fleet) -> Exposition {
    Exposition::parse(&scrape(fleet.addrs()[0]).await.expect("scraped"))
}

fn assert_every_metric_is_exposed(samples: &Exposition) {
    for (name, labels) in METRICS {
        assert!(
            samples.exposes(name, labels),
            "{name} with labels {labels:?} is not exposed"
        );
    }
}

fn assert_the_layers_agree(
    samples: &Exposition,
    fleet: &Fleet,
    unprotected: &Tally,
    protected: &Tally,
) {
    let addrs = fleet.addrs();
    // The layers' counts agree: every request made a first attempt; every attempt was judged
    // by the breaker; every attempt it let through reached exactly one server's limiter, as
    // did each of round robin's requests (a limiter on a busy machine may shed some: the
    // client then retries them elsewhere).
    let client = [("name", "client")];
    let first = samples.sum(
        "rampart_retry_attempts_total",
        &[("name", "client"), ("kind", "first")],
    );
    let retries = samples.sum(
        "rampart_retry_attempts_total",
        &[("name", "client"), ("kind", "retry")],
    );
    let judged = samples.sum("rampart_breaker_requests_total", &client);
    let rejected = samples.sum(
        "rampart_breaker_requests_total",
        &[("name", "client"), ("outcome", "rejected")],
    );
    let picks = samples.sum("rampart_balancer_picks_total", &client);
    assert_eq!(first, REQUESTS as f64);
    assert_eq!(judged, first + retries);
    assert_eq!(picks, judged - rejected);
    let arrived: f64 = (0..addrs.len())
        .map(|at| {
            samples.sum(
                "rampart_ratelimit_requests_total",
                &[("name", &format!("server-{at}"))],
            )
        })
        .sum();
    assert_eq!(arrived, unprotected.sent as f64 + picks);
    let shed: f64 = (0..addrs.len())
        .map(|at| {
            samples.sum(
                "rampart_ratelimit_requests_total",
                &[("name", &format!("server-{at}")), ("outcome", "shed")],
            )
        })
        .sum();
    let handled: u64 = unprotected.received.iter().chain(&protected.received).sum();
    assert_eq!(
        handled as f64,
        arrived - shed,
        "what the limiters admitted reached the handlers"
    );
}

// A request's criticality over HTTP: client → server A (where its limiter stands) → A's
// handler → server B.

mod criticality {
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::error_handling::HandleErrorLayer;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::Response;
    use axum::routing::get;
    use axum::{Router, ServiceExt as _};
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::Request;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use rampart::core::{Criticality, CriticalityClass, current_criticality};
    use rampart::http::{
        CRITICALITY_HEADER, ClientContextLayer, ServerContextConfig, ServerContextLayer, Trust,
    };
    use rampart::ratelimit::{BbrConfig, BbrLimitLayer};
    use rampart_testkit::recorded::{Metrics, take, value};
    use tokio::task::JoinHandle;
    use tower::util::MapRequestLayer;
    use tower::{BoxError, Layer, Service, ServiceBuilder, ServiceExt};

    use super::support::client::Endpoint;

    const SHEDDABLE_PLUS_40: Criticality =
        Criticality::with_level(CriticalityClass::SheddablePlus, 40);

    /// The criticality current at each admission, where server A's limiter stands.
    type Admissions = Arc<Mutex<Vec<Criticality>>>;

    /// Server A's stack between its `ServerContextLayer` and its handler: the place of its
    /// limiter, which reads `current_criticality()` when it admits a request. Today a probe
    /// that records that value at the same moment (in the inner `call`).
    fn where_the_limiter_stands(
        admissions: Admissions,
    ) -> MapRequestLayer<impl Fn(Request<Body>) -> Request<Body> + Clone> {
        MapRequestLayer::new(move |request| {
            admissions
                .lock()
                .expect("no panic while held")
                .push(current_criticality());
            request
        })
    }

    /// The limiter's view of the run: server A admitted one request, at `expected`, and its
    /// limiter counted that admission under `expected`'s class.
    fn assert_admitted_as(run: &Run, expected: Criticality) {
        assert_eq!(
            *run.admissions.lock().expect("no panic while held"),
            [expected],
            "what server A's limiter saw"
        );
        let metrics = &run.metrics;
        let admitted = |class: CriticalityClass| match value(
            metrics,
            "rampart_ratelimit_requests_total",
            &[
                ("name", "relay"),
                ("outcome", "admitted"),
                ("criticality", class.as_str()),
            ],
        ) {
            Some(DebugValue::Counter(count)) => *count,
            other => panic!("{class}: {other:?}"),
        };
        for class in CriticalityClass::ALL {
            let expected = u64::from(class == expected.class());
            assert_eq!(
                admitted(class),
                expected,
                "the limiter's admissions of {class}"
            );
        }
    }

    /// Serves `app` on an ephemeral port of 127.0.0.1 until the handle is aborted.
    pub(super) async fn serve<S>(app: S) -> Result<(SocketAddr, JoinHandle<()>), BoxError>
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app.into_make_service()).await;
        });
        Ok((addr, task))
    }

    /// Server B: answers with the criticality header it received (its values joined by
    /// commas), or `none`.
    fn echo() -> Router {
        Router::new().route(
            "/echo",
            get(|headers: HeaderMap| async move {
                let values: Vec<&str> = headers
                    .get_all(CRITICALITY_HEADER)
                    .iter()
                    .map(|value| value.to_str().unwrap_or("not text"))
                    .collect();
                if values.is_empty() {
                    "none".to_owned()
                } else {
                    values.join(",")
                }
            }),
        )
    }

    /// Server A: reads its callers' criticality as `layer` says, admits (where its limiter
    /// stands), and answers with what B answers to a call its handler makes through a client
    /// that carries the criticality on (the handler sets none: the scope supplies it).
    fn relay(
        layer: ServerContextLayer,
        limiter: BbrLimitLayer,
        b: SocketAddr,
        admissions: Admissions,
    ) -> impl Service<Request<Body>, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static {
        let [endpoint] = <[Endpoint; 1]>::try_from(Endpoint::each(&[b]))
            .ok()
            .expect("one");
        let to_b = ClientContextLayer::new().layer(endpoint);
        let handler = Router::new()
            .route(
                "/relay",
                get(move || {
                    let to_b = to_b.clone();
                    async move {
                        let call_b = async {
                            let request = Request::get("/echo").body(Full::new(Bytes::new()))?;
                            let answer = to_b.oneshot(request).await?;
                            let body = answer.into_body().collect().await?.to_bytes();
                            Ok::<_, BoxError>(String::from_utf8(body.to_vec())?)
                        };
                        call_b
                            .await
                            .map_err(|error| (StatusCode::BAD_GATEWAY, error.to_string()))
                    }
                }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(|error: BoxError| async move {
                        (StatusCode::SERVICE_UNAVAILABLE, error.to_string())
                    }))
                    .layer(limiter),
            );
        ServiceBuilder::new()
            .layer(layer)
            .layer(where_the_limiter_stands(admissions))
            .service(handler)
    }

    /// What one run of the chain saw.
    struct Run {
        /// The criticality current where A's limiter stands, at each admission.
        admissions: Admissions,
        /// The criticality header B received.
        b_received: String,
        /// A's `rampart_criticality_inbound_total` and its limiter's metrics.
        metrics: Metrics,
    }

    /// Sends one request carrying `criticality` as its extension through a client with
    /// `ClientContextLayer` to server A, configured by `config`, which calls server B.
    async fn run(config: ServerContextConfig, criticality: Criticality) -> Result<Run, BoxError> {
        let recorder = DebuggingRecorder::new();
        let (layer, limiter) = metrics::with_local_recorder(&recorder, || {
            let limiter = BbrConfig::default().with_name("relay").build()?;
            Ok::<_, BoxError>((
                ServerContextLayer::new(config),
                BbrLimitLayer::from_limiter(Arc::new(limiter)),
            ))
        })?;
        let admissions = Admissions::default();
        let (b, b_task) = serve(echo()).await?;
        let (a, a_task) = serve(relay(layer, limiter, b, Arc::clone(&admissions))).await?;

        let [endpoint] = <[Endpoint; 1]>::try_from(Endpoint::each(&[a]))
            .ok()
            .expect("one");
        let client = ClientContextLayer::new().layer(endpoint);
        let mut request = Request::get("/relay").body(Full::new(Bytes::new()))?;
        request.extensions_mut().insert(criticality);
        let answer = client.oneshot(request).await?;
        assert!(answer.status().is_success(), "{}", answer.status());
        let body = answer.into_body().collect().await?.to_bytes();
        a_task.abort();
        b_task.abort();
        Ok(Run {
            admissions,
            b_received: String::from_utf8(body.to_vec())?,
            metrics: take(&recorder.snapshotter()),
        })
    }

    /// A's count of `outcome`.
    fn inbound(metrics: &Metrics, outcome: &str) -> u64 {
        match value(
            metrics,
            "rampart_criticality_inbound_total",
            &[("name", "relay"), ("outcome", outcome)],
        ) {
            Some(DebugValue::Counter(count)) => *count,
            other => panic!("{outcome}: {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clients_criticality_reaches_the_servers_limiter_and_the_service_it_calls() {
        let config = ServerContextConfig::default()
            .with_trust(Trust::All)
            .with_name("relay");
        let run = run(config, SHEDDABLE_PLUS_40)
            .await
            .expect("the chain answers");
        assert_admitted_as(&run, SHEDDABLE_PLUS_40);
        assert_eq!(
            run.b_received, "sheddable-plus/40",
            "what server B received"
        );
        assert_eq!(inbound(&run.metrics, "honoured"), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_trusting_no_caller_runs_the_request_at_its_default_and_passes_that_on() {
        let config = ServerContextConfig::default()
            .with_trust(Trust::None)
            .with_default(Criticality::SHEDDABLE)
            .with_name("relay");
        let run = run(config, Criticality::CRITICAL_PLUS)
            .await
            .expect("the chain answers");
        assert_admitted_as(&run, Criticality::SHEDDABLE);
        assert_eq!(run.b_received, "sheddable", "what server B received");
        assert_eq!(inbound(&run.metrics, "untrusted"), 1);
    }
}

// A request's deadline over HTTP: client → server A → A's handler → server B, each hop hearing
// what remains; and 504 for the requests that cannot finish in time.

mod deadline {
    use std::future::pending;
    use std::sync::Arc;
    use std::time::Duration;

    use axum::Router;
    use axum::error_handling::HandleErrorLayer;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::Request;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use rampart::core::{
        Clock, Deadline, ManualClock, SystemClock, current_deadline, grpc_timeout,
    };
    use rampart::deadline::EnforceDeadlineLayer;
    use rampart::http::{
        ClientContextLayer, DEADLINE_HEADER, ErrorStatus, ServerContextConfig, ServerContextLayer,
    };
    use rampart::ratelimit::{BbrConfig, BbrLimitLayer, ManualCpu};
    use rampart_testkit::recorded::{take, value};
    use tower::{BoxError, Layer, ServiceBuilder, ServiceExt};

    use super::criticality::serve;
    use super::support::client::Endpoint;

    /// The client's budget for the whole chain.
    const BUDGET: Duration = Duration::from_millis(300);
    /// Each client-side layer's margin (the default).
    const MARGIN: Duration = Duration::from_millis(5);
    /// The most A can see left: the budget less the client's margin.
    const MOST_AT_A: Duration = Duration::from_millis(300 - 5);
    /// The least A may see left: the trip to A and A's start may take up to 250 ms of the
    /// budget on a busy machine.
    const LEAST_AT_A: Duration = Duration::from_millis(300 - 5 - 250);

    /// The one endpoint of `addr`.
    fn endpoint(addr: std::net::SocketAddr) -> Endpoint {
        let [endpoint] = <[Endpoint; 1]>::try_from(Endpoint::each(&[addr]))
            .ok()
            .expect("one");
        endpoint
    }

    /// A's answer to an error of its layers: the status `ErrorStatus` gives it, with its
    /// headers.
    async fn refuse(error: BoxError) -> Response {
        match ErrorStatus::default().of(&*error) {
            Some(mapped) => (mapped.status, mapped.headers(), error.to_string()).into_response(),
            None => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
        }
    }

    /// Server B: answers with the deadline header it received, or `none`.
    fn echo() -> Router {
        Router::new().route(
            "/echo",
            get(|headers: HeaderMap| async move {
                headers
                    .get(DEADLINE_HEADER)
                    .map_or("none", |value| value.to_str().unwrap_or("not text"))
                    .to_owned()
            }),
        )
    }

    /// Server A: its `ServerContextLayer` (on the system clock, named `relay`) makes the
    /// deadline current; its handler answers with the time it sees left (in nanoseconds) and
    /// what B received from a call made through a `ClientContextLayer`, with no plumbing.
    fn relay(layer: ServerContextLayer, b: std::net::SocketAddr) -> Router {
        let to_b = ClientContextLayer::new().layer(endpoint(b));
        Router::new()
            .route(
                "/relay",
                get(move || {
                    let to_b = to_b.clone();
                    async move {
                        let left = current_deadline()
                            .map(|deadline| deadline.remaining(SystemClock::new().now()));
                        let call_b = async {
                            let request = Request::get("/echo").body(Full::new(Bytes::new()))?;
                            let answer = to_b.oneshot(request).await?;
                            let body = answer.into_body().collect().await?.to_bytes();
                            Ok::<_, BoxError>(String::from_utf8(body.to_vec())?)
                        };
                        let b_received = call_b
                            .await
                            .map_err(|error| (StatusCode::BAD_GATEWAY, error.to_string()))?;
                        let left =
                            left.map_or("none".to_owned(), |left| left.as_nanos().to_string());
                        Ok::<_, (StatusCode, String)>(format!("{left} {b_received}"))
                    }
                }),
            )
            .layer(layer)
    }

    /// `request` sent to `addr`, through a client-side layer; the status and the body.
    async fn send(
        addr: std::net::SocketAddr,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, HeaderMap, String), BoxError> {
        let answer = ClientContextLayer::new()
            .layer(endpoint(addr))
            .oneshot(request)
            .await?;
        let (status, headers) = (answer.status(), answer.headers().clone());
        let body = answer.into_body().collect().await?.to_bytes();
        Ok((status, headers, String::from_utf8(body.to_vec())?))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_clients_deadline_reaches_the_second_hop_with_what_remains() {
        let recorder = DebuggingRecorder::new();
        let layer = metrics::with_local_recorder(&recorder, || {
            ServerContextConfig::default().with_name("relay").build()
        })
        .expect("valid");
        let (b, b_task) = serve(echo()).await.expect("B serves");
        let (a, a_task) = serve(relay(layer, b)).await.expect("A serves");

        let mut request = Request::get("/relay")
            .body(Full::new(Bytes::new()))
            .expect("valid");
        request
            .extensions_mut()
            .insert(Deadline::after(SystemClock::new().now(), BUDGET));
        let (status, _, body) = send(a, request).await.expect("the chain answers");
        a_task.abort();
        b_task.abort();
        assert_eq!(status, StatusCode::OK, "{body}");

        let (left_at_a, b_received) = body.split_once(' ').expect("two fields");
        let left_at_a = Duration::from_nanos(left_at_a.parse().expect("A saw a deadline"));
        let at_b = grpc_timeout::parse(b_received).expect("B received a grpc-timeout");
        assert!(
            (LEAST_AT_A..=MOST_AT_A).contains(&left_at_a),
            "A saw {left_at_a:?} left of {BUDGET:?}"
        );
        assert!(
            at_b > Duration::ZERO && at_b + MARGIN <= left_at_a,
            "B received {at_b:?}, A had {left_at_a:?} left"
        );
        let metrics = take(&recorder.snapshotter());
        let honoured = value(
            &metrics,
            "rampart_deadline_inbound_total",
            &[("name", "relay"), ("outcome", "honoured")],
        );
        assert!(
            matches!(honoured, Some(DebugValue::Counter(1))),
            "{honoured:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_that_outlives_its_deadline_is_answered_504() {
        // A handler that never answers: only the deadline ends its request. `1n` has passed
        // by the time the enforcing layer reads the clock, or ends at its first timer tick.
        let app = Router::new()
            .route("/hang", get(pending::<&'static str>))
            .route_layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(refuse))
                    .layer(EnforceDeadlineLayer::new()),
            )
            .layer(ServerContextLayer::new(ServerContextConfig::default()));
        let (a, a_task) = serve(app).await.expect("A serves");
        let request = Request::get("/hang")
            .header(DEADLINE_HEADER, "1n")
            .body(Full::new(Bytes::new()))
            .expect("valid");
        let (status, headers, body) = send(a, request).await.expect("answered");
        a_task.abort();
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert_eq!(body, "deadline exceeded");
        assert!(!headers.contains_key(header::RETRY_AFTER));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_the_limiter_predicts_cannot_finish_in_time_is_answered_504() {
        // The limiter and the server layer read one clock; the limiter has learned a 20 ms
        // response time.
        let clock = ManualClock::new();
        let limiter = BbrConfig::default()
            .with_name("relay")
            .build_with(clock.clone(), ManualCpu::new(0.1))
            .expect("valid");
        for _ in 0..10 {
            let permit = limiter.acquire().expect("admitted");
            clock.advance(Duration::from_millis(20));
            permit.complete();
        }
        clock.advance(Duration::from_millis(100)); // the bucket ends
        let context = ServerContextConfig::default()
            .build_with(clock.clone())
            .expect("valid");
        let app = Router::new()
            .route("/work", get(|| async { "done" }))
            .route_layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(refuse))
                    .layer(BbrLimitLayer::from_limiter(Arc::new(limiter))),
            )
            .layer(context);
        let (a, a_task) = serve(app).await.expect("A serves");
        let request = |timeout: &str| {
            Request::get("/work")
                .header(DEADLINE_HEADER, timeout)
                .body(Full::new(Bytes::new()))
                .expect("valid")
        };

        let (status, headers, body) = send(a, request("5m")).await.expect("answered");
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        assert!(body.starts_with("would miss its deadline"), "{body}");
        assert!(!headers.contains_key(header::RETRY_AFTER));

        let (status, _, body) = send(a, request("1S")).await.expect("answered");
        assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
        a_task.abort();
    }
}
