//! `EnforceDeadlineLayer` on tokio's paused clock: an answer in time passes, work that runs out
//! of time ends with `DeadlineExceeded` and its future is dropped then, a request already past
//! its deadline never reaches the service, and one without a deadline passes untouched.

use std::future::{Future, pending};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use http::{Request, StatusCode};
use rampart::core::{Clock, Deadline, DeadlineExceeded, RequestContext, TokioClock};
use rampart::deadline::EnforceDeadlineLayer;
use rampart::http::{DEADLINE_HEADER, ErrorStatus, ServerContextConfig};
use tokio::time::sleep;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A service whose each answer comes `wait` after it is called, counting its calls.
fn after(
    wait: Duration,
    calls: Arc<AtomicUsize>,
) -> impl Service<(), Response = Duration, Error = BoxError, Future: Send> + Clone {
    service_fn(move |()| {
        calls.fetch_add(1, Ordering::Relaxed);
        async move {
            sleep(wait).await;
            Ok::<_, BoxError>(wait)
        }
    })
}

/// `future` in the context of a request due at `deadline`.
fn due<F: Future>(deadline: Deadline, future: F) -> impl Future<Output = F::Output> {
    RequestContext::new().with_deadline(deadline).scope(future)
}

#[tokio::test(start_paused = true)]
async fn an_answer_in_time_is_returned_when_it_comes() {
    let clock = TokioClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = EnforceDeadlineLayer::new_with(clock).layer(after(ms(40), Arc::clone(&calls)));
    let deadline = Deadline::after(clock.now(), ms(100));
    let answer = due(deadline, service.oneshot(())).await;
    assert_eq!(answer.expect("in time"), ms(40));
    assert_eq!(clock.now(), ms(40), "no wait beyond the answer");
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_ready_at_the_deadline_itself_is_kept() {
    let clock = TokioClock::new();
    let service = EnforceDeadlineLayer::new_with(clock).layer(after(ms(100), Arc::default()));
    let deadline = Deadline::after(clock.now(), ms(100));
    let answer = due(deadline, service.oneshot(())).await;
    assert_eq!(answer.expect("ready with the timer"), ms(100));
}

#[tokio::test(start_paused = true)]
async fn work_that_runs_out_of_time_ends_at_the_deadline_and_its_future_is_dropped_then() {
    let clock = TokioClock::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&dropped);
    let inner = service_fn(move |()| {
        let guard = DropFlag(Arc::clone(&flag));
        async move {
            let _guard = guard;
            pending::<()>().await;
            Ok::<_, BoxError>(())
        }
    });
    let mut service = EnforceDeadlineLayer::new_with(clock).layer(inner);
    clock_forward(ms(7)).await;
    let deadline = Deadline::after(clock.now(), ms(50));

    service.ready().await.expect("ready");
    // The deadline is read at the call: the scope need not cover the polls.
    let future = {
        let _entered = RequestContext::new().with_deadline(deadline).enter();
        service.call(())
    };
    let mut future = std::pin::pin!(future);
    assert!(!dropped.load(Ordering::Acquire));
    let error = (&mut future).await.expect_err("out of time");
    assert!(error.is::<DeadlineExceeded>(), "{error}");
    assert_eq!(clock.now(), ms(57), "ended at the deadline");
    assert!(
        dropped.load(Ordering::Acquire),
        "the inner future is dropped when time runs out, before the outer one is"
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_past_its_deadline_is_refused_without_calling_the_service() {
    let clock = TokioClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let service = EnforceDeadlineLayer::new_with(clock).layer(after(ms(1), Arc::clone(&calls)));
    clock_forward(ms(30)).await;
    for deadline in [Deadline::at(ms(10)), Deadline::at(ms(30))] {
        let error = due(deadline, service.clone().oneshot(()))
            .await
            .expect_err("past its deadline");
        assert!(error.is::<DeadlineExceeded>(), "{error}");
    }
    assert_eq!(calls.load(Ordering::Relaxed), 0, "never called");
    assert_eq!(clock.now(), ms(30), "refused at once");
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_deadline_passes_untouched() {
    let clock = TokioClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let service =
        EnforceDeadlineLayer::new_with(clock).layer(after(ms(3_600_000), Arc::clone(&calls)));
    assert_eq!(service.oneshot(()).await.expect("no limit"), ms(3_600_000));
    assert_eq!(calls.load(Ordering::Relaxed), 1);

    // The inner service's errors pass as they are.
    let failing = EnforceDeadlineLayer::new_with(clock).layer(service_fn(|()| async {
        Err::<(), _>(std::io::Error::other("database unreachable"))
    }));
    let error = failing.oneshot(()).await.expect_err("the inner error");
    assert!(error.is::<std::io::Error>(), "{error}");
}

#[tokio::test(start_paused = true)]
async fn behind_a_server_layer_the_callers_grpc_timeout_bounds_the_work_and_answers_504() {
    // One clock for the layer that makes the deadline and the one that enforces it.
    let clock = TokioClock::new();
    let server = ServerContextConfig::default()
        .build_with(clock)
        .expect("valid")
        .layer(
            EnforceDeadlineLayer::new_with(clock).layer(service_fn(|_: Request<()>| async {
                sleep(ms(80)).await;
                Ok::<_, BoxError>("done")
            })),
        );
    let request = |timeout: &'static str| {
        Request::builder()
            .header(DEADLINE_HEADER, timeout)
            .body(())
            .expect("valid")
    };
    assert_eq!(
        server
            .clone()
            .oneshot(request("1S"))
            .await
            .expect("in time"),
        "done"
    );
    let start = clock.now();
    let error = server
        .oneshot(request("50m"))
        .await
        .expect_err("out of time");
    assert_eq!(clock.now(), start + ms(50));
    let mapped = ErrorStatus::default()
        .of(&*error)
        .expect("one of rampart's");
    assert_eq!(mapped.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(mapped.headers().is_empty(), "no Retry-After");
}

/// Moves tokio's paused clock forward by `by`.
async fn clock_forward(by: Duration) {
    tokio::time::advance(by).await;
}
