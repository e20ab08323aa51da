//! rampart-core: `WindowConfig` (built directly and by `spanning_checked`, as every layer's
//! window is) and `KeyedGroup::new`.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use rampart::core::{Clock, KeyedGroup, ManualClock, Stripes, WindowConfig};

use super::harness::{Builder, Used, ensure};
use super::hostile::Draw;

const MAX_BUCKETS: usize = 65_536;
const MIN_BUCKET: Duration = Duration::from_micros(1);
/// Buckets (times stripes) from which a window counts as large: every read visits them all,
/// so large windows are read less.
pub const LARGE: usize = 4_096;

/// A duration in nanoseconds, saturating at `u64::MAX`.
pub fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The documented rules of a window given as a span cut into buckets (every layer's
/// `window` and `buckets` fields): a span above zero; 1 to 65 536 buckets; buckets of at
/// least 1 µs; a span that fits in 2⁶⁴ nanoseconds. The derived rules are reported against
/// `window`.
pub fn span_bad(window: Duration, buckets: usize) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if window.is_zero() {
        bad.push("window");
    }
    if buckets == 0 || buckets > MAX_BUCKETS {
        bad.push("buckets");
    }
    if !bad.is_empty() {
        return bad;
    }
    let per_bucket = window / buckets as u32;
    let per_nanos = nanos(per_bucket);
    if per_bucket < MIN_BUCKET
        || per_nanos == u64::MAX
        || per_nanos.checked_mul(buckets as u64).is_none()
    {
        bad.push("window");
    }
    bad
}

fn draw_window(draw: &mut Draw) -> (WindowConfig, Duration) {
    let buckets = draw.usize("buckets", 1..=100);
    let bucket_duration = draw.duration(
        "bucket_duration",
        Duration::from_micros(1)..=Duration::from_secs(10),
    );
    let stripes = if draw.bool() {
        Stripes::Auto
    } else {
        let ordinary = 1 << draw.rng().usize(0..=3);
        Stripes::Exactly(if draw.bool() {
            ordinary
        } else {
            draw.usize("stripes", ordinary..=ordinary)
        })
    };
    (
        WindowConfig::new(buckets, bucket_duration).with_stripes(stripes),
        draw.instant(),
    )
}

fn window_bad((config, _): &(WindowConfig, Duration)) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if config.buckets == 0 || config.buckets > MAX_BUCKETS {
        bad.push("buckets");
    }
    let per_nanos = nanos(config.bucket_duration);
    if config.bucket_duration < MIN_BUCKET
        || per_nanos == u64::MAX
        || per_nanos.checked_mul(config.buckets as u64).is_none()
    {
        bad.push("bucket_duration");
    }
    if let Stripes::Exactly(stripes) = config.stripes
        && (!stripes.is_power_of_two() || stripes > 64)
    {
        bad.push("stripes");
    }
    bad
}

/// Records into a window built at `start`, and checks its counts: exact within the window,
/// and empty a whole window later (unless the clock saturates on the way).
fn use_window(config: WindowConfig, start: Duration) -> Result<Used, rampart::ConfigError> {
    let clock = ManualClock::starting_at(start);
    let window = config.build_with(clock.clone())?;
    Ok((|| {
        ensure!(
            window.window() == config.window() && window.buckets() == config.buckets,
            "shape: {:?} in {} buckets",
            window.window(),
            window.buckets()
        );
        let stripes = window.stripes();
        ensure!(
            stripes.is_power_of_two() && stripes <= 64,
            "stripes: {stripes}"
        );
        for value in 1..=5 {
            window.record(value);
        }
        ensure!(
            (window.count(), window.sum()) == (5, 15),
            "five records read as {} summing {}",
            window.count(),
            window.sum()
        );
        if window.buckets() * stripes > LARGE {
            // Every read visits every bucket of every stripe: one is enough for a large ring.
            return Ok(());
        }
        let jump = config.window().saturating_add(config.bucket_duration);
        let later = nanos(clock.now()).checked_add(nanos(jump));
        clock.advance(jump);
        if later.is_some_and(|later| later < u64::MAX) {
            ensure!(
                window.count() == 0,
                "a window later it still holds {} records",
                window.count()
            );
            window.record(7);
            ensure!(
                window.count() == 1,
                "one new record reads as {}",
                window.count()
            );
        }
        Ok(())
    })())
}

/// `WindowConfig::new(buckets, bucket_duration).with_stripes(stripes)`, built and used.
pub const WINDOW: Builder<(), (WindowConfig, Duration)> = Builder {
    name: "WindowConfig",
    context: || (),
    draw: draw_window,
    bad_fields: window_bad,
    build_and_use: |(), (config, start)| use_window(*config, *start),
    costly_shape: |(config, _)| {
        let copies = config.buckets.saturating_mul(config.stripes.count());
        (copies > LARGE && config.validate().is_ok()).then_some((config.buckets, copies))
    },
    validate: |(config, _)| config.validate(),
};

fn draw_span(draw: &mut Draw) -> (Duration, usize, Duration) {
    (
        draw.duration(
            "window",
            Duration::from_millis(1)..=Duration::from_secs(3_600),
        ),
        draw.usize("buckets", 1..=100),
        draw.instant(),
    )
}

/// `WindowConfig::spanning_checked(window, buckets)`, the check every layer's window goes
/// through, built and used.
pub const SPANNING: Builder<(), (Duration, usize, Duration)> = Builder {
    name: "WindowConfig::spanning_checked",
    context: || (),
    draw: draw_span,
    bad_fields: |(window, buckets, _)| span_bad(*window, *buckets),
    build_and_use: |(), (span, buckets, start)| {
        let config = WindowConfig::spanning_checked(*span, *buckets)?;
        if config.buckets != *buckets || config.window() > *span {
            return Ok(Err(format!(
                "{span:?} in {buckets} gave {:?} in {}",
                config.window(),
                config.buckets
            )));
        }
        use_window(config, *start)
    },
    costly_shape: |(span, buckets, _)| {
        let valid = WindowConfig::spanning_checked(*span, *buckets).is_ok();
        (*buckets > LARGE && valid).then_some((*buckets, 0))
    },
    validate: |(span, buckets, _)| WindowConfig::spanning_checked(*span, *buckets).map(drop),
};

/// Draws a group's bounds, `max_keys` ordinarily in `max_keys`, and the instant its clock
/// starts at.
fn draw_bounds(draw: &mut Draw, max_keys: RangeInclusive<usize>) -> (usize, Duration, Duration) {
    (
        draw.usize("max_keys", max_keys),
        draw.duration(
            "idle_timeout",
            Duration::from_millis(1)..=Duration::from_secs(3_600),
        ),
        draw.instant(),
    )
}

/// The bounds of a group that break `KeyedGroup::new`'s documented rules.
fn bounds_bad(max_keys: usize, idle: Duration) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if max_keys == 0 {
        bad.push("max_keys");
    }
    if idle.is_zero() {
        bad.push("idle_timeout");
    }
    bad
}

/// A layer's configuration for a keyed group, the group's bounds, and the instant its clock
/// starts at.
pub type GroupCase<C> = (C, usize, Duration, Duration);

/// Draws a layer's configuration with `config`, then the bounds of a group of at most a few
/// keys (each member builds its own window) and the instant its clock starts at.
pub fn draw_group_case<C>(draw: &mut Draw, config: fn(&mut Draw) -> C) -> GroupCase<C> {
    let config = config(draw);
    let (max_keys, idle, start) = draw_bounds(draw, 1..=8);
    (config, max_keys, idle, start)
}

/// The fields of a group case that break their documented rules: its configuration's, by
/// `config_bad`, then its bounds'.
pub fn group_case_bad<C>(
    (config, max_keys, idle, _): &GroupCase<C>,
    config_bad: fn(&C) -> Vec<&'static str>,
) -> Vec<&'static str> {
    let mut bad = config_bad(config);
    bad.extend(bounds_bad(*max_keys, *idle));
    bad
}

/// Validates a group case: its configuration with `validate`, then its bounds as
/// `KeyedGroup::new` does.
pub fn validate_group_case<C>(
    (config, max_keys, idle, _): &GroupCase<C>,
    validate: fn(&C) -> Result<(), rampart::ConfigError>,
) -> Result<(), rampart::ConfigError> {
    validate(config)?;
    KeyedGroup::<u32, ()>::new(*max_keys, *idle).map(drop)
}

/// The shape of a window of `buckets` (a valid one) when it is large enough to be costly.
pub fn costly_window(buckets: usize, valid: bool) -> Option<(usize, usize)> {
    (buckets > LARGE && valid).then_some((buckets, 0))
}

/// Fills a group past its bound at instants from `start`, and checks it stays bounded and
/// hands out one value per key.
fn use_group(
    max_keys: usize,
    idle: Duration,
    start: Duration,
) -> Result<Used, rampart::ConfigError> {
    let group = KeyedGroup::<u32, u32>::new(max_keys, idle)?;
    Ok((|| {
        let bound = group.max_keys();
        ensure!(
            (1..=max_keys).contains(&bound),
            "bound {bound} for max_keys {max_keys}"
        );
        let mut now = start;
        for key in 0..=(bound.min(12) as u32 + 3) {
            let first = group.get_or_insert_with(&key, now, |key| Arc::new(*key));
            let again = group.get_or_insert_with(&key, now, |_| Arc::new(u32::MAX));
            ensure!(Arc::ptr_eq(&first, &again), "key {key} made twice");
            ensure!(
                group.len() <= bound,
                "{} values over a bound of {bound}",
                group.len()
            );
            now = now.saturating_add(idle / 3);
        }
        let _ = group.evict_idle(now.saturating_add(idle));
        ensure!(
            group.len() <= bound,
            "{} values after eviction",
            group.len()
        );
        Ok(())
    })())
}

/// `KeyedGroup::new(max_keys, idle_timeout)`, which the breaker's and limiter's groups use.
pub const GROUP: Builder<(), (usize, Duration, Duration)> = Builder {
    name: "KeyedGroup::new",
    context: || (),
    draw: |draw| draw_bounds(draw, 1..=64),
    bad_fields: |(max_keys, idle, _)| bounds_bad(*max_keys, *idle),
    build_and_use: |(), (max_keys, idle, start)| use_group(*max_keys, *idle, *start),
    costly_shape: |_| None,
    validate: |_| Ok(()),
};
