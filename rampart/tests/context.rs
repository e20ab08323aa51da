//! The criticality and deadline headers through tower: what `ServerContextLayer` honours,
//! caps, ignores and counts, the context it makes current for the inner service, and what
//! `ClientContextLayer` stamps on outgoing requests (or, out of time, does not send).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart::core::{
    Clock, Criticality, CriticalityClass, Deadline, DeadlineExceeded, ManualClock, RequestContext,
    current_criticality, current_deadline,
};
use rampart::http::{
    ATTEMPTS_HEADER, CRITICALITY_HEADER, ClientContextLayer, DEADLINE_HEADER, ServerContextConfig,
    ServerContextLayer, Trust,
};
use rampart_testkit::recorded::{take, value};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const INBOUND: &str = "rampart_criticality_inbound_total";
const SHEDDABLE_PLUS_40: Criticality = Criticality::with_level(CriticalityClass::SheddablePlus, 40);

/// What the inner service saw of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    /// The current context's criticality during the inner `call`.
    at_call: Option<Criticality>,
    /// The same during a later poll of the response future (after it yielded once).
    at_poll: Option<Criticality>,
    /// What the layers read there: the current criticality or the default.
    current: Criticality,
    /// The request's `Criticality` extension.
    extension: Option<Criticality>,
    /// The values of the criticality header it received.
    header: Vec<HeaderValue>,
}

/// An inner service that records what it sees of each request, at its call and at a later
/// poll of its future.
fn probe() -> impl Service<
    Request<()>,
    Response = Seen,
    Error = Infallible,
    Future = impl Future<Output = Result<Seen, Infallible>>,
> + Clone {
    service_fn(|request: Request<()>| {
        let at_call = RequestContext::current().criticality();
        let extension = request.extensions().get::<Criticality>().copied();
        let header = request
            .headers()
            .get_all(CRITICALITY_HEADER)
            .iter()
            .cloned()
            .collect();
        async move {
            tokio::task::yield_now().await;
            Ok(Seen {
                at_call,
                at_poll: RequestContext::current().criticality(),
                current: current_criticality(),
                extension,
                header,
            })
        }
    })
}

/// A request carrying `values` in the criticality header.
fn request_with(values: &[&[u8]]) -> Request<()> {
    let mut request = Request::new(());
    for value in values {
        request.headers_mut().append(
            CRITICALITY_HEADER,
            HeaderValue::from_bytes(value).expect("a valid header value"),
        );
    }
    request
}

/// A server-side layer of `config` built under a fresh recorder, and the recorder.
fn server(config: ServerContextConfig) -> (ServerContextLayer, DebuggingRecorder) {
    let recorder = DebuggingRecorder::new();
    let layer = metrics::with_local_recorder(&recorder, || ServerContextLayer::new(config));
    (layer, recorder)
}

/// `request` through `layer` over the probe.
async fn serve(layer: &ServerContextLayer, request: Request<()>) -> Seen {
    let Ok(seen) = layer.layer(probe()).oneshot(request).await;
    seen
}

/// The count of `outcome` in the recorder, under the layer `name`.
fn counted(recorder: &DebuggingRecorder, name: &str) -> [(&'static str, u64); 5] {
    let metrics = take(&recorder.snapshotter());
    ["honoured", "capped", "absent", "untrusted", "malformed"].map(|outcome| {
        let count = match value(&metrics, INBOUND, &[("name", name), ("outcome", outcome)]) {
            Some(DebugValue::Counter(count)) => *count,
            other => panic!("{outcome}: {other:?}"),
        };
        (outcome, count)
    })
}

/// Exactly one request counted, under `outcome`.
fn once(outcome: &'static str) -> [(&'static str, u64); 5] {
    ["honoured", "capped", "absent", "untrusted", "malformed"]
        .map(|each| (each, u64::from(each == outcome)))
}

/// What the probe sees of a request handled at `criticality`: current at the call and at
/// later polls, the extension set, the header saying it.
fn handled_at(criticality: Criticality) -> Seen {
    Seen {
        at_call: Some(criticality),
        at_poll: Some(criticality),
        current: criticality,
        extension: Some(criticality),
        header: vec![HeaderValue::from_str(&criticality.to_string()).expect("visible ASCII")],
    }
}

/// What the probe sees of a request that carries no criticality.
fn handled_without() -> Seen {
    Seen {
        at_call: None,
        at_poll: None,
        current: Criticality::CRITICAL,
        extension: None,
        header: Vec::new(),
    }
}

#[tokio::test]
async fn a_trusted_callers_value_is_current_in_the_inner_call_and_in_later_polls() {
    let (layer, recorder) = server(ServerContextConfig::default().with_trust(Trust::All));
    let seen = serve(&layer, request_with(&[b"sheddable-plus/40"])).await;
    assert_eq!(seen, handled_at(SHEDDABLE_PLUS_40));
    assert_eq!(counted(&recorder, "default"), once("honoured"));
    assert_eq!(
        RequestContext::current(),
        RequestContext::new(),
        "the scope ends with the request"
    );
}

#[tokio::test]
async fn trust_is_none_by_default_so_an_untrusted_callers_critical_plus_gets_the_configured_default()
 {
    let config = ServerContextConfig::default().with_default(Criticality::SHEDDABLE_PLUS);
    assert!(matches!(config.trust(), Trust::None));
    let (layer, recorder) = server(config.with_name("edge"));
    let seen = serve(&layer, request_with(&[b"critical-plus"])).await;
    assert_eq!(
        seen,
        handled_at(Criticality::SHEDDABLE_PLUS),
        "the caller's critical-plus is neither current nor passed on"
    );
    assert_eq!(counted(&recorder, "edge"), once("untrusted"));
}

#[tokio::test]
async fn without_a_default_an_untrusted_value_leaves_the_request_without_criticality() {
    let (layer, recorder) = server(ServerContextConfig::default().with_trust(Trust::None));
    let seen = serve(&layer, request_with(&[b"critical-plus"])).await;
    assert_eq!(
        seen,
        handled_without(),
        "the layers inside use their default, critical; the header is removed"
    );
    assert_eq!(counted(&recorder, "default"), once("untrusted"));
}

#[tokio::test]
async fn trust_when_honours_only_the_requests_its_predicate_accepts() {
    /// A peer identity, as a TLS layer in front would put it in the extensions.
    #[derive(Clone)]
    struct Peer(&'static str);
    let edge_header = HeaderName::from_static("x-from-our-edge");
    let from_edge = edge_header.clone();
    let trust = Trust::when(move |request| {
        request
            .extensions
            .get::<Peer>()
            .is_some_and(|peer| peer.0.ends_with(".internal"))
            || request.headers.contains_key(&from_edge)
    });
    let (layer, recorder) = server(
        ServerContextConfig::default()
            .with_trust(trust)
            .with_default(Criticality::SHEDDABLE),
    );

    let mut internal = request_with(&[b"critical-plus"]);
    internal.extensions_mut().insert(Peer("checkout.internal"));
    assert_eq!(
        serve(&layer, internal).await,
        handled_at(Criticality::CRITICAL_PLUS)
    );

    let mut via_edge = request_with(&[b"sheddable-plus/40"]);
    via_edge
        .headers_mut()
        .insert(edge_header, HeaderValue::from_static("1"));
    assert_eq!(serve(&layer, via_edge).await, handled_at(SHEDDABLE_PLUS_40));

    let mut stranger = request_with(&[b"critical-plus"]);
    stranger
        .extensions_mut()
        .insert(Peer("scraper.example.com"));
    assert_eq!(
        serve(&layer, stranger).await,
        handled_at(Criticality::SHEDDABLE)
    );

    let [honoured, _, _, untrusted, _] = counted(&recorder, "default");
    assert_eq!((honoured, untrusted), (("honoured", 2), ("untrusted", 1)));
}

#[tokio::test]
async fn a_trusted_value_above_the_cap_is_lowered_to_it_and_one_below_is_kept() {
    let (layer, recorder) = server(
        ServerContextConfig::default()
            .with_trust(Trust::All)
            .with_max(Criticality::CRITICAL),
    );
    assert_eq!(
        serve(&layer, request_with(&[b"critical-plus/3"])).await,
        handled_at(Criticality::CRITICAL)
    );
    assert_eq!(
        serve(&layer, request_with(&[b"critical"])).await,
        handled_at(Criticality::CRITICAL),
        "the cap itself is within it"
    );
    assert_eq!(
        serve(&layer, request_with(&[b"sheddable"])).await,
        handled_at(Criticality::SHEDDABLE)
    );
    let [honoured, capped, ..] = counted(&recorder, "default");
    assert_eq!((honoured, capped), (("honoured", 2), ("capped", 1)));
}

#[tokio::test]
async fn malformed_values_never_fail_the_request_they_get_the_default_and_are_counted() {
    let malformed: [&[&[u8]]; 6] = [
        &[b"urgent"],
        &[b"critical/128"],
        &[b"\xff\xfe"],
        &[b"critical", b"sheddable"],
        &[b"critical", b"critical"],
        &[b"critical, sheddable"],
    ];
    let (layer, recorder) = server(
        ServerContextConfig::default()
            .with_trust(Trust::All)
            .with_default(Criticality::SHEDDABLE_PLUS),
    );
    for values in malformed {
        assert_eq!(
            serve(&layer, request_with(values)).await,
            handled_at(Criticality::SHEDDABLE_PLUS),
            "{values:?}"
        );
    }
    let [.., malformed_count] = counted(&recorder, "default");
    assert_eq!(malformed_count, ("malformed", malformed.len() as u64));
}

#[tokio::test]
async fn a_malformed_value_without_a_default_leaves_the_request_without_criticality() {
    let (layer, _recorder) = server(ServerContextConfig::default().with_trust(Trust::All));
    assert_eq!(
        serve(&layer, request_with(&[b"\xff"])).await,
        handled_without()
    );
}

#[tokio::test]
async fn an_absent_header_gets_the_default_or_nothing() {
    let (with_default, recorder) = server(
        ServerContextConfig::default()
            .with_trust(Trust::All)
            .with_default(Criticality::SHEDDABLE),
    );
    assert_eq!(
        serve(&with_default, Request::new(())).await,
        handled_at(Criticality::SHEDDABLE)
    );
    assert_eq!(counted(&recorder, "default"), once("absent"));

    let (without, _recorder) = server(ServerContextConfig::default().with_trust(Trust::All));
    assert_eq!(serve(&without, Request::new(())).await, handled_without());
}

#[tokio::test]
async fn the_resolved_value_replaces_a_criticality_extension_the_request_carried() {
    let (layer, _recorder) = server(ServerContextConfig::default().with_trust(Trust::All));
    let mut request = request_with(&[b"sheddable"]);
    request.extensions_mut().insert(Criticality::CRITICAL_PLUS);
    assert_eq!(
        serve(&layer, request).await,
        handled_at(Criticality::SHEDDABLE)
    );

    let mut request = Request::new(());
    request.extensions_mut().insert(Criticality::CRITICAL_PLUS);
    assert_eq!(
        serve(&layer, request).await,
        handled_without(),
        "none resolved: none passed on"
    );
}

#[tokio::test]
async fn the_header_name_is_configurable_and_the_default_one_is_then_ignored() {
    let grpc_style = HeaderName::from_static("x-criticality");
    let (layer, _recorder) = server(
        ServerContextConfig::default()
            .with_trust(Trust::All)
            .with_header(grpc_style.clone()),
    );
    let request = Request::builder()
        .header(&grpc_style, "SHEDDABLE_PLUS")
        .header(CRITICALITY_HEADER, "critical-plus")
        .body(())
        .expect("a valid request");
    let seen = serve(&layer, request).await;
    assert_eq!(seen.at_call, Some(Criticality::SHEDDABLE_PLUS));
    assert_eq!(seen.at_poll, Some(Criticality::SHEDDABLE_PLUS));
    assert_eq!(seen.extension, Some(Criticality::SHEDDABLE_PLUS));
    assert_eq!(
        seen.header,
        [HeaderValue::from_static("critical-plus")],
        "another header is not this layer's"
    );
}

#[tokio::test]
async fn poll_ready_forwards_the_inner_services_readiness() {
    /// Ready only after being asked twice; its requests answered with nothing.
    struct Slow(u32);
    impl Service<Request<()>> for Slow {
        type Response = ();
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            self.0 += 1;
            if self.0 < 2 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(Err("inner refuses".into()))
            }
        }
        fn call(&mut self, _: Request<()>) -> Self::Future {
            Box::pin(async { Ok(()) })
        }
    }
    let (layer, _recorder) = server(ServerContextConfig::default());
    let mut service = layer.layer(Slow(0));
    let error = service.ready().await.err().expect("the inner error");
    assert_eq!(error.to_string(), "inner refuses");
    assert_eq!(service.get_ref().0, 2, "asked until ready");

    let mut client = ClientContextLayer::new().layer(Slow(0));
    assert!(client.ready().await.is_err());
    assert_eq!(client.get_ref().0, 2);
}

// The client side.

/// `request` through a client-side layer over the probe.
async fn send(layer: &ClientContextLayer, request: Request<()>) -> Seen {
    layer
        .layer(probe())
        .oneshot(request)
        .await
        .expect("the probe answers")
}

#[tokio::test]
async fn a_client_stamps_the_requests_own_criticality_and_makes_it_current_inside() {
    let mut request = Request::new(());
    request.extensions_mut().insert(SHEDDABLE_PLUS_40);
    let seen = send(&ClientContextLayer::new(), request).await;
    assert_eq!(seen, handled_at(SHEDDABLE_PLUS_40));
}

#[tokio::test]
async fn a_client_stamps_the_current_requests_criticality_when_its_own_has_none() {
    let scope = RequestContext::new().with_criticality(Criticality::SHEDDABLE);
    let seen = scope
        .scope(send(&ClientContextLayer::new(), Request::new(())))
        .await;
    assert_eq!(
        seen,
        Seen {
            extension: None,
            ..handled_at(Criticality::SHEDDABLE)
        }
    );
}

#[tokio::test]
async fn a_requests_own_criticality_wins_over_the_current_one() {
    let scope = RequestContext::new().with_criticality(Criticality::CRITICAL_PLUS);
    let mut request = Request::new(());
    request.extensions_mut().insert(Criticality::SHEDDABLE);
    let seen = scope.scope(send(&ClientContextLayer::new(), request)).await;
    assert_eq!(seen, handled_at(Criticality::SHEDDABLE));
}

#[tokio::test]
async fn a_client_replaces_the_header_values_the_request_had() {
    let mut request = request_with(&[b"critical-plus", b"garbage"]);
    request.extensions_mut().insert(Criticality::SHEDDABLE);
    let seen = send(&ClientContextLayer::new(), request).await;
    assert_eq!(seen.header, [HeaderValue::from_static("sheddable")]);
}

#[tokio::test]
async fn a_request_with_no_criticality_and_none_current_passes_untouched() {
    let seen = send(&ClientContextLayer::new(), Request::new(())).await;
    assert_eq!(seen, handled_without());
    // A header the application set itself is left as it is.
    let seen = send(&ClientContextLayer::new(), request_with(&[b"critical"])).await;
    assert_eq!(seen.header, [HeaderValue::from_static("critical")]);
    assert_eq!(seen.at_call, None);
}

#[tokio::test]
async fn a_client_writes_the_configured_header() {
    let name = HeaderName::from_static("x-criticality");
    let layer = ClientContextLayer::new().with_header(name.clone());
    let mut request = Request::new(());
    request.extensions_mut().insert(Criticality::CRITICAL_PLUS);
    let answer = layer
        .layer(service_fn(|request: Request<()>| async move {
            Ok::<_, Infallible>(request.headers().clone())
        }))
        .oneshot(request)
        .await;
    let headers = answer.expect("the transport answers");
    assert_eq!(
        headers.get(&name),
        Some(&HeaderValue::from_static("critical-plus"))
    );
    assert!(!headers.contains_key(CRITICALITY_HEADER));
}

#[tokio::test]
async fn a_chain_of_services_carries_the_criticality_with_no_plumbing() {
    // Server → handler → client → (the next server's) server layer, in one process.
    let (next, _recorder) = server(ServerContextConfig::default().with_trust(Trust::All));
    let downstream = ClientContextLayer::new().layer(next.layer(probe()));
    let (first, _recorder) = server(ServerContextConfig::default().with_trust(Trust::All));
    let handler = service_fn(move |_: Request<()>| {
        let downstream = downstream.clone();
        async move { downstream.oneshot(Request::new(())).await }
    });
    let seen = first
        .layer(handler)
        .oneshot(request_with(&[b"sheddable-plus/40"]))
        .await
        .expect("the chain answers");
    assert_eq!(seen, handled_at(SHEDDABLE_PLUS_40));
}

// Deadlines: the server side reads `grpc-timeout` on its clock, the client side writes what
// remains less its margin.

const DEADLINE_INBOUND: &str = "rampart_deadline_inbound_total";
const DEADLINE_OUTCOMES: [&str; 4] = ["honoured", "capped", "absent", "malformed"];

/// What the inner service saw of a request's deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SeenDeadline {
    /// The current context's deadline during the inner `call`.
    at_call: Option<Deadline>,
    /// The same during a later poll of the response future (after it yielded once).
    at_poll: Option<Deadline>,
    /// The request's `Deadline` extension.
    extension: Option<Deadline>,
    /// The values of the deadline header it received.
    header: Vec<HeaderValue>,
}

/// An inner service that records what it sees of each request's deadline.
fn deadline_probe() -> impl Service<
    Request<()>,
    Response = SeenDeadline,
    Error = Infallible,
    Future = impl Future<Output = Result<SeenDeadline, Infallible>>,
> + Clone {
    service_fn(|request: Request<()>| {
        let at_call = current_deadline();
        let extension = request.extensions().get::<Deadline>().copied();
        let header = request
            .headers()
            .get_all(DEADLINE_HEADER)
            .iter()
            .cloned()
            .collect();
        async move {
            tokio::task::yield_now().await;
            Ok(SeenDeadline {
                at_call,
                at_poll: current_deadline(),
                extension,
                header,
            })
        }
    })
}

/// What the probe sees of a request whose deadline is `deadline`, its header saying `header`.
fn due(deadline: Deadline, header: &'static str) -> SeenDeadline {
    SeenDeadline {
        at_call: Some(deadline),
        at_poll: Some(deadline),
        extension: Some(deadline),
        header: vec![HeaderValue::from_static(header)],
    }
}

/// What the probe sees of a request without a deadline.
fn undated() -> SeenDeadline {
    SeenDeadline {
        at_call: None,
        at_poll: None,
        extension: None,
        header: Vec::new(),
    }
}

/// A server-side layer of `config` on `clock`, built under a fresh recorder, and the recorder.
fn server_on(
    config: ServerContextConfig,
    clock: &ManualClock,
) -> (ServerContextLayer<ManualClock>, DebuggingRecorder) {
    let recorder = DebuggingRecorder::new();
    let layer = metrics::with_local_recorder(&recorder, || config.build_with(clock.clone()))
        .expect("a valid configuration");
    (layer, recorder)
}

/// A request carrying `values` in the deadline header.
fn timed(values: &[&[u8]]) -> Request<()> {
    let mut request = Request::new(());
    for value in values {
        request.headers_mut().append(
            DEADLINE_HEADER,
            HeaderValue::from_bytes(value).expect("a valid header value"),
        );
    }
    request
}

/// `request` through `layer` over the deadline probe.
async fn serve_timed(
    layer: &ServerContextLayer<ManualClock>,
    request: Request<()>,
) -> SeenDeadline {
    let Ok(seen) = layer.layer(deadline_probe()).oneshot(request).await;
    seen
}

/// The counts of `rampart_deadline_inbound_total` under the layer `name`, by outcome.
fn deadlines_counted(recorder: &DebuggingRecorder, name: &str) -> [(&'static str, u64); 4] {
    let metrics = take(&recorder.snapshotter());
    DEADLINE_OUTCOMES.map(|outcome| {
        let count = match value(
            &metrics,
            DEADLINE_INBOUND,
            &[("name", name), ("outcome", outcome)],
        ) {
            Some(DebugValue::Counter(count)) => *count,
            other => panic!("{outcome}: {other:?}"),
        };
        (outcome, count)
    })
}

/// `count` requests counted under `outcome`, none under the others.
fn only(outcome: &'static str, count: u64) -> [(&'static str, u64); 4] {
    DEADLINE_OUTCOMES.map(|each| (each, if each == outcome { count } else { 0 }))
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

#[tokio::test]
async fn a_grpc_timeout_becomes_a_deadline_from_the_arrival_on_the_layers_clock() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(10));
    let (layer, recorder) = server_on(ServerContextConfig::default(), &clock);
    let seen = serve_timed(&layer, timed(&[b"250m"])).await;
    assert_eq!(
        seen,
        due(Deadline::at(Duration::from_secs(10) + ms(250)), "250m"),
        "current at the call and later polls, in the extensions, the header kept"
    );
    assert_eq!(deadlines_counted(&recorder, "default"), only("honoured", 1));
    assert_eq!(RequestContext::current(), RequestContext::new());

    // Every unit.
    for (text, timeout) in [
        ("2H", Duration::from_secs(7_200)),
        ("3M", Duration::from_secs(180)),
        ("4S", Duration::from_secs(4)),
        ("1500u", Duration::from_micros(1_500)),
        ("99999999n", Duration::from_nanos(99_999_999)),
    ] {
        let layer = ServerContextConfig::default()
            .without_max_timeout()
            .build_with(clock.clone())
            .expect("valid");
        let Ok(seen) = layer
            .layer(deadline_probe())
            .oneshot(timed(&[text.as_bytes()]))
            .await;
        assert_eq!(
            seen.at_call,
            Some(Deadline::after(clock.now(), timeout)),
            "{text}"
        );
    }
}

#[tokio::test]
async fn the_deadline_is_the_criticalitys_neighbour_in_one_context_and_trust_does_not_apply() {
    let clock = ManualClock::new();
    // Trust::None: the criticality header is ignored, the deadline header is not.
    let (layer, _recorder) = server_on(
        ServerContextConfig::default().with_default(Criticality::SHEDDABLE),
        &clock,
    );
    let mut request = timed(&[b"40m"]);
    request.headers_mut().insert(
        CRITICALITY_HEADER,
        HeaderValue::from_static("critical-plus"),
    );
    let service = layer.layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(RequestContext::current())
    }));
    let Ok(context) = service.oneshot(request).await;
    assert_eq!(
        context,
        RequestContext::new()
            .with_criticality(Criticality::SHEDDABLE)
            .with_deadline(Deadline::at(ms(40)))
    );
}

#[tokio::test]
async fn an_inbound_timeout_above_the_cap_is_lowered_to_it_and_the_header_rewritten() {
    let clock = ManualClock::new();
    let (layer, recorder) = server_on(
        ServerContextConfig::default()
            .with_max_timeout(Duration::from_secs(1))
            .with_name("capped"),
        &clock,
    );
    assert_eq!(
        serve_timed(&layer, timed(&[b"5S"])).await,
        due(Deadline::at(Duration::from_secs(1)), "1000000u"),
        "the header says what was resolved, so a proxy cannot pass the wish on"
    );
    assert_eq!(
        serve_timed(&layer, timed(&[b"1S"])).await,
        due(Deadline::at(Duration::from_secs(1)), "1S"),
        "the cap itself is within it"
    );
    let [honoured, capped, ..] = deadlines_counted(&recorder, "capped");
    assert_eq!((honoured, capped), (("honoured", 1), ("capped", 1)));

    // The default cap, 60 s.
    let (layer, _recorder) = server_on(ServerContextConfig::default(), &clock);
    assert_eq!(
        ServerContextConfig::default().max_timeout(),
        Some(Duration::from_secs(60))
    );
    let seen = serve_timed(&layer, timed(&[b"99999999H"])).await;
    assert_eq!(seen.at_call, Some(Deadline::at(Duration::from_secs(60))));
}

#[tokio::test]
async fn malformed_deadlines_never_fail_the_request_they_get_the_default_and_are_counted() {
    let malformed: [&[&[u8]]; 10] = [
        &[b"123456789m"],    // overlong: nine digits
        &[b"250"],           // no unit
        &[b"250ms"],         // not a unit of grpc-timeout
        &[b"0m"],            // zero
        &[b"00000000S"],     // zero, in eight digits
        &[b"-5m"],           // negative
        &["５m".as_bytes()], // a digit that is not ASCII
        &[b"\xff\xfe"],      // not text at all
        &[b""],              // empty
        &[b"1S", b"2S"],     // two values
    ];
    let clock = ManualClock::new();
    clock.advance(ms(7));
    let (with_default, recorder) = server_on(
        ServerContextConfig::default()
            .with_default_timeout(ms(100))
            .with_name("lenient"),
        &clock,
    );
    for values in malformed {
        assert_eq!(
            serve_timed(&with_default, timed(values)).await,
            due(Deadline::at(ms(107)), "100000u"),
            "{values:?}"
        );
    }
    assert_eq!(
        deadlines_counted(&recorder, "lenient"),
        only("malformed", malformed.len() as u64)
    );

    let (without, recorder) = server_on(ServerContextConfig::default(), &clock);
    for values in malformed {
        assert_eq!(
            serve_timed(&without, timed(values)).await,
            undated(),
            "no deadline, and the header removed: {values:?}"
        );
    }
    assert_eq!(
        deadlines_counted(&recorder, "default"),
        only("malformed", malformed.len() as u64)
    );
}

#[tokio::test]
async fn an_absent_deadline_gets_the_default_timeout_or_none_and_reads_no_clock() {
    /// A clock that counts its reads.
    #[derive(Debug, Clone, Default)]
    struct Counting(Arc<AtomicUsize>);
    impl Clock for Counting {
        fn now(&self) -> Duration {
            self.0.fetch_add(1, Ordering::Relaxed);
            Duration::from_secs(3)
        }
    }

    let clock = Counting::default();
    let recorder = DebuggingRecorder::new();
    let without = metrics::with_local_recorder(&recorder, || {
        ServerContextLayer::new_with(ServerContextConfig::default(), clock.clone())
    });
    let Ok(seen) = without
        .layer(deadline_probe())
        .oneshot(Request::new(()))
        .await;
    assert_eq!(seen, undated());
    assert_eq!(
        clock.0.load(Ordering::Relaxed),
        0,
        "no deadline, no clock read"
    );
    assert_eq!(deadlines_counted(&recorder, "default"), only("absent", 1));

    let with_default = ServerContextConfig::default()
        .with_default_timeout(Duration::from_secs(2))
        .build_with(clock.clone())
        .expect("valid");
    let Ok(seen) = with_default
        .layer(deadline_probe())
        .oneshot(Request::new(()))
        .await;
    assert_eq!(seen, due(Deadline::at(Duration::from_secs(5)), "2000000u"));
    assert_eq!(clock.0.load(Ordering::Relaxed), 1, "one read per request");
}

#[tokio::test]
async fn the_default_timeout_is_not_capped_it_is_the_servers_own() {
    let clock = ManualClock::new();
    let (layer, _recorder) = server_on(
        ServerContextConfig::default()
            .with_max_timeout(ms(10))
            .with_default_timeout(ms(500)),
        &clock,
    );
    let seen = serve_timed(&layer, Request::new(())).await;
    assert_eq!(seen.at_call, Some(Deadline::at(ms(500))));
}

#[tokio::test]
async fn the_resolved_deadline_replaces_a_deadline_extension_the_request_carried() {
    let clock = ManualClock::new();
    let (layer, _recorder) = server_on(ServerContextConfig::default(), &clock);
    let mut request = timed(&[b"20m"]);
    request
        .extensions_mut()
        .insert(Deadline::at(Duration::from_secs(9)));
    assert_eq!(
        serve_timed(&layer, request).await,
        due(Deadline::at(ms(20)), "20m")
    );

    let mut request = Request::new(());
    request
        .extensions_mut()
        .insert(Deadline::at(Duration::from_secs(9)));
    assert_eq!(serve_timed(&layer, request).await, undated());
}

#[tokio::test]
async fn the_deadline_header_is_configurable_and_grpc_timeout_then_ignored() {
    let name = HeaderName::from_static("x-request-timeout");
    let clock = ManualClock::new();
    let (layer, recorder) = server_on(
        ServerContextConfig::default().with_deadline_header(name.clone()),
        &clock,
    );
    assert_eq!(layer.config().deadline_header(), &name);
    let mut request = Request::new(());
    request
        .headers_mut()
        .insert(name, HeaderValue::from_static("30m"));
    request
        .headers_mut()
        .insert(DEADLINE_HEADER, HeaderValue::from_static("9S"));
    let seen = serve_timed(&layer, request).await;
    assert_eq!(seen.at_call, Some(Deadline::at(ms(30))));
    assert_eq!(
        seen.header,
        [HeaderValue::from_static("9S")],
        "grpc-timeout is another header now, passed as it is"
    );
    assert_eq!(deadlines_counted(&recorder, "default"), only("honoured", 1));
}

#[test]
fn a_configuration_with_a_zero_timeout_does_not_build() {
    let error = ServerContextConfig::default()
        .with_max_timeout(Duration::ZERO)
        .build()
        .expect_err("a zero cap expires every request");
    assert_eq!(error.field(), "max_timeout");
    let error = ServerContextConfig::default()
        .with_default_timeout(Duration::ZERO)
        .build()
        .expect_err("a zero default expires every request");
    assert_eq!(error.field(), "default_timeout");
}

// The client side of deadlines.

/// `request` through a client-side layer on `clock` over the deadline probe.
async fn send_timed(
    layer: &ClientContextLayer<ManualClock>,
    request: Request<()>,
) -> Result<SeenDeadline, BoxError> {
    layer.layer(deadline_probe()).oneshot(request).await
}

/// A request whose own deadline is `deadline`.
fn due_at(deadline: Deadline) -> Request<()> {
    let mut request = Request::new(());
    request.extensions_mut().insert(deadline);
    request
}

#[tokio::test]
async fn a_client_writes_what_remains_of_the_requests_deadline_less_the_margin() {
    let clock = ManualClock::new();
    let layer = ClientContextLayer::new_with(clock.clone());
    assert_eq!(layer.margin(), ms(5), "the documented default");
    let deadline = Deadline::at(ms(300));
    clock.advance(ms(100));
    let seen = send_timed(&layer, due_at(deadline)).await.expect("sent");
    assert_eq!(
        seen,
        due(deadline, "195000u"),
        "300 - 100 - 5 ms; the deadline itself is current inside"
    );
}

#[tokio::test]
async fn a_client_writes_the_current_deadline_when_the_request_has_none_and_its_own_wins() {
    let clock = ManualClock::new();
    let layer = ClientContextLayer::new_with(clock.clone()).with_margin(Duration::ZERO);
    let scope = RequestContext::new().with_deadline(Deadline::at(ms(80)));
    let seen = scope
        .scope(send_timed(&layer, Request::new(())))
        .await
        .expect("sent");
    assert_eq!(
        seen,
        SeenDeadline {
            extension: None,
            ..due(Deadline::at(ms(80)), "80000000n")
        }
    );

    // The request's own, later than the current one, wins: the application decides.
    let seen = scope
        .scope(send_timed(&layer, due_at(Deadline::at(ms(90)))))
        .await
        .expect("sent");
    assert_eq!(seen, due(Deadline::at(ms(90)), "90000000n"));
}

#[tokio::test]
async fn a_client_with_nothing_left_after_the_margin_does_not_send_the_request() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted_calls = Arc::clone(&calls);
    let transport = service_fn(move |request: Request<()>| {
        counted_calls.fetch_add(1, Ordering::Relaxed);
        async move { Ok::<_, Infallible>(request.headers()[DEADLINE_HEADER].clone()) }
    });
    let client = ClientContextLayer::new_with(clock.clone())
        .with_margin(ms(20))
        .layer(transport);

    // Exactly the margin left: nothing for the callee.
    let refused = client
        .clone()
        .oneshot(due_at(Deadline::at(ms(20))))
        .await
        .expect_err("not sent");
    assert!(refused.is::<DeadlineExceeded>(), "{refused}");
    // Already past.
    clock.advance(ms(50));
    let refused = client
        .clone()
        .oneshot(due_at(Deadline::at(ms(10))))
        .await
        .expect_err("not sent");
    assert!(refused.is::<DeadlineExceeded>(), "{refused}");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "the transport was never called"
    );

    // One nanosecond beyond the margin: sent, saying so.
    let sent = client
        .oneshot(due_at(Deadline::at(ms(70) + Duration::from_nanos(1))))
        .await
        .expect("sent");
    assert_eq!(sent, "1n");
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_client_writes_the_configured_deadline_header_replacing_any_value() {
    let name = HeaderName::from_static("x-request-timeout");
    let clock = ManualClock::new();
    let layer = ClientContextLayer::new_with(clock)
        .with_deadline_header(name.clone())
        .with_margin(ms(1));
    let mut request = due_at(Deadline::at(ms(11)));
    request
        .headers_mut()
        .insert(name.clone(), HeaderValue::from_static("1H"));
    let headers = layer
        .layer(service_fn(|request: Request<()>| async move {
            Ok::<_, Infallible>(request.headers().clone())
        }))
        .oneshot(request)
        .await
        .expect("sent");
    assert_eq!(
        headers.get_all(&name).iter().collect::<Vec<_>>(),
        [&HeaderValue::from_static("10000000n")]
    );
    assert!(!headers.contains_key(DEADLINE_HEADER));
}

#[tokio::test]
async fn a_request_without_a_deadline_keeps_the_header_the_application_set() {
    let layer = ClientContextLayer::new_with(ManualClock::new());
    let seen = send_timed(&layer, timed(&[b"3S"])).await.expect("sent");
    assert_eq!(
        seen,
        SeenDeadline {
            header: vec![HeaderValue::from_static("3S")],
            ..undated()
        }
    );
}

#[tokio::test]
async fn a_deadline_set_by_a_client_arrives_at_each_hop_with_the_time_that_remains() {
    // Client → server A → A's handler, after 30 ms of its own work → client → server B, all
    // on one clock, each hop's margin 5 ms.
    let clock = ManualClock::new();
    let (b, _recorder) = server_on(ServerContextConfig::default(), &clock);
    let to_b = ClientContextLayer::new_with(clock.clone()).layer(b.layer(deadline_probe()));
    let (a, recorder) = server_on(ServerContextConfig::default().with_name("a"), &clock);
    let handler_clock = clock.clone();
    let handler = service_fn(move |_: Request<()>| {
        let (to_b, clock) = (to_b.clone(), handler_clock.clone());
        async move {
            let at_a = current_deadline();
            clock.advance(ms(30));
            let at_b = to_b.oneshot(Request::new(())).await?;
            Ok::<_, BoxError>((at_a, at_b))
        }
    });
    let client = ClientContextLayer::new_with(clock.clone()).layer(a.layer(handler));

    clock.advance(Duration::from_secs(1));
    let deadline = Deadline::after(clock.now(), ms(300));
    clock.advance(ms(20));
    let (at_a, at_b) = client.oneshot(due_at(deadline)).await.expect("answered");

    // A hears 300 - 20 - 5 = 275 ms at 1.020 s; B hears 275 - 30 - 5 = 240 ms at 1.050 s.
    assert_eq!(at_a, Some(Deadline::at(ms(1_295))));
    assert_eq!(at_b, due(Deadline::at(ms(1_290)), "240000u"));
    assert_eq!(deadlines_counted(&recorder, "a"), only("honoured", 1));
}

/// The attempt numbers a transport saw in `grpc-previous-rpc-attempts`, one per call.
type AttemptsSeen = Arc<std::sync::Mutex<Vec<Option<String>>>>;

#[tokio::test(start_paused = true)]
async fn each_retry_carries_the_number_of_attempts_before_it() {
    use rampart::retry::{Policy, RetryConfig, RetryLayer, Unlimited};

    let seen = AttemptsSeen::default();
    let transport = {
        let seen = Arc::clone(&seen);
        service_fn(move |request: Request<()>| {
            let header = request
                .headers()
                .get(ATTEMPTS_HEADER)
                .map(|value| value.to_str().expect("digits").to_owned());
            seen.lock().expect("no panic while held").push(header);
            async { Err::<(), BoxError>("connection reset".into()) }
        })
    };
    let client = tower::ServiceBuilder::new()
        .layer(
            RetryLayer::new(RetryConfig::default().with_max_attempts(3), Unlimited)
                .expect("valid")
                .with_policy(Policy::new().with_cloner(|request: &Request<()>| {
                    let mut copy = Request::new(());
                    *copy.headers_mut() = request.headers().clone();
                    Some(copy)
                })),
        )
        .layer(ClientContextLayer::new())
        .service(transport);
    assert!(client.oneshot(Request::new(())).await.is_err());
    assert_eq!(
        *seen.lock().expect("no panic while held"),
        [None, Some("1".to_owned()), Some("2".to_owned())],
        "the first attempt carries none"
    );
}
