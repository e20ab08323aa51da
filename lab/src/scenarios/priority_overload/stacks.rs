//! The stacks in front of the server, and how each request is sent through them.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rampart_breaker::{BreakerConfig, BreakerLayer};
use rampart_core::{Criticality, CriticalityClass, RequestContext, TokioClock};
use rampart_fault::{SimBackend, SimConfig};
use rampart_ratelimit::{BbrConfig, BbrLimit, BbrLimitLayer, CpuUsage, Gate};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{Layer, ServiceBuilder, ServiceExt as _};

use super::WORKERS;
use super::partitions::{PartitionLimit, Partitions};
use crate::sim::{self, Call, Record, drive};

/// The clients' deadline: 10× the unloaded p99 (20 ms), as in `overload`.
const DEADLINE: Duration = Duration::from_millis(200);
/// The clients of the breaker stack; request `n` is sent by client `n % CLIENTS`.
const CLIENTS: usize = 4;
/// The static partitions' shares of their limit, by class index: 40 % for critical-plus, 30 %
/// critical, 20 % sheddable-plus, 10 % sheddable.
const PARTITION_SHARES: [f64; 4] = [0.10, 0.20, 0.30, 0.40];

/// A stack in front of the simulated server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stack {
    /// rampart's BBR, the requests carrying no criticality.
    Blind,
    /// tower's `LoadShed` over a `GlobalConcurrencyLimit` of 2W.
    Tower,
    /// The static partitions of a concurrency limit of W + √W.
    Partitioned,
    /// rampart's BBR, each request's criticality current.
    Criticality,
    /// Clients with rampart's breaker in front of `Criticality`.
    Clients,
}

/// The context a request of class `class` (an index) is handled in.
fn context(class: usize) -> RequestContext {
    RequestContext::new().with_criticality(Criticality::new(CriticalityClass::ALL[class]))
}

/// Sends one request through a clone of `service` with `context` current while the stack
/// handles it (its readiness, its `call` and every poll of its answer).
fn scoped<S, Res>(context: RequestContext, service: &S) -> Call
where
    S: tower::Service<(), Response = Res, Error = tower::BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let call = service.clone().oneshot(());
    Call::new(context.scope(async move { sim::outcome(&call.await) }))
}

/// rampart's BBR in front of `backend`, default configuration on the `Cpu` gate, the CPU the
/// server's utilisation sampled every 250 ms (as `overload`'s BBR stack).
fn bbr(backend: &SimBackend) -> BbrLimit<SimBackend, TokioClock, Arc<dyn CpuUsage>> {
    let cpu = super::super::overload::sampled_cpu(backend);
    let limiter = BbrConfig::default()
        .with_gate(Gate::Cpu)
        .build_with(TokioClock::new(), cpu)
        .expect("a valid limiter");
    BbrLimitLayer::from_limiter(Arc::new(limiter)).layer(backend.clone())
}

/// Runs one stack; returns its records and, by request, whether a client's breaker refused it.
pub(super) async fn run_stack(
    stack: Stack,
    config: SimConfig,
    arrivals: &[Duration],
    classes: &[usize],
    seed: u64,
) -> (Vec<Record>, Vec<bool>) {
    let backend = SimBackend::new(config).expect("a valid simulated server");
    let local = Arc::new(Mutex::new(vec![false; arrivals.len()]));
    let next_call: Box<dyn Fn(usize) -> Call + '_> = match stack {
        Stack::Blind => {
            let service = bbr(&backend);
            Box::new(move |_| sim::call(&service))
        }
        Stack::Tower => {
            let service = ServiceBuilder::new()
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::new(2 * WORKERS))
                .service(backend);
            Box::new(move |n| scoped(context(classes[n]), &service))
        }
        Stack::Partitioned => {
            // W + √W: the in-flight count BBR's Little's-law limit settles at on this server.
            let limit = WORKERS + (WORKERS as f64).sqrt() as usize;
            let service = PartitionLimit::new(backend, Partitions::new(limit, PARTITION_SHARES));
            Box::new(move |n| scoped(context(classes[n]), &service))
        }
        Stack::Criticality => {
            let service = bbr(&backend);
            Box::new(move |n| scoped(context(classes[n]), &service))
        }
        Stack::Clients => {
            let server = bbr(&backend);
            let clients: Vec<_> = (0..CLIENTS as u64)
                .map(|client| {
                    let breaker = BreakerConfig::default()
                        .with_seed(seed.wrapping_add(client))
                        .build_with(TokioClock::new())
                        .expect("a valid breaker");
                    BreakerLayer::from_breaker(Arc::new(breaker)).layer(server.clone())
                })
                .collect();
            let local = Arc::clone(&local);
            Box::new(move |n| {
                let answer = clients[n % CLIENTS].clone().oneshot(());
                Call::new(context(classes[n]).scope(noting_refusal(answer, Arc::clone(&local), n)))
            })
        }
    };
    let records = drive(arrivals, DEADLINE, async |n| next_call(n), |_| {}).await;
    let local = local.lock().clone();
    (records, local)
}

/// The outcome of `answer`, noting in `local` whether request `n` was refused by its client's
/// breaker.
async fn noting_refusal<T>(
    answer: impl Future<Output = Result<T, tower::BoxError>>,
    local: Arc<Mutex<Vec<bool>>>,
    n: usize,
) -> sim::Outcome {
    let result = answer.await;
    let refused = matches!(&result, Err(error) if error.is::<rampart_core::Rejected>());
    if refused {
        local.lock()[n] = true;
    }
    sim::outcome(&result)
}
