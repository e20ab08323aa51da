//! One deposit per request into a budget, whatever the order of the retry and hedge layers
//! sharing it: the layer that sees a request first deposits and marks it charged to the
//! budget (`RequestContext::charged`), and the layers inside sharing the budget deposit
//! neither for it nor for its copies. Layers with budgets of their own each deposit into
//! theirs. Under tokio's paused time.

mod endpoints;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_core::{Outcome, RequestContext, TokioClock};
use rampart_retry::{
    Backoff, Budget, BudgetSnapshot, HedgeConfig, HedgeLayer, Policy, RetryConfig, RetryLayer,
};
use tower::{BoxError, Layer, Service, ServiceExt};

use crate::endpoints::InOrder;

type Reply = Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;

/// A backend answering each call after the next scripted wait (10 ms once the script is
/// out): `Ok(tag)`, or `Err` for a tag of 0.
#[derive(Clone, Default)]
struct Backend {
    script: Arc<Mutex<VecDeque<(u64, u32)>>>,
    calls: Arc<AtomicU64>,
}

impl Backend {
    fn script(&self, steps: impl IntoIterator<Item = (u64, u32)>) {
        self.script.lock().expect("no poison").extend(steps);
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<u32> for Backend {
    type Response = u32;
    type Error = BoxError;
    type Future = Reply;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: u32) -> Reply {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let (wait, tag) = self
            .script
            .lock()
            .expect("no poison")
            .pop_front()
            .unwrap_or((10, 7));
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            if tag == 0 {
                Err("reset".into())
            } else {
                Ok(tag)
            }
        })
    }
}

/// A budget counting deposits and withdrawals, granting every one.
#[derive(Debug, Default)]
struct Counting {
    deposits: AtomicU64,
    withdrawals: AtomicU64,
}

impl Counting {
    fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Deposits and withdrawals so far.
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
        self.withdrawals.fetch_add(1, Ordering::SeqCst);
        true
    }

    fn record(&self, _: Outcome) {}

    fn snapshot(&self) -> BudgetSnapshot {
        BudgetSnapshot { remaining: 1.0 }
    }
}

/// A retry layer on `budget` retrying at once.
fn retry_layer(budget: &Arc<Counting>) -> RetryLayer<Arc<Counting>> {
    let config = RetryConfig::default().with_backoff(Backoff::Constant(Duration::ZERO));
    RetryLayer::new_with(config, Arc::clone(budget), TokioClock::new()).expect("valid")
}

/// A hedge layer on `budget` warm after ten requests: the median of 10 ms answers is read as
/// 10.239 ms, which tokio's millisecond timer fires at 11 ms.
fn hedge_layer(budget: &Arc<Counting>) -> HedgeLayer<Arc<Counting>> {
    let config = HedgeConfig::default().with_min_samples(10);
    HedgeLayer::new_with(config, Arc::clone(budget), TokioClock::new()).expect("valid")
}

/// Sends `request` and waits for its answer.
async fn send<S: Service<u32, Response = u32, Error = BoxError>>(
    client: &mut S,
    request: u32,
) -> Result<u32, BoxError> {
    client.ready().await.expect("ready").call(request).await
}

/// Ten 10 ms requests, then the hedge window's first bucket ends.
async fn warm<S: Service<u32, Response = u32, Error = BoxError>>(client: &mut S) {
    for n in 0..10 {
        send(client, n).await.expect("answered");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn hedge_outside_retry_one_budget_one_deposit_and_none_for_the_copies() {
    let backend = Backend::default();
    let budget = Counting::new();
    let hedge = hedge_layer(&budget);
    let mut client = hedge.layer(retry_layer(&budget).layer(backend.clone()));
    warm(&mut client).await;
    assert_eq!(budget.counts(), (10, 0), "one deposit per request");

    // The first copy is slow: the hedge goes through the retry layer, and answers.
    backend.script([(1_000, 1), (10, 2)]);
    assert_eq!(send(&mut client, 0).await.expect("answered"), 2);
    assert_eq!(hedge.stats().sent, 1);
    assert_eq!(
        budget.counts(),
        (11, 1),
        "the hedge withdrew, and neither of its copies deposited at the retry layer"
    );

    // The hedge's first copy fails and the retry layer inside retries it: no deposit either.
    backend.script([(1, 0), (5, 3)]);
    assert_eq!(send(&mut client, 0).await.expect("answered"), 3);
    assert_eq!(budget.counts(), (12, 2), "one deposit, the retry withdrawn");
    assert_eq!(backend.calls(), 10 + 2 + 2);
}

#[tokio::test(start_paused = true)]
async fn retry_outside_hedge_one_budget_one_deposit_and_none_for_the_retries() {
    let backend = Backend::default();
    let budget = Counting::new();
    let hedge = hedge_layer(&budget);
    let mut client = retry_layer(&budget).layer(hedge.layer(backend.clone()));
    warm(&mut client).await;
    assert_eq!(budget.counts(), (10, 0), "one deposit per request");

    // The first attempt fails, the retry's first copy is slow and hedged.
    backend.script([(1, 0), (100, 1), (10, 2)]);
    assert_eq!(send(&mut client, 0).await.expect("answered"), 2);
    assert_eq!(hedge.stats().sent, 1);
    assert_eq!(
        budget.counts(),
        (11, 2),
        "a retry and a hedge withdrawn, one deposit"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_outside_hedge_two_budgets_each_charged_once_per_request() {
    let backend = Backend::default();
    let (retries, hedges) = (Counting::new(), Counting::new());
    let mut client = retry_layer(&retries).layer(hedge_layer(&hedges).layer(backend.clone()));
    warm(&mut client).await;
    assert_eq!(retries.counts(), (10, 0));
    assert_eq!(
        hedges.counts(),
        (10, 0),
        "the hedge layer deposits into its own budget"
    );

    // A hedged request: each budget charged once, the hedge withdrawn from the hedge's.
    backend.script([(1_000, 1), (10, 2)]);
    assert_eq!(send(&mut client, 0).await.expect("answered"), 2);
    assert_eq!((retries.counts(), hedges.counts()), ((11, 0), (11, 1)));
}

#[tokio::test(start_paused = true)]
async fn hedge_outside_retry_two_budgets_each_charged_once_per_request() {
    let backend = Backend::default();
    let (retries, hedges) = (Counting::new(), Counting::new());
    let mut client = hedge_layer(&hedges).layer(retry_layer(&retries).layer(backend.clone()));
    warm(&mut client).await;
    assert_eq!((retries.counts(), hedges.counts()), ((10, 0), (10, 0)));

    // A retried request: the retry layer's own budget pays for the retry, once charged.
    backend.script([(1, 0), (5, 3)]);
    assert_eq!(send(&mut client, 0).await.expect("answered"), 3);
    assert_eq!((retries.counts(), hedges.counts()), ((11, 1), (11, 0)));
}

/// A service whose `call` calls another client synchronously (a handler calling a
/// dependency), inside the scope of the layer above.
#[derive(Clone)]
struct CallsOut<C> {
    client: C,
}

impl<C: Service<u32, Future = F>, F: Future<Output = Result<C::Response, C::Error>>> Service<u32>
    for CallsOut<C>
{
    type Response = C::Response;
    type Error = C::Error;
    type Future = F;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), C::Error>> {
        self.client.poll_ready(cx)
    }

    fn call(&mut self, request: u32) -> F {
        self.client.call(request)
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_called_inside_a_retry_scope_deposits_into_its_own_budget() {
    let backend = Backend::default();
    let (outer, dependency) = (Counting::new(), Counting::new());
    let client = hedge_layer(&dependency).layer(backend.clone());
    let mut service = retry_layer(&outer).layer(CallsOut { client });
    for n in 0..3 {
        send(&mut service, n).await.expect("answered");
    }
    assert_eq!(outer.counts(), (3, 0));
    assert_eq!(
        dependency.counts(),
        (3, 0),
        "another budget: the scope's mark is not its"
    );
}

#[tokio::test(start_paused = true)]
async fn each_attempt_is_marked_charged_to_the_layers_budget_and_only_inside_it() {
    let backend = Backend::default();
    // The first attempt fails at once, the retry answers.
    backend.script([(1, 0)]);
    let budget = Counting::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let marks = Arc::clone(&seen);
    let mut client = retry_layer(&budget).layer(tower::service_fn(move |request: u32| {
        let context = RequestContext::current();
        marks
            .lock()
            .expect("no poison")
            .push((context.attempt(), context.charged()));
        backend.clone().call(request)
    }));
    let charged = Some(Budget::id(&budget));
    send(&mut client, 0).await.expect("answered");
    assert_eq!(
        *seen.lock().expect("no poison"),
        [(Some(0), charged), (Some(1), charged)],
        "the first attempt and the retry"
    );
    assert_eq!(RequestContext::current().charged(), None, "none outside");
    assert_eq!(budget.counts(), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn nested_hedge_layers_send_the_outer_hedge_to_another_endpoint() {
    let balancer: InOrder<Backend, 3> = InOrder {
        endpoints: Default::default(),
    };
    let budget = Counting::new();
    let outer = hedge_layer(&budget);
    // The inner layer's window stays cold (100 samples): it only passes requests through, in
    // a pick-hint scope of its own.
    let inner = HedgeLayer::new_with(
        HedgeConfig::default(),
        Arc::clone(&budget),
        TokioClock::new(),
    )
    .expect("valid");
    let mut client = outer.layer(inner.layer(balancer.clone()));
    warm(&mut client).await;
    assert_eq!(inner.delay(), None, "the inner layer does not hedge");
    assert_eq!(balancer.endpoints[0].calls(), 10);

    // Endpoint 0 stalls: the outer hedge must avoid it through the inner layer's scope.
    balancer.endpoints[0].script([(1_000, 1)]);
    assert_eq!(send(&mut client, 0).await.expect("answered"), 7);
    assert_eq!(outer.stats().sent, 1);
    let calls = balancer.endpoints.each_ref().map(Backend::calls);
    assert_eq!(calls, [11, 1, 0], "the hedge went to endpoint 1");
}

#[tokio::test(start_paused = true)]
async fn a_hedge_layer_built_from_a_retry_layer_hedges_only_what_its_policy_would_retry() {
    let backend = Backend::default();
    let budget = Counting::new();
    // Odd requests are not idempotent: never copied, for a retry or a hedge.
    let even = |n: &u32| n.is_multiple_of(2).then_some(*n);
    let retries = retry_layer(&budget).with_policy(Policy::new().with_cloner(even));
    let hedges = retries
        .hedge_layer_with(
            HedgeConfig::default().with_min_samples(10),
            TokioClock::new(),
        )
        .expect("valid");
    assert_eq!(
        Budget::id(hedges.budget()),
        Budget::id(&budget),
        "one budget"
    );
    let mut client = retries.layer(hedges.layer(backend.clone()));
    warm(&mut client).await;
    assert_eq!(budget.counts(), (10, 0));

    backend.script([(1_000, 1)]);
    assert_eq!(send(&mut client, 1).await.expect("answered"), 1);
    assert_eq!(
        hedges.stats().sent,
        0,
        "an odd request waits for its one copy"
    );

    backend.script([(1_000, 1), (10, 2)]);
    assert_eq!(send(&mut client, 2).await.expect("answered"), 2);
    assert_eq!(hedges.stats().sent, 1, "an even one is hedged");
    assert_eq!(budget.counts(), (12, 1), "one deposit per request");
}
