//! `fleet-storm`'s ten backends: their capacity in each phase, what they answer, and what
//! they count.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;
use tower::{BoxError, Service};

/// The backends.
pub(super) const BACKENDS: usize = 10;
/// The fleet's capacity at full strength, in requests per second (each backend a tenth).
pub(super) const CAPACITY: f64 = 6_000.0;
/// How long a backend works on a request it admits.
const SERVICE: Duration = Duration::from_millis(5);
/// How long a call to a backend that is down takes to fail (a refused connection).
const REFUSED: Duration = Duration::from_millis(1);
/// The burst a backend admits above its rate: 50 ms of capacity.
const BURST: Duration = Duration::from_millis(50);
/// The pushback a backend answers with when it sheds: "retry after 1 s", as
/// `rampart::grpc::GrpcStatus` maps a limiter's refusal.
pub(super) const PUSHBACK: Duration = Duration::from_secs(1);
/// The width of the counts' bins.
pub(super) const BIN: Duration = Duration::from_secs(1);

/// The backends' capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Full capacity.
    Full,
    /// Every backend is down: every call is refused.
    Down,
    /// Half capacity.
    Half,
}

impl Phase {
    /// Each backend's capacity, in requests per second.
    fn rate(self) -> f64 {
        let share = match self {
            Self::Full => 1.0,
            Self::Down => 0.0,
            Self::Half => 0.5,
        };
        share * CAPACITY / BACKENDS as f64
    }
}

/// A backend's answer when it sheds: overloaded, retry after [`PUSHBACK`] (gRPC's
/// `UNAVAILABLE` with `grpc-retry-pushback-ms: 1000`).
#[derive(Debug)]
pub(super) struct Shed;

impl std::fmt::Display for Shed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("overloaded: retry after 1 s")
    }
}

impl std::error::Error for Shed {}

/// A call to a backend that is down.
#[derive(Debug)]
pub(super) struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused")
    }
}

impl std::error::Error for Down {}

/// A client request: which client sent it, and how many attempts of it reached a backend
/// (every attempt is a clone of it, so they share the count).
#[derive(Debug)]
pub(super) struct Ticket {
    client: u32,
    attempts: AtomicU32,
}

/// A request, as a stack sends (and clones) it.
pub(super) type Request = Arc<Ticket>;

/// A new request from `client`.
pub(super) fn request(client: u32) -> Request {
    Arc::new(Ticket {
        client,
        attempts: AtomicU32::new(0),
    })
}

/// What the backends counted in one bin.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counts {
    /// First attempts that reached a backend.
    pub(super) first: u64,
    /// Retries that reached a backend.
    pub(super) retries: u64,
    /// Calls admitted and served.
    pub(super) accepted: u64,
    /// First attempts from clients that had received a pushback less than a second before.
    pub(super) first_after_pushback: u64,
    /// Retries from such clients.
    pub(super) retries_after_pushback: u64,
}

impl Counts {
    /// Calls that reached a backend.
    pub(super) fn calls(&self) -> u64 {
        self.first + self.retries
    }

    fn add(&mut self, other: &Self) {
        self.first += other.first;
        self.retries += other.retries;
        self.accepted += other.accepted;
        self.first_after_pushback += other.first_after_pushback;
        self.retries_after_pushback += other.retries_after_pushback;
    }
}

/// The sum of `bins`.
pub(super) fn total<'a>(bins: impl IntoIterator<Item = &'a Counts>) -> Counts {
    bins.into_iter().fold(Counts::default(), |mut sum, bin| {
        sum.add(bin);
        sum
    })
}

/// One backend's admission: a token bucket filled at its phase's rate.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    filled_at: Duration,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    buckets: [Bucket; BACKENDS],
    /// The backend the next call goes to (round robin).
    next: usize,
    /// When each client last received a pushback.
    pushed_back: Vec<Option<Duration>>,
    bins: Vec<Counts>,
}

/// The ten backends, shared by every client's transport.
#[derive(Debug)]
pub(super) struct Fleet {
    state: Mutex<State>,
    start: Instant,
}

/// How a backend answers a call.
enum Answer {
    Serve,
    Shed,
    Refuse,
}

impl Fleet {
    /// The backends at full capacity, for `clients` clients, counting over `duration`.
    pub(super) fn new(clients: usize, duration: Duration) -> Arc<Self> {
        let bins = (duration.as_secs_f64() / BIN.as_secs_f64()).ceil() as usize;
        let full = Bucket {
            tokens: Phase::Full.rate() * BURST.as_secs_f64(),
            filled_at: Duration::ZERO,
        };
        Arc::new(Self {
            state: Mutex::new(State {
                phase: Phase::Full,
                buckets: [full; BACKENDS],
                next: 0,
                pushed_back: vec![None; clients],
                bins: vec![Counts::default(); bins],
            }),
            start: Instant::now(),
        })
    }

    /// Sets the backends' capacity from now on.
    pub(super) fn set_phase(&self, phase: Phase) {
        let now = self.start.elapsed();
        let mut state = self.state.lock();
        let old = state.phase;
        for bucket in &mut state.buckets {
            fill(bucket, old, now);
        }
        state.phase = phase;
    }

    /// The counts of every bin.
    pub(super) fn bins(&self) -> Vec<Counts> {
        self.state.lock().bins.clone()
    }

    /// A call of `ticket`'s request reaches the next backend: counted, and admitted if the
    /// backend has the capacity.
    fn call(&self, ticket: &Ticket) -> Answer {
        let now = self.start.elapsed();
        let retry = ticket.attempts.fetch_add(1, Ordering::Relaxed) > 0;
        let mut state = self.state.lock();
        let client = ticket.client as usize;
        let after_pushback =
            state.pushed_back[client].is_some_and(|at| now.saturating_sub(at) < PUSHBACK);
        let last = state.bins.len() - 1;
        let bin = &mut state.bins[((now.as_secs_f64() / BIN.as_secs_f64()) as usize).min(last)];
        if retry {
            bin.retries += 1;
            bin.retries_after_pushback += u64::from(after_pushback);
        } else {
            bin.first += 1;
            bin.first_after_pushback += u64::from(after_pushback);
        }
        let phase = state.phase;
        if phase == Phase::Down {
            return Answer::Refuse;
        }
        let index = state.next;
        state.next = (index + 1) % BACKENDS;
        let bucket = &mut state.buckets[index];
        fill(bucket, phase, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            state.bins[((now.as_secs_f64() / BIN.as_secs_f64()) as usize).min(last)].accepted += 1;
            Answer::Serve
        } else {
            state.pushed_back[client] = Some(now);
            Answer::Shed
        }
    }
}

/// Fills `bucket` at `phase`'s rate up to `now`.
fn fill(bucket: &mut Bucket, phase: Phase, now: Duration) {
    let rate = phase.rate();
    let elapsed = now.saturating_sub(bucket.filled_at).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * rate).min((rate * BURST.as_secs_f64()).max(1.0));
    bucket.filled_at = now;
}

/// A client's connection to the fleet: each call goes to the next backend.
#[derive(Debug, Clone)]
pub(super) struct Transport(pub Arc<Fleet>);

impl Service<Request> for Transport {
    type Response = ();
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        match self.0.call(&request) {
            Answer::Serve => Box::pin(async {
                tokio::time::sleep(SERVICE).await;
                Ok(())
            }),
            Answer::Shed => Box::pin(std::future::ready(Err(Shed.into()))),
            Answer::Refuse => Box::pin(async {
                tokio::time::sleep(REFUSED).await;
                Err(Down.into())
            }),
        }
    }
}
