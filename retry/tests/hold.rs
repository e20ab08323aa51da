//! The pushback hold through the layer, on paused tokio time: a server's pushback holds every
//! retry of the layer for its delay (a failure during it is not retried, a retry decided
//! before a newer pushback is dropped when its wait ends and the answer it would have retried
//! is returned), retries resume a delay after the last pushback, and the hold can be turned off.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Response, StatusCode};
use rampart_core::{HttpClassifier, TokioClock};
use rampart_retry::pushback::HttpPushback;
use rampart_retry::{Backoff, ByClone, Policy, RetryConfig, RetryLayer, Unlimited};
use tokio::time::{Instant, sleep};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// What the backend answers each call, in the order the calls arrive.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Ok,
    Fail,
    PushBack(&'static str),
}

/// A backend answering from `script` (a 200 once it runs out), writing down when each call
/// arrived.
fn backend(
    script: Vec<Answer>,
    calls: Arc<Mutex<Vec<Duration>>>,
) -> impl Service<(), Response = Response<()>, Error = BoxError, Future: Send> + Clone {
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let start = Instant::now();
    service_fn(move |()| {
        calls.lock().expect("not poisoned").push(start.elapsed());
        let answer = script.lock().expect("not poisoned").pop_front();
        async move {
            let response = match answer.unwrap_or(Answer::Ok) {
                Answer::Ok => Response::builder(),
                Answer::Fail => Response::builder().status(StatusCode::SERVICE_UNAVAILABLE),
                Answer::PushBack(wait) => Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .header("grpc-retry-pushback-ms", wait),
            };
            Ok::<_, BoxError>(response.body(()).expect("valid"))
        }
    })
}

/// A retry layer of three attempts, a constant 10 ms backoff, reading HTTP and gRPC pushback,
/// over `script`; the calls' arrival times are written to the returned list.
fn client(
    config: RetryConfig,
    script: Vec<Answer>,
) -> (
    impl Service<(), Response = Response<()>, Error = BoxError, Future: Send> + Clone,
    Arc<Mutex<Vec<Duration>>>,
) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let config = config.with_backoff(Backoff::Constant(ms(10))).with_seed(1);
    let layer: RetryLayer<Unlimited, Policy<HttpClassifier, ByClone, HttpPushback>> =
        RetryLayer::new_with(config, Unlimited, TokioClock::new())
            .expect("valid")
            .with_policy(
                Policy::new()
                    .with_classifier(HttpClassifier)
                    .with_pushback(HttpPushback),
            );
    (layer.layer(backend(script, Arc::clone(&calls))), calls)
}

/// Sends a request through `service` at `at` (from now); its status and when it ended.
fn send_at(
    service: &(
         impl Service<(), Response = Response<()>, Error = BoxError, Future: Send>
         + Clone
         + Send
         + 'static
     ),
    at: Duration,
) -> tokio::task::JoinHandle<(StatusCode, Duration)> {
    let service = service.clone();
    let start = Instant::now();
    tokio::spawn(async move {
        sleep(at).await;
        let response = service.oneshot(()).await.expect("an answer");
        (response.status(), start.elapsed())
    })
}

#[tokio::test(start_paused = true)]
async fn a_pushback_holds_the_layers_other_retries_for_its_delay() {
    // 0 ms: pushed back for 250 ms; 100 ms: a plain failure, held; 300 ms: a plain failure,
    // the hold over: retried after the backoff; 250 ms: the first request's retry.
    let script = vec![
        Answer::PushBack("250"),
        Answer::Fail,
        Answer::Ok,
        Answer::Fail,
        Answer::Ok,
    ];
    let (service, calls) = client(RetryConfig::default(), script);
    let first = send_at(&service, ms(0));
    let held = send_at(&service, ms(100));
    let after = send_at(&service, ms(300));
    assert_eq!(first.await.expect("ran"), (StatusCode::OK, ms(250)));
    assert_eq!(
        held.await.expect("ran"),
        (StatusCode::SERVICE_UNAVAILABLE, ms(100)),
        "not retried during the hold"
    );
    assert_eq!(after.await.expect("ran"), (StatusCode::OK, ms(310)));
    let calls = calls.lock().expect("not poisoned").clone();
    assert_eq!(calls, [ms(0), ms(100), ms(250), ms(300), ms(310)]);
}

#[tokio::test(start_paused = true)]
async fn a_newer_pushback_drops_a_retry_waiting_out_an_older_one() {
    // 0 ms: pushed back for 250 ms; 100 ms: pushed back for 250 ms again, while the first
    // holds: not retried, and the hold now ends at 350 ms. At 250 ms the first request's retry
    // is due but held: dropped, with the answer it would have retried.
    let script = vec![
        Answer::PushBack("250"),
        Answer::PushBack("250"),
        Answer::Fail,
        Answer::Fail,
        Answer::Ok,
    ];
    let (service, calls) = client(RetryConfig::default(), script);
    let first = send_at(&service, ms(0));
    let second = send_at(&service, ms(100));
    assert_eq!(
        second.await.expect("ran"),
        (StatusCode::SERVICE_UNAVAILABLE, ms(100))
    );
    assert_eq!(
        first.await.expect("ran"),
        (StatusCode::SERVICE_UNAVAILABLE, ms(250)),
        "the retry held at the end of its wait"
    );
    // At 260 ms a failure is still held; at 360 ms, past the last pushback's delay, it is
    // retried again.
    let held = send_at(&service, ms(10)).await.expect("ran");
    assert_eq!(held, (StatusCode::SERVICE_UNAVAILABLE, ms(10)));
    let retried = send_at(&service, ms(100)).await.expect("ran");
    assert_eq!(retried, (StatusCode::OK, ms(110)));
    assert_eq!(
        *calls.lock().expect("not poisoned"),
        [ms(0), ms(100), ms(260), ms(360), ms(370)]
    );
}

#[tokio::test(start_paused = true)]
async fn without_the_hold_only_the_pushed_back_request_waits() {
    let script = vec![Answer::PushBack("250"), Answer::PushBack("250")];
    let config = RetryConfig::default().with_hold_on_pushback(false);
    let (service, calls) = client(config, script);
    let first = send_at(&service, ms(0));
    let second = send_at(&service, ms(100));
    assert_eq!(first.await.expect("ran"), (StatusCode::OK, ms(250)));
    assert_eq!(second.await.expect("ran"), (StatusCode::OK, ms(350)));
    assert_eq!(
        *calls.lock().expect("not poisoned"),
        [ms(0), ms(100), ms(250), ms(350)]
    );
}
