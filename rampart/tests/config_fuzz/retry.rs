//! rampart-retry: `Backoff`, `RetryConfig` (used through a `Retry` service), `RatioConfig` and
//! `TokenConfig` (used through their budgets).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rampart::Outcome;
use rampart::core::{Clock, ManualClock};
use rampart::retry::{
    Backoff, Budget, RatioConfig, RetryConfig, RetryLayer, TokenConfig, Unlimited,
};
use tokio::runtime::Runtime;
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

use super::harness::{Builder, Used, ensure, paused_runtime};
use super::hostile::Draw;

/// Retry numbers each backoff is asked about, in order.
const RETRIES: &[u32] = &[1, 2, 3, 4, 10, 64, 1_000, u32::MAX];

fn draw_backoff(draw: &mut Draw) -> Backoff {
    let base = draw.duration(
        "base",
        Duration::from_millis(1)..=Duration::from_millis(100),
    );
    let cap = draw.duration("cap", Duration::from_millis(100)..=Duration::from_secs(10));
    match draw.rng().u32(..3) {
        0 => Backoff::Exponential {
            base,
            factor: draw.f64("factor", 1.0..=10.0),
            cap,
            jitter: draw.bool(),
        },
        1 => Backoff::Decorrelated { base, cap },
        _ => Backoff::Constant(draw.duration("wait", Duration::ZERO..=Duration::from_secs(1))),
    }
}

/// A backoff's documented rules, all reported against the field that holds it.
fn backoff_bad(backoff: &Backoff) -> Vec<&'static str> {
    let bad = match *backoff {
        Backoff::Exponential {
            base, factor, cap, ..
        } => !(factor.is_finite() && (1.0..=1_000.0).contains(&factor)) || cap < base,
        Backoff::Decorrelated { base, cap } => cap < base,
        Backoff::Constant(_) => false,
    };
    if bad { vec!["backoff"] } else { Vec::new() }
}

/// Every wait stays within the backoff's bounds: under the cap, from `base` for decorrelated
/// jitter, exactly the constant; without jitter the exponential ceilings never shrink.
fn use_backoff(backoff: &Backoff, seed: u64) -> Used {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut previous = Duration::ZERO;
    for (at, &retry) in RETRIES.iter().enumerate() {
        let wait = backoff.delay(retry, previous, &mut rng);
        match *backoff {
            Backoff::Exponential { cap, jitter, .. } => {
                ensure!(
                    wait <= cap,
                    "retry {retry} waits {wait:?} over the cap {cap:?}"
                );
                ensure!(
                    jitter || at == 0 || wait >= previous,
                    "retry {retry} waits {wait:?}, less than the previous {previous:?}"
                );
            }
            Backoff::Decorrelated { base, cap } => ensure!(
                (base..=cap).contains(&wait),
                "retry {retry} waits {wait:?}, outside [{base:?}, {cap:?}]"
            ),
            Backoff::Constant(constant) => {
                ensure!(wait == constant, "retry {retry} waits {wait:?}");
            }
        }
        previous = wait;
    }
    let _ = backoff.delay(u32::MAX, Duration::MAX, &mut rng);
    Ok(())
}

/// `Backoff` (each kind), validated and asked for waits.
pub const BACKOFF: Builder<(), (Backoff, u64)> = Builder {
    name: "Backoff",
    context: || (),
    draw: |draw| (draw_backoff(draw), draw.rng().u64(..)),
    bad_fields: |(backoff, _)| backoff_bad(backoff),
    build_and_use: |(), (backoff, seed)| {
        backoff.validate()?;
        Ok(use_backoff(backoff, *seed))
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

/// A configuration and how many attempts fail before one succeeds.
pub type RetryCase = (RetryConfig, u32);

/// One request through a `Retry` over a service whose first `failing` attempts fail:
/// exactly `min(max_attempts, failing + 1)` attempts, and success if one was left for it.
fn use_retry(
    runtime: &Runtime,
    config: &RetryConfig,
    failing: u32,
) -> Result<Used, rampart::ConfigError> {
    let layer = RetryLayer::new(config.clone(), Unlimited)?;
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let inner = service_fn(move |()| {
        let attempt = counted.fetch_add(1, Ordering::Relaxed);
        async move {
            if attempt < failing {
                Err::<u32, BoxError>("down".into())
            } else {
                Ok(attempt)
            }
        }
    });
    let mut service = layer.layer(inner);
    let result = runtime.block_on(async { service.ready().await?.call(()).await });
    let calls = calls.load(Ordering::Relaxed);
    let expected = config.max_attempts.min(failing.saturating_add(1));
    Ok((|| {
        ensure!(
            calls == expected,
            "{calls} attempts where {expected} were due"
        );
        ensure!(
            result.is_ok() == (failing < config.max_attempts),
            "{failing} failing attempts gave {result:?}"
        );
        Ok(())
    })())
}

/// `RetryConfig`, built into a `RetryLayer` and used on a paused runtime.
pub const CONFIG: Builder<Runtime, RetryCase> = Builder {
    name: "RetryConfig",
    context: paused_runtime,
    draw: |draw| {
        let mut config = RetryConfig::default()
            .with_max_attempts(draw.u32("max_attempts", 1..=10))
            .with_backoff(draw_backoff(draw))
            .with_seed(draw.rng().u64(..));
        if draw.bool() {
            config = config.with_attempt_timeout(draw.duration(
                "attempt_timeout",
                Duration::from_millis(1)..=Duration::from_secs(1),
            ));
        }
        config.name = draw.name("name");
        (config, draw.rng().u32(..12))
    },
    bad_fields: |(config, _)| {
        let mut bad = backoff_bad(&config.backoff);
        if !(1..=100).contains(&config.max_attempts) {
            bad.push("max_attempts");
        }
        if config
            .attempt_timeout
            .is_some_and(|timeout| timeout.is_zero())
        {
            bad.push("attempt_timeout");
        }
        if config.name.is_empty() {
            bad.push("name");
        }
        bad
    },
    build_and_use: |runtime, (config, failing)| use_retry(runtime, config, *failing),
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

/// A budget configuration, its clock's start, and how many requests deposit.
pub type RatioCase = (RatioConfig, Duration, u32);

/// At one instant, `deposits` requests earn exactly `ratio × deposits + min_per_sec × ttl`
/// retries (to the millionth); a whole `ttl` later, only the reserve is left.
fn use_ratio(
    config: RatioConfig,
    start: Duration,
    deposits: u32,
) -> Result<Used, rampart::ConfigError> {
    let clock = ManualClock::starting_at(start);
    let budget = config.build_with(clock.clone())?;
    Ok((|| {
        for _ in 0..deposits {
            budget.deposit();
        }
        let units = |value: f64| (value * 1e6).round() as u128;
        let reserve = u128::from(config.min_per_sec) * config.ttl.as_micros();
        let allowed = (reserve + u128::from(deposits) * units(config.ratio)) / 1_000_000;
        let tries = allowed.min(40) + 1;
        let granted = (0..tries).filter(|_| budget.withdraw()).count() as u128;
        ensure!(
            granted == allowed.min(tries),
            "{granted} retries granted where {allowed} are due ({deposits} deposits)"
        );
        let remaining = budget.snapshot().remaining;
        ensure!(
            remaining.is_finite() && remaining >= 0.0,
            "remaining {remaining}"
        );
        let later = clock.now().checked_add(config.ttl.saturating_mul(2));
        clock.advance(config.ttl.saturating_mul(2));
        if later.is_some_and(|later| later.as_nanos() < u128::from(u64::MAX)) {
            let reserve_left = reserve >= 1_000_000;
            ensure!(
                budget.withdraw() == reserve_left,
                "a ttl later, a reserve of {reserve} millionths grants {}",
                !reserve_left
            );
        }
        Ok(())
    })())
}

/// `RatioConfig`, built with a manual clock and used.
pub const RATIO: Builder<(), RatioCase> = Builder {
    name: "RatioConfig",
    context: || (),
    draw: |draw| {
        let config = RatioConfig {
            ttl: draw.duration("ttl", Duration::from_secs(1)..=Duration::from_secs(60)),
            ratio: draw.f64("ratio", 0.0..=5.0),
            min_per_sec: draw.u32("min_per_sec", 0..=5),
        };
        (config, draw.instant(), draw.rng().u32(..100))
    },
    bad_fields: |(config, _, _)| {
        let mut bad = Vec::new();
        if !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&config.ttl) {
            bad.push("ttl");
        }
        if !(config.ratio.is_finite() && (0.0..=1_000.0).contains(&config.ratio)) {
            bad.push("ratio");
        }
        if config.min_per_sec > 1_000_000 {
            bad.push("min_per_sec");
        }
        bad
    },
    build_and_use: |(), (config, start, deposits)| use_ratio(*config, *start, *deposits),
    costly_shape: |_| None,
    validate: |_| Ok(()),
};

/// `TokenConfig`, built and drained: full at first, retries stop at half, successes refill
/// by `token_ratio` up to `max_tokens`.
pub const TOKEN: Builder<(), TokenConfig> = Builder {
    name: "TokenConfig",
    context: || (),
    draw: |draw| TokenConfig {
        max_tokens: draw.u32("max_tokens", 1..=1_000),
        token_ratio: draw.f64("token_ratio", 0.001..=1.0),
    },
    bad_fields: |config| {
        let mut bad = Vec::new();
        if !(1..=1_000).contains(&config.max_tokens) {
            bad.push("max_tokens");
        }
        let ratio = config.token_ratio;
        if !(ratio.is_finite() && (0.0..=1.0).contains(&ratio) && (ratio * 1e3).round() >= 1.0) {
            bad.push("token_ratio");
        }
        bad
    },
    build_and_use: |(), config| {
        let budget = config.build()?;
        let max = f64::from(config.max_tokens);
        Ok((|| {
            ensure!(budget.tokens() == max, "starts with {}", budget.tokens());
            for _ in 0..=config.max_tokens {
                let tokens = budget.tokens();
                ensure!(
                    budget.withdraw() == (tokens > max / 2.0),
                    "{tokens} of {max} tokens"
                );
                budget.record(Outcome::Failure);
            }
            ensure!(budget.tokens() == 0.0, "drained to {}", budget.tokens());
            for _ in 0..3 {
                let before = budget.tokens();
                budget.record(Outcome::Success);
                let gained = budget.tokens() - before;
                let due = config.token_ratio.min(max - before);
                ensure!(
                    (gained - due).abs() <= 0.000_5 + 1e-9,
                    "a success earned {gained} where {due} was due"
                );
            }
            Ok(())
        })())
    },
    costly_shape: |_| None,
    validate: |_| Ok(()),
};
