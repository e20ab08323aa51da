//! The stacks in front of the server, and how each request is sent through them with its
//! deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_core::{
    Clock, Deadline, DeadlineExceeded, RequestContext, TokioClock, current_deadline,
};
use rampart_fault::{
    CoDel, QueueDiscipline, QueueOrder, QueueTimeout, SimBackend, SimConfig, SimWork,
};
use rampart_ratelimit::{BbrConfig, BbrLimitLayer, Gate, Overloaded, WouldMissDeadline};
use tokio::time::Instant;
use tower::{BoxError, Layer, Service, ServiceExt as _};

use super::super::overload::sampled_cpu;
use crate::sim::{Call, Outcome, Record, Sampler, drive_each};

/// `CoDel`'s target and interval, Facebook's (the queue's timeout while it stands, and otherwise).
const CODEL: CoDel = CoDel::new(Duration::from_millis(5), Duration::from_millis(100));
/// Adaptive LIFO counts the queue as backed up when its oldest request has waited longer than
/// `CoDel`'s target.
const BACKED_UP: Duration = Duration::from_millis(5);

/// A stack in front of the simulated server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stack {
    /// The server alone, its queue FIFO.
    Fifo,
    /// A layer refusing requests already expired as they reach the server, and a queue dropping
    /// those that expire while they wait.
    ExpiredOnly,
    /// `CoDel` on the server's queue.
    CoDel,
    /// Adaptive LIFO on the server's queue.
    AdaptiveLifo,
    /// rampart's BBR, the requests carrying no deadline in their context.
    BbrBlind,
    /// rampart's BBR, each request's deadline current.
    BbrDeadline,
}

impl Stack {
    /// Whether the stack sees each request's deadline in its context.
    fn carries_deadline(self) -> bool {
        self != Self::BbrBlind
    }

    fn discipline(self) -> QueueDiscipline {
        let fifo = QueueDiscipline::default();
        match self {
            Self::ExpiredOnly => fifo.with_drop_expired(true),
            Self::CoDel => fifo.with_codel(CODEL),
            Self::AdaptiveLifo => fifo.with_order(QueueOrder::AdaptiveLifo {
                backed_up: BACKED_UP,
            }),
            Self::Fifo | Self::BbrBlind | Self::BbrDeadline => fifo,
        }
    }
}

/// Why a stack refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The limiter's load shedding (`Overloaded`).
    Overloaded,
    /// The limiter predicted it would miss its deadline (`WouldMissDeadline`).
    WouldMiss,
    /// Its deadline had passed (`DeadlineExceeded`).
    Expired,
    /// `CoDel` dropped it from the queue (`QueueTimeout`).
    QueueTimeout,
}

impl Refusal {
    /// The refusal `error` is, if it is one.
    fn of(error: &BoxError) -> Option<Self> {
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
        while let Some(error) = current {
            if error.is::<WouldMissDeadline>() {
                return Some(Self::WouldMiss);
            }
            if error.is::<DeadlineExceeded>() {
                return Some(Self::Expired);
            }
            if error.is::<Overloaded>() {
                return Some(Self::Overloaded);
            }
            if error.is::<QueueTimeout>() {
                return Some(Self::QueueTimeout);
            }
            current = error.source();
        }
        None
    }
}

/// A refusal, and how long after the stack was called it came.
pub(super) type Refused = (Refusal, Duration);

/// What a stack's run leaves: the clients' records, and each request's refusal (by arrival
/// index).
pub(super) struct Run {
    pub(super) records: Vec<Record>,
    pub(super) refusals: Vec<Option<Refused>>,
}

/// Runs one stack on `arrivals`, request `n` given `deadlines[n]` from its arrival; samples the
/// server's work (`[busy ns, late busy ns]`) at the sampler's instants.
pub(super) async fn run_stack(
    stack: Stack,
    config: SimConfig,
    arrivals: &[Duration],
    deadlines: &[Duration],
    mut sampler: Sampler,
) -> Run {
    // One clock for the limiter, the server and the deadlines: clones share its origin.
    let clock = TokioClock::new();
    let backend = SimBackend::new_with(config.with_discipline(stack.discipline()), clock)
        .expect("a valid simulated server");
    let server = AtServer(backend.clone());
    let send: Box<dyn Fn(Deadline) -> Answer> = match stack {
        Stack::Fifo | Stack::CoDel | Stack::AdaptiveLifo => sender(server),
        Stack::ExpiredOnly => sender(RefuseExpired {
            inner: server,
            clock,
        }),
        Stack::BbrBlind | Stack::BbrDeadline => {
            let limiter = BbrConfig::default()
                .with_gate(Gate::Cpu)
                .build_with(clock, sampled_cpu(&backend))
                .expect("a valid limiter");
            sender(BbrLimitLayer::from_limiter(Arc::new(limiter)).layer(server))
        }
    };
    let refusals = Arc::new(Mutex::new(vec![None; arrivals.len()]));
    let noted = Arc::clone(&refusals);
    let records = drive_each(
        arrivals,
        |n| deadlines[n],
        async |n| {
            let deadline = Deadline::after(clock.now(), deadlines[n]);
            let mut context = RequestContext::new();
            if stack.carries_deadline() {
                context = context.with_deadline(deadline);
            }
            let answer = send(deadline);
            let called = Instant::now();
            Call::new(context.scope(noting(answer, called, Arc::clone(&noted), n)))
        },
        |at| sampler.tick(at, || work_counts(backend.work())),
    )
    .await;
    let refusals = refusals.lock().clone();
    Run { records, refusals }
}

/// The server's work as sampled counts: `[busy ns, late busy ns]`.
fn work_counts(work: SimWork) -> Vec<u64> {
    let nanos = |duration: Duration| u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    vec![nanos(work.busy), nanos(work.late_busy)]
}

/// A request's answer on its way.
type Answer = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// Sends each request (its deadline the request itself) through a clone of `service`.
fn sender<S>(service: S) -> Box<dyn Fn(Deadline) -> Answer>
where
    S: Service<Deadline, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    Box::new(move |deadline| {
        let call = service.clone().oneshot(deadline);
        Box::pin(async move { call.await.map(drop) })
    })
}

/// The outcome of `answer`, noting in `refusals` why request `n` was refused, if it was, and
/// how long after `called` (the stack's call) the refusal came.
async fn noting(
    answer: Answer,
    called: Instant,
    refusals: Arc<Mutex<Vec<Option<Refused>>>>,
    n: usize,
) -> Outcome {
    match answer.await {
        Ok(()) => Outcome::Ok,
        Err(error) => match Refusal::of(&error) {
            Some(refusal) => {
                refusals.lock()[n] = Some((refusal, called.elapsed()));
                Outcome::Refused
            }
            None => Outcome::Err,
        },
    }
}

/// The server as the stacks call it: a request is its deadline, made current where the server
/// takes the request (so that the server tells late work from useful work even behind a stack
/// that does not carry deadlines; a context that carries one already carries the same).
#[derive(Debug, Clone)]
struct AtServer(SimBackend);

impl Service<Deadline> for AtServer {
    type Response = rampart_fault::Served;
    type Error = BoxError;
    type Future = rampart_fault::SimFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::<()>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, deadline: Deadline) -> Self::Future {
        let _current = RequestContext::current().with_deadline(deadline).enter();
        self.0.call(())
    }
}

/// Refuses a request whose current deadline has passed as it arrives, with `DeadlineExceeded`
/// (Finagle's rule: only the already expired are refused).
#[derive(Debug, Clone)]
struct RefuseExpired<S> {
    inner: S,
    clock: TokioClock,
}

impl<S> Service<Deadline> for RefuseExpired<S>
where
    S: Service<Deadline, Error = BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Deadline) -> Self::Future {
        if current_deadline().is_some_and(|deadline| deadline.is_expired(self.clock.now())) {
            return Box::pin(std::future::ready(Err(DeadlineExceeded::new().into())));
        }
        Box::pin(self.inner.call(request))
    }
}
