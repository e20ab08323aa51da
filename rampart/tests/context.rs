//! The criticality header through tower: what `ServerContextLayer` honours, caps, ignores and
//! counts, the context it makes current for the inner service, and what `ClientContextLayer`
//! stamps on outgoing requests.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderName, HeaderValue, Request};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart::core::{Criticality, CriticalityClass, RequestContext, current_criticality};
use rampart::http::{
    CRITICALITY_HEADER, ClientContextLayer, ServerContextConfig, ServerContextLayer, Trust,
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
    let Ok(seen) = layer.layer(probe()).oneshot(request).await;
    seen
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
    let Ok(headers) = answer;
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
    let Ok(seen) = first
        .layer(handler)
        .oneshot(request_with(&[b"sheddable-plus/40"]))
        .await;
    assert_eq!(seen, handled_at(SHEDDABLE_PLUS_40));
}
