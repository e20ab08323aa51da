//! `SimRuntime`: the run queue in front of the stack, yielding, queueing delay, wasted work,
//! the CPU meter, the heartbeat's delay, the clock, refusals, errors, and determinism, on
//! paused time.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_core::Clock;
use rampart_fault::{
    Distribution, MissingRuntime, NotOnWorker, RuntimeClock, RuntimeConfig, RuntimeStats, Served,
    SimRuntime, Unanswered,
};
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceExt};

const MS: Duration = Duration::from_millis(1);

fn runtime(service: Duration, slices: u32) -> SimRuntime {
    let config = RuntimeConfig::default()
        .with_service_time(Distribution::Fixed(service))
        .with_slices(slices)
        .with_seed(1);
    SimRuntime::new(config).expect("a valid config")
}

/// What the stack in front of the handler saw.
#[derive(Debug, Default)]
struct Seen {
    inflight: u64,
    max_inflight: u64,
    /// Response times, measured on the runtime's clock, in completion order.
    response_times: Vec<Duration>,
}

/// A layer that counts what it sees, as a limiter does.
#[derive(Clone)]
struct Observe<S> {
    inner: S,
    clock: RuntimeClock,
    seen: Arc<Mutex<Seen>>,
}

impl<S> Service<()> for Observe<S>
where
    S: Service<(), Response = Served, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Served;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Served, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ()) -> Self::Future {
        {
            let mut seen = self.seen.lock().unwrap();
            seen.inflight += 1;
            seen.max_inflight = seen.max_inflight.max(seen.inflight);
        }
        let started = self.clock.now();
        let response = self.inner.call(request);
        let (clock, seen) = (self.clock.clone(), Arc::clone(&self.seen));
        Box::pin(async move {
            let result = response.await;
            let mut seen = seen.lock().unwrap();
            seen.inflight -= 1;
            seen.response_times
                .push(clock.now().saturating_sub(started));
            result
        })
    }
}

fn observed(runtime: &SimRuntime) -> (Observe<rampart_fault::Handler>, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stack = Observe {
        inner: runtime.handler(),
        clock: runtime.clock(),
        seen: Arc::clone(&seen),
    };
    (stack, seen)
}

#[tokio::test(start_paused = true)]
async fn a_read_from_a_thread_outside_the_runtime_runs_nothing() {
    // A request of 1 µs, admitted at paused instant 0. Outside the runtime tokio's clock is
    // the real one, past 1 µs by the time a thread has started: a read from there (a gauge
    // refresher's) must neither run the work ahead of the paused clock nor move the clock.
    let runtime = runtime(Duration::from_micros(1), 1);
    let server = runtime.serve(runtime.handler());
    let call = tokio::spawn(server.clone().call(()));
    tokio::task::yield_now().await;
    let clock = runtime.clock();
    let read_outside = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let stats = runtime.stats();
                (stats.served, stats.busy, clock.now())
            })
            .join()
            .expect("the reading thread does not panic")
    });
    assert_eq!(
        read_outside,
        (0, Duration::ZERO, Duration::ZERO),
        "read from outside the runtime"
    );
    call.await.expect("joined").expect("served");
    assert_eq!(runtime.stats().served, 1);
}

#[tokio::test(start_paused = true)]
async fn requests_run_in_the_order_they_arrived() {
    let runtime = runtime(2 * MS, 1);
    let server = runtime.serve(runtime.handler());
    let start = Instant::now();
    let calls: Vec<_> = (0..5).map(|_| server.clone().call(())).collect();
    for (n, call) in (0_u32..).zip(calls) {
        let answer = call.await.expect("served");
        assert_eq!(
            answer.queued,
            2 * MS * n,
            "request {n} waits for those before it"
        );
        assert_eq!(answer.service, 2 * MS);
        assert_eq!(
            start.elapsed(),
            2 * MS * (n + 1),
            "request {n} finishes in turn"
        );
    }
    assert_eq!(runtime.stats().served, 5);
}

/// Sends three requests at once through an observing stack to one worker that needs 4 ms of
/// CPU for each, in `slices` turns; returns their latencies, in the order sent, and what the
/// stack saw.
async fn three_at_once(slices: u32) -> (Vec<Duration>, Seen) {
    let runtime = runtime(4 * MS, slices);
    let (stack, seen) = observed(&runtime);
    let server = runtime.serve(stack);
    let calls: Vec<_> = (0..3).map(|_| server.clone().call(())).collect();
    let mut latencies = Vec::new();
    for call in calls {
        latencies.push(call.await.expect("served").latency());
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (latencies, seen)
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_never_yields_hides_the_queue_from_the_stack() {
    // Three requests at once on one worker, 4 ms of CPU each.
    let (latencies, seen) = three_at_once(1).await;
    assert_eq!(latencies, [4 * MS, 8 * MS, 12 * MS]);
    // The two waiting requests are in the run queue, where the stack cannot see them: it
    // sees one request at a time, each taking exactly its CPU time.
    assert_eq!(seen.max_inflight, 1);
    assert_eq!(seen.response_times, [4 * MS; 3]);
}

#[tokio::test(start_paused = true)]
async fn a_yielding_handler_takes_turns_and_the_stack_sees_every_request() {
    // The same requests, each yielding after every 1 ms of its 4: the worker takes them in
    // turns (A B C A B C ...), so they finish together, at 10, 11 and 12 ms. The stack sees
    // each from its first turn (at 0, 1 and 2 ms) and all three in flight at once.
    let (latencies, seen) = three_at_once(4).await;
    assert_eq!(latencies, [10 * MS, 11 * MS, 12 * MS]);
    assert_eq!(
        seen.max_inflight, 3,
        "every request was admitted before any finished"
    );
    assert_eq!(seen.response_times, [10 * MS; 3]);
}

#[tokio::test(start_paused = true)]
async fn under_overload_the_queue_delay_grows_linearly() {
    // One request every millisecond to a server that needs 2 ms for each: twice its capacity.
    // Request n arrives at n ms and starts at 2n ms: it waits exactly n ms.
    let runtime = runtime(2 * MS, 1);
    let server = runtime.serve(runtime.handler());
    let start = Instant::now();
    let mut calls = Vec::new();
    let mut delays = Vec::new();
    for n in 0..100_u32 {
        tokio::time::sleep_until(start + MS * n).await;
        calls.push(server.clone().call(()));
        delays.push(runtime.scheduling_delay());
    }
    for (n, call) in (0_u32..).zip(calls) {
        assert_eq!(call.await.expect("served").queued, MS * n, "request {n}");
    }
    // The heartbeat, due at T, waits as long as a request arriving at T: it runs at 2T, and is
    // next due 5 ms later. Due at 5, 15, 35 and 75 ms, it runs at 10, 30 and 70 ms; in between
    // the reading is how long it has been overdue.
    for (at, delay) in [
        (5, 0),
        (9, 4),
        (10, 5),
        (14, 5),
        (29, 14),
        (30, 15),
        (70, 35),
        (99, 24),
    ] {
        assert_eq!(delays[at], MS * delay as u32, "at {at} ms");
    }
}

#[tokio::test(start_paused = true)]
async fn abandoned_requests_still_cost_worker_time() {
    // Ten requests at once, one worker, 2 ms each; clients wait 5 ms at most. Only the first
    // two answers come in time, but the worker spends 20 ms on all ten.
    let runtime = runtime(2 * MS, 1);
    let server = runtime.serve(runtime.handler());
    let start = Instant::now();
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let call = server.clone().call(());
            tokio::spawn(tokio::time::timeout(5 * MS, call))
        })
        .collect();
    let mut answered = 0;
    for client in clients {
        if client.await.expect("no panic").is_ok() {
            answered += 1;
        }
    }
    assert_eq!(answered, 2);
    tokio::time::sleep_until(start + 19 * MS).await;
    assert_eq!(
        runtime.stats().unfinished,
        1,
        "the last one is still running"
    );
    tokio::time::sleep_until(start + 20 * MS).await;
    let stats = runtime.stats();
    assert_eq!((stats.served, stats.abandoned, stats.unfinished), (2, 8, 0));
    assert_eq!(stats.busy, 20 * MS);
    assert_eq!(runtime.utilization(), 1.0, "busy from start to end");
}

#[tokio::test(start_paused = true)]
async fn utilization_is_busy_time_over_capacity_since_the_last_read() {
    // 2 ms of work every 4 ms: half the worker.
    let runtime = runtime(2 * MS, 4);
    let server = runtime.serve(runtime.handler());
    let start = Instant::now();
    let mut calls = Vec::new();
    for n in 0..250_u32 {
        tokio::time::sleep_until(start + 4 * MS * n).await;
        calls.push(server.clone().call(()));
    }
    tokio::time::sleep_until(start + Duration::from_secs(1)).await;
    assert_eq!(runtime.utilization(), 0.5);
    assert_eq!(
        runtime.utilization(),
        0.5,
        "a second read at the same instant repeats"
    );
    tokio::time::sleep_until(start + Duration::from_secs(2)).await;
    assert_eq!(runtime.utilization(), 0.0, "idle since the last read");
    for call in calls {
        call.await.expect("served");
    }
}

#[tokio::test(start_paused = true)]
async fn utilization_reads_a_partly_done_piece_of_work_and_counts_the_cpus() {
    // One worker on a two-CPU host: a 10 ms request read at 4 ms, then at 10 ms.
    let config = RuntimeConfig::default()
        .with_service_time(Distribution::Fixed(10 * MS))
        .with_cpus(2);
    let runtime = SimRuntime::new(config).expect("valid");
    let server = runtime.serve(runtime.handler());
    let start = Instant::now();
    let call = server.clone().call(());
    tokio::time::sleep_until(start + 4 * MS).await;
    assert_eq!(
        runtime.utilization(),
        0.5,
        "busy the whole 4 ms: one of two CPUs"
    );
    call.await.expect("served");
    assert_eq!(runtime.utilization(), 0.5);
    assert_eq!(runtime.stats().busy, 10 * MS);
}

#[tokio::test(start_paused = true)]
async fn the_scheduling_delay_is_what_a_heartbeat_measures() {
    // A heartbeat every 5 ms; one worker held 12 ms by a handler that never yields.
    let runtime = runtime(12 * MS, 1);
    let server = runtime.serve(runtime.handler());
    let start = Instant::now();
    let call = server.clone().call(());
    tokio::time::sleep_until(start + 3 * MS).await;
    assert_eq!(runtime.scheduling_delay(), Duration::ZERO, "not due yet");
    tokio::time::sleep_until(start + 8 * MS).await;
    assert_eq!(
        runtime.scheduling_delay(),
        3 * MS,
        "due at 5 ms, overdue for 3 ms"
    );
    call.await.expect("served");
    // It ran at 12 ms, 7 ms late, and is next due at 17 ms.
    tokio::time::sleep_until(start + 14 * MS).await;
    assert_eq!(runtime.scheduling_delay(), 7 * MS);
    assert_eq!(runtime.scheduling_delay_at(16 * MS), 7 * MS);
    assert_eq!(
        runtime.scheduling_delay_at(19 * MS),
        2 * MS,
        "overdue again, if stuck"
    );
    // On an idle runtime it runs on time.
    tokio::time::sleep_until(start + 30 * MS).await;
    assert_eq!(runtime.scheduling_delay(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_stack_measures_exact_times_on_the_runtime_clock() {
    // tokio's timer answers the client on the next whole millisecond; the stack's clock reads
    // the exact end of the handler's work.
    let runtime = runtime(Duration::from_micros(2_100), 3);
    let (stack, seen) = observed(&runtime);
    let server = runtime.serve(stack);
    let start = Instant::now();
    let answer = server.oneshot(()).await.expect("served");
    assert_eq!(answer.latency(), Duration::from_micros(2_100));
    assert_eq!(start.elapsed(), 3 * MS);
    assert_eq!(
        seen.lock().unwrap().response_times,
        [Duration::from_micros(2_100)]
    );
    assert_eq!(
        runtime.clock().now(),
        3 * MS,
        "between runs, tokio's instant"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refusal_costs_the_worker_its_refusal_cost() {
    // A stack that refuses everything, in front of a handler it never calls.
    let config = RuntimeConfig::default()
        .with_refusal_cost(Duration::from_micros(40))
        .with_seed(1);
    let runtime = SimRuntime::new(config).expect("valid");
    let refuse = tower::service_fn(|()| async { Err::<Served, BoxError>("refused".into()) });
    let server = runtime.serve(refuse);
    let calls: Vec<_> = (0..100).map(|_| server.clone().call(())).collect();
    for call in calls {
        assert_eq!(call.await.unwrap_err().to_string(), "refused");
    }
    let stats = runtime.stats();
    assert_eq!((stats.refused, stats.served), (100, 0));
    assert_eq!(stats.busy, Duration::from_micros(4_000));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_stack_leaves_its_request_unanswered_and_the_runtime_running() {
    let runtime = runtime(2 * MS, 1);
    let panics = tower::service_fn(|fail: bool| async move {
        assert!(!fail, "the stack panicked");
        Ok::<_, BoxError>(())
    });
    let server = runtime.serve(panics);
    let err = server.clone().oneshot(true).await.unwrap_err();
    assert!(err.is::<Unanswered>(), "{err}");
    server
        .oneshot(false)
        .await
        .expect("the next request is answered");
    let stats = runtime.stats();
    assert_eq!((stats.panicked, stats.refused, stats.unfinished), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn the_handler_fails_off_its_runtime_s_workers() {
    let runtime = runtime(2 * MS, 1);
    let err = runtime.handler().oneshot(()).await.unwrap_err();
    assert!(err.is::<NotOnWorker>(), "{err}");
}

#[test]
fn calling_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let runtime = SimRuntime::new(RuntimeConfig::default()).expect("valid");
    let mut server = runtime.serve(runtime.handler());
    let call = server.call(());
    let err = futures_lite_block_on(call).unwrap_err();
    assert!(err.is::<MissingRuntime>(), "{err}");
}

/// Polls a future that is ready at once.
fn futures_lite_block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the future was not ready"),
    }
}

#[test]
fn bad_configurations_are_config_errors() {
    let err = SimRuntime::new(RuntimeConfig::default().with_workers(0)).unwrap_err();
    assert_eq!(err.field(), "workers");
    let nan = Distribution::LogNormal {
        median: MS,
        sigma: f64::NAN,
    };
    let err = SimRuntime::new(RuntimeConfig::default().with_service_time(nan)).unwrap_err();
    assert_eq!(err.field(), "service_time");
    let err = SimRuntime::new(RuntimeConfig::default().with_slices(1_000_000)).unwrap_err();
    assert_eq!(err.field(), "slices");
}

/// Every request's latency and the final counts, for two workers at 1.5× their capacity with
/// log-normal handlers that yield.
fn trace(seed: u64) -> (Vec<Duration>, RuntimeStats) {
    let simulation = async move {
        let config = RuntimeConfig::default()
            .with_workers(2)
            .with_service_time(Distribution::log_normal_p99(2 * MS, 8 * MS))
            .with_slices(4)
            .with_seed(seed);
        let runtime = SimRuntime::new(config).expect("valid");
        let server = runtime.serve(runtime.handler());
        let start = Instant::now();
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut clients = Vec::new();
        for n in 0..1_000_u32 {
            tokio::time::sleep_until(start + Duration::from_micros(650) * n).await;
            let call = server.clone().call(());
            let timeout = MS * rng.u32(5..50);
            clients.push(tokio::spawn(async move {
                let start = Instant::now();
                match tokio::time::timeout(timeout, call).await {
                    Ok(Ok(_)) => start.elapsed(),
                    _ => Duration::MAX,
                }
            }));
        }
        let mut latencies = Vec::new();
        for client in clients {
            latencies.push(client.await.expect("no panic"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        (latencies, runtime.stats())
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
        .block_on(simulation)
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let (latencies, stats) = trace(3);
    assert_eq!((latencies.clone(), stats), trace(3));
    assert_ne!(latencies, trace(4).0);
    assert!(stats.abandoned > 0 && stats.served > 0, "{stats:?}");
    assert_eq!(stats.served + stats.abandoned, 1_000);
    assert_eq!(stats.unfinished, 0);
}

#[test]
fn unfinished_tasks_are_dropped_with_the_tokio_runtime() {
    // A stack that holds the runtime (as a limiter reading its signals does) and a marker;
    // requests still queued when the tokio runtime shuts down must not keep either alive.
    let marker = Arc::new(());
    let tokio_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    tokio_runtime.block_on(async {
        let runtime = runtime(10 * MS, 1);
        let (held, marker) = (runtime.clone(), Arc::clone(&marker));
        let handler = runtime.handler();
        let stack = tower::service_fn(move |()| {
            let _held = (&held, &marker);
            handler.clone().oneshot(())
        });
        let server = runtime.serve(stack);
        let calls: Vec<_> = (0..3).map(|_| server.clone().call(())).collect();
        tokio::time::sleep(5 * MS).await;
        assert_eq!(runtime.stats().unfinished, 3);
        drop(calls);
    });
    drop(tokio_runtime);
    assert_eq!(
        Arc::strong_count(&marker),
        1,
        "the tasks' stacks were dropped"
    );
}
