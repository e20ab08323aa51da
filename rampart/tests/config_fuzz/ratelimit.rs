//! rampart-ratelimit: `BbrConfig` (with its `Gate`), built and used through `BbrLimiter`; the
//! group settings of `BbrGroup`; and the CPU sampler's settings (`CpuSampler::new`,
//! `SystemCpu::with_sampling`, `spawn_sampler`) and `ManualCpu`.

use std::sync::Arc;
use std::time::Duration;

use rampart::core::{Clock, ManualClock, TokioClock};
use rampart::ratelimit::{
    BbrConfig, BbrGroup, BbrLimiter, BbrSnapshot, CpuSampler, CpuUsage, DelayProbe, Gate,
    ManualCpu, ManualDelay, SchedulingDelay, SystemCpu, SystemCpuError, spawn_sampler,
};

use super::core::{
    self, LARGE, costly_window, draw_group_case, group_case_bad, span_bad, validate_group_case,
};
use super::harness::{Builder, Renewed, Used, ensure};
use super::hostile::Draw;

/// Clock steps between requests: none, a millisecond, a window, years.
const JUMPS: &[Duration] = &[
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_secs(11),
    Duration::from_secs(365 * 24 * 3_600),
    Duration::MAX,
];

/// A configuration, the CPU reading the limiter sees, the instant its clock starts at, a
/// scheduling delay, and a seed for the requests.
pub type Case = (BbrConfig, f64, Duration, Duration, u64);

fn draw_config(draw: &mut Draw) -> BbrConfig {
    let inflation = draw.f64("gate", 1.0..=5.0);
    let mut config = BbrConfig::default()
        .with_window(
            draw.duration(
                "window",
                Duration::from_millis(10)..=Duration::from_secs(60),
            ),
            draw.usize("buckets", 2..=50),
        )
        .with_cpu_threshold(draw.f64("cpu_threshold", 0.0..=1.0))
        .with_cooldown(draw.duration("cooldown", Duration::ZERO..=Duration::from_secs(5)))
        .with_gate(draw.pick(&[
            Gate::Cpu,
            Gate::Latency { inflation },
            Gate::Either { inflation },
        ]))
        .with_enforce(draw.bool());
    config.max_delay = draw.bool().then(|| {
        draw.duration(
            "max_delay",
            Duration::from_millis(1)..=Duration::from_secs(10),
        )
    });
    config.name = draw.name("name");
    config
}

fn config_bad(config: &BbrConfig) -> Vec<&'static str> {
    let mut bad = span_bad(config.window, config.buckets);
    if config.buckets == 1 {
        bad.push("buckets");
    }
    let in_unit = |value: f64| value.is_finite() && (0.0..=1.0).contains(&value);
    if !in_unit(config.cpu_threshold) {
        bad.push("cpu_threshold");
    }
    if let Gate::Latency { inflation } | Gate::Either { inflation } = config.gate
        && !(inflation.is_finite() && (1.0..=100.0).contains(&inflation))
    {
        bad.push("gate");
    }
    if config
        .max_delay
        .is_some_and(|delay| !(Duration::from_millis(1)..=Duration::from_secs(10)).contains(&delay))
    {
        bad.push("max_delay");
    }
    if config.name.is_empty() {
        bad.push("name");
    }
    bad
}

fn check_snapshot(s: &BbrSnapshot, inflight: usize) -> Used {
    ensure!(
        s.inflight == inflight as u64,
        "{inflight} permits held, the snapshot counts {}",
        s.inflight
    );
    ensure!((0.0..=1.0).contains(&s.cpu), "cpu {}", s.cpu);
    Ok(())
}

/// Requests taken and completed at random, the clock stepping between them: the limiter
/// counts exactly the permits held, and a dry run sheds nothing. Then, with nothing in flight,
/// a request is shed exactly when the runtime's delay exceeds `max_delay` (and the limiter
/// enforces).
fn use_limiter(
    limiter: &BbrLimiter<ManualClock, ManualCpu>,
    delay: &ManualDelay,
    late: Duration,
    seed: u64,
) -> Used {
    let clock = limiter.clock();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut permits = Vec::new();
    for step in 0..20 {
        if let Ok(permit) = limiter.acquire_at(clock.now()) {
            permits.push(permit);
        } else {
            ensure!(limiter.config().enforce, "a dry run shed a request");
        }
        if step % 5 == 4 {
            check_snapshot(&limiter.snapshot(), permits.len())?;
        }
        if rng.u32(..4) == 0 {
            clock.advance(JUMPS[rng.usize(..JUMPS.len())]);
        }
        if !permits.is_empty() && rng.bool() {
            let permit = permits.swap_remove(rng.usize(..permits.len()));
            if rng.bool() {
                permit.complete_at(clock.now());
            }
        }
    }
    permits.clear();
    check_snapshot(&limiter.snapshot(), 0)?;
    delay.set(late);
    let config = limiter.config();
    let too_late = config.enforce && config.max_delay.is_some_and(|max| late > max);
    let admitted = limiter.acquire_at(clock.now()).is_ok();
    ensure!(
        admitted != too_late,
        "with a delay of {late:?} (max {:?}), admitted: {admitted}",
        config.max_delay
    );
    ensure!(
        limiter.snapshot().delay == delay.delay(clock.now()),
        "the snapshot's delay is not the source's"
    );
    Ok(())
}

/// `BbrConfig` (every gate), built with a manual clock and CPU, and used.
pub const CONFIG: Builder<(), Case> = Builder {
    name: "BbrConfig",
    context: || (),
    draw: |draw| {
        (
            draw_config(draw),
            // Not NaN: `ManualCpu` passes it through (see `MANUAL_CPU`).
            Some(draw.f64("cpu", 0.0..=1.0))
                .filter(|cpu| !cpu.is_nan())
                .unwrap_or(0.5),
            draw.instant(),
            draw.duration("delay", Duration::ZERO..=Duration::from_millis(50)),
            draw.rng().u64(..),
        )
    },
    bad_fields: |(config, _, _, _, _)| config_bad(config),
    build_and_use: |(), (config, cpu, start, late, seed)| {
        let delay = ManualDelay::new();
        let limiter = config
            .clone()
            .build_with(ManualClock::starting_at(*start), ManualCpu::new(*cpu))?
            .with_delay(delay.clone());
        Ok(use_limiter(&limiter, &delay, *late, *seed))
    },
    costly_shape: |(config, _, _, _, _)| costly_window(config.buckets, config.validate().is_ok()),
    validate: |(config, _, _, _, _)| config.validate(),
};

/// A group's configuration and bounds, with the instant its clock starts at.
pub type GroupCase = core::GroupCase<BbrConfig>;

/// `BbrGroup::new_with(config, ..)` then `with_bounds`, used for more keys than it may hold.
pub const GROUP: Builder<(), GroupCase> = Builder {
    name: "BbrGroup",
    context: || (),
    draw: |draw| draw_group_case(draw, draw_config),
    bad_fields: |case| group_case_bad(case, config_bad),
    build_and_use: |(), (config, max_keys, idle, start)| {
        let clock = ManualClock::starting_at(*start);
        let group =
            BbrGroup::<u32, _, _>::new_with(config.clone(), clock.clone(), ManualCpu::new(0.5))?
                .with_bounds(*max_keys, *idle)?;
        Ok((|| {
            // Each member builds its own window: fewer members when windows are large.
            let keys = if config.buckets > LARGE { 3 } else { 6 };
            for key in 0..keys {
                let limiter = group.get(&key);
                ensure!(
                    Arc::ptr_eq(&limiter, &group.get(&key)),
                    "key {key} got two limiters"
                );
                let permit = limiter.acquire();
                check_snapshot(&limiter.snapshot(), usize::from(permit.is_ok()))?;
                drop(permit);
                ensure!(group.len() <= *max_keys, "{} limiters", group.len());
                clock.advance(*idle / 5);
            }
            let _ = group.evict_idle();
            Ok(())
        })())
    },
    costly_shape: |(config, _, _, _)| costly_window(config.buckets, config.validate().is_ok()),
    validate: |case| validate_group_case(case, BbrConfig::validate),
};

/// A decay and the raw samples its sampler reads.
pub type SamplerCase = (f64, [f64; 6]);

/// `CpuSampler::new(source, decay)`, ticked over hostile raw samples: every smoothed value
/// stays in [0, 1].
pub const SAMPLER: Builder<(), SamplerCase> = Builder {
    name: "CpuSampler::new",
    context: || (),
    draw: |draw| {
        let decay = draw.f64("decay", 0.0..=0.99);
        let mut samples = [0.0; 6];
        for sample in &mut samples {
            *sample = draw.f64("sample", 0.0..=1.0);
        }
        (decay, samples)
    },
    bad_fields: |(decay, _)| {
        if decay.is_finite() && (0.0..1.0).contains(decay) {
            Vec::new()
        } else {
            vec!["decay"]
        }
    },
    build_and_use: |(), (decay, samples)| {
        let mut raw = (*samples).into_iter();
        let mut sampler = CpuSampler::new(move || raw.next().unwrap_or(0.5), *decay)?;
        Ok((|| {
            for _ in 0..samples.len() + 2 {
                let smoothed = sampler.tick();
                ensure!((0.0..=1.0).contains(&smoothed), "smoothed {smoothed}");
                ensure!(
                    sampler.smoothed().usage() == smoothed,
                    "the shared value lags"
                );
            }
            Ok(())
        })())
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

/// `ManualCpu::new(usage)`: any reading, documented as clamped to [0, 1].
pub const MANUAL_CPU: Builder<(), f64> = Builder {
    name: "ManualCpu::new",
    context: || (),
    draw: |draw| draw.f64("usage", 0.0..=1.0),
    bad_fields: |_| Vec::new(),
    build_and_use: |(), usage| {
        let cpu = ManualCpu::new(*usage);
        let read = cpu.usage();
        Ok(if (0.0..=1.0).contains(&read) {
            Ok(())
        } else {
            Err(format!("ManualCpu::new({usage}) reads {read}"))
        })
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

/// Sampling settings from small pools: each distinct valid pair starts a sampler thread that
/// lives as long as the process, so the valid pairs must be few (and none may sample often).
const INTERVALS: &[Duration] = &[
    Duration::ZERO,
    Duration::from_millis(250),
    Duration::from_secs(1),
    Duration::MAX,
];
const DECAYS: &[f64] = &[
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    -0.1,
    -0.0,
    0.0,
    0.8,
    0.999,
    1.0,
    1.5,
];

fn sampling_bad((interval, decay): &(Duration, f64)) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if interval.is_zero() {
        bad.push("interval");
    }
    if !(decay.is_finite() && (0.0..1.0).contains(decay)) {
        bad.push("decay");
    }
    bad
}

/// `SystemCpu::with_sampling(interval, decay)`.
pub const SYSTEM_CPU: Builder<(), (Duration, f64)> = Builder {
    name: "SystemCpu::with_sampling",
    context: || (),
    draw: |draw| (draw.pick(INTERVALS), draw.pick(DECAYS)),
    bad_fields: sampling_bad,
    build_and_use: |(), (interval, decay)| match SystemCpu::with_sampling(*interval, *decay) {
        Ok(cpu) => Ok(if (0.0..=1.0).contains(&cpu.usage()) {
            Ok(())
        } else {
            Err(format!("usage {}", cpu.usage()))
        }),
        Err(SystemCpuError::Config(error)) => Err(error),
        Err(error) => Ok(Err(format!("no CPU reading on this machine: {error}"))),
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

pub const SPAWN_SAMPLER: Builder<Renewed, (Duration, f64)> = Builder {
    name: "spawn_sampler",
    context: Renewed::new,
    draw: |draw| {
        (
            draw.duration(
                "interval",
                Duration::from_millis(1)..=Duration::from_secs(10),
            ),
            draw.f64("decay", 0.0..=0.99),
        )
    },
    bad_fields: sampling_bad,
    build_and_use: |runtime, (interval, decay)| {
        runtime.block_on(async {
            let cpu = spawn_sampler(|| 1.0, *interval, *decay)?;
            let wait = interval.saturating_mul(3).min(Duration::from_secs(3_600));
            tokio::time::sleep(wait).await;
            let usage = cpu.usage();
            drop(cpu);
            // Lets a short-interval task notice it is no longer read, and end.
            tokio::time::sleep(wait).await;
            Ok(if (0.0..=1.0).contains(&usage) {
                Ok(())
            } else {
                Err(format!("usage {usage}"))
            })
        })
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

/// `DelayProbe::spawn(clock, interval)` on a paused runtime: an idle runtime's heartbeat is
/// on time (under 2 ms late, tokio's timer rounding to whole milliseconds).
pub const DELAY_PROBE: Builder<Renewed, Duration> = Builder {
    name: "DelayProbe::spawn",
    context: Renewed::new,
    draw: |draw| {
        draw.duration(
            "interval",
            Duration::from_millis(1)..=Duration::from_secs(1),
        )
    },
    bad_fields: |interval| {
        if (Duration::from_millis(1)..=Duration::from_secs(1)).contains(interval) {
            Vec::new()
        } else {
            vec!["interval"]
        }
    },
    build_and_use: |runtime, interval| {
        runtime.block_on(async {
            let clock = TokioClock::new();
            let probe = DelayProbe::spawn(clock, *interval)?;
            tokio::time::sleep(interval.saturating_mul(3)).await;
            let delay = probe.delay(clock.now());
            let kept = probe.interval();
            drop(probe);
            // Lets the heartbeat notice it is no longer read, and end.
            tokio::time::sleep(*interval).await;
            Ok((|| {
                ensure!(kept == *interval, "interval {kept:?}");
                ensure!(
                    delay < Duration::from_millis(2),
                    "an idle runtime reads {delay:?} late"
                );
                Ok(())
            })())
        })
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};
