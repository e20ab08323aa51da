//! [`BreakerGroup`]: one breaker per key (route, operation, peer), created on first use.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use rampart_core::{
    BucketClock, Clock, ConfigError, KeyLabel, KeyedGroup, SystemClock, ValidWindowConfig,
};

use crate::{BreakerConfig, SreBreaker};

/// One [`SreBreaker`] per key, each built from the same configuration the first time its key
/// is used, so that one failing route or operation does not throttle the others.
///
/// ```
/// use rampart_breaker::{BreakerConfig, BreakerGroup};
/// use rampart_core::Outcome;
///
/// let group = BreakerGroup::new(BreakerConfig::default().with_name("api"))?;
/// for _ in 0..100 {
///     group.get(&"/search").record(Outcome::Failure);
/// }
/// assert!(group.get(&"/search").snapshot().drop_probability > 0.9);
/// assert_eq!(group.get(&"/checkout").snapshot().drop_probability, 0.0);
/// assert_eq!(group.len(), 2);
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Bounds
///
/// A group holds at most `max_keys` breakers (default 1 024,
/// [`KeyedGroup::DEFAULT_MAX_KEYS`]) and evicts those unused for `idle_timeout` (default 10
/// minutes, [`KeyedGroup::DEFAULT_IDLE_TIMEOUT`]) first when it needs room: see
/// [`KeyedGroup`]. Each key's breaker is created exactly once while it stays in the group,
/// however many threads ask for it at the same time.
///
/// # Metrics
///
/// Every member reports under the group's `name`, with a `key` label: the key's `Debug` form
/// unless [`with_key_label`](Self::with_key_label) says otherwise. Keep the number of keys
/// bounded (routes, not user ids) for the sake of your metrics backend. Each member's gauge is
/// kept current while its key sees no call (see [`keep_gauges_current`](Self::keep_gauges_current))
/// until the member is evicted.
pub struct BreakerGroup<K, C = SystemClock> {
    /// Validated when the group is built, so that members are built without failing.
    config: BreakerConfig,
    /// The shape of every member's window, validated with `config`.
    window: ValidWindowConfig,
    /// The members' clock, read as they read it.
    clock: BucketClock<C>,
    members: KeyedGroup<K, SreBreaker<C>>,
    key_label: KeyLabel<K>,
}

/// # Construction
impl<K: fmt::Debug> BreakerGroup<K> {
    /// A group whose members are built from `config` and read [`SystemClock`].
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::new_with(config, SystemClock::new())
    }
}

impl<K: fmt::Debug, C: Clock + Clone> BreakerGroup<K, C> {
    /// A group whose members are built from `config` and read `clock`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    pub fn new_with(config: BreakerConfig, clock: C) -> Result<Self, ConfigError> {
        let window = config.validated_window()?;
        Ok(Self {
            clock: BucketClock::new(clock, window.config().bucket_duration),
            config,
            window,
            members: KeyedGroup::default(),
            key_label: KeyLabel::default(),
        })
    }
}

impl<K, C> BreakerGroup<K, C> {
    /// The same group holding at most `max_keys` breakers (it must be empty: call this before
    /// first use).
    ///
    /// # Errors
    ///
    /// `max_keys` is zero.
    pub fn with_max_keys(mut self, max_keys: usize) -> Result<Self, ConfigError> {
        self.members = KeyedGroup::new(max_keys, self.members.idle_timeout())?;
        Ok(self)
    }

    /// The same group evicting breakers unused for `idle_timeout` when it needs room (it must
    /// be empty: call this before first use).
    ///
    /// # Errors
    ///
    /// `idle_timeout` is zero.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Result<Self, ConfigError> {
        self.members = KeyedGroup::new(self.members.max_keys(), idle_timeout)?;
        Ok(self)
    }

    /// The same group labelling each member's metrics with `label(key)`.
    #[must_use]
    pub fn with_key_label(mut self, label: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        self.key_label = KeyLabel::new(label);
        self
    }

    /// The configuration every member is built from.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The clock every member reads.
    pub fn clock(&self) -> &C {
        self.clock.inner()
    }

    /// The most breakers the group holds.
    pub fn max_keys(&self) -> usize {
        self.members.max_keys()
    }

    /// The number of breakers the group holds now.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group holds no breaker.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// # Use
impl<K, C> BreakerGroup<K, C>
where
    K: Hash + Eq + Clone,
    C: Clock + Clone,
{
    /// The group's reading of its clock, as each member reads it (see [`SreBreaker::now`]):
    /// the instant `get_at` and the members' `allow_at` and `record_at` take.
    #[inline]
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    /// The breaker of `key`, created if the group has none.
    pub fn get(&self, key: &K) -> Arc<SreBreaker<C>> {
        self.get_at(key, self.clock.now())
    }

    /// The breaker of `key` at instant `now` (the group's [`now`](Self::now)), created if the
    /// group has none.
    pub fn get_at(&self, key: &K, now: Duration) -> Arc<SreBreaker<C>> {
        self.members
            .get_or_insert_with(key, now, |key| self.build(key))
    }

    /// Removes the breakers unused for `idle_timeout`; returns how many it removed. Call it
    /// periodically to free memory sooner than the bound does.
    pub fn evict_idle(&self) -> usize {
        self.members.evict_idle(self.clock.now())
    }

    fn build(&self, key: &K) -> Arc<SreBreaker<C>> {
        let mut config = self.config.clone();
        // Members draw distinct (still reproducible) sequences; the seed is not validated.
        config.seed = config.seed.map(|seed| seed ^ self.members.hash_of(key));
        let label = self.key_label.label(key);
        Arc::new(SreBreaker::from_valid(
            config,
            self.window,
            self.clock.inner().clone(),
            Some(&label),
        ))
    }
}

/// # Gauges
impl<K: Send + Sync + 'static, C: Clock> BreakerGroup<K, C> {
    /// Publishes every member's gauge at the current instant (see
    /// [`SreBreaker::publish_gauges`]), holding no member: publishing never keeps one from
    /// being evicted.
    pub fn publish_gauges(&self) {
        self.members.for_each(SreBreaker::publish_gauges);
    }

    /// Registers the group with the shared background refresher
    /// ([`rampart_core::gauges`]), which then publishes every member's gauge once a second
    /// while the group lives. [`BreakerGroupLayer::new`](crate::BreakerGroupLayer::new) calls
    /// it; call it once for a group you share in an `Arc` and drive yourself.
    pub fn keep_gauges_current(self: &Arc<Self>) {
        rampart_core::gauges::keep_current(self);
    }
}

impl<K: Send + Sync + 'static, C: Clock> rampart_core::gauges::PublishGauges
    for BreakerGroup<K, C>
{
    fn publish_gauges(&self) {
        BreakerGroup::publish_gauges(self);
    }
}

impl<K, C> fmt::Debug for BreakerGroup<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerGroup")
            .field("config", &self.config)
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}
