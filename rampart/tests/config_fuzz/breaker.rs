//! rampart-breaker: `BreakerConfig`, built and used through `SreBreaker`, and the group
//! settings of `BreakerGroup`.

use std::sync::Arc;
use std::time::Duration;

use rampart::Outcome;
use rampart::breaker::{
    BreakerConfig, BreakerGroup, BreakerSnapshot, BreakerState, Rejections, SreBreaker,
};
use rampart::core::{Clock, ManualClock};

use super::core::{
    self, LARGE, costly_window, draw_group_case, group_case_bad, span_bad, validate_group_case,
};
use super::harness::{Builder, Used, ensure};
use super::hostile::Draw;

/// Clock steps between rounds of calls: none, within a bucket, a window and more, years, and
/// backwards (to zero).
const JUMPS: &[Duration] = &[
    Duration::ZERO,
    Duration::from_millis(7),
    Duration::from_secs(4),
    Duration::from_secs(365 * 24 * 3_600),
    Duration::MAX,
];

/// A configuration with the instant its clock starts at and a seed for the calls' outcomes.
pub type Case = (BreakerConfig, Duration, u64);

fn draw_config(draw: &mut Draw) -> BreakerConfig {
    let mut config = BreakerConfig::default()
        .with_k(draw.f64("k", 1.0..=10.0))
        .with_min_requests(draw.u64("min_requests", 0..=100))
        .with_window(
            draw.duration(
                "window",
                Duration::from_millis(10)..=Duration::from_secs(60),
            ),
            draw.usize("buckets", 1..=50),
        )
        .with_rejections(draw.pick(&[Rejections::Sre, Rejections::Ignore, Rejections::Adaptive]))
        .with_enforce(draw.bool())
        .with_on_cancel(draw.pick(&[Outcome::Success, Outcome::Failure, Outcome::Ignore]))
        .with_seed(draw.rng().u64(..));
    config.name = draw.name("name");
    config
}

fn config_bad(config: &BreakerConfig) -> Vec<&'static str> {
    let mut bad = span_bad(config.window, config.buckets);
    if !(config.k.is_finite() && (1.0..=1_000.0).contains(&config.k)) {
        bad.push("k");
    }
    if config.name.is_empty() {
        bad.push("name");
    }
    bad
}

/// A snapshot's figures are sane, and its drop probability is the documented formula.
fn check_snapshot(config: &BreakerConfig, s: &BreakerSnapshot) -> Used {
    ensure!(
        (0.0..=1.0).contains(&s.drop_probability),
        "drop probability {}",
        s.drop_probability
    );
    ensure!(
        (0.0..=1.0).contains(&s.rejection_weight),
        "rejection weight {}",
        s.rejection_weight
    );
    ensure!(
        s.requests.is_finite() && s.requests >= 0.0 && s.accepts <= s.admitted,
        "counts: {s:?}"
    );
    let closed = matches!(s.state, BreakerState::Closed);
    ensure!(closed == (s.drop_probability == 0.0), "state: {s:?}");
    let expected = if s.admitted.saturating_add(s.rejected) < config.min_requests {
        0.0
    } else {
        ((s.requests - config.k * s.accepts as f64) / (s.requests + 1.0)).max(0.0)
    };
    ensure!(
        (s.drop_probability - expected).abs() <= 1e-9,
        "drop probability {} where the formula gives {expected}: {s:?}",
        s.drop_probability
    );
    Ok(())
}

/// Rounds of calls with random outcomes, the clock stepping between rounds. Within the first
/// round (one instant) the snapshot counts every call exactly.
fn use_breaker(breaker: &SreBreaker<ManualClock>, seed: u64) -> Used {
    let config = breaker.config();
    let clock = breaker.clock();
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut successes, mut failures, mut rejections) = (0_u64, 0_u64, 0_u64);
    for round in 0..3 {
        for _ in 0..8 {
            let now = clock.now();
            if breaker.allow_at(now).is_ok() {
                if rng.u32(..3) == 0 {
                    successes += 1;
                    breaker.record_at(now, Outcome::Success);
                } else {
                    failures += 1;
                    breaker.record_at(now, Outcome::Failure);
                }
            } else {
                ensure!(config.enforce, "a dry run rejected a call");
                rejections += 1;
            }
        }
        check_snapshot(config, &breaker.snapshot())?;
        if round == 0 {
            let s = breaker.snapshot();
            ensure!(
                (s.admitted, s.accepts, s.rejected)
                    == (successes + failures, successes, rejections),
                "after {successes} successes, {failures} failures and {rejections} rejections \
                 at one instant the snapshot reads {s:?}"
            );
        }
        let jump = JUMPS[rng.usize(..JUMPS.len())];
        if rng.bool() {
            clock.advance(jump);
        } else {
            clock.set(Duration::ZERO);
        }
    }
    for (accepts, admitted) in [(0, 0), (1, 2), (5, 5), (u64::MAX, u64::MAX)] {
        let weight = config.rejections.weight(accepts, admitted, config.k);
        ensure!((0.0..=1.0).contains(&weight), "weight {weight}");
    }
    Ok(())
}

/// `BreakerConfig`, built with a manual clock and used.
pub const CONFIG: Builder<(), Case> = Builder {
    name: "BreakerConfig",
    context: || (),
    draw: |draw| (draw_config(draw), draw.instant(), draw.rng().u64(..)),
    bad_fields: |(config, _, _)| config_bad(config),
    build_and_use: |(), (config, start, seed)| {
        let breaker = config
            .clone()
            .build_with(ManualClock::starting_at(*start))?;
        Ok(use_breaker(&breaker, *seed))
    },
    costly_shape: |(config, _, _)| costly_window(config.buckets, config.validate().is_ok()),
    validate: |(config, _, _)| config.validate(),
};

/// A group's configuration and bounds, with the instant its clock starts at.
pub type GroupCase = core::GroupCase<BreakerConfig>;

/// `BreakerGroup::new_with(config)` then `with_max_keys` and `with_idle_timeout`, used for
/// more keys than it may hold.
pub const GROUP: Builder<(), GroupCase> = Builder {
    name: "BreakerGroup",
    context: || (),
    draw: |draw| draw_group_case(draw, draw_config),
    bad_fields: |case| group_case_bad(case, config_bad),
    build_and_use: |(), (config, max_keys, idle, start)| {
        let clock = ManualClock::starting_at(*start);
        let group = BreakerGroup::<u32, _>::new_with(config.clone(), clock.clone())?
            .with_max_keys(*max_keys)?
            .with_idle_timeout(*idle)?;
        Ok((|| {
            let bound = group.max_keys();
            // Each member builds its own window: fewer members when windows are large.
            let keys = if config.buckets > LARGE { 3 } else { 6 };
            for key in 0..keys {
                let breaker = group.get(&key);
                ensure!(
                    Arc::ptr_eq(&breaker, &group.get(&key)),
                    "key {key} got two breakers"
                );
                breaker.record(Outcome::Failure);
                check_snapshot(config, &breaker.snapshot())?;
                ensure!(
                    group.len() <= bound,
                    "{} breakers over a bound of {bound}",
                    group.len()
                );
                clock.advance(*idle / 5);
            }
            let _ = group.evict_idle();
            Ok(())
        })())
    },
    costly_shape: |(config, _, _, _)| costly_window(config.buckets, config.validate().is_ok()),
    validate: |case| validate_group_case(case, BreakerConfig::validate),
};
