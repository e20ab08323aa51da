//! [`BbrGroup`]: one limiter per key (route, RPC method), created on first use.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::{Clock, ConfigError, KeyLabel, KeyedGroup, SystemClock, ValidWindowConfig};

use crate::cpu::CpuUsage;
use crate::{BbrConfig, BbrLimiter, SchedulingDelay, SystemCpu};

/// One [`BbrLimiter`] per key (route, RPC method), each built from the same configuration the
/// first time its key is used, sharing one clock and one CPU signal.
///
/// A limiter per route keeps a cheap route's proven capacity from being judged by a slow
/// route's latency. Bounded like [`KeyedGroup`] (by default 1 024 keys,
/// [`KeyedGroup::DEFAULT_MAX_KEYS`], and 10 minutes idle, [`KeyedGroup::DEFAULT_IDLE_TIMEOUT`]);
/// every member reports under the group's `name` with a `key` label (the key's `Debug` form,
/// or [`with_key_label`](Self::with_key_label)'s), its gauges kept current while its key sees
/// no request (see [`keep_gauges_current`](Self::keep_gauges_current)) until it is evicted.
///
/// ```
/// use rampart_core::SystemClock;
/// use rampart_ratelimit::{BbrConfig, BbrGroup, ManualCpu};
///
/// let group = BbrGroup::new_with(BbrConfig::default(), SystemClock::new(), ManualCpu::new(0.1))?;
/// let search = group.get(&"/search");
/// let _permit = search.acquire()?;
/// assert_eq!(group.get(&"/search").snapshot().inflight, 1);
/// assert_eq!(group.get(&"/checkout").snapshot().inflight, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BbrGroup<K, C = SystemClock, U = SystemCpu> {
    /// Validated when the group is built, so that members are built without failing.
    config: BbrConfig,
    /// The shape of every member's window, validated with `config`.
    window: ValidWindowConfig,
    clock: C,
    cpu: U,
    /// The scheduling delay every member reads, if any.
    delay: Option<Arc<dyn SchedulingDelay>>,
    members: KeyedGroup<K, BbrLimiter<C, U>>,
    key_label: KeyLabel<K>,
}

impl<K: fmt::Debug> BbrGroup<K> {
    /// A group whose members are built from `config`, reading [`SystemClock`] and
    /// [`SystemCpu`].
    ///
    /// # Errors
    ///
    /// As [`BbrConfig::build`]; likewise, inside a tokio runtime every member reads one probe
    /// of its scheduling delay.
    pub fn new(config: BbrConfig) -> Result<Self, ConfigError> {
        let cpu = config.system_cpu()?;
        let delay = config.runtime_delay();
        let mut group = Self::new_with(config, SystemClock::new(), cpu)?;
        group.delay = delay;
        Ok(group)
    }
}

impl<K: fmt::Debug, C: Clock + Clone, U: CpuUsage + Clone> BbrGroup<K, C, U> {
    /// A group whose members are built from `config` and read `clock` and `cpu`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BbrConfig::validate`]).
    pub fn new_with(config: BbrConfig, clock: C, cpu: U) -> Result<Self, ConfigError> {
        let window = config.validated_window()?;
        Ok(Self {
            config,
            window,
            clock,
            cpu,
            delay: None,
            members: KeyedGroup::default().with_busy(BbrLimiter::has_inflight),
            key_label: KeyLabel::default(),
        })
    }
}

impl<K, C, U> BbrGroup<K, C, U> {
    /// The same group holding at most `max_keys` limiters and evicting those unused for
    /// `idle_timeout` first (call before first use).
    ///
    /// # Errors
    ///
    /// `max_keys` or `idle_timeout` is zero.
    pub fn with_bounds(
        mut self,
        max_keys: usize,
        idle_timeout: Duration,
    ) -> Result<Self, ConfigError> {
        self.members = KeyedGroup::new(max_keys, idle_timeout)?.with_busy(BbrLimiter::has_inflight);
        Ok(self)
    }

    /// The same group labelling each member's metrics with `label(key)`.
    #[must_use]
    pub fn with_key_label(mut self, label: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        self.key_label = KeyLabel::new(label);
        self
    }

    /// The same group, every member reading the runtime's scheduling delay from `delay` (as
    /// [`BbrLimiter::with_delay`]; call before first use).
    #[must_use]
    pub fn with_delay(mut self, delay: impl SchedulingDelay) -> Self {
        self.delay = Some(Arc::new(delay));
        self
    }

    /// The configuration every member is built from.
    pub fn config(&self) -> &BbrConfig {
        &self.config
    }

    /// The clock every member reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The number of limiters the group holds now.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group holds no limiter.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl<K, C, U> BbrGroup<K, C, U>
where
    K: Hash + Eq + Clone,
    C: Clock + Clone,
    U: CpuUsage + Clone,
{
    /// The limiter of `key`, created if the group has none.
    pub fn get(&self, key: &K) -> Arc<BbrLimiter<C, U>> {
        self.get_at(key, self.clock.now())
    }

    /// The limiter of `key` at instant `now` (read from the group's clock).
    pub fn get_at(&self, key: &K, now: Duration) -> Arc<BbrLimiter<C, U>> {
        self.members
            .get_or_insert_with(key, now, |key| self.build(key))
    }

    /// Removes the limiters unused for the idle timeout; returns how many.
    pub fn evict_idle(&self) -> usize {
        self.members.evict_idle(self.clock.now())
    }

    fn build(&self, key: &K) -> Arc<BbrLimiter<C, U>> {
        let label = self.key_label.label(key);
        let limiter = BbrLimiter::from_valid(
            self.config.clone(),
            self.window,
            self.clock.clone(),
            self.cpu.clone(),
            Some(&label),
        );
        Arc::new(match &self.delay {
            Some(delay) => limiter.with_shared_delay(Arc::clone(delay)),
            None => limiter,
        })
    }
}

/// # Gauges
impl<K: Send + Sync + 'static, C: Clock, U: CpuUsage> BbrGroup<K, C, U> {
    /// Publishes every member's gauges at the current instant (see
    /// [`BbrLimiter::publish_gauges`]), holding no member: publishing never keeps one from
    /// being evicted.
    pub fn publish_gauges(&self) {
        self.members.for_each(BbrLimiter::publish_gauges);
    }

    /// Registers the group with the shared background refresher
    /// ([`rampart_core::gauges`]), which then publishes every member's gauges once a second
    /// while the group lives. [`BbrGroupLayer::new`](crate::BbrGroupLayer::new) calls it; call it once for a group
    /// you share in an `Arc` and drive yourself.
    pub fn keep_gauges_current(self: &Arc<Self>) {
        rampart_core::gauges::keep_current(self);
    }
}

impl<K: Send + Sync + 'static, C: Clock, U: CpuUsage> rampart_core::gauges::PublishGauges
    for BbrGroup<K, C, U>
{
    fn publish_gauges(&self) {
        BbrGroup::publish_gauges(self);
    }
}

impl<K, C, U> fmt::Debug for BbrGroup<K, C, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BbrGroup")
            .field("config", &self.config)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use rampart_core::ManualClock;

    use super::*;
    use crate::ManualCpu;

    #[test]
    fn a_group_validates_its_members_configuration_when_built() {
        let invalid = [
            (
                BbrConfig::default().with_window(Duration::from_secs(1), 1),
                "buckets",
            ),
            (
                BbrConfig::default().with_cpu_threshold(1.5),
                "cpu_threshold",
            ),
            (BbrConfig::default().with_name(""), "name"),
        ];
        for (config, field) in invalid {
            let err =
                BbrGroup::<&str, _, _>::new_with(config, ManualClock::new(), ManualCpu::new(0.0))
                    .expect_err(field);
            assert_eq!(err.field(), field, "{err}");
        }
        let group = BbrGroup::new_with(
            BbrConfig::default(),
            ManualClock::new(),
            ManualCpu::new(0.0),
        )
        .expect("the default configuration is valid");
        assert_eq!(group.get(&"/a").config(), group.config());
        assert_eq!(group.len(), 1);
    }
}
