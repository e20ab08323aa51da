//! `SimBackend`'s queue disciplines (adaptive LIFO, `CoDel`, dropping expired requests) and the
//! work it reports against each request's deadline, on paused time.

use std::time::Duration;

use rampart_core::{Clock, Deadline, DeadlineExceeded, RequestContext};
use rampart_fault::{
    CoDel, Distribution, QueueDiscipline, QueueOrder, QueueTimeout, Served, SimBackend, SimConfig,
};
use tokio::time::Instant;
use tower::{BoxError, Service, ServiceExt};

const MS: Duration = Duration::from_millis(1);

/// A clock on tokio's (paused) time, from the instant it is built.
#[derive(Debug, Clone, Copy)]
struct Paused(Instant);

impl Clock for Paused {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

fn config(workers: usize, service: Duration, discipline: QueueDiscipline) -> SimConfig {
    SimConfig::default()
        .with_workers(workers)
        .with_service_time(Distribution::Fixed(service))
        .with_queue_capacity(1_000)
        .with_discipline(discipline)
        .with_seed(1)
}

/// Calls `backend` now, with `deadline` (from now) current if given, in a task of its own.
fn send(
    backend: &SimBackend,
    clock: Paused,
    deadline: Option<Duration>,
) -> tokio::task::JoinHandle<Result<Served, BoxError>> {
    let mut context = RequestContext::new();
    if let Some(timeout) = deadline {
        context = context.with_deadline(Deadline::after(clock.now(), timeout));
    }
    let call = {
        let _entered = context.enter();
        backend.clone().call(())
    };
    tokio::spawn(call)
}

async fn outcomes(
    calls: Vec<tokio::task::JoinHandle<Result<Served, BoxError>>>,
) -> Vec<Result<Served, BoxError>> {
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.expect("no panic"));
    }
    outcomes
}

fn latencies(outcomes: &[Result<Served, BoxError>]) -> Vec<Duration> {
    outcomes
        .iter()
        .map(|outcome| outcome.as_ref().expect("served").latency())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn adaptive_lifo_serves_the_newest_while_the_queue_is_backed_up() {
    let clock = Paused(Instant::now());
    let lifo =
        QueueDiscipline::default().with_order(QueueOrder::AdaptiveLifo { backed_up: 5 * MS });
    let backend = SimBackend::new(config(1, 10 * MS, lifo)).expect("valid");
    let calls = (0..4).map(|_| send(&backend, clock, None)).collect();
    // The first starts at once; at each release the oldest waiter has waited over 5 ms, so the
    // newest goes first: the fourth at 10 ms, the third at 20 ms, the second last.
    assert_eq!(
        latencies(&outcomes(calls).await),
        [10 * MS, 40 * MS, 30 * MS, 20 * MS]
    );

    // A queue that is not backed up serves its oldest first.
    let patient = QueueDiscipline::default().with_order(QueueOrder::AdaptiveLifo {
        backed_up: Duration::from_secs(1),
    });
    let backend = SimBackend::new(config(1, 10 * MS, patient)).expect("valid");
    let calls = (0..4).map(|_| send(&backend, clock, None)).collect();
    assert_eq!(
        latencies(&outcomes(calls).await),
        [10 * MS, 20 * MS, 30 * MS, 40 * MS]
    );
}

#[tokio::test(start_paused = true)]
async fn a_held_fifo_queue_serves_exactly_as_the_booked_one() {
    // Dropping expired requests when none carries a deadline drops nothing: the queue holds
    // its requests and hands them out at each release, and must match booking at arrival.
    async fn run(discipline: QueueDiscipline) -> (Vec<Result<Served, String>>, u64) {
        let clock = Paused(Instant::now());
        let backend = SimBackend::new(
            SimConfig::default()
                .with_queue_capacity(200)
                .with_discipline(discipline)
                .with_seed(3),
        )
        .expect("valid");
        let mut gaps = fastrand::Rng::with_seed(3);
        let start = Instant::now();
        let (mut at, mut calls) = (Duration::ZERO, Vec::new());
        while at < Duration::from_secs(2) {
            tokio::time::sleep_until(start + at).await;
            calls.push(send(&backend, clock, None));
            at += Duration::from_secs_f64(-(1.0 - gaps.f64()).ln() / 1_500.0);
        }
        let outcomes = outcomes(calls)
            .await
            .into_iter()
            .map(|outcome| outcome.map_err(|err| err.to_string()))
            .collect();
        (outcomes, backend.stats().rejected)
    }
    let booked = run(QueueDiscipline::default()).await;
    assert!(booked.1 > 0, "the run overloads the backend");
    assert_eq!(
        booked,
        run(QueueDiscipline::default().with_drop_expired(true)).await
    );
}

#[tokio::test(start_paused = true)]
async fn codel_bounds_the_wait_by_the_interval_and_by_the_target_while_the_queue_stands() {
    let codel = QueueDiscipline::default().with_codel(CoDel::new(5 * MS, 100 * MS));
    let backend = SimBackend::new(config(1, 10 * MS, codel)).expect("valid");
    let clock = Paused(Instant::now());
    let start = Instant::now();
    // Twice the capacity for a second: a request every 5 ms on one 10 ms worker.
    let mut calls = Vec::new();
    for n in 0..200 {
        tokio::time::sleep_until(start + 5 * MS * n).await;
        calls.push(send(&backend, clock, None));
    }
    let outcomes = outcomes(calls).await;
    let (mut served, mut dropped, mut dropped_at_target) = (0_u32, 0_u64, 0);
    for (n, outcome) in outcomes.iter().enumerate() {
        match outcome {
            Ok(done) => {
                served += 1;
                assert!(
                    done.queued <= 100 * MS,
                    "request {n} waited {:?}",
                    done.queued
                );
            }
            Err(err) => {
                let timeout = err.downcast_ref::<QueueTimeout>().expect("a CoDel drop");
                assert!(timeout.waited() > 5 * MS, "{timeout}");
                dropped += 1;
                // A drop short of the interval: the queue stood, its timeout was the target.
                dropped_at_target += usize::from(timeout.waited() <= 100 * MS);
            }
        }
    }
    assert!(dropped_at_target > 0, "the queue never stood");
    // The worker stays busy: about 100 served, and the excess dropped, not served late.
    assert!((95..=101).contains(&served), "{served} served");
    assert_eq!(u64::from(served) + dropped, 200);
    let work = backend.work();
    assert_eq!(work.dropped_timeout, dropped);
    assert_eq!(work.busy, 10 * MS * served);
}

#[tokio::test(start_paused = true)]
async fn expired_requests_are_dropped_at_dequeue_and_cost_no_work() {
    let clock = Paused(Instant::now());
    let drop_expired = QueueDiscipline::default().with_drop_expired(true);
    let backend = SimBackend::new_with(config(1, 10 * MS, drop_expired), clock).expect("valid");
    // One worker, 10 ms each: the first starts at once, the second at 10 ms (deadline 15 ms:
    // in time), the third would start at 20 ms, after its 15 ms deadline, and is dropped; the
    // fourth, with no deadline, starts at 20 ms.
    let calls = vec![
        send(&backend, clock, Some(15 * MS)),
        send(&backend, clock, Some(25 * MS)),
        send(&backend, clock, Some(15 * MS)),
        send(&backend, clock, None),
    ];
    let outcomes = outcomes(calls).await;
    assert_eq!(outcomes[0].as_ref().expect("served").latency(), 10 * MS);
    assert_eq!(outcomes[1].as_ref().expect("served").latency(), 20 * MS);
    let expired = outcomes[2].as_ref().expect_err("dropped");
    assert!(expired.is::<DeadlineExceeded>(), "{expired}");
    assert_eq!(outcomes[3].as_ref().expect("served").latency(), 30 * MS);
    let work = backend.work();
    assert_eq!(
        (work.dropped_expired, work.in_time, work.late, work.busy),
        (1, 2, 0, 30 * MS)
    );

    // A request whose deadline has already passed is dropped by the free worker at once.
    let late = send(&backend, clock, Some(Duration::ZERO));
    assert!(
        late.await
            .expect("no panic")
            .unwrap_err()
            .is::<DeadlineExceeded>()
    );
}

#[tokio::test(start_paused = true)]
async fn work_after_the_deadline_is_counted_as_late_with_its_worker_time() {
    let clock = Paused(Instant::now());
    let backend =
        SimBackend::new_with(config(1, 10 * MS, QueueDiscipline::default()), clock).expect("valid");
    // FIFO: the second finishes at 20 ms, after its 15 ms deadline; the third carries none.
    let calls = vec![
        send(&backend, clock, Some(15 * MS)),
        send(&backend, clock, Some(15 * MS)),
        send(&backend, clock, None),
    ];
    assert_eq!(
        latencies(&outcomes(calls).await),
        [10 * MS, 20 * MS, 30 * MS]
    );
    let work = backend.work();
    assert_eq!(
        (work.in_time, work.late, work.late_busy, work.busy),
        (1, 1, 10 * MS, 30 * MS)
    );

    // A backend built without a clock reads no deadline: nothing is late.
    let blind = SimBackend::new(config(1, 10 * MS, QueueDiscipline::default())).expect("valid");
    let calls = (0..2).map(|_| send(&blind, clock, Some(MS))).collect();
    outcomes(calls).await;
    assert_eq!((blind.work().late, blind.work().in_time), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_held_request_whose_caller_left_is_still_served() {
    let lifo = QueueDiscipline::default().with_order(QueueOrder::AdaptiveLifo { backed_up: MS });
    let backend = SimBackend::new(config(1, 10 * MS, lifo)).expect("valid");
    let first = backend.clone().call(());
    drop(backend.clone().call(())); // held, then abandoned: the server does not notice
    assert_eq!(first.await.expect("served").latency(), 10 * MS);
    let stats = backend.stats();
    assert_eq!((stats.in_service, stats.queued), (1, 0));
    tokio::time::sleep(10 * MS).await;
    assert_eq!(backend.work().busy, 20 * MS);
    assert!(backend.clone().oneshot(()).await.is_ok());
}
