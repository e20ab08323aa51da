//! The hedge layer through tower, under tokio's paused time: when a copy goes, which answer
//! wins, that the losers are dropped, and that nothing leaks when a request is dropped or a
//! copy fails or panics.

mod endpoints;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use rampart_core::{Clock, Deadline, Outcome, RequestContext, TokioClock};
use rampart_retry::pushback::Pushback;
use rampart_retry::{
    Backoff, Budget, BudgetSnapshot, HedgeConfig, HedgeLayer, HedgeStats, Policy, RatioConfig,
    RetryConfig, RetryLayer, Unlimited,
};
use rampart_testkit::recorded;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::endpoints::InOrder;

const MS: Duration = Duration::from_millis(1);

/// What one call does.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Answers `Ok(tag)` after a wait.
    Ok(u64, u32),
    /// Fails with `tag` after a wait.
    Err(u64, &'static str),
    /// Panics when polled after a wait.
    Panic(u64),
    /// Panics in `call`, before any future exists.
    PanicInCall,
    /// Never answers.
    Never,
}

/// Counts a backend's calls, its futures alive, and those dropped before answering.
#[derive(Debug, Default)]
struct Log {
    calls: AtomicUsize,
    live: AtomicUsize,
    cancelled: AtomicUsize,
}

impl Log {
    fn counts(&self) -> (usize, usize, usize) {
        (
            self.calls.load(Ordering::SeqCst),
            self.live.load(Ordering::SeqCst),
            self.cancelled.load(Ordering::SeqCst),
        )
    }
}

/// Alive while a call's future is: counts it, and counts its drop before it answered.
struct Alive {
    log: Arc<Log>,
    answered: bool,
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.log.live.fetch_sub(1, Ordering::SeqCst);
        if !self.answered {
            self.log.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A backend whose calls follow a script (then answer `Ok(0)` after 10 ms).
#[derive(Clone, Default)]
struct Backend {
    script: Arc<Mutex<VecDeque<Step>>>,
    log: Arc<Log>,
}

impl Backend {
    fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.script.lock().expect("no poison").extend(steps);
    }
}

type Reply = Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;

impl Service<u32> for Backend {
    type Response = u32;
    type Error = BoxError;
    type Future = Reply;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Reply {
        let step = self
            .script
            .lock()
            .expect("no poison")
            .pop_front()
            .unwrap_or(Step::Ok(10, 0));
        assert!(
            !matches!(step, Step::PanicInCall),
            "the backend's call panicked"
        );
        self.log.calls.fetch_add(1, Ordering::SeqCst);
        self.log.live.fetch_add(1, Ordering::SeqCst);
        let alive = Alive {
            log: Arc::clone(&self.log),
            answered: false,
        };
        Box::pin(async move {
            let mut alive = alive;
            let wait = match step {
                Step::Ok(ms, _) | Step::Err(ms, _) | Step::Panic(ms) => ms,
                Step::Never | Step::PanicInCall => u64::MAX / 4_000_000,
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
            alive.answered = true;
            match step {
                Step::Ok(_, tag) => Ok(tag),
                Step::Err(_, tag) => Err(tag.into()),
                Step::Panic(_) => panic!("backend panicked"),
                Step::Never | Step::PanicInCall => unreachable!("never answers"),
            }
        })
    }
}

/// A budget counting what the layers ask of it, granting while `grant` holds.
#[derive(Debug)]
struct Counting {
    deposits: AtomicU64,
    withdrawals: AtomicU64,
    records: AtomicU64,
    grant: AtomicBool,
}

impl Counting {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            deposits: AtomicU64::new(0),
            withdrawals: AtomicU64::new(0),
            records: AtomicU64::new(0),
            grant: AtomicBool::new(true),
        })
    }

    fn counts(&self) -> (u64, u64) {
        (
            self.deposits.load(Ordering::SeqCst),
            self.withdrawals.load(Ordering::SeqCst),
        )
    }
}

impl Budget for Counting {
    fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::SeqCst);
    }

    fn withdraw(&self) -> bool {
        let grant = self.grant.load(Ordering::SeqCst);
        if grant {
            self.withdrawals.fetch_add(1, Ordering::SeqCst);
        }
        grant
    }

    fn record(&self, _: Outcome) {
        self.records.fetch_add(1, Ordering::SeqCst);
    }

    fn snapshot(&self) -> BudgetSnapshot {
        BudgetSnapshot { remaining: 1.0 }
    }
}

/// Ten samples warm the window; the median of 10 ms answers is read as 10.239 ms, which
/// tokio's millisecond timer fires at 11 ms.
fn config() -> HedgeConfig {
    HedgeConfig::default().with_min_samples(10)
}

/// A hedge layer of `config` drawing on `budget`, on tokio's paused clock.
fn hedging<B: Budget>(config: HedgeConfig, budget: B) -> HedgeLayer<B> {
    HedgeLayer::new_with(config, budget, TokioClock::new()).expect("valid")
}

/// Ten 10 ms requests, then the window's first bucket ends: the delay is 10.239 ms.
async fn warm<S: Service<u32, Response = u32, Error = BoxError>>(client: &mut S) {
    answered(client, 10).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Sends requests `0..count` one after the other, each answered.
async fn answered<S: Service<u32, Response = u32, Error = BoxError>>(client: &mut S, count: u32) {
    for n in 0..count {
        client
            .ready()
            .await
            .expect("ready")
            .call(n)
            .await
            .expect("answered");
    }
}

/// Sends `request` and returns its result and how long it took.
async fn timed<S: Service<u32, Response = u32, Error = BoxError>>(
    client: &mut S,
    request: u32,
) -> (Result<u32, BoxError>, Duration) {
    let started = Instant::now();
    let result = client.ready().await.expect("ready").call(request).await;
    (result, started.elapsed())
}

fn stats(sent: u64, won: u64) -> HedgeStats {
    let mut stats = HedgeStats::default();
    stats.sent = sent;
    stats.won = won;
    stats
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_copy_is_hedged_and_dropped_when_the_hedge_answers() {
    let backend = Backend::default();
    let layer = hedging(config(), Unlimited);
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;
    assert_eq!(layer.delay(), Some(Duration::from_micros(10_239)));

    backend.script([Step::Ok(1_000, 1), Step::Ok(10, 2)]);
    let started = Instant::now();
    let mut request = std::pin::pin!(client.ready().await.expect("ready").call(0));
    let result = request.as_mut().await;
    assert_eq!(result.expect("answered"), 2, "the hedge's answer");
    assert_eq!(
        started.elapsed(),
        21 * MS,
        "sent at 11 ms, answered 10 ms later"
    );
    // The response future is still held: the loser was dropped when the hedge answered.
    assert_eq!(
        backend.log.counts(),
        (12, 0, 1),
        "the first copy dropped unanswered"
    );
    assert_eq!(layer.stats(), stats(1, 1));
}

#[tokio::test(start_paused = true)]
async fn an_answer_before_the_delay_sends_no_hedge() {
    let backend = Backend::default();
    let layer = hedging(config(), Unlimited);
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    backend.script([Step::Ok(10, 1)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (1, 10 * MS));
    assert_eq!(backend.log.counts(), (11, 0, 0));
    assert_eq!(layer.stats(), HedgeStats::default());
}

#[tokio::test(start_paused = true)]
async fn a_cold_window_sends_no_hedge() {
    let backend = Backend::default();
    let layer = hedging(config(), Unlimited);
    let mut client = layer.layer(backend.clone());
    // Nine samples, one short of the floor.
    answered(&mut client, 9).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(layer.delay(), None);

    backend.script([Step::Ok(1_000, 1)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (1, 1_000 * MS));
    assert_eq!(backend.log.counts(), (10, 0, 0));
    assert_eq!(layer.stats(), HedgeStats::default());
}

#[tokio::test(start_paused = true)]
async fn up_to_max_hedges_copies_go_a_delay_apart() {
    let backend = Backend::default();
    let layer = hedging(config().with_max_hedges(2), Unlimited);
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    backend.script([Step::Never, Step::Never, Step::Ok(10, 3)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!(result.expect("answered"), 3);
    // Hedges at 11 and 22 ms (10.239 ms after 11, on the millisecond), the answer at 32.
    assert_eq!(took, 32 * MS);
    assert_eq!(backend.log.counts(), (13, 0, 2), "both losers dropped");
    assert_eq!(layer.stats(), stats(2, 1));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_request_drops_every_copy_and_spends_only_what_was_sent() {
    let backend = Backend::default();
    let budget = Counting::new();
    let layer = hedging(config(), Arc::clone(&budget));
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;
    assert_eq!(budget.counts(), (10, 0));

    backend.script([Step::Never, Step::Never]);
    let request = client.ready().await.expect("ready").call(0);
    let cut = tokio::time::timeout(50 * MS, request).await;
    assert!(cut.is_err(), "neither copy answers");
    assert_eq!(
        backend.log.counts(),
        (12, 0, 2),
        "both copies dropped with the request"
    );
    assert_eq!(
        budget.counts(),
        (11, 1),
        "one deposit, one withdrawal for the hedge"
    );
    assert_eq!(
        budget.records.load(Ordering::SeqCst),
        10,
        "a dropped request records no outcome"
    );
    assert_eq!(layer.stats(), stats(1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_failure_is_returned_only_when_no_other_copy_is_under_way() {
    let backend = Backend::default();
    let layer = hedging(config(), Unlimited);
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    // Before the delay: at once, no hedge.
    backend.script([Step::Err(5, "reset")]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!(
        (result.unwrap_err().to_string(), took),
        ("reset".into(), 5 * MS)
    );
    assert_eq!(backend.log.counts().0, 11);

    // After the hedge went: the hedge's answer is awaited.
    backend.script([Step::Err(30, "reset"), Step::Ok(40, 2)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (2, 51 * MS));

    // Both fail: the last failure.
    backend.script([Step::Err(30, "first"), Step::Err(40, "second")]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!(
        (result.unwrap_err().to_string(), took),
        ("second".into(), 51 * MS)
    );
    assert_eq!(
        backend.log.counts(),
        (15, 0, 0),
        "every copy answered, none left"
    );
    assert_eq!(layer.stats(), stats(2, 1), "a failed hedge did not win");
}

#[tokio::test(start_paused = true)]
async fn a_copy_that_panics_leaves_nothing_behind() {
    let backend = Backend::default();
    let budget = Counting::new();
    let layer = hedging(config(), Arc::clone(&budget));
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    backend.script([Step::Never, Step::Panic(10)]);
    let request = client.ready().await.expect("ready").call(0);
    let joined = tokio::spawn(request).await;
    assert!(joined.expect_err("the hedge panicked").is_panic());
    // The hedge answered by panicking; the first copy was dropped with the request.
    assert_eq!(backend.log.counts(), (12, 0, 1));
    assert_eq!(budget.counts(), (11, 1));
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_sends_no_hedge() {
    let backend = Backend::default();
    let budget = Counting::new();
    let layer = hedging(config(), Arc::clone(&budget));
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    budget.grant.store(false, Ordering::SeqCst);
    backend.script([Step::Ok(100, 1)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (1, 100 * MS));
    assert_eq!(backend.log.counts().0, 11, "no hedge");
    let mut refused = HedgeStats::default();
    refused.refused_budget = 1;
    assert_eq!(layer.stats(), refused);
}

#[tokio::test(start_paused = true)]
async fn a_ratio_budget_bounds_hedges_to_its_share_of_requests() {
    let backend = Backend::default();
    // No reserve: 10 % of requests.
    let budget = RatioConfig {
        ratio: 0.1,
        min_per_sec: 0,
        ..RatioConfig::default()
    }
    .build_with(TokioClock::new())
    .expect("valid");
    let layer = hedging(config(), budget);
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await; // 10 requests: one hedge earned

    // 20 slow requests at once earn 2 more: 3 are hedged, 17 refused.
    backend.script((0..20).map(|_| Step::Ok(100, 1)));
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..20 {
        requests.spawn(client.clone().oneshot(n));
    }
    while let Some(answer) = requests.join_next().await {
        answer.expect("no panic").expect("answered");
    }
    let stats = layer.stats();
    assert_eq!((stats.sent, stats.refused_budget), (3, 17));
}

#[tokio::test(start_paused = true)]
async fn a_deadline_shorter_than_the_median_refuses_the_hedge() {
    let clock = TokioClock::new();
    let backend = Backend::default();
    let budget = Counting::new();
    let layer = HedgeLayer::new_with(config(), Arc::clone(&budget), clock).expect("valid");
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    // At 11 ms, 1 ms is left of 12: less than the 10 ms median.
    let call = |client: &mut tower::util::BoxCloneService<u32, u32, BoxError>, timeout| {
        let deadline = Deadline::after(clock.now(), timeout);
        let _scope = RequestContext::new().with_deadline(deadline).enter();
        client.call(0)
    };
    let mut client = tower::util::BoxCloneService::new(client);
    backend.script([Step::Ok(100, 1)]);
    client.ready().await.expect("ready");
    let result = call(&mut client, 12 * MS).await;
    assert_eq!(result.expect("answered"), 1);
    assert_eq!(backend.log.counts().0, 11, "no hedge");
    assert_eq!(budget.counts(), (11, 0), "nothing withdrawn");
    assert_eq!(layer.stats().refused_deadline, 1);

    // With 30 ms, 19 are left at 11 ms: the hedge goes.
    backend.script([Step::Ok(100, 1), Step::Ok(10, 2)]);
    client.ready().await.expect("ready");
    let result = call(&mut client, 30 * MS).await;
    assert_eq!(result.expect("answered"), 2);
    assert_eq!(budget.counts(), (12, 1));
}

#[tokio::test(start_paused = true)]
async fn requests_the_filter_or_the_policy_refuse_are_sent_once() {
    let backend = Backend::default();
    let layer = hedging(config(), Unlimited).only_hedging(|n: &u32| *n < 100);
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    backend.script([Step::Ok(100, 1), Step::Ok(5, 1)]);
    let (_, took) = timed(&mut client, 100).await;
    assert_eq!(took, 100 * MS, "requests from 100 on are not hedged");
    let (_, took) = timed(&mut client, 101).await;
    assert_eq!(took, 5 * MS);
    let mut refused = HedgeStats::default();
    refused.refused_policy = 1;
    assert_eq!(
        layer.stats(),
        refused,
        "counted when slower than the delay only"
    );

    // A policy that cannot copy requests (a streamed body): no hedge either.
    let layer = hedging(config(), Unlimited).with_policy(Policy::new().with_cloner(|_: &u32| None));
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;
    backend.script([Step::Ok(100, 1)]);
    let (_, took) = timed(&mut client, 0).await;
    assert_eq!(took, 100 * MS);
    assert_eq!(layer.stats(), refused);
}

#[tokio::test(start_paused = true)]
async fn requests_the_filter_refuses_stay_out_of_the_window() {
    let backend = Backend::default();
    let layer = hedging(config(), Unlimited).only_hedging(|n: &u32| *n < 100);
    let mut client = layer.layer(backend.clone());
    // Ten 10 ms requests that may be hedged, twenty 400 ms ones that may not.
    backend.script((0..20).map(|_| Step::Ok(400, 0)));
    for n in 100..120 {
        timed(&mut client, n).await.0.expect("answered");
    }
    warm(&mut client).await;
    assert_eq!(
        layer.delay(),
        Some(Duration::from_micros(10_239)),
        "the light ones' p95"
    );
}

#[tokio::test(start_paused = true)]
async fn under_a_retry_layer_hedges_and_retries_share_one_budget_and_one_deposit() {
    let backend = Backend::default();
    let budget = Counting::new();
    let retry = RetryLayer::new_with(
        RetryConfig::default().with_backoff(Backoff::Constant(Duration::ZERO)),
        Arc::clone(&budget),
        TokioClock::new(),
    )
    .expect("valid");
    let hedge = hedging(config(), Arc::clone(&budget));
    let mut client = retry.layer(hedge.layer(backend.clone()));
    warm(&mut client).await;
    assert_eq!(
        budget.counts(),
        (10, 0),
        "one deposit per request, by the retry layer"
    );

    // The first copy fails fast, the retry's first copy is slow and hedged.
    backend.script([Step::Err(1, "reset"), Step::Ok(100, 1), Step::Ok(10, 2)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (2, 22 * MS));
    assert_eq!(
        budget.counts(),
        (11, 2),
        "a retry and a hedge withdrawn, one deposit"
    );
}

#[tokio::test(start_paused = true)]
async fn the_hedge_goes_to_another_endpoint_than_the_first_copy() {
    let balancer = InOrder {
        endpoints: [Backend::default(), Backend::default()],
    };
    let layer = hedging(config(), Unlimited);
    let mut client = layer.layer(balancer.clone());
    warm(&mut client).await;
    assert_eq!(
        balancer.endpoints[1].log.counts().0,
        0,
        "all on the preferred one"
    );

    balancer.endpoints[0].script([Step::Ok(1_000, 0)]);
    balancer.endpoints[1].script([Step::Ok(10, 1)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (1, 21 * MS));
    assert_eq!(balancer.endpoints[0].log.counts(), (11, 0, 1));
    assert_eq!(balancer.endpoints[1].log.counts(), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn each_hedge_avoids_every_endpoint_still_working_on_the_request() {
    let balancer = InOrder {
        endpoints: [Backend::default(), Backend::default(), Backend::default()],
    };
    let layer = hedging(config().with_max_hedges(2), Unlimited);
    let mut client = layer.layer(balancer.clone());
    warm(&mut client).await;

    balancer.endpoints[0].script([Step::Never]);
    balancer.endpoints[1].script([Step::Never]);
    balancer.endpoints[2].script([Step::Ok(10, 2)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (2, 32 * MS));
    let calls = balancer.endpoints.each_ref().map(|e| e.log.counts());
    assert_eq!(calls, [(11, 0, 1), (1, 0, 1), (1, 0, 0)]);

    // A copy that answered (with a failure) is no longer avoided: the next hedge may go there.
    balancer.endpoints[0].script([Step::Err(5 + 11, "reset")]);
    balancer.endpoints[1].script([Step::Never]);
    balancer.endpoints[0].script([Step::Ok(10, 0)]);
    balancer.endpoints[2].script([Step::Ok(10, 2)]);
    let (result, _) = timed(&mut client, 0).await;
    assert_eq!(
        result.expect("answered"),
        0,
        "the second hedge went to the first endpoint"
    );
    assert_eq!(balancer.endpoints[2].log.counts().0, 1, "not to the third");
}

#[tokio::test(start_paused = true)]
async fn hedges_are_counted_by_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let budget = Counting::new();
    let layer = metrics::with_local_recorder(&recorder, || {
        hedging(config().with_name("search"), Arc::clone(&budget))
    });
    let backend = Backend::default();
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;
    backend.script([Step::Ok(100, 1), Step::Ok(10, 2), Step::Ok(100, 1)]);
    timed(&mut client, 0).await.0.expect("answered");
    budget.grant.store(false, Ordering::SeqCst);
    timed(&mut client, 0).await.0.expect("answered");

    let metrics = recorded::take(&snapshotter);
    let hedges = |outcome: &str| {
        recorded::value(
            &metrics,
            "rampart_retry_hedges_total",
            &[
                ("name", "search"),
                ("outcome", outcome),
                ("criticality", "critical"),
            ],
        )
    };
    assert_eq!(hedges("sent"), Some(&DebugValue::Counter(1)));
    assert_eq!(hedges("won"), Some(&DebugValue::Counter(1)));
    assert_eq!(hedges("refused_budget"), Some(&DebugValue::Counter(1)));
    assert_eq!(hedges("refused_deadline"), Some(&DebugValue::Counter(0)));
    let delay = recorded::gauge(
        &metrics,
        "rampart_retry_hedge_delay_seconds",
        &[("name", "search")],
    );
    assert!((delay - 0.010_239).abs() < 1e-9, "{delay}");
}

#[tokio::test(start_paused = true)]
async fn a_hedge_whose_call_panics_is_counted_as_sent_with_its_withdrawal() {
    let backend = Backend::default();
    let budget = Counting::new();
    let layer = hedging(config(), Arc::clone(&budget));
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    backend.script([Step::Never, Step::PanicInCall]);
    let request = client.ready().await.expect("ready").call(0);
    let joined = tokio::spawn(request).await;
    assert!(joined.expect_err("the hedge's call panicked").is_panic());
    assert_eq!(
        backend.log.counts(),
        (11, 0, 1),
        "the first copy dropped with the request"
    );
    assert_eq!(budget.counts(), (11, 1));
    assert_eq!(
        layer.stats(),
        stats(1, 0),
        "the withdrawal is counted as a hedge sent"
    );
}

/// A backend's readiness, switched by the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    Shut,
    Broken,
}

/// A backend whose readiness every clone shares: ready, pending, or failed.
#[derive(Clone)]
struct Gated {
    backend: Backend,
    gate: Arc<Mutex<(Gate, Option<Waker>)>>,
}

impl Gated {
    fn new() -> Self {
        Self {
            backend: Backend::default(),
            gate: Arc::new(Mutex::new((Gate::Open, None))),
        }
    }

    fn set(&self, gate: Gate) {
        let mut state = self.gate.lock().expect("no poison");
        state.0 = gate;
        if let Some(waker) = state.1.take() {
            waker.wake();
        }
    }
}

impl Service<u32> for Gated {
    type Response = u32;
    type Error = BoxError;
    type Future = Reply;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let mut state = self.gate.lock().expect("no poison");
        match state.0 {
            Gate::Open => Poll::Ready(Ok(())),
            Gate::Shut => {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
            Gate::Broken => Poll::Ready(Err("broken".into())),
        }
    }

    fn call(&mut self, request: u32) -> Reply {
        self.backend.call(request)
    }
}

#[tokio::test(start_paused = true)]
async fn the_layer_and_its_hedges_wait_for_readiness_and_a_readiness_error_sends_no_hedge() {
    let gated = Gated::new();
    let layer = hedging(config(), Unlimited);
    let mut client = layer.layer(gated.clone());
    warm(&mut client).await;

    // The layer's readiness is the service's: pending, then its error.
    gated.set(Gate::Shut);
    let waited = tokio::time::timeout(50 * MS, ServiceExt::<u32>::ready(&mut client)).await;
    assert!(waited.is_err(), "pending while the service is");
    gated.set(Gate::Broken);
    let error = ServiceExt::<u32>::ready(&mut client).await.err();
    assert_eq!(error.map(|e| e.to_string()), Some("broken".into()));

    // Due at 11 ms while the service is pending, the hedge waits for it: it goes at 30 ms,
    // when the service is ready, and answers at 40.
    gated.set(Gate::Open);
    gated.backend.script([Step::Ok(100, 1), Step::Ok(10, 2)]);
    let request = ServiceExt::<u32>::ready(&mut client)
        .await
        .expect("ready")
        .call(0);
    gated.set(Gate::Shut);
    let opener = {
        let gated = gated.clone();
        tokio::spawn(async move {
            tokio::time::sleep(30 * MS).await;
            gated.set(Gate::Open);
        })
    };
    let started = Instant::now();
    let answer = request.await.expect("answered");
    assert_eq!((answer, started.elapsed()), (2, 40 * MS));
    opener.await.expect("opened");
    assert_eq!(gated.backend.log.counts(), (12, 0, 1));
    assert_eq!(layer.stats(), stats(1, 1));

    // A readiness error when the hedge is due: no hedge, the first copy goes on.
    gated.backend.script([Step::Ok(100, 3)]);
    let request = ServiceExt::<u32>::ready(&mut client)
        .await
        .expect("ready")
        .call(0);
    gated.set(Gate::Broken);
    let started = Instant::now();
    let answer = request.await.expect("answered");
    assert_eq!((answer, started.elapsed()), (3, 100 * MS));
    assert_eq!(gated.backend.log.counts(), (13, 0, 1), "no hedge");
    assert_eq!(layer.stats(), stats(1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_buffer_between_the_layer_and_the_balancer_loses_the_hint() {
    let balancer = InOrder {
        endpoints: [Backend::default(), Backend::default()],
    };
    let layer = hedging(config(), Unlimited);
    let mut client = layer.layer(tower::buffer::Buffer::new(balancer.clone(), 8));
    warm(&mut client).await;

    balancer.endpoints[0].script([Step::Ok(1_000, 0), Step::Ok(10, 1)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (1, 21 * MS));
    // The buffer's worker called the balancer outside the hedge's scope: the hedge went to
    // the endpoint still working on the first copy.
    assert_eq!(balancer.endpoints[0].log.counts(), (12, 0, 1));
    assert_eq!(balancer.endpoints[1].log.counts().0, 0);
}

/// A server's pushback in an error: "busy N" asks to retry after N ms, "stop" not to retry.
fn read_busy(result: Result<&u32, &BoxError>) -> Option<Pushback> {
    let message = result.err()?.to_string();
    if message == "stop" {
        return Some(Pushback::DontRetry);
    }
    let ms = message.strip_prefix("busy ")?.parse().ok()?;
    Some(Pushback::After(Duration::from_millis(ms)))
}

#[tokio::test(start_paused = true)]
async fn a_pushback_ends_its_request_s_hedging_and_holds_the_layer_s_hedges_for_its_wait() {
    let backend = Backend::default();
    let budget = Counting::new();
    let layer = hedging(config().with_max_hedges(2), Arc::clone(&budget))
        .with_policy(Policy::new().with_pushback(read_busy));
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    // The hedge sent at 11 ms is pushed back at 16 ms for 100 ms: no second hedge at 22 ms.
    backend.script([Step::Ok(50, 1), Step::Err(5, "busy 100")]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (1, 50 * MS));
    assert_eq!(backend.log.counts().0, 12, "one hedge");

    // Until 116 ms the layer's hedges are held: a request sent at 50 ms is not hedged at 61.
    backend.script([Step::Ok(40, 2)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (2, 40 * MS));
    assert_eq!(backend.log.counts().0, 13, "no hedge");
    let mut expected = stats(1, 0);
    expected.refused_pushback = 1;
    assert_eq!(layer.stats(), expected);
    assert_eq!(
        budget.counts(),
        (12, 1),
        "nothing withdrawn for the held hedge"
    );

    // At 120 ms the hold is over: hedges go again.
    tokio::time::sleep(30 * MS).await;
    backend.script([Step::Ok(40, 3)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (0, 21 * MS));
    expected.sent = 2;
    expected.won = 1;
    assert_eq!(layer.stats(), expected);
}

#[tokio::test(start_paused = true)]
async fn dont_retry_and_a_pushback_past_the_maximum_end_only_their_request_s_hedging() {
    let backend = Backend::default();
    let config = config().with_max_hedges(2).with_max_pushback(50 * MS);
    let layer = hedging(config, Unlimited).with_policy(Policy::new().with_pushback(read_busy));
    let mut client = layer.layer(backend.clone());
    warm(&mut client).await;

    for answer in ["stop", "busy 100"] {
        backend.script([Step::Ok(50, 1), Step::Err(5, answer)]);
        let (result, took) = timed(&mut client, 0).await;
        assert_eq!((result.expect("answered"), took), (1, 50 * MS), "{answer}");
    }
    assert_eq!(backend.log.counts().0, 14, "one hedge each");

    // Nothing holds the layer's hedges: the next request is hedged at once.
    backend.script([Step::Ok(40, 2)]);
    let (result, took) = timed(&mut client, 0).await;
    assert_eq!((result.expect("answered"), took), (0, 21 * MS));
    assert_eq!(layer.stats(), stats(3, 1));
}
