//! Configurations at the edges of their types: each is refused with a `ConfigError` naming its
//! field, or builds a backend or layer that then works, on paused time. Never a panic.

use std::convert::Infallible;
use std::time::Duration;

use rampart_fault::{
    Distribution, FaultConfig, FaultLayer, InjectedError, QueueFull, SimBackend, SimConfig,
};
use tower::{Layer, Service, ServiceExt, service_fn};

const MS: Duration = Duration::from_millis(1);
const DAY: Duration = Duration::from_secs(86_400);
/// tokio's timers wait at most about 30 years; so does a simulated service.
const LONGEST_SERVICE: Duration = Duration::from_secs(30 * 365 * 86_400);

fn uniform(low: Duration, high: Duration) -> Distribution {
    Distribution::Uniform { low, high }
}

fn log_normal(median: Duration, sigma: f64) -> Distribution {
    Distribution::LogNormal { median, sigma }
}

fn exponential(mean: Duration) -> Distribution {
    Distribution::Exponential { mean }
}

/// Distributions valid or not, with parameters at the edges of their types.
fn distributions() -> Vec<Distribution> {
    vec![
        Distribution::ZERO,
        Distribution::Fixed(MS),
        Distribution::Fixed(Duration::MAX),
        uniform(Duration::ZERO, Duration::MAX),
        uniform(Duration::MAX, Duration::MAX),
        uniform(2 * MS, MS),
        log_normal(MS, 0.5),
        log_normal(Duration::MAX, 10.0),
        log_normal(Duration::ZERO, 10.0),
        log_normal(MS, f64::NAN),
        log_normal(MS, f64::INFINITY),
        log_normal(MS, f64::NEG_INFINITY),
        log_normal(MS, -0.5),
        log_normal(MS, 10.5),
        exponential(Duration::ZERO),
        exponential(Duration::MAX),
    ]
}

/// Sends `n` requests at once and checks each is served or refused with `QueueFull`; returns
/// how many were served.
async fn serve(backend: &SimBackend, n: u64) -> u64 {
    let calls: Vec<_> = (0..n).map(|_| backend.clone().call(())).collect();
    let mut served = 0;
    for call in calls {
        match call.await {
            Ok(done) => {
                assert!(done.service <= LONGEST_SERVICE, "{done:?}");
                assert_eq!(done.latency(), done.queued.saturating_add(done.service));
                served += 1;
            }
            Err(err) => assert!(err.is::<QueueFull>(), "{err}"),
        }
    }
    served
}

#[tokio::test(start_paused = true)]
async fn sim_backend_new_no_longer_panics_or_aborts_on_a_huge_worker_count() {
    for workers in [usize::MAX, 1 << 40] {
        let config = SimConfig::default()
            .with_workers(workers)
            .with_service_time(Distribution::Fixed(10 * MS))
            .with_seed(1);
        let backend = SimBackend::new(config).expect("any positive worker count");
        // Every request finds a free worker at once.
        let calls: Vec<_> = (0..100).map(|_| backend.clone().call(())).collect();
        for call in calls {
            let served = call.await.expect("served");
            assert_eq!((served.queued, served.service), (Duration::ZERO, 10 * MS));
        }
        let utilization = backend.utilization();
        assert!((0.0..=1.0).contains(&utilization), "{utilization}");
        assert_eq!(backend.stats().accepted, 100);
    }
}

#[tokio::test(start_paused = true)]
async fn a_service_time_of_duration_max_no_longer_panics_the_call() {
    let config = SimConfig::default()
        .with_workers(1)
        .with_service_time(Distribution::Fixed(Duration::MAX))
        .with_seed(1);
    let backend = SimBackend::new(config).expect("valid");
    let (first, second) = (backend.clone().call(()), backend.clone().call(()));
    let first = first.await.expect("served, after a (simulated) long wait");
    assert_eq!(
        first.service, LONGEST_SERVICE,
        "capped at tokio's longest wait"
    );
    let second = second.await.expect("served after the first");
    assert_eq!(second.queued, LONGEST_SERVICE);
    assert_eq!(backend.utilization(), 1.0);
}

#[tokio::test(start_paused = true)]
async fn every_sim_config_is_refused_by_field_or_serves() {
    let mut built = 0;
    for service_time in distributions() {
        for workers in [0, 1, 3, usize::MAX] {
            for queue_capacity in [0, 1, usize::MAX] {
                let config = SimConfig {
                    workers,
                    service_time,
                    queue_capacity,
                    seed: Some(7),
                    ..SimConfig::default()
                };
                let checked = config.validate();
                match SimBackend::new(config.clone()) {
                    Err(err) => {
                        assert_eq!(checked, Err(err.clone()), "{config:?}");
                        assert!(
                            ["workers", "service_time", "queue_capacity"].contains(&err.field()),
                            "{config:?}: {err}"
                        );
                    }
                    Ok(backend) => {
                        assert_eq!(checked, Ok(()), "{config:?}");
                        let served = serve(&backend, 3).await;
                        assert!(served >= 1, "{config:?}: the first request finds a worker");
                        let stats = backend.stats();
                        assert_eq!(stats.accepted + stats.rejected, 3, "{config:?}");
                        let utilization = backend.utilization();
                        assert!((0.0..=1.0).contains(&utilization), "{config:?}");
                        built += 1;
                    }
                }
            }
        }
    }
    assert!(built > 50, "{built} configs built");
}

/// Whether a panic is one the fault layer injected.
fn is_injected(info: &std::panic::PanicHookInfo<'_>) -> bool {
    info.payload()
        .downcast_ref::<&str>()
        .is_some_and(|message| message.contains("injected panic"))
}

#[tokio::test(start_paused = true)]
async fn every_fault_config_is_refused_by_field_or_works() {
    // Injected panics are expected here: keep them off the output, and only them.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_injected(info) {
            default_hook(info);
        }
    }));
    let rates = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.5,
        -0.0,
        0.0,
        0.5,
        1.0,
        1.5,
    ];
    let latencies = [
        Distribution::ZERO,
        Distribution::Fixed(Duration::MAX),
        uniform(Duration::ZERO, Duration::MAX),
        uniform(Duration::MAX, Duration::ZERO),
        log_normal(MS, f64::NAN),
        log_normal(Duration::MAX, 10.0),
        exponential(Duration::MAX),
    ];
    let mut worked = 0;
    for latency in latencies {
        for error_rate in rates {
            for hang_rate in rates {
                for panic_rate in rates {
                    let config = FaultConfig {
                        latency,
                        error_rate,
                        hang_rate,
                        panic_rate,
                        seed: Some(3),
                    };
                    worked += u32::from(refused_by_field_or_works(config).await);
                }
            }
        }
    }
    assert!(worked > 100, "{worked} configs worked");
}

/// Checks that `config` is refused with an error naming one of its fields (by the layer and by
/// a handle alike), or builds a layer that serves two requests without an unexpected panic;
/// returns whether it worked.
async fn refused_by_field_or_works(config: FaultConfig) -> bool {
    let fields = ["latency", "error_rate", "hang_rate", "panic_rate"];
    let checked = config.validate();
    let (layer, handle) = match FaultLayer::pair(config.clone()) {
        Err(err) => {
            assert_eq!(checked, Err(err.clone()), "{config:?}");
            assert!(fields.contains(&err.field()), "{config:?}: {err}");
            let (_, handle) = FaultLayer::pair(FaultConfig::default()).expect("the default");
            assert_eq!(handle.set(config.clone()), Err(err), "{config:?}");
            return false;
        }
        Ok(pair) => pair,
    };
    assert_eq!(checked, Ok(()), "{config:?}");
    let service = layer.layer(service_fn(|()| async { Ok::<_, Infallible>(()) }));
    for _ in 0..2 {
        let call = tokio::time::timeout(DAY, service.clone().oneshot(()));
        match tokio::spawn(call).await {
            // Served; or hung, or slower than a day.
            Ok(Ok(Ok(())) | Err(_)) => {}
            Ok(Ok(Err(err))) => assert!(err.is::<InjectedError>(), "{config:?}: {err}"),
            Err(join) => assert!(join.is_panic() && config.panic_rate > 0.0, "{config:?}"),
        }
    }
    assert_eq!(handle.stats().requests, 2, "{config:?}");
    true
}
