//! `SimBackend`: capacity, queueing, rejection, abandoned work and utilisation, on paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rampart_fault::{Distribution, QueueFull, Served, SimBackend, SimConfig};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

const MS: Duration = Duration::from_millis(1);

fn backend(workers: usize, service: Duration, queue: usize) -> SimBackend {
    let config = SimConfig::default()
        .with_workers(workers)
        .with_service_time(Distribution::Fixed(service))
        .with_queue_capacity(queue)
        .with_seed(1);
    SimBackend::new(config).expect("a valid config")
}

/// Calls the backend now (`oneshot` would only call it when first polled).
fn send(sim: &SimBackend) -> rampart_fault::SimFuture {
    sim.clone().call(())
}

/// Offers `rate` requests per second, evenly spaced, for `duration`; returns how many were
/// served by the end of `duration`, and how many were rejected.
async fn offer(backend: &SimBackend, rate: u32, duration: Duration) -> (u64, u64) {
    let start = Instant::now();
    let served_in_time = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let gap = Duration::from_secs(1) / rate;
    let mut tasks = Vec::new();
    for n in 0..(duration.as_secs_f64() * f64::from(rate)) as u32 {
        tokio::time::sleep_until(start + gap * n).await;
        let call = backend.clone().oneshot(());
        let (served_in_time, rejected) = (Arc::clone(&served_in_time), Arc::clone(&rejected));
        tasks.push(tokio::spawn(async move {
            match call.await {
                Ok(_) if start.elapsed() <= duration => {
                    served_in_time.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(err) if err.is::<QueueFull>() => {
                    rejected.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => panic!("unexpected error: {err}"),
            }
        }));
    }
    for task in tasks {
        task.await.expect("no panic");
    }
    (
        served_in_time.load(Ordering::Relaxed),
        rejected.load(Ordering::Relaxed),
    )
}

#[tokio::test(start_paused = true)]
async fn throughput_saturates_at_workers_over_service_time() {
    // 4 workers × 10 ms = 400 requests per second, offered twice that for 10 s.
    let sim = backend(4, 10 * MS, 50);
    let (served, rejected) = offer(&sim, 800, Duration::from_secs(10)).await;
    // Each worker serves 100 requests per second once busy. The first four arrivals wake at
    // 0, 2, 3 and 4 ms (tokio's timer rounds 1.25 ms steps up to whole milliseconds), so
    // three workers finish their 1 000th request just after the 10 s mark.
    assert_eq!(served, 4 * 1_000 - 3);
    assert_eq!(sim.stats().accepted + rejected, 8_000);
    assert!(rejected >= 3_900, "the excess is rejected: {rejected}");
}

#[tokio::test(start_paused = true)]
async fn below_capacity_nothing_queues_or_is_rejected() {
    let sim = backend(4, 10 * MS, 50);
    let (served, rejected) = offer(&sim, 200, Duration::from_secs(10)).await;
    // The last request arrives 5 ms before the end and finishes 5 ms after it.
    assert_eq!((served, rejected), (1_999, 0));
    let served = sim.clone().oneshot(()).await.expect("served");
    assert_eq!(
        served,
        Served {
            queued: Duration::ZERO,
            service: 10 * MS
        }
    );
}

#[tokio::test(start_paused = true)]
async fn latency_grows_with_the_queue() {
    let sim = backend(2, 10 * MS, 100);
    let burst: Vec<_> = (0..10).map(|_| send(&sim)).collect();
    let latencies: Vec<Duration> = futures_join(burst)
        .await
        .into_iter()
        .map(|s| s.latency())
        .collect();
    let expected: Vec<Duration> = (1..=5).flat_map(|k| [k * 10 * MS; 2]).collect();
    assert_eq!(latencies, expected);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_at_once_without_using_a_worker() {
    let sim = backend(1, 10 * MS, 2);
    let start = Instant::now();
    let accepted: Vec<_> = (0..3).map(|_| send(&sim)).collect();
    for _ in 0..2 {
        let err = sim.clone().oneshot(()).await.unwrap_err();
        assert!(err.is::<QueueFull>(), "{err}");
        assert_eq!(start.elapsed(), Duration::ZERO, "rejected at once");
    }
    let stats = sim.stats();
    assert_eq!(
        (
            stats.accepted,
            stats.rejected,
            stats.in_service,
            stats.queued
        ),
        (3, 2, 1, 2)
    );
    let latencies: Vec<_> = futures_join(accepted)
        .await
        .iter()
        .map(Served::latency)
        .collect();
    assert_eq!(latencies, [10 * MS, 20 * MS, 30 * MS]);
    assert_eq!(sim.utilization(), 1.0, "rejections cost no worker time");
}

#[tokio::test(start_paused = true)]
async fn a_queue_of_zero_rejects_only_when_every_worker_is_busy() {
    let sim = backend(2, 10 * MS, 0);
    let first = send(&sim);
    let second = send(&sim);
    assert!(sim.clone().oneshot(()).await.unwrap_err().is::<QueueFull>());
    assert_eq!(futures_join(vec![first, second]).await.len(), 2);
    assert!(sim.clone().oneshot(()).await.is_ok(), "free again");
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_request_keeps_its_slot() {
    let sim = backend(1, 10 * MS, 10);
    drop(send(&sim)); // the caller gives up at once; the server does not notice
    let served = sim.clone().oneshot(()).await.expect("served");
    assert_eq!(
        served,
        Served {
            queued: 10 * MS,
            service: 10 * MS
        }
    );
    assert_eq!(sim.stats().accepted, 2);
}

#[tokio::test(start_paused = true)]
async fn utilization_is_busy_worker_time_since_the_previous_read() {
    let sim = backend(2, 100 * MS, 10);
    send(&sim).await.expect("served");
    assert_eq!(
        sim.utilization(),
        0.5,
        "one of two workers busy for the whole 100 ms"
    );
    tokio::time::sleep(100 * MS).await;
    assert_eq!(sim.utilization(), 0.0, "idle since the previous read");

    // A request spanning a read is split between the two periods.
    tokio::time::sleep(50 * MS).await;
    let spanning = tokio::spawn(send(&sim));
    tokio::time::sleep(50 * MS).await;
    assert_eq!(sim.utilization(), 0.25, "busy 50 ms of 2 × 100 ms");
    spanning.await.expect("no panic").expect("served");
    tokio::time::sleep(50 * MS).await;
    assert_eq!(
        sim.utilization(),
        0.25,
        "busy the other 50 ms of 2 × 100 ms"
    );
    assert_eq!(
        sim.utilization(),
        0.25,
        "a second read at the same instant repeats"
    );
}

#[tokio::test(start_paused = true)]
async fn a_changed_service_time_applies_to_new_arrivals() {
    let sim = backend(1, 10 * MS, 10);
    let before = send(&sim);
    sim.set_service_time(Distribution::Fixed(100 * MS))
        .expect("valid");
    let after = send(&sim);
    let served = futures_join(vec![before, after]).await;
    assert_eq!(served[0].service, 10 * MS);
    assert_eq!(
        served[1],
        Served {
            queued: 10 * MS,
            service: 100 * MS
        }
    );
    let invalid = Distribution::Uniform {
        low: MS,
        high: Duration::ZERO,
    };
    assert_eq!(
        sim.set_service_time(invalid).unwrap_err().field(),
        "service_time"
    );
    assert_eq!(sim.service_time(), Distribution::Fixed(100 * MS));
}

/// Poisson arrivals at 1 500 per second onto the default backend (capacity ~700/s) for 2 s.
async fn seeded_run(seed: u64) -> Vec<Result<Served, String>> {
    let sim = SimBackend::new(
        SimConfig::default()
            .with_queue_capacity(200)
            .with_seed(seed),
    )
    .expect("valid");
    let mut arrivals = fastrand::Rng::with_seed(seed);
    let mut calls = Vec::new();
    let start = Instant::now();
    let mut at = Duration::ZERO;
    while at < Duration::from_secs(2) {
        tokio::time::sleep_until(start + at).await;
        calls.push(tokio::spawn(send(&sim)));
        at += Duration::from_secs_f64(-(1.0 - arrivals.f64()).ln() / 1_500.0);
    }
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.expect("no panic").map_err(|err| err.to_string()));
    }
    outcomes
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_run() {
    let first = seeded_run(5).await;
    assert!(
        first.iter().any(Result::is_err),
        "the run overloads the backend"
    );
    assert_eq!(first, seeded_run(5).await);
    assert_ne!(first, seeded_run(6).await);
}

/// Awaits every future in order (they run concurrently: their sleeps overlap).
async fn futures_join<F, T>(futures: Vec<F>) -> Vec<T>
where
    F: Future<Output = Result<T, tower::BoxError>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for task in tasks {
        outputs.push(task.await.expect("no panic").expect("served"));
    }
    outputs
}
