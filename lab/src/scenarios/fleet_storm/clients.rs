//! `fleet-storm`'s clients: a thousand processes, each with its own retry layer and budget.

use std::sync::Arc;

use rampart_core::TokioClock;
use rampart_retry::pushback::Pushback;
use rampart_retry::{Policy, RatioConfig, RetryConfig, RetryLayer, Unlimited};
use tower::retry::budget::TpsBudget;
use tower::util::BoxCloneService;
use tower::{BoxError, Layer};

use super::fleet::{Fleet, PUSHBACK, Request, Shed, Transport};
use crate::scenarios::retry_storm::TowerPolicy;

/// A client's stack.
pub(super) type Client = BoxCloneService<Request, (), BoxError>;

/// How every client of a stack retries.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stack {
    /// Three attempts, no budget.
    Naive,
    /// rampart's `RatioBudget` with its defaults, per client: 20 % of the client's requests and
    /// a floor of 10 retries a second, which a thousand clients multiply.
    RatioPerClient,
    /// tower's `Retry` with its `TpsBudget` defaults, per client (20 %, 10 a second).
    Tower,
    /// rampart's `RatioBudget` at 10 % with a floor of 10 retries a second for the whole fleet
    /// (a hundredth each), reading the backends' pushback, which holds the client's retries.
    Rampart,
}

/// The fleet floor of the `Rampart` stack's budgets, in retries a second across all clients.
pub(super) const FLEET_FLOOR_PER_SEC: u32 = 10;
/// The `Rampart` stack's budget ratio: Google SRE's 10 %.
const FLEET_RATIO: f64 = 0.1;

/// `clients` clients of `stack`, each over its own connection to `fleet`; jitter seeded from
/// `seed`.
pub(super) fn clients(stack: Stack, fleet: &Arc<Fleet>, clients: usize, seed: u64) -> Vec<Client> {
    (0..clients as u64)
        .map(|n| {
            let transport = Transport(Arc::clone(fleet));
            let config = RetryConfig::default().with_seed(seed.wrapping_mul(1_000_003) ^ n);
            match stack {
                Stack::Naive => BoxCloneService::new(
                    RetryLayer::new_with(config, Unlimited, TokioClock::new())
                        .expect("valid")
                        .layer(transport),
                ),
                Stack::RatioPerClient => {
                    let budget = RatioConfig::default()
                        .build_with(TokioClock::new())
                        .expect("valid");
                    BoxCloneService::new(
                        RetryLayer::new_with(config, budget, TokioClock::new())
                            .expect("valid")
                            .layer(transport),
                    )
                }
                Stack::Tower => {
                    let policy = TowerPolicy::new(Arc::new(TpsBudget::default()));
                    BoxCloneService::new(tower::retry::RetryLayer::new(policy).layer(transport))
                }
                Stack::Rampart => {
                    let budget = RatioConfig {
                        ratio: FLEET_RATIO,
                        ..RatioConfig::default()
                    }
                    .build_with(TokioClock::new())
                    .and_then(|budget| budget.with_fleet_floor(FLEET_FLOOR_PER_SEC, clients as u32))
                    .expect("valid");
                    let policy = Policy::new().with_pushback(read_pushback);
                    BoxCloneService::new(
                        RetryLayer::new_with(config, budget, TokioClock::new())
                            .expect("valid")
                            .with_policy(policy)
                            .layer(transport),
                    )
                }
            }
        })
        .collect()
}

/// The backends' pushback, as `rampart::grpc`'s reader finds it in `grpc-retry-pushback-ms`.
fn read_pushback(result: Result<&(), &BoxError>) -> Option<Pushback> {
    let error = result.err()?;
    error.is::<Shed>().then_some(Pushback::After(PUSHBACK))
}
