//! The fleet every hedging scenario runs against: ten replicas, each a simulated server whose
//! responses stall now and then, and the log of which replicas each request's copies went to.
//!
//! A request's cost is its own: its service time is drawn once, from the request's number and
//! the seed, and every copy of it occupies a worker that long wherever it goes, in every stack
//! (common random numbers: the stacks differ only by what they do, not by their luck). What a
//! copy does not carry is the replica's state: whether the replica stalls this copy's response
//! is drawn per copy. So a hedge helps a request delayed by a replica (a stall, a queue), and
//! wastes a worker on a request that is slow because it is expensive.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_fault::{Distribution, SimBackend, SimConfig};
use tower::{BoxError, Service};

/// Replicas in the fleet.
pub(super) const REPLICAS: usize = 10;
/// Workers of each replica.
pub(super) const WORKERS: usize = 4;
/// A light request's service time: log-normal, this median...
const MEDIAN: Duration = Duration::from_millis(5);
/// ...and this 99th percentile.
const P99: Duration = Duration::from_millis(15);
/// How long a stalled response is held back.
pub(super) const STALL: Duration = Duration::from_millis(200);
/// The share of copies whose response a replica stalls.
pub(super) const STALL_RATE: f64 = 0.01;
/// A heavy request costs this many light ones.
pub(super) const HEAVY_COST: u32 = 50;

/// A light request's service time.
fn service_time() -> Distribution {
    Distribution::log_normal_p99(MEDIAN, P99)
}

/// The fleet's capacity, in requests per second, when a share `heavy` of the requests cost
/// [`HEAVY_COST`] light ones (C: every worker busy).
pub(super) fn capacity(heavy: f64) -> f64 {
    let light = SimConfig::default()
        .with_workers(REPLICAS * WORKERS)
        .with_service_time(service_time())
        .capacity();
    light / (1.0 - heavy + heavy * f64::from(HEAVY_COST))
}

/// A request: its number (the same in every stack, and in each of its copies) and whether it is
/// a heavy one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request {
    pub(super) id: u32,
    pub(super) heavy: bool,
}

/// Where each request's copies went, by request number.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sent {
    /// Copies sent to a replica (1 when it was not hedged, 0 when it never reached one).
    pub(super) copies: u8,
    /// The replica of the first copy.
    first: u8,
    /// Copies after the first sent to another replica than the first's.
    pub(super) elsewhere: u8,
}

#[cfg(test)]
impl Sent {
    /// `copies` copies, `elsewhere` of them on another replica than the first's.
    pub(super) fn test(copies: u8, elsewhere: u8) -> Self {
        Self {
            copies,
            first: 0,
            elsewhere,
        }
    }
}

/// The replicas, and what they saw.
#[derive(Debug, Clone)]
pub(super) struct Fleet {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    seed: u64,
    backends: Vec<SimBackend>,
    /// By request number.
    sent: Mutex<Vec<Sent>>,
    /// When each copy after a request's first was sent, since the fleet was built.
    hedged_at: Mutex<Vec<Duration>>,
    /// When the fleet was built.
    start: tokio::time::Instant,
    /// How many times its usual latency a response takes (1, or 4 in `hedge-shift`'s slow
    /// phase): the replica waits on something slower after its work, without holding a worker.
    slowdown: AtomicU32,
}

impl Fleet {
    /// Ten idle replicas for `requests` requests; must be built inside the simulation.
    pub(super) fn new(seed: u64, requests: usize) -> Self {
        let backends = (0..REPLICAS)
            .map(|_| {
                // The service time is set per copy (`Replica::call`); the queue is unbounded,
                // so that everything is served: a slowdown here is latency, never an error.
                let config = SimConfig::default()
                    .with_workers(WORKERS)
                    .with_service_time(service_time())
                    .with_queue_capacity(usize::MAX);
                SimBackend::new(config).expect("a valid replica")
            })
            .collect();
        Self {
            shared: Arc::new(Shared {
                seed,
                backends,
                sent: Mutex::new(vec![Sent::default(); requests]),
                hedged_at: Mutex::new(Vec::new()),
                start: tokio::time::Instant::now(),
                slowdown: AtomicU32::new(1),
            }),
        }
    }

    /// The replicas, as services keyed by their index.
    pub(super) fn replicas(&self) -> Vec<Replica> {
        (0..REPLICAS)
            .map(|index| Replica {
                index: index as u8,
                fleet: self.clone(),
            })
            .collect()
    }

    /// Makes every response take `factor` times its usual latency from now on.
    pub(super) fn slow_down(&self, factor: u32) {
        self.shared.slowdown.store(factor, Ordering::Relaxed);
    }

    /// Where each request's copies went, by request number.
    pub(super) fn sent(&self) -> Vec<Sent> {
        self.shared.sent.lock().clone()
    }

    /// When each copy after a request's first was sent, since the fleet was built, in order.
    pub(super) fn hedged_at(&self) -> Vec<Duration> {
        self.shared.hedged_at.lock().clone()
    }

    /// Notes that a copy of request `id` reached replica `index`; returns its number among the
    /// request's copies (0 for the first).
    fn note(&self, id: u32, index: u8) -> u8 {
        let mut sent = self.shared.sent.lock();
        let Some(entry) = sent.get_mut(id as usize) else {
            return 0;
        };
        let copy = entry.copies;
        if copy == 0 {
            entry.first = index;
        } else {
            if index != entry.first {
                entry.elsewhere = entry.elsewhere.saturating_add(1);
            }
            let at = self.shared.start.elapsed();
            self.shared.hedged_at.lock().push(at);
        }
        entry.copies = entry.copies.saturating_add(1);
        copy
    }

    /// Request `request`'s service time: the same for each of its copies, in every stack.
    fn cost(&self, request: Request) -> Duration {
        let mut rng = fastrand::Rng::with_seed(mix(self.shared.seed, u64::from(request.id), 0));
        let light = service_time().sample(&mut rng);
        if request.heavy {
            light * HEAVY_COST
        } else {
            light
        }
    }

    /// Whether the replica stalls copy `copy` of request `id`.
    fn stalls(&self, id: u32, copy: u8) -> bool {
        let key = mix(self.shared.seed, u64::from(id), 1 + u64::from(copy));
        fastrand::Rng::with_seed(key).f64() < STALL_RATE
    }
}

/// A well-spread 64-bit key of `(seed, id, stream)` (`SplitMix64`'s finaliser), so that
/// neighbouring requests draw unrelated numbers.
fn mix(seed: u64, id: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(id.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add(stream.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One replica: its server does the request's work (queueing for a worker first), then the
/// response takes the rest of its time: the slowdown, and a stall for some copies.
///
/// A copy whose caller gives up (a hedge's loser, dropped) still takes its worker for its whole
/// service time, as on a server that does not notice the client has gone.
#[derive(Debug, Clone)]
pub(super) struct Replica {
    index: u8,
    fleet: Fleet,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

impl Service<Request> for Replica {
    type Response = ();
    type Error = BoxError;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> BoxFuture {
        let fleet = &self.fleet;
        let copy = fleet.note(request.id, self.index);
        let service = fleet.cost(request);
        let backend = &fleet.shared.backends[usize::from(self.index)];
        // The simulation runs on one thread: the booking below draws this service time.
        let booked = backend
            .set_service_time(Distribution::Fixed(service))
            .map(|()| Service::<()>::call(&mut backend.clone(), ()));
        let slowdown = fleet.shared.slowdown.load(Ordering::Relaxed).max(1);
        let mut after = service * (slowdown - 1);
        if fleet.stalls(request.id, copy) {
            after += STALL;
        }
        Box::pin(async move {
            booked?.await?;
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::simulate;
    use tower::ServiceExt as _;

    #[test]
    fn a_request_costs_the_same_in_each_copy_and_each_copy_is_noted() {
        simulate(async {
            let fleet = Fleet::new(3, 4);
            let replicas = fleet.replicas();
            let request = Request {
                id: 2,
                heavy: false,
            };
            let start = tokio::time::Instant::now();
            replicas[0].clone().oneshot(request).await.expect("served");
            let first = start.elapsed();
            let again = tokio::time::Instant::now();
            replicas[5].clone().oneshot(request).await.expect("served");
            replicas[0].clone().oneshot(request).await.expect("served");
            let sent = fleet.sent();
            assert_eq!(
                (sent[2].copies, sent[2].first, sent[2].elsewhere),
                (3, 0, 1)
            );
            assert_eq!(sent[1].copies, 0);
            // Neither copy stalled at this seed: both took the request's own service time.
            assert!(first < STALL && again.elapsed() < 3 * STALL);
            let heavy = Request { id: 2, heavy: true };
            assert_eq!(fleet.cost(heavy), fleet.cost(request) * HEAVY_COST);
            let start = tokio::time::Instant::now();
            replicas[1].clone().oneshot(heavy).await.expect("served");
            assert!(start.elapsed() >= fleet.cost(heavy));
        });
    }

    #[test]
    fn about_one_copy_in_a_hundred_stalls() {
        let fleet = simulate(async { Fleet::new(1, 0) });
        let stalled = (0..100_000_u32).filter(|&id| fleet.stalls(id, 0)).count();
        assert!((800..1_200).contains(&stalled), "{stalled}");
        // A hedge's stall is drawn apart from its first copy's.
        let both = (0..100_000_u32)
            .filter(|&id| fleet.stalls(id, 0) && fleet.stalls(id, 1))
            .count();
        assert!(both < 30, "{both}");
    }

    #[test]
    fn a_slowdown_stretches_the_response_without_holding_the_worker() {
        simulate(async {
            let fleet = Fleet::new(1, 10);
            let mut replica = fleet.replicas().remove(0);
            fleet.slow_down(4);
            let request = Request {
                id: 0,
                heavy: false,
            };
            let cost = fleet.cost(request);
            let start = tokio::time::Instant::now();
            replica.ready().await.expect("ready");
            replica.call(request).await.expect("served");
            let took = start.elapsed();
            let stall = if fleet.stalls(0, 0) {
                STALL
            } else {
                Duration::ZERO
            };
            // 4× the cost (whole milliseconds: the timer's), plus any stall.
            assert!(took >= 4 * cost + stall, "{took:?} for {cost:?}");
            assert!(took <= 4 * cost + stall + Duration::from_millis(2));
            let work = fleet.shared.backends[0].work();
            assert_eq!(work.busy, cost);
        });
    }
}
