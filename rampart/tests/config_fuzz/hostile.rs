//! Random configuration values: each field is either an ordinary value, drawn from the range
//! its documentation allows, or a hostile one (NaN, infinities, negatives, zero, tiny values,
//! `Duration::MAX`, the integer maxima, the edges of the documented ranges). The draw keeps the
//! names of the fields it made hostile, for the failure reports.

use std::borrow::Cow;
use std::ops::RangeInclusive;
use std::time::Duration;

/// One in this many fields is drawn hostile: with five fields, about a third of the
/// configurations are made of ordinary values only, which must all build.
const HOSTILE_ONE_IN: u32 = 4;

const HOSTILE_F64: &[f64] = &[
    f64::NAN,
    -f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    -f64::MIN_POSITIVE,
    5e-324,
    1e-300,
    -1.0,
    -0.0,
    0.0,
    0.000_4,
    0.000_5,
    0.999_999_999_999,
    1.0,
    1.000_000_000_001,
    100.0,
    100.000_001,
    1_000.0,
    1_000.5,
    1e300,
    -1e300,
];

const HOSTILE_DURATIONS: &[Duration] = &[
    Duration::ZERO,
    Duration::from_nanos(1),
    Duration::from_nanos(999),
    Duration::from_micros(1),
    Duration::from_millis(999),
    Duration::from_secs(1),
    Duration::from_secs(60),
    Duration::from_secs(61),
    Duration::from_nanos(u64::MAX),
    Duration::from_nanos(u64::MAX - 1),
    Duration::from_secs(u64::MAX / 1_000_000_000),
    Duration::from_secs(100 * 365 * 24 * 3_600),
    Duration::from_secs(u64::MAX),
    Duration::MAX,
];

const HOSTILE_U64: &[u64] = &[
    0,
    1,
    2,
    1_000,
    1_001,
    1_000_000,
    1_000_001,
    u32::MAX as u64,
    u64::MAX / 2,
    u64::MAX - 1,
    u64::MAX,
];

const HOSTILE_USIZE: &[usize] = &[
    0,
    1,
    2,
    3,
    64,
    128,
    65_536,
    65_537,
    u32::MAX as usize,
    usize::MAX / 2,
    usize::MAX - 1,
    usize::MAX,
];

/// Draws configuration values from a seeded generator.
#[derive(Debug)]
pub struct Draw {
    rng: fastrand::Rng,
    hostile: Vec<&'static str>,
}

impl Draw {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            hostile: Vec::new(),
        }
    }

    /// Starts a new configuration: forgets which fields were hostile.
    pub fn start(&mut self) {
        self.hostile.clear();
    }

    /// The fields drawn hostile since [`start`](Self::start).
    pub fn hostile(&self) -> &[&'static str] {
        &self.hostile
    }

    /// The generator, for values that are neither ordinary nor hostile (seeds, instants).
    pub fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }

    fn is_hostile(&mut self, field: &'static str) -> bool {
        let hostile = self.rng.u32(..HOSTILE_ONE_IN) == 0;
        if hostile {
            self.hostile.push(field);
        }
        hostile
    }

    /// A float: hostile, or uniform in `ordinary`.
    pub fn f64(&mut self, field: &'static str, ordinary: RangeInclusive<f64>) -> f64 {
        if self.is_hostile(field) {
            return HOSTILE_F64[self.rng.usize(..HOSTILE_F64.len())];
        }
        let (low, high) = (*ordinary.start(), *ordinary.end());
        (low + self.rng.f64() * (high - low)).clamp(low, high)
    }

    /// A duration: hostile, or uniform (to the microsecond) in `ordinary`.
    pub fn duration(
        &mut self,
        field: &'static str,
        ordinary: RangeInclusive<Duration>,
    ) -> Duration {
        if self.is_hostile(field) {
            return HOSTILE_DURATIONS[self.rng.usize(..HOSTILE_DURATIONS.len())];
        }
        let (low, high) = (
            ordinary.start().as_micros() as u64,
            ordinary.end().as_micros() as u64,
        );
        Duration::from_micros(self.rng.u64(low..=high))
    }

    /// A `u64`: hostile, or uniform in `ordinary`.
    pub fn u64(&mut self, field: &'static str, ordinary: RangeInclusive<u64>) -> u64 {
        if self.is_hostile(field) {
            return HOSTILE_U64[self.rng.usize(..HOSTILE_U64.len())];
        }
        self.rng.u64(ordinary)
    }

    /// A `u32`: hostile (the `u64` values that fit, and `u32::MAX`), or uniform in `ordinary`.
    pub fn u32(&mut self, field: &'static str, ordinary: RangeInclusive<u32>) -> u32 {
        if self.is_hostile(field) {
            let value = HOSTILE_U64[self.rng.usize(..HOSTILE_U64.len())];
            return u32::try_from(value).unwrap_or(u32::MAX);
        }
        self.rng.u32(ordinary)
    }

    /// A `usize`: hostile, or uniform in `ordinary`.
    pub fn usize(&mut self, field: &'static str, ordinary: RangeInclusive<usize>) -> usize {
        if self.is_hostile(field) {
            return HOSTILE_USIZE[self.rng.usize(..HOSTILE_USIZE.len())];
        }
        self.rng.usize(ordinary)
    }

    /// A metrics name: empty (hostile), or an ordinary one.
    pub fn name(&mut self, field: &'static str) -> Cow<'static, str> {
        if self.is_hostile(field) {
            Cow::Borrowed("")
        } else {
            Cow::Borrowed("fuzz")
        }
    }

    /// A fair coin.
    pub fn bool(&mut self) -> bool {
        self.rng.bool()
    }

    /// One of `choices`, uniformly.
    pub fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[self.rng.usize(..choices.len())]
    }

    /// An instant for a clock: ordinary (under a day), or one of the hostile durations.
    pub fn instant(&mut self) -> Duration {
        if self.rng.u32(..4) == 0 {
            HOSTILE_DURATIONS[self.rng.usize(..HOSTILE_DURATIONS.len())]
        } else {
            Duration::from_micros(self.rng.u64(..86_400_000_000))
        }
    }
}
