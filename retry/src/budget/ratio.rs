use std::time::Duration;

use parking_lot::Mutex;
use rampart_core::{
    BucketClock, BucketStats, Clock, ConfigError, Criticality, CriticalityClass, PerBucketCache,
    RollingWindow, SystemClock, View, WindowConfig, check,
};

use super::{Budget, BudgetSnapshot, floor};

/// Fixed-point units per retry: ratios are exact to the millionth.
const UNIT: u128 = 1_000_000;
/// A withdrawal adds this to a bucket's sum; a deposit adds 1. Sums below 2³² are deposits.
/// Neither adds to the bucket's count (one atomic write per event: `RollingWindow::add_at`).
const WITHDRAWAL: u64 = 1 << 32;
const DEPOSITS: u64 = WITHDRAWAL - 1;
/// Buckets of the budget's window, as in Finagle and tower.
const BUCKETS: usize = 10;

/// The configuration of a [`RatioBudget`].
///
/// | field | default | rule |
/// | --- | --- | --- |
/// | `ttl` | 10 s | 1 to 60 s |
/// | `ratio` | 0.2 | finite, 0 to 1 000 (to the millionth) |
/// | `min_per_sec` | 10 | at most 1 000 000 |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioConfig {
    /// How long a deposit (and a withdrawal) counts.
    pub ttl: Duration,
    /// Retries allowed per deposit: 0.2 allows one retry for every five requests.
    pub ratio: f64,
    /// Retries allowed per second of `ttl` regardless of traffic, so that a quiet client can
    /// still retry: a standing reserve of `min_per_sec × ttl` retries within any `ttl`.
    pub min_per_sec: u32,
}

impl Default for RatioConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            ratio: 0.2,
            min_per_sec: 10,
        }
    }
}

impl RatioConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// `ttl` outside 1–60 s; `ratio` NaN, infinite or outside 0–1 000; `min_per_sec` above
    /// 1 000 000.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::duration_in(
            "ttl",
            self.ttl,
            Duration::from_secs(1)..=Duration::from_secs(60),
        )?;
        check::finite_in("ratio", self.ratio, 0.0..=1_000.0)?;
        check::at_most("min_per_sec", self.min_per_sec, 1_000_000)?;
        Ok(())
    }

    /// Builds a budget reading [`SystemClock`].
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn build(self) -> Result<RatioBudget, ConfigError> {
        self.build_with(SystemClock::new())
    }

    /// Builds a budget reading `clock`.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn build_with<C: Clock>(self, clock: C) -> Result<RatioBudget<C>, ConfigError> {
        RatioBudget::new(self, clock)
    }
}

/// A retry budget that allows `ratio` retries per request plus a standing reserve, over a
/// rolling `ttl` (Finagle's `RetryBudget`, tower's `TpsBudget`).
///
/// A withdrawal is granted only while the window ending now (the last `ttl`, 10 s, in ten
/// buckets) holds no more withdrawals than `ratio × deposits + min_per_sec × ttl`, counting
/// it. (The bound holds at each withdrawal, over its window; a later window may hold a
/// withdrawal whose deposits have expired.)
/// Accounting is exact in millionths of a retry: a ratio of 0.6 allows 60 retries per 100
/// deposits, where tower's integer accounting allows 100 (tower issue #857).
///
/// ```
/// use rampart_retry::{Budget, RatioConfig};
///
/// let budget = RatioConfig { ratio: 0.6, min_per_sec: 0, ..RatioConfig::default() }.build()?;
/// for _ in 0..100 {
///     budget.deposit();
/// }
/// let retries = (0..1_000).filter(|_| budget.withdraw()).count();
/// assert_eq!(retries, 60);
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Concurrency
///
/// Deposits are lock-free window writes, and so are refused withdrawals. A granted withdrawal
/// takes a short lock and checks again, so that two threads can never both spend the last
/// retry: the budget is never overdrawn.
#[derive(Debug)]
pub struct RatioBudget<C = SystemClock> {
    config: RatioConfig,
    /// Per bucket: deposits in the low 32 bits of the sum, withdrawals above them; read
    /// through a [`BucketClock`] (its clock's recent time, for buckets that wide).
    window: RollingWindow<BucketClock<C>>,
    /// The sum of the completed buckets, for the bucket it was computed in.
    completed: PerBucketCache<1>,
    deposit_units: u128,
    reserve_units: u128,
    /// `(per_sec, clients)` of a fleet floor replacing `min_per_sec`, if set.
    fleet: Option<(u32, u32)>,
    withdrawing: OwnLine<Mutex<()>>,
}

/// Keeps a value on cache lines of its own: the withdrawal lock is written by every granted
/// withdrawal and must not evict the window's read-mostly cursor from other cores' caches.
#[derive(Debug, Default)]
#[repr(align(128))]
struct OwnLine<T>(T);

impl<C: Clock> RatioBudget<C> {
    fn new(config: RatioConfig, clock: C) -> Result<Self, ConfigError> {
        config.validate()?;
        let shape = WindowConfig::spanning(config.ttl, BUCKETS);
        let window = shape.build_with(BucketClock::new(clock, shape.bucket_duration))?;
        Ok(Self {
            deposit_units: (config.ratio * UNIT as f64).round() as u128,
            reserve_units: (f64::from(config.min_per_sec) * config.ttl.as_secs_f64() * UNIT as f64)
                .round() as u128,
            fleet: None,
            window,
            completed: PerBucketCache::new(),
            withdrawing: OwnLine(Mutex::new(())),
            config,
        })
    }

    /// This budget with a floor stated for the whole fleet: `per_sec` retries per second
    /// shared by about `clients` clients, each keeping `per_sec / clients` of it (exact to the
    /// millionth of a retry per `ttl`), in place of the per-client `min_per_sec`.
    ///
    /// A per-client floor adds up: `min_per_sec` of 10 is 10 000 retries a second from a
    /// thousand clients facing a dead backend, whatever their traffic. Divided by the fleet's
    /// size, the floors of all the clients together stay `per_sec`, and the fleet's retries
    /// within any `ttl` stay near `ratio ×` its requests `+ per_sec × ttl`. A quiet client
    /// keeps only its share of the floor (a tenth of a retry per 10 s for 10/s over 1 000
    /// clients): its retries come from its own traffic's `ratio`. An estimate of `clients`
    /// that is too low makes the floor larger, one too high smaller; neither changes the
    /// `ratio` part.
    ///
    /// ```
    /// use rampart_retry::{Budget, RatioConfig};
    ///
    /// // 10 retries a second for a fleet of 1 000, 10 s ttl: 0.1 retry per client and ttl.
    /// let budget = RatioConfig { ratio: 0.2, ..RatioConfig::default() }
    ///     .build()?
    ///     .with_fleet_floor(10, 1_000)?;
    /// assert_eq!(budget.floor_per_sec(), 0.01);
    /// assert!(!budget.withdraw(), "no traffic, no retry");
    /// for _ in 0..5 {
    ///     budget.deposit();
    /// }
    /// assert!(budget.withdraw()); // 0.2 × 5 + 0.1
    /// assert!(!budget.withdraw());
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `per_sec` above 1 000 000 (`fleet_floor_per_sec`), `clients` outside 1–10 000 000
    /// (`fleet_clients`).
    pub fn with_fleet_floor(self, per_sec: u32, clients: u32) -> Result<Self, ConfigError> {
        check::at_most("fleet_floor_per_sec", per_sec, 1_000_000)?;
        check::within("fleet_clients", clients, 1..=10_000_000)?;
        let reserve_units = (f64::from(per_sec) * self.config.ttl.as_secs_f64() * UNIT as f64
            / f64::from(clients))
        .round() as u128;
        Ok(Self {
            reserve_units,
            fleet: Some((per_sec, clients)),
            ..self
        })
    }

    /// This client's floor, in retries per second: `min_per_sec`, or its share of a fleet
    /// floor ([`with_fleet_floor`](Self::with_fleet_floor)).
    pub fn floor_per_sec(&self) -> f64 {
        match self.fleet {
            Some((per_sec, clients)) => f64::from(per_sec) / f64::from(clients),
            None => f64::from(self.config.min_per_sec),
        }
    }

    /// The fleet floor, `(per_sec, clients)`, if the budget has one.
    pub fn fleet_floor(&self) -> Option<(u32, u32)> {
        self.fleet
    }

    /// Records a deposit at `now` (the budget's [`now`](Self::now)).
    #[inline]
    pub fn deposit_at(&self, now: Duration) {
        self.window.add_at(now, BucketStats { sum: 1, count: 0 });
    }

    /// Asks for one retry at `now`; `true` spends it.
    pub fn withdraw_at(&self, now: Duration) -> bool {
        self.withdraw_class_at(now, CriticalityClass::Critical)
    }

    /// Asks for one retry of a request of `criticality` at `now`; `true` spends it. It is
    /// granted only while the balance left after it is at least the share of the window's
    /// allowance (`ratio × deposits + min_per_sec × ttl`) that
    /// [`kept_back`](crate::kept_back) keeps for the classes above.
    pub fn withdraw_for_at(&self, now: Duration, criticality: Criticality) -> bool {
        self.withdraw_class_at(now, criticality.class())
    }

    fn withdraw_class_at(&self, now: Duration, class: CriticalityClass) -> bool {
        // Refusing needs no lock: only withdrawals lower the balance (besides time), and they
        // are serialised below, so a balance seen short now cannot have been enough.
        if !self.grants(self.counts_at(now), class) {
            return false;
        }
        let _one_at_a_time = self.withdrawing.0.lock();
        // Withdrawals land in the newest bucket, which the next one's totals include: the
        // window moves to `now` as the current bucket is read.
        let (bucket, current) = self.window.advance_and_read(now);
        if !self.grants(self.counts_of(now, bucket, current), class) {
            return false;
        }
        self.window.add_at(
            now,
            BucketStats {
                sum: WITHDRAWAL,
                count: 0,
            },
        );
        true
    }

    /// Whether `(deposits, withdrawals)` leave room for one more retry of `class`: a whole
    /// retry above the class's floor.
    #[inline]
    fn grants(&self, (deposits, withdrawals): (u64, u64), class: CriticalityClass) -> bool {
        let allowance = self.allowance_of(deposits);
        let balance = allowance.saturating_sub(u128::from(withdrawals) * UNIT);
        balance >= UNIT + floor(class, allowance)
    }

    /// The retries `deposits` and the reserve allow, in millionths of a retry.
    #[inline]
    fn allowance_of(&self, deposits: u64) -> u128 {
        self.reserve_units + u128::from(deposits) * self.deposit_units
    }

    /// `(deposits, withdrawals)` in the window at `now`.
    pub fn counts_at(&self, now: Duration) -> (u64, u64) {
        let (bucket, current) = self.window.current_at(now);
        self.counts_of(now, bucket, current)
    }

    /// `(deposits, withdrawals)` at `now`, given the current bucket's number and contents.
    fn counts_of(&self, now: Duration, bucket: u64, current: BucketStats) -> (u64, u64) {
        let [completed] = self.completed.get_or_refresh(bucket, || {
            // Rotated first, so that a deposit or withdrawal at an earlier instant arriving
            // after this read lands in the newest bucket (read live above), never in a bucket
            // these cached totals have already summed.
            self.window.advance_to(now);
            [self.window.view_at(now, View::Completed).sum()]
        });
        let total = current.sum.wrapping_add(completed);
        (total & DEPOSITS, total >> 32)
    }

    /// The balance in millionths of a retry (negative never: withdrawals need a whole unit).
    fn balance_at(&self, now: Duration) -> u128 {
        self.balance_of(self.counts_at(now))
    }

    /// The balance left by `(deposits, withdrawals)`, in millionths of a retry.
    fn balance_of(&self, (deposits, withdrawals): (u64, u64)) -> u128 {
        self.allowance_of(deposits)
            .saturating_sub(u128::from(withdrawals) * UNIT)
    }

    /// The configuration the budget was built with.
    pub fn config(&self) -> &RatioConfig {
        &self.config
    }

    /// The budget's clock.
    pub fn clock(&self) -> &C {
        self.window.clock().inner()
    }

    /// The budget's reading of its clock, the instant the `*_at` methods take: its
    /// [`recent`](Clock::recent) time when that stands still for at most a tenth of a bucket
    /// (a [`BucketClock`]), its precise time otherwise.
    #[inline]
    pub fn now(&self) -> Duration {
        self.window.clock().now()
    }
}

impl<C: Clock> Budget for RatioBudget<C> {
    #[inline]
    fn deposit(&self) {
        self.deposit_at(self.now());
    }

    fn withdraw(&self) -> bool {
        self.withdraw_at(self.now())
    }

    fn withdraw_for(&self, criticality: Criticality) -> bool {
        self.withdraw_for_at(self.now(), criticality)
    }

    fn snapshot(&self) -> BudgetSnapshot {
        let balance = self.balance_at(self.now());
        BudgetSnapshot {
            remaining: (balance / UNIT) as f64,
        }
    }
}

impl<C: Clock> tower::retry::budget::Budget for RatioBudget<C> {
    fn deposit(&self) {
        Budget::deposit(self);
    }

    fn withdraw(&self) -> bool {
        Budget::withdraw(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_field_is_named() {
        let base = RatioConfig::default();
        let cases = [
            (
                RatioConfig {
                    ttl: Duration::from_millis(999),
                    ..base
                },
                "ttl",
            ),
            (
                RatioConfig {
                    ttl: Duration::from_secs(61),
                    ..base
                },
                "ttl",
            ),
            (
                RatioConfig {
                    ratio: -0.1,
                    ..base
                },
                "ratio",
            ),
            (
                RatioConfig {
                    ratio: f64::NAN,
                    ..base
                },
                "ratio",
            ),
            (
                RatioConfig {
                    ratio: 1_000.5,
                    ..base
                },
                "ratio",
            ),
            (
                RatioConfig {
                    min_per_sec: 2_000_000,
                    ..base
                },
                "min_per_sec",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
        assert_eq!(base.validate(), Ok(()));
    }
}
