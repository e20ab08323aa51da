//! The stacks in front of the fleet: the same balancer under no hedging, tower's `Hedge`, and
//! rampart's hedge layer with and without a filter; and how each request is sent through them.
//!
//! Both hedging stacks are told the same thing about requests: a heavy request is never copied
//! (tower's policy through `can_retry`, rampart's layer through `only_hedging`). What differs
//! is what each does with it: tower still times every request, heavy ones included, for its
//! delay; rampart times only the requests it may hedge. `hedge-heavy` also runs rampart's layer
//! without the filter, to show what the budget alone does. In `hedge-tail` and `hedge-shift`
//! no request is heavy: the filter changes nothing there, and that stack is not run.

use std::time::Duration;

use rampart_balancer::{P2cConfig, PeakSuccess, SharedP2c};
use rampart_core::TokioClock;
use rampart_retry::{HedgeConfig, HedgeLayer, RatioConfig};
use tower::discover::ServiceList;
use tower::hedge::Hedge;
use tower::{BoxError, Layer as _, Service, ServiceExt as _};

use super::replicas::{Fleet, Replica, Request};
use crate::sim::{self, Call, Record, drive};

/// The latency quantile after which both hedging stacks send a second copy.
pub(super) const QUANTILE: f64 = 0.97;
/// rampart's hedge budget: copies beyond the first, per request.
pub(super) const BUDGET: f64 = 0.05;
/// How long a hedge counts against rampart's budget: a second, so that no second holds more
/// than the ratio's share of copies (plus the budget's floor) beyond the first.
const BUDGET_TTL: Duration = Duration::from_secs(1);
/// tower's `Hedge`: the latency histogram it reads is the previous period's (its
/// `RotatingHistogram`); one second, so that it follows a change as soon as it can.
const TOWER_PERIOD: Duration = Duration::from_secs(1);
/// tower's `Hedge` sends no copy before its histogram holds this many latencies.
const TOWER_MIN_POINTS: u64 = 100;

/// A stack in front of the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stack {
    /// The balancer alone.
    None,
    /// tower's `Hedge` over the balancer, heavy requests not hedged (`can_retry`).
    Tower,
    /// rampart's hedge layer over the balancer, within a budget, heavy requests not hedged.
    Rampart,
    /// rampart's hedge layer over the balancer, within a budget, every request hedged.
    RampartUnfiltered,
}

/// The stacks' names.
pub(super) const NONE: &str = "no hedging";
pub(super) const TOWER: &str = "tower Hedge p97";
pub(super) const RAMPART: &str = "rampart hedge p97, 5 % budget";
pub(super) const RAMPART_UNFILTERED: &str = "rampart hedge p97, 5 % budget, no filter";
/// The stacks of `hedge-tail` and `hedge-shift`, in the order they run (no heavy requests: the
/// filter makes no difference).
pub(super) const NAMES: &[&str] = &[NONE, TOWER, RAMPART];
pub(super) const STACKS: &[Stack] = &[Stack::None, Stack::Tower, Stack::Rampart];
/// The stacks of `hedge-heavy`, in the order they run.
pub(super) const HEAVY_NAMES: &[&str] = &[NONE, TOWER, RAMPART, RAMPART_UNFILTERED];
pub(super) const HEAVY_STACKS: &[Stack] = &[
    Stack::None,
    Stack::Tower,
    Stack::Rampart,
    Stack::RampartUnfiltered,
];

/// What a run is given beside its stack.
#[derive(Debug, Clone, Copy)]
pub(super) struct Traffic<'a> {
    pub(super) seed: u64,
    pub(super) arrivals: &'a [Duration],
    pub(super) requests: &'a [Request],
    pub(super) deadline: Duration,
}

/// Simulates `stack` over a fresh fleet ([`run_stack`]) on a thread of its own.
///
/// A seeded `SharedP2c` numbers the draw streams of its clones per balancer, so a seed gives the
/// same figures alone and in the whole lab; a thread of its own keeps a run apart from anything
/// else a thread might hold for its lifetime all the same.
pub(super) fn simulate_stack(
    stack: Stack,
    traffic: Traffic<'_>,
    tick: impl FnMut(Duration, &Fleet) + Send,
) -> (Vec<Record>, Fleet) {
    std::thread::scope(|scope| {
        scope
            .spawn(move || sim::simulate(run_stack(stack, traffic, tick)))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `stack` over a fresh fleet; `tick(at, fleet)` is called before each request. Returns
/// the records and the fleet, to read where each request's copies went.
async fn run_stack(
    stack: Stack,
    traffic: Traffic<'_>,
    tick: impl FnMut(Duration, &Fleet),
) -> (Vec<Record>, Fleet) {
    let fleet = Fleet::new(traffic.seed, traffic.requests.len());
    let balancer = balancer(&fleet, traffic.seed);
    let records = match stack {
        Stack::None => drive_through(balancer, traffic, &fleet, tick).await,
        Stack::Tower => {
            let hedge = Hedge::new::<Request>(
                balancer,
                LightOnly,
                TOWER_MIN_POINTS,
                QUANTILE as f32,
                TOWER_PERIOD,
            );
            drive_through(hedge, traffic, &fleet, tick).await
        }
        Stack::Rampart | Stack::RampartUnfiltered => {
            let budget = RatioConfig {
                ttl: BUDGET_TTL,
                ratio: BUDGET,
                ..RatioConfig::default()
            }
            .build_with(TokioClock::new())
            .expect("a valid budget");
            let layer = HedgeLayer::new_with(
                HedgeConfig::default().with_quantile(QUANTILE),
                budget,
                TokioClock::new(),
            )
            .expect("a valid hedge layer");
            if stack == Stack::Rampart {
                let hedge = layer
                    .only_hedging(|request: &Request| !request.heavy)
                    .layer(balancer);
                drive_through(hedge, traffic, &fleet, tick).await
            } else {
                drive_through(layer.layer(balancer), traffic, &fleet, tick).await
            }
        }
    };
    (records, fleet)
}

/// rampart's P2C over the replicas (`PeakSuccess`), as a handle every copy of a request
/// clones: each copy picks in its own `call`, where a hedge layer's pick hint is current.
fn balancer(fleet: &Fleet, seed: u64) -> SharedP2c<usize, Replica, TokioClock> {
    SharedP2c::new_with(
        ServiceList::new::<Request>(fleet.replicas()),
        P2cConfig::default().with_seed(seed),
        TokioClock::new(),
        PeakSuccess,
    )
    .expect("a valid balancer")
}

#[allow(
    clippy::async_yields_async,
    reason = "the driver awaits each call in a task of its own"
)]
async fn drive_through<S>(
    mut service: S,
    traffic: Traffic<'_>,
    fleet: &Fleet,
    mut tick: impl FnMut(Duration, &Fleet),
) -> Vec<Record>
where
    S: Service<Request, Response = (), Error = BoxError>,
    S::Future: Send + 'static,
{
    drive(
        traffic.arrivals,
        traffic.deadline,
        async |n| -> Call {
            match service.ready().await {
                Ok(ready) => {
                    let call = ready.call(traffic.requests[n]);
                    Call::new(async move { sim::outcome(&call.await) })
                }
                Err(error) => {
                    let outcome = sim::outcome::<()>(&Err(error));
                    Call::new(async move { outcome })
                }
            }
        },
        |at| tick(at, fleet),
    )
    .await
}

/// tower's hedge policy: every request may be copied, and a copy is sent for a light one only
/// (the filter rampart's layer is given).
#[derive(Debug, Clone, Copy)]
struct LightOnly;

impl tower::hedge::Policy<Request> for LightOnly {
    fn clone_request(&self, request: &Request) -> Option<Request> {
        Some(*request)
    }

    fn can_retry(&self, request: &Request) -> bool {
        !request.heavy
    }
}
