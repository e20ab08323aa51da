//! rampart-fault: `Distribution` (and `log_normal_p99`), `FaultConfig` (built into a
//! `FaultLayer` and used, and set through its `FaultHandle`), and `SimConfig` (built into a
//! `SimBackend` and used), on a paused runtime.

use std::time::Duration;

use rampart::fault::{
    Distribution, FaultConfig, FaultLayer, InjectedError, QueueFull, RuntimeConfig, SimBackend,
    SimConfig, SimRuntime,
};
use tokio::runtime::Runtime;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

use super::harness::{Builder, Used, ensure, forgive_panics, paused_runtime};
use super::hostile::Draw;

/// How long a request is awaited: latencies beyond it count as waits, like hangs.
const HORIZON: Duration = Duration::from_secs(1_000 * 24 * 3_600);
/// Requests sent through each fault layer.
const REQUESTS: u32 = 4;
/// How long requests to a simulated runtime are awaited: its heartbeat wakes tokio's paused
/// clock every few milliseconds, so a long wait costs real time.
const RUNTIME_HORIZON: Duration = Duration::from_millis(30);
/// The panic a fault layer injects.
const INJECTED_PANIC: &str = "rampart-fault: injected panic";
/// The 99th percentile of the standard normal distribution.
const Z_99: f64 = 2.326_347_874_040_841;

/// A distribution of each kind, its ordinary durations up to `longest`.
fn draw_distribution(draw: &mut Draw, field: &'static str, longest: Duration) -> Distribution {
    let middle = longest / 100;
    match draw.rng().u32(..4) {
        0 => Distribution::Fixed(draw.duration(field, Duration::ZERO..=longest)),
        1 => Distribution::Uniform {
            low: draw.duration(field, Duration::ZERO..=middle),
            high: draw.duration(field, middle..=longest),
        },
        2 => Distribution::LogNormal {
            median: draw.duration(field, Duration::from_micros(1)..=longest),
            sigma: draw.f64(field, 0.0..=3.0),
        },
        _ => Distribution::Exponential {
            mean: draw.duration(field, Duration::ZERO..=longest),
        },
    }
}

/// Whether a distribution breaks its documented rules: `low ≤ high`, a finite `sigma` in
/// [0, 10].
fn distribution_is_bad(distribution: &Distribution) -> bool {
    match *distribution {
        Distribution::Uniform { low, high } => low > high,
        Distribution::LogNormal { sigma, .. } => {
            !(sigma.is_finite() && (0.0..=10.0).contains(&sigma))
        }
        Distribution::Fixed(_) | Distribution::Exponential { .. } => false,
    }
}

/// Samples stay within a uniform's bounds and equal a fixed value; no sample or mean panics.
fn use_distribution(distribution: &Distribution, seed: u64) -> Used {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mean = distribution.mean();
    for _ in 0..20 {
        let sample = distribution.sample(&mut rng);
        match *distribution {
            Distribution::Fixed(fixed) => ensure!(sample == fixed, "sampled {sample:?}"),
            Distribution::Uniform { low, high } => {
                ensure!((low..=high).contains(&sample), "sampled {sample:?}");
                ensure!((low..=high).contains(&mean), "mean {mean:?}");
            }
            Distribution::LogNormal { .. } | Distribution::Exponential { .. } => {}
        }
    }
    Ok(())
}

/// `Distribution` (each kind), validated as the field `latency` and sampled.
pub const DISTRIBUTION: Builder<(), (Distribution, u64)> = Builder {
    name: "Distribution",
    context: || (),
    draw: |draw| {
        (
            draw_distribution(draw, "latency", Duration::from_secs(1)),
            draw.rng().u64(..),
        )
    },
    bad_fields: |(distribution, _)| {
        if distribution_is_bad(distribution) {
            vec!["latency"]
        } else {
            Vec::new()
        }
    },
    build_and_use: |(), (distribution, seed)| {
        distribution.validate("latency")?;
        Ok(use_distribution(distribution, *seed))
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

/// `Distribution::log_normal_p99(median, p99)`, validated as the field `latency` and sampled:
/// a spread beyond `sigma = 10` must be refused there.
pub const LOG_NORMAL_P99: Builder<(), (Duration, Duration, u64)> = Builder {
    name: "Distribution::log_normal_p99",
    context: || (),
    draw: |draw| {
        (
            draw.duration("median", Duration::from_micros(1)..=Duration::from_secs(1)),
            draw.duration("p99", Duration::from_micros(1)..=Duration::from_secs(10)),
            draw.rng().u64(..),
        )
    },
    bad_fields: |(median, p99, _)| {
        let ratio = p99.as_secs_f64() / median.as_secs_f64();
        if ratio.is_finite() && ratio > 1.0 && ratio.ln() / Z_99 > 10.0 {
            vec!["latency"]
        } else {
            Vec::new()
        }
    },
    build_and_use: |(), (median, p99, seed)| {
        let distribution = Distribution::log_normal_p99(*median, *p99);
        distribution.validate("latency")?;
        Ok(use_distribution(&distribution, *seed))
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

fn draw_fault(draw: &mut Draw) -> FaultConfig {
    FaultConfig::default()
        .with_latency(draw_distribution(draw, "latency", Duration::from_secs(1)))
        .with_error_rate(draw.f64("error_rate", 0.0..=0.3))
        .with_hang_rate(draw.f64("hang_rate", 0.0..=0.3))
        .with_panic_rate(draw.f64("panic_rate", 0.0..=0.3))
        .with_seed(draw.rng().u64(..))
}

fn fault_bad(config: &FaultConfig) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if distribution_is_bad(&config.latency) {
        bad.push("latency");
    }
    let rates = [
        ("error_rate", config.error_rate),
        ("hang_rate", config.hang_rate),
        ("panic_rate", config.panic_rate),
    ];
    for (field, rate) in rates {
        if !(rate.is_finite() && (0.0..=1.0).contains(&rate)) {
            bad.push(field);
        }
    }
    // Cross-field, reported against `error_rate`: the rates are exclusive, so at most 1 in all.
    if bad.is_empty() && config.error_rate + config.hang_rate + config.panic_rate > 1.0 + 1e-12 {
        bad.push("error_rate");
    }
    bad
}

/// What became of the requests sent through a fault layer.
#[derive(Debug, Default)]
struct Fates {
    answered: u64,
    errors: u64,
    waits: u64,
    panics: u64,
}

/// Requests through a fault layer over an echo service: each is answered, fails with
/// `InjectedError`, panics with the injected panic, or waits (a hang, or a latency beyond the
/// horizon, after which an error or panic decided at the call would have come); the
/// handle's counts agree.
fn use_fault(runtime: &Runtime, layer: &FaultLayer) -> Used {
    let mut service = layer.layer(service_fn(|n: u32| async move { Ok::<u32, BoxError>(n) }));
    let fates = runtime.block_on(async {
        let mut fates = Fates::default();
        for n in 0..REQUESTS {
            let call = service.ready().await.map_err(|e| e.to_string())?.call(n);
            match tokio::spawn(tokio::time::timeout(HORIZON, call)).await {
                Ok(Ok(Ok(m))) => {
                    ensure!(m == n, "request {n} answered {m}");
                    fates.answered += 1;
                }
                Ok(Ok(Err(error))) => {
                    ensure!(error.is::<InjectedError>(), "request {n} failed: {error}");
                    fates.errors += 1;
                }
                Ok(Err(_)) => fates.waits += 1,
                Err(join) => {
                    ensure!(join.is_panic(), "request {n}: {join}");
                    fates.panics += 1;
                }
            }
        }
        Ok(fates)
    })?;
    let forgiven = forgive_panics(|panic| panic.starts_with(INJECTED_PANIC)) as u64;
    let stats = layer.handle().stats();
    let requests = u64::from(REQUESTS);
    ensure!(
        forgiven == fates.panics,
        "{forgiven} injected panics seen for {fates:?}"
    );
    ensure!(
        fates.answered + fates.errors + fates.waits + fates.panics == requests,
        "requests vanished: {fates:?}"
    );
    let faulted = stats.errors + stats.hangs + stats.panics;
    ensure!(
        stats.requests == requests
            && stats.errors >= fates.errors
            && stats.panics >= fates.panics
            && faulted - fates.errors - fates.panics <= fates.waits
            && fates.answered <= requests.saturating_sub(faulted),
        "the handle counts {stats:?} for {fates:?}"
    );
    Ok(())
}

/// `FaultConfig`, built into a `FaultLayer` and used.
pub const CONFIG: Builder<Runtime, FaultConfig> = Builder {
    name: "FaultConfig",
    context: paused_runtime,
    draw: draw_fault,
    bad_fields: fault_bad,
    build_and_use: |runtime, config| {
        let layer = FaultLayer::new(config.clone())?;
        Ok(use_fault(runtime, &layer))
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

/// `FaultHandle::set(config)` on a running layer: refused (the layer unchanged), or in force.
/// Draws and judges configurations as `CONFIG` does.
pub const HANDLE_SET: Builder<Runtime, FaultConfig> = Builder {
    name: "FaultHandle::set",
    build_and_use: |runtime, config| {
        let layer = FaultLayer::new(FaultConfig::default())?;
        let handle = layer.handle();
        if let Err(error) = handle.set(config.clone()) {
            if handle.config() != FaultConfig::default() {
                return Ok(Err(format!("refused ({error}), yet changed")));
            }
            return Err(error);
        }
        if handle.config() != *config {
            return Ok(Err(format!("set, but reads {:?}", handle.config())));
        }
        Ok(use_fault(runtime, &layer))
    },
    ..CONFIG
};

fn draw_sim(draw: &mut Draw) -> SimConfig {
    SimConfig::default()
        .with_workers(draw.usize("workers", 1..=64))
        .with_service_time(draw_distribution(
            draw,
            "service_time",
            Duration::from_secs(1),
        ))
        .with_queue_capacity(draw.usize("queue_capacity", 0..=1_000))
        .with_seed(draw.rng().u64(..))
}

/// Three requests at once to a simulated backend: each is served, refused with `QueueFull`,
/// or still waiting at the horizon; its counts agree, and its utilisation is a ratio.
fn use_sim(runtime: &Runtime, config: &SimConfig) -> Result<Used, rampart::ConfigError> {
    runtime.block_on(async {
        let backend = SimBackend::new(config.clone())?;
        let calls: Vec<_> = (0..3)
            .map(|_| tokio::spawn(tokio::time::timeout(HORIZON, backend.clone().oneshot(()))))
            .collect();
        let (mut served, mut refused, mut waiting) = (0_u64, 0_u64, 0_u64);
        for call in calls {
            match call.await {
                Ok(Ok(Ok(_))) => served += 1,
                Ok(Ok(Err(error))) if error.is::<QueueFull>() => refused += 1,
                Ok(Err(_)) => waiting += 1,
                other => return Ok(Err(format!("a request ended with {other:?}"))),
            }
        }
        let stats = backend.stats();
        let utilization = backend.utilization();
        Ok((|| {
            ensure!(
                stats.accepted == served + waiting && stats.rejected == refused,
                "{stats:?} for {served} served, {refused} refused, {waiting} waiting"
            );
            ensure!(
                (0.0..=1.0).contains(&utilization),
                "utilization {utilization}"
            );
            Ok(())
        })())
    })
}

/// `SimConfig`, built into a `SimBackend` and used.
pub const SIM: Builder<Runtime, SimConfig> = Builder {
    name: "SimConfig",
    context: paused_runtime,
    draw: draw_sim,
    bad_fields: |config| {
        let mut bad = Vec::new();
        if config.workers == 0 {
            bad.push("workers");
        }
        if distribution_is_bad(&config.service_time) {
            bad.push("service_time");
        }
        bad
    },
    build_and_use: use_sim,
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

fn draw_runtime(draw: &mut Draw) -> RuntimeConfig {
    let workers = draw.usize("workers", 1..=8);
    let mut config = RuntimeConfig::default()
        .with_workers(workers)
        .with_service_time(draw_distribution(
            draw,
            "service_time",
            Duration::from_millis(10),
        ))
        .with_slices(draw.u32("slices", 1..=4))
        .with_refusal_cost(draw.duration("refusal_cost", Duration::ZERO..=Duration::from_millis(1)))
        .with_heartbeat(draw.duration(
            "heartbeat",
            Duration::from_millis(1)..=Duration::from_secs(1),
        ))
        .with_seed(draw.rng().u64(..));
    if draw.bool() {
        let ordinary = workers.clamp(1, 1_024);
        config = config.with_cpus(draw.usize("cpus", ordinary..=ordinary.max(16)));
    }
    config
}

/// The documented rules of a `RuntimeConfig`: 1 to 1 024 workers; `cpus` from `workers` to
/// 1 024 (the cross-field rule is reported against `cpus`); a valid service time; 1 to 1 000
/// slices; a refusal cost of at most 1 s; a heartbeat from 1 ms to 1 s.
fn runtime_bad(config: &RuntimeConfig) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if !(1..=1_024).contains(&config.workers) {
        bad.push("workers");
    }
    if config
        .cpus
        .is_some_and(|cpus| cpus < config.workers || cpus > 1_024)
    {
        bad.push("cpus");
    }
    if distribution_is_bad(&config.service_time) {
        bad.push("service_time");
    }
    if !(1..=1_000).contains(&config.slices) {
        bad.push("slices");
    }
    if config.refusal_cost > Duration::from_secs(1) {
        bad.push("refusal_cost");
    }
    if !(Duration::from_millis(1)..=Duration::from_secs(1)).contains(&config.heartbeat) {
        bad.push("heartbeat");
    }
    bad
}

/// Two requests at once to a simulated runtime serving its handler: each is served or still
/// waiting after `RUNTIME_HORIZON`; its counts agree, and its signals are sane. A runtime of its
/// own per case: a simulated runtime's driver lives as long as the tokio runtime.
fn use_runtime(config: &RuntimeConfig) -> Result<Used, rampart::ConfigError> {
    paused_runtime().block_on(async {
        let sim = SimRuntime::new(config.clone())?;
        let server = sim.serve(sim.handler());
        let calls: Vec<_> = (0..2)
            .map(|_| {
                let call = server.clone().oneshot(());
                tokio::spawn(tokio::time::timeout(RUNTIME_HORIZON, call))
            })
            .collect();
        let (mut answered, mut waiting) = (0_u64, 0_u64);
        for call in calls {
            match call.await {
                Ok(Ok(Ok(_))) => answered += 1,
                Ok(Err(_)) => waiting += 1,
                other => return Ok(Err(format!("a request ended with {other:?}"))),
            }
        }
        let stats = sim.stats();
        let utilization = sim.utilization();
        let _ = sim.scheduling_delay();
        Ok((|| {
            ensure!(
                (stats.arrived, stats.served, stats.refused, stats.panicked) == (2, answered, 0, 0),
                "{stats:?} for {answered} answered, {waiting} waiting"
            );
            ensure!(
                (0.0..=1.0).contains(&utilization),
                "utilization {utilization}"
            );
            Ok(())
        })())
    })
}

/// `RuntimeConfig`, built into a `SimRuntime` and used.
pub const RUNTIME: Builder<(), RuntimeConfig> = Builder {
    name: "RuntimeConfig",
    context: || (),
    draw: draw_runtime,
    bad_fields: runtime_bad,
    build_and_use: |(), config| use_runtime(config),
    costly_shape: |_| None,
    validate: |_| Ok(()),
};
