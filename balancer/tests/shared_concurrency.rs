//! Many tasks of a multi-threaded runtime share one `SharedP2c` while endpoints come and go
//! and turn busy: every request is answered by exactly one endpoint, the endpoints' own call
//! counts add up to the requests sent, the balancer's pick counts equal them key by key, and
//! nothing is left in flight. A lost wake-up would leave a task waiting: the test would time
//! out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_balancer::{P2cConfig, PeakSuccess, SharedP2c, WhenEmpty};
use rampart_core::ManualClock;
use tower::{BoxError, Service, ServiceExt};

const TASKS: u64 = 8;
const REQUESTS: u64 = 2_000;
/// Keys `0..KEYS`; key 0 is never removed.
const KEYS: usize = 6;

/// One endpoint instance (a key's service between its insertion and its removal): counts its
/// calls, answers with its key and the request after yielding once (so that requests overlap
/// in flight), and is ready only while its gate is open.
#[derive(Clone)]
struct Instance {
    key: usize,
    calls: Arc<AtomicU64>,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    shut: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Gate {
    fn set_shut(&self, shut: bool) {
        self.shut.store(shut, Ordering::SeqCst);
        if !shut {
            for waker in std::mem::take(&mut *self.wakers.lock()) {
                waker.wake();
            }
        }
    }
}

impl Service<u64> for Instance {
    type Response = (usize, u64);
    type Error = BoxError;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<(usize, u64), BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.gate.shut.load(Ordering::SeqCst) {
            self.gate.wakers.lock().push(cx.waker().clone());
            // Opened between the check and the push: its wakers are gone, so look again.
            if self.gate.shut.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u64) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let key = self.key;
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok((key, request))
        })
    }
}

/// Every instance ever inserted, with the epoch of its key it belongs to.
#[derive(Default)]
struct Ledger {
    instances: Vec<(usize, u64, Arc<AtomicU64>)>,
    /// Each key's current epoch: bumped by each removal.
    epochs: [u64; KEYS],
    present: [bool; KEYS],
    gates: Vec<Arc<Gate>>,
}

impl Ledger {
    fn insert(&mut self, balancer: &SharedP2c<usize, Instance>, key: usize) -> Arc<Gate> {
        let calls = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(Gate::default());
        self.instances
            .push((key, self.epochs[key], Arc::clone(&calls)));
        self.present[key] = true;
        self.gates.push(Arc::clone(&gate));
        balancer.insert(
            key,
            Instance {
                key,
                calls,
                gate: Arc::clone(&gate),
            },
        );
        gate
    }

    fn remove(&mut self, balancer: &SharedP2c<usize, Instance>, key: usize) {
        assert!(balancer.remove(&key));
        self.present[key] = false;
        self.epochs[key] += 1;
    }

    /// The calls of `key`'s instances since its last removal.
    fn current_calls(&self, key: usize) -> u64 {
        self.instances
            .iter()
            .filter(|(k, epoch, _)| *k == key && *epoch == self.epochs[key])
            .map(|(_, _, calls)| calls.load(Ordering::Relaxed))
            .sum()
    }
}

/// Inserts and removes keys `1..KEYS` at random (and, with `busy`, shuts and opens gates)
/// until `stop`; returns the number of changes.
fn churn(
    balancer: &SharedP2c<usize, Instance>,
    ledger: &Arc<Mutex<Ledger>>,
    stop: &Arc<AtomicBool>,
    busy: bool,
) -> tokio::task::JoinHandle<u64> {
    let (balancer, ledger, stop) = (balancer.clone(), Arc::clone(ledger), Arc::clone(stop));
    tokio::spawn(async move {
        let mut rng = fastrand::Rng::with_seed(11);
        let mut changes = 0_u64;
        while !stop.load(Ordering::Relaxed) {
            {
                let mut ledger = ledger.lock();
                let key = rng.usize(1..KEYS);
                if ledger.present[key] {
                    ledger.remove(&balancer, key);
                } else {
                    ledger.insert(&balancer, key);
                }
                if busy {
                    let gate = rng.usize(..ledger.gates.len());
                    ledger.gates[gate].set_shut(rng.bool());
                }
            }
            changes += 1;
            tokio::task::yield_now().await;
        }
        changes
    })
}

/// Runs `TASKS` tasks of `REQUESTS` requests each over one balancer while a churn task
/// inserts and removes keys 1.. and, with `busy`, shuts and opens gates; then checks the
/// counts.
async fn run(busy: bool) {
    let balancer = SharedP2c::empty(
        P2cConfig::default()
            .with_seed(3)
            .with_when_empty(WhenEmpty::Wait),
    )
    .expect("valid");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let always = ledger.lock().insert(&balancer, 0);
    let stop = Arc::new(AtomicBool::new(false));

    let churn = churn(&balancer, &ledger, &stop, busy);

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let mut handle = balancer.clone();
            tokio::spawn(async move {
                let mut answered_by = vec![0_u64; KEYS];
                for n in 0..REQUESTS {
                    let request = task * REQUESTS + n;
                    let (key, answer) = handle
                        .ready()
                        .await
                        .expect("waits, never fails")
                        .call(request)
                        .await
                        .expect("answered");
                    assert_eq!(answer, request, "each request answered by its own call");
                    answered_by[key] += 1;
                }
                answered_by
            })
        })
        .collect();
    let mut answered_by = vec![0_u64; KEYS];
    let finished = tokio::time::timeout(Duration::from_secs(60), async {
        for task in tasks {
            for (total, n) in answered_by.iter_mut().zip(task.await.expect("no panic")) {
                *total += n;
            }
        }
    })
    .await;
    // Open every gate before judging, so that a lost wake-up shows as the timeout alone.
    stop.store(true, Ordering::Relaxed);
    let changes = churn.await.expect("no panic");
    always.set_shut(false);
    assert!(finished.is_ok(), "a task never finished: a lost wake-up");

    let ledger = ledger.lock();
    let sent = TASKS * REQUESTS;
    let calls: u64 = ledger
        .instances
        .iter()
        .map(|(_, _, calls)| calls.load(Ordering::Relaxed))
        .sum();
    assert_eq!(calls, sent, "every request reached exactly one endpoint");
    assert_eq!(answered_by.iter().sum::<u64>(), sent);
    let snapshot = balancer.snapshot();
    assert_eq!(
        snapshot.len(),
        ledger.present.iter().filter(|p| **p).count()
    );
    for endpoint in &snapshot {
        assert_eq!(endpoint.inflight, 0, "{endpoint:?}");
        assert_eq!(
            endpoint.picks,
            ledger.current_calls(endpoint.key),
            "picks since the key's last insertion: {endpoint:?}"
        );
    }
    assert!(
        changes >= 10,
        "the endpoints changed while the tasks picked: {changes}"
    );
    let others: u64 = answered_by[1..].iter().sum();
    assert!(
        others > 0,
        "keys that came and went took requests: {answered_by:?}"
    );
    eprintln!("{changes} changes; requests per key {answered_by:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_pick_while_endpoints_come_and_go_and_every_count_adds_up() {
    run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_pick_while_endpoints_come_go_and_turn_busy_and_none_waits_for_ever() {
    run(true).await;
}

/// Each thread picks and records on its own lane of an endpoint's statistics; a request picked
/// on one thread and completed or dropped on another ends on the lane it was picked on: the
/// snapshot counts every pick and nothing stays in flight.
#[test]
fn requests_picked_on_one_thread_and_ended_on_another_leave_nothing_in_flight() {
    const PER_THREAD: u32 = 100;
    type Answer = std::pin::Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;
    // Odd requests never answer (they are dropped), even ones answer at once.
    let endpoint = tower::service_fn(|n: u32| -> Answer {
        if n % 2 == 1 {
            Box::pin(std::future::pending())
        } else {
            Box::pin(async move { Ok(n) })
        }
    });
    // No seed: each CPU has its lane (a seeded balancer keeps one).
    let balancer = SharedP2c::from_services([endpoint; 2], P2cConfig::default()).expect("valid");
    let pickers: Vec<_> = (0..4)
        .map(|_| {
            let balancer = balancer.clone();
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                for n in 0..PER_THREAD {
                    let mut handle = balancer.clone();
                    let ready = block_on(handle.ready()).expect("ready");
                    sent.push((n, ready.call(n)));
                }
                sent
            })
        })
        .collect();
    let sent: Vec<_> = pickers
        .into_iter()
        .flat_map(|picker| picker.join().expect("no panic"))
        .collect();
    let in_flight: u64 = balancer.snapshot().iter().map(|e| e.inflight).sum();
    assert_eq!(
        in_flight,
        u64::from(4 * PER_THREAD),
        "all sent, none ended yet"
    );
    // Another thread completes the even requests and drops the odd ones.
    std::thread::spawn(move || {
        for (n, future) in sent {
            if n % 2 == 0 {
                assert_eq!(block_on(future).expect("answered"), n);
            }
        }
    })
    .join()
    .expect("no panic");
    let snapshot = balancer.snapshot();
    assert_eq!(
        snapshot.iter().map(|e| e.inflight).sum::<u64>(),
        0,
        "{snapshot:?}"
    );
    assert_eq!(
        snapshot.iter().map(|e| e.picks).sum::<u64>(),
        u64::from(4 * PER_THREAD)
    );
}

/// Runs `future` to its end on a runtime of the calling thread.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A seeded balancer picks the same endpoints whichever threads (on whichever CPUs) send its
/// requests: requests sent each from a new thread go where the same requests sent from one
/// thread go, every request seeing those in flight before it.
#[test]
fn a_seeded_balancer_picks_the_same_from_any_thread() {
    type Answer = std::pin::Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;
    const REQUESTS: u32 = 60;
    let picks = |threads: bool| {
        // Requests never answer: those in flight steer the picks.
        let never = tower::service_fn(|_: u32| -> Answer { Box::pin(std::future::pending()) });
        // A clock that stands still: the picks depend on the requests alone, not on when the
        // threads run.
        let config = P2cConfig::default().with_seed(7);
        let balancer =
            SharedP2c::empty_with(config, ManualClock::new(), PeakSuccess).expect("valid");
        for key in 0..4 {
            balancer.insert(key, never);
        }
        let send = move |mut handle: SharedP2c<usize, _, ManualClock>| {
            let ready = block_on(handle.ready()).expect("ready");
            ready.call(0)
        };
        let in_flight: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let handle = balancer.clone();
                if threads {
                    std::thread::spawn(move || send(handle))
                        .join()
                        .expect("no panic")
                } else {
                    send(handle)
                }
            })
            .collect();
        let snapshot = balancer.snapshot();
        drop(in_flight);
        snapshot
            .iter()
            .map(|e| (e.picks, e.inflight))
            .collect::<Vec<_>>()
    };
    let alone = picks(false);
    assert_eq!(
        alone.iter().map(|(picks, _)| picks).sum::<u64>(),
        u64::from(REQUESTS)
    );
    assert_eq!(picks(true), alone);
}
