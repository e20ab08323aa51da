//! The balancer under test beside the model of what it must count: its endpoints (discovery,
//! readiness, statistics) and its requests, and the checks made after every operation.

#[path = "readiness.rs"]
mod readiness;
#[path = "requests.rs"]
mod requests;

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rampart_balancer::{P2c, P2cConfig, PeakSuccess, ResponseFuture, WhenEmpty};
use rampart_core::{DefaultClassifier, ManualClock};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tower::discover::Change;

use crate::endpoints::{Call, CallFuture, Command, Endpoint, Endpoints};
use crate::harness::{Cancellation, Coverage};
use crate::stats::Stats;
use crate::{Case, GOALS, KEYS, Op, STEPPED_BACK, YEAR_JUMP};
use rampart_testkit::sequence;

type Discovery = UnboundedReceiverStream<Result<Change<u8, Endpoint>, Infallible>>;
type Balancer = P2c<Discovery, u32, ManualClock, PeakSuccess>;
/// The response future under test.
type Response = ResponseFuture<CallFuture, ManualClock, DefaultClassifier>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No endpoint was chosen: the request fails with `NoEndpoints`.
    NoEndpoint,
    /// Sent as call number `call`, counted in statistics `stats` from `started`.
    Sent {
        call: usize,
        stats: usize,
        started: Duration,
    },
    /// Its response panicked and the panic was caught: the future is kept until dropped.
    Poisoned { call: usize },
}

struct Request {
    id: u32,
    /// Taken while it is polled.
    future: Option<Pin<Box<Response>>>,
    phase: Phase,
    polled: bool,
}

/// A discovery change sent but not yet applied (the balancer applies them in `poll_ready`).
#[derive(Debug, Clone, Copy)]
enum Sent {
    Insert { key: u8, instance: usize },
    Remove(u8),
}

/// An endpoint as the balancer must see it.
#[derive(Debug, Clone, Copy)]
struct Listed {
    key: u8,
    instance: usize,
    stats: usize,
    /// In the ready list (believed ready), rather than the waiting list.
    ready: bool,
    picks: u64,
}

/// The balancer under test beside the model of what it must count.
pub(crate) struct World<'a> {
    balancer: Balancer,
    endpoints: Endpoints,
    registry: UnboundedSender<Result<Change<u8, Endpoint>, Infallible>>,
    clock: ManualClock,
    when_empty: WhenEmpty,
    tau: Duration,
    coverage: &'a Coverage<{ GOALS.len() }>,
    // The model.
    /// Tokio's time since the runtime started.
    now: Duration,
    undelivered: Vec<Sent>,
    listed: Vec<Listed>,
    /// The newest service instance of each key.
    newest: [Option<usize>; KEYS as usize],
    stats: Vec<Stats>,
    /// The endpoint `poll_ready` chose, and when.
    chosen: Option<(u8, Duration)>,
    fail_next: bool,
    /// When the empty-set timer fires, while one runs.
    empty_deadline: Option<Duration>,
    panic_next_call: bool,
    calls: Vec<(Call, Command)>,
    requests: Vec<Request>,
    next_id: u32,
}

impl<'a> World<'a> {
    pub(crate) fn new(case: &Case, coverage: &'a Coverage<{ GOALS.len() }>) -> Self {
        let (registry, updates) = unbounded_channel();
        let clock = ManualClock::starting_at(case.start);
        let config = P2cConfig {
            tau: case.tau,
            force_pick_after: case.force_pick_after,
            when_empty: case.when_empty,
            ..P2cConfig::default()
        }
        .with_seed(case.seed);
        let balancer = P2c::<_, u32, _, _>::new_with(
            UnboundedReceiverStream::new(updates),
            config,
            clock.clone(),
            PeakSuccess,
        )
        .expect("a valid config");
        Self {
            balancer,
            endpoints: Endpoints::default(),
            registry,
            clock,
            when_empty: case.when_empty,
            tau: case.tau,
            coverage,
            now: Duration::ZERO,
            undelivered: Vec::new(),
            listed: Vec::new(),
            newest: [None; KEYS as usize],
            stats: Vec::new(),
            chosen: None,
            fail_next: false,
            empty_deadline: None,
            panic_next_call: false,
            calls: Vec::new(),
            requests: Vec::new(),
            next_id: 0,
        }
    }

    fn send(&self, change: Change<u8, Endpoint>) {
        self.registry
            .send(Ok(change))
            .unwrap_or_else(|_| panic!("the balancer holds the discovery stream"));
    }

    fn position(&self, key: u8) -> Option<usize> {
        self.listed.iter().position(|listed| listed.key == key)
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let violations = self.endpoints.violations();
        prop_assert!(violations.is_empty(), "{:?}", violations);
        let calls: Vec<Call> = self.calls.iter().map(|(call, _)| *call).collect();
        prop_assert_eq!(self.endpoints.log().calls(), calls, "the endpoints' calls");
        let mut seen = self.balancer.snapshot();
        seen.sort_by_key(|endpoint| endpoint.key);
        let mut listed = self.listed.clone();
        listed.sort_by_key(|listed| listed.key);
        let keys = |keys: &mut dyn Iterator<Item = u8>| keys.collect::<Vec<u8>>();
        prop_assert_eq!(
            keys(&mut seen.iter().map(|endpoint| endpoint.key)),
            keys(&mut listed.iter().map(|listed| listed.key)),
            "the endpoints"
        );
        for (seen, listed) in seen.iter().zip(&listed) {
            prop_assert_eq!(seen.picks, listed.picks, "endpoint {} picks", listed.key);
            prop_assert_eq!(
                seen.ready,
                listed.ready,
                "endpoint {} in the ready list",
                listed.key
            );
            self.stats[listed.stats].check(seen)?;
        }
        prop_assert_eq!(self.balancer.len(), self.listed.len());
        let ready = self.listed.iter().filter(|listed| listed.ready).count();
        prop_assert_eq!(self.balancer.ready_len(), ready);
        // The model's own books: in flight = requests sent and not ended.
        let mut inflight = vec![0_u64; self.stats.len()];
        for request in &self.requests {
            if let Phase::Sent { stats, .. } = request.phase {
                inflight[stats] += 1;
            }
        }
        let counted: Vec<u64> = self.stats.iter().map(|stats| stats.inflight).collect();
        prop_assert_eq!(counted, inflight, "the model's in-flight counts");
        Ok(())
    }
}

impl sequence::World for World<'_> {
    type Op = Op;

    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Insert(key, readiness) => {
                let (instance, service) = self.endpoints.instance(readiness);
                self.newest[usize::from(key)] = Some(instance);
                self.send(Change::Insert(key, service));
                self.undelivered.push(Sent::Insert { key, instance });
            }
            Op::Remove(key) => {
                self.send(Change::Remove(key));
                self.undelivered.push(Sent::Remove(key));
            }
            Op::SetReadiness(key, readiness) => {
                if let Some(instance) = self.newest[usize::from(key)] {
                    self.endpoints.set_readiness(instance, readiness);
                }
            }
            Op::PollReady => {
                self.poll_ready()?;
            }
            Op::Call => self.call()?,
            Op::ReadyCall => {
                if self.poll_ready()? {
                    self.call()?;
                }
            }
            Op::ArmCallPanic => {
                self.endpoints.log().arm_call_panic();
                self.panic_next_call = true;
            }
            Op::Resolve(at, command) => self.resolve(at, command),
            Op::Poll(at, catch) => {
                let pollable: Vec<usize> = (0..self.requests.len())
                    .filter(|&i| !matches!(self.requests[i].phase, Phase::Poisoned { .. }))
                    .collect();
                if !pollable.is_empty() {
                    let request = self.requests.remove(pollable[at.index(pollable.len())]);
                    self.poll(request, catch)?;
                }
            }
            Op::Cancel(at, how) => {
                if let Some(request) = sequence::remove_at(&mut self.requests, at) {
                    self.cancel(request, how);
                }
            }
            Op::Time(step) => {
                let goals = [YEAR_JUMP, STEPPED_BACK];
                step.apply(&self.clock, &mut self.now, self.coverage, goals)
                    .await;
            }
        }
        self.check()
    }

    /// Cancels every request left, and checks that their calls ended with them.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        while let Some(request) = self.requests.pop() {
            self.cancel(request, Cancellation::Dropped);
        }
        self.check()?;
        prop_assert!(
            self.endpoints.log().calls().iter().all(|call| !call.live),
            "every call ends with its request"
        );
        Ok(())
    }
}
