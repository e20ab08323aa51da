//! The fleet every hedging scenario runs against: ten replicas, each a simulated server that
//! pauses now and then, and the log of which replicas each request's copies went to.
//!
//! A request's cost is its own: its service time is drawn once, from the request's number and
//! the seed, and every copy of it occupies a worker that long wherever it goes, in every stack
//! (common random numbers: the stacks differ only by what they do, not by their luck). What a
//! copy does not carry is the replica's state: a replica pauses (a collector's pause, a noisy
//! neighbour) for [`PAUSE`] (20 ms) at a time, 1 % of its time in all, the pauses drawn from
//! the seed and the replica's number alone; every response it finishes during a pause is held
//! back [`STALL`] (200 ms), whichever request or copy it is. Sent requests evenly, a replica
//! stalls 1 % of them; behind P2C somewhat fewer (the figure `stalled`: 0.6 % to 0.9 % of the
//! unhedged stack's requests), as the balancer sends new requests away from a replica whose
//! answers stopped. A hedge sent to the replica that holds the first copy while it is still
//! paused stalls as well: only a copy sent elsewhere surely escapes. So a hedge helps a request
//! delayed by a replica (a pause, a queue) when it goes to another one, and wastes a worker on
//! a request that is slow because it is expensive.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_fault::{Distribution, SimBackend, SimConfig, poisson_gap};
use tower::{BoxError, Service};

/// Replicas in the fleet.
pub(super) const REPLICAS: usize = 10;
/// Workers of each replica.
pub(super) const WORKERS: usize = 4;
/// A light request's service time: log-normal, this median...
const MEDIAN: Duration = Duration::from_millis(5);
/// ...and this 99th percentile.
const P99: Duration = Duration::from_millis(15);
/// How long a response a replica finishes during one of its pauses is held back.
pub(super) const STALL: Duration = Duration::from_millis(200);
/// The share of its time a replica is paused.
pub(super) const PAUSED_SHARE: f64 = 0.01;
/// How long each pause lasts. Long enough that a copy sent to the paused replica after a
/// hedge's delay (the 97th percentile, about 12 ms) often ends in the same pause; short enough
/// that most of the responses ending in it belong to requests sent before it began, which the
/// balancer could not steer away: from a paused replica no answer comes back, its in-flight
/// count grows, and P2C soon sends new requests elsewhere (with 200 ms pauses, the unhedged
/// stack had 0.05 % of its requests stalled, not 1 %).
pub(super) const PAUSE: Duration = Duration::from_millis(20);
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
    /// Copies whose response a paused replica held back.
    pub(super) stalled: u8,
}

#[cfg(test)]
impl Sent {
    /// `copies` copies, `elsewhere` of them on another replica than the first's, `stalled` of
    /// them held back by a paused replica.
    pub(super) fn test(copies: u8, elsewhere: u8, stalled: u8) -> Self {
        Self {
            copies,
            first: 0,
            elsewhere,
            stalled,
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
    /// Each replica's pauses, by replica index.
    pauses: Vec<Mutex<Pauses>>,
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
        let pauses = (0..REPLICAS)
            .map(|index| Mutex::new(Pauses::new(seed, index)))
            .collect();
        Self {
            shared: Arc::new(Shared {
                seed,
                backends,
                pauses,
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

    /// Notes that a copy of request `id` reached replica `index`.
    fn note(&self, id: u32, index: u8) {
        let mut sent = self.shared.sent.lock();
        let Some(entry) = sent.get_mut(id as usize) else {
            return;
        };
        if entry.copies == 0 {
            entry.first = index;
        } else {
            if index != entry.first {
                entry.elsewhere = entry.elsewhere.saturating_add(1);
            }
            let at = self.shared.start.elapsed();
            self.shared.hedged_at.lock().push(at);
        }
        entry.copies = entry.copies.saturating_add(1);
    }

    /// Notes that a paused replica held back the response to a copy of request `id`.
    fn note_stall(&self, id: u32) {
        if let Some(entry) = self.shared.sent.lock().get_mut(id as usize) {
            entry.stalled = entry.stalled.saturating_add(1);
        }
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

    /// Whether replica `index` is paused now: a response it finishes now is held back
    /// [`STALL`]. Asked at times that never go back (the simulation's clock).
    fn paused(&self, index: u8) -> bool {
        let at = self.shared.start.elapsed();
        self.shared.pauses[usize::from(index)].lock().at(at)
    }
}

/// One replica's pauses: [`PAUSE`] long, apart by exponential gaps of mean
/// `PAUSE × (1 − PAUSED_SHARE) / PAUSED_SHARE` (1.98 s), so that the replica is paused
/// [`PAUSED_SHARE`] of its time; drawn lazily, as time goes by, from the seed and the replica's
/// index alone (the same pauses in every stack).
#[derive(Debug)]
struct Pauses {
    rng: fastrand::Rng,
    /// The current or next pause, since the fleet was built.
    start: Duration,
    end: Duration,
}

impl Pauses {
    fn new(seed: u64, index: usize) -> Self {
        let mut pauses = Self {
            rng: fastrand::Rng::with_seed(mix(seed, index as u64, u64::MAX)),
            start: Duration::ZERO,
            end: Duration::ZERO,
        };
        pauses.draw_next();
        pauses
    }

    /// The next pause, after the current one's end.
    fn draw_next(&mut self) {
        let per_second = PAUSED_SHARE / ((1.0 - PAUSED_SHARE) * PAUSE.as_secs_f64());
        self.start = self
            .end
            .saturating_add(poisson_gap(&mut self.rng, per_second));
        self.end = self.start.saturating_add(PAUSE);
    }

    /// Whether the replica is paused at `at`; `at` must not go back from one call to the next.
    fn at(&mut self, at: Duration) -> bool {
        while at >= self.end {
            self.draw_next();
        }
        at >= self.start
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
/// response takes the rest of its time: the slowdown, and a stall if the replica is paused when
/// the work ends.
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
        fleet.note(request.id, self.index);
        let service = fleet.cost(request);
        let backend = &fleet.shared.backends[usize::from(self.index)];
        // The simulation runs on one thread: the booking below draws this service time.
        let booked = backend
            .set_service_time(Distribution::Fixed(service))
            .map(|()| Service::<()>::call(&mut backend.clone(), ()));
        let slowdown = fleet.shared.slowdown.load(Ordering::Relaxed).max(1);
        let slowed = service * (slowdown - 1);
        let (fleet, index) = (fleet.clone(), self.index);
        Box::pin(async move {
            booked?.await?;
            let stall = if fleet.paused(index) {
                fleet.note_stall(request.id);
                STALL
            } else {
                Duration::ZERO
            };
            let after = slowed + stall;
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
            // No replica is paused this early at this seed: both took the request's own time.
            assert!(first < STALL && again.elapsed() < 3 * STALL);
            let heavy = Request { id: 2, heavy: true };
            assert_eq!(fleet.cost(heavy), fleet.cost(request) * HEAVY_COST);
            let start = tokio::time::Instant::now();
            replicas[1].clone().oneshot(heavy).await.expect("served");
            assert!(start.elapsed() >= fleet.cost(heavy));
        });
    }

    #[test]
    fn each_replica_is_paused_about_one_percent_of_its_time_at_its_own_times() {
        let mut replicas: Vec<Pauses> = (0..2).map(|index| Pauses::new(1, index)).collect();
        // Every 10 ms for 20 000 s: about a thousand pauses each.
        let step = Duration::from_millis(10);
        let (mut paused, mut both) = ([0_u32; 2], 0_u32);
        for n in 0..2_000_000_u32 {
            let at = step * n;
            let now = [replicas[0].at(at), replicas[1].at(at)];
            for (count, now) in paused.iter_mut().zip(now) {
                *count += u32::from(now);
            }
            both += u32::from(now[0] && now[1]);
        }
        for count in paused {
            assert!((18_000..22_000).contains(&count), "{count}");
        }
        // Two replicas pause apart (by chance together about 1 % of the time one is paused).
        assert!(both < 1_000, "{both}");
        // The same seed, the same pauses.
        let mut again = Pauses::new(1, 0);
        let mut first = Pauses::new(1, 0);
        assert_eq!((again.start, again.end), (first.start, first.end));
        let later = first.end + Duration::from_secs(100);
        assert_eq!(again.at(later), first.at(later));
        assert_eq!((again.start, again.end), (first.start, first.end));
    }

    #[test]
    fn a_paused_replica_stalls_every_response_it_finishes_a_hedge_elsewhere_does_not() {
        simulate(async {
            let fleet = Fleet::new(1, 4);
            let replicas = fleet.replicas();
            let pause = Pauses::new(1, 0);
            // A request shorter than a quarter of a pause.
            let request = (0..4)
                .map(|id| Request { id, heavy: false })
                .find(|&request| fleet.cost(request) < PAUSE / 4)
                .expect("a short request");
            let cost = fleet.cost(request);
            // Into replica 0's first pause (replica 2 is not paused then at this seed).
            tokio::time::sleep(pause.start + Duration::from_millis(1)).await;
            let mut other = Pauses::new(1, 2);
            assert!(!other.at(pause.start) && other.start > pause.end + STALL);
            let timed = move |replica: Replica| async move {
                let start = tokio::time::Instant::now();
                replica.oneshot(request).await.expect("served");
                start.elapsed()
            };
            // The first copy, and a hedge to the same replica a quarter of a pause later: both end
            // in the pause, both held back.
            let first = tokio::spawn(timed(replicas[0].clone()));
            tokio::time::sleep(PAUSE / 4).await;
            let same = tokio::spawn(timed(replicas[0].clone()));
            let elsewhere = timed(replicas[2].clone()).await;
            let (first, same) = (first.await.expect("ran"), same.await.expect("ran"));
            assert!(first >= cost + STALL, "{first:?}");
            assert!(same >= cost + STALL, "{same:?}");
            // A copy on a replica that is not paused takes the request's own time.
            assert!(elsewhere < cost + Duration::from_millis(2), "{elsewhere:?}");
            let sent = fleet.sent()[request.id as usize];
            assert_eq!((sent.copies, sent.elsewhere, sent.stalled), (3, 1, 2));
            // After the pause, replica 0 answers in the request's own time again.
            tokio::time::sleep_until(fleet.shared.start + pause.end + STALL).await;
            assert!(timed(replicas[0].clone()).await < cost + Duration::from_millis(2));
        });
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
            // 4× the cost (whole milliseconds: the timer's); replica 0 is not paused this early.
            assert!(Pauses::new(1, 0).start > Duration::from_secs(1));
            assert!(took >= 4 * cost, "{took:?} for {cost:?}");
            assert!(took <= 4 * cost + Duration::from_millis(2));
            let work = fleet.shared.backends[0].work();
            assert_eq!(work.busy, cost);
        });
    }
}
