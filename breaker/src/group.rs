//! [`BreakerGroup`]: one breaker per key (route, operation, peer), created on first use.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use rampart_core::{Clock, ConfigError, SystemClock, check};

use crate::{BreakerConfig, SreBreaker};

/// Most shards a group splits its keys over, to keep threads looking up different keys from
/// contending on one lock.
const MAX_SHARDS: usize = 8;
/// How often a member's last-use time is refreshed: finer would make every call write to a
/// shared cache line; idle timeouts are minutes.
const LAST_USE_RESOLUTION: Duration = Duration::from_secs(1);

/// Labels a key for metrics: the `key` label of its breaker's metrics.
type KeyLabel<K> = Arc<dyn Fn(&K) -> String + Send + Sync>;

/// One shard of a group: some of its keys, behind their own lock.
type Shard<K, C> = RwLock<HashMap<K, Member<C>>>;

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
/// A group holds at most `max_keys` breakers (default 1 024). Adding one more first evicts the
/// breakers unused for `idle_timeout` (default 10 minutes), and if none is that idle, the
/// least recently used one. Each key's breaker is created exactly once while it stays in the
/// group, however many threads ask for it at the same time. Keys are spread over up to 8
/// shards, each with its own lock and its share of `max_keys`.
///
/// # Metrics
///
/// Every member reports under the group's `name`, with a `key` label: the key's `Debug` form
/// unless [`with_key_label`](Self::with_key_label) says otherwise. Keep the number of keys
/// bounded (routes, not user ids) for the sake of your metrics backend.
pub struct BreakerGroup<K, C = SystemClock> {
    config: BreakerConfig,
    clock: C,
    /// Built (without metrics) when the group is, which proves that members can be built;
    /// handed out only if building a member ever failed, instead of panicking.
    prototype: Arc<SreBreaker<C>>,
    shards: Box<[Shard<K, C>]>,
    per_shard: usize,
    idle_timeout: Duration,
    hasher: RandomState,
    key_label: KeyLabel<K>,
}

struct Member<C> {
    breaker: Arc<SreBreaker<C>>,
    /// When the key was last used, in nanoseconds of the group's clock.
    last_used: AtomicU64,
}

/// # Construction
impl<K: fmt::Debug> BreakerGroup<K> {
    /// A group whose members are built from `config` and read [`SystemClock`].
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    pub fn new(config: BreakerConfig) -> Result<Self, ConfigError> {
        Self::with_clock(config, SystemClock::new())
    }
}

impl<K: fmt::Debug, C: Clock + Clone> BreakerGroup<K, C> {
    /// A group whose members are built from `config` and read `clock`.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`BreakerConfig::validate`]).
    pub fn with_clock(config: BreakerConfig, clock: C) -> Result<Self, ConfigError> {
        let prototype = Arc::new(SreBreaker::unreported(config.clone(), clock.clone())?);
        let group = Self {
            config,
            clock,
            prototype,
            shards: Box::new([]),
            per_shard: 0,
            idle_timeout: Duration::from_secs(600),
            hasher: RandomState::new(),
            key_label: Arc::new(|key: &K| format!("{key:?}")),
        };
        group.with_max_keys(1_024)
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
        check::at_least("max_keys", max_keys, 1)?;
        // A power of two no larger than `max_keys`, so the shards' shares add up to at most it.
        let shards = MAX_SHARDS.min(1 << max_keys.ilog2());
        self.shards = (0..shards).map(|_| RwLock::new(HashMap::new())).collect();
        self.per_shard = max_keys / shards;
        Ok(self)
    }

    /// The same group evicting breakers unused for `idle_timeout` when it needs room.
    ///
    /// # Errors
    ///
    /// `idle_timeout` is zero.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Result<Self, ConfigError> {
        self.idle_timeout = check::positive("idle_timeout", idle_timeout)?;
        Ok(self)
    }

    /// The same group labelling each member's metrics with `label(key)`.
    #[must_use]
    pub fn with_key_label(mut self, label: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        self.key_label = Arc::new(label);
        self
    }

    /// The configuration every member is built from.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The clock every member reads.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The most breakers the group holds.
    pub fn max_keys(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// The number of breakers the group holds now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    /// Whether the group holds no breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// # Use
impl<K, C> BreakerGroup<K, C>
where
    K: Hash + Eq + Clone,
    C: Clock + Clone,
{
    /// The breaker of `key`, created if the group has none.
    pub fn get(&self, key: &K) -> Arc<SreBreaker<C>> {
        self.get_at(key, self.clock.now())
    }

    /// The breaker of `key` at instant `now` (read from the group's clock), created if the
    /// group has none.
    pub fn get_at(&self, key: &K, now: Duration) -> Arc<SreBreaker<C>> {
        let now_nanos = nanos(now);
        let shard = &self.shards[self.shard_of(key)];
        if let Some(member) = shard.read().get(key) {
            member.touch(now_nanos);
            return Arc::clone(&member.breaker);
        }
        let mut members = shard.write();
        // Another thread may have created it between the two locks: it is created only once.
        if let Some(member) = members.get(key) {
            member.touch(now_nanos);
            return Arc::clone(&member.breaker);
        }
        if members.len() >= self.per_shard {
            self.make_room(&mut members, now_nanos);
        }
        let breaker = self.build(key);
        members.insert(
            key.clone(),
            Member {
                breaker: Arc::clone(&breaker),
                last_used: AtomicU64::new(now_nanos),
            },
        );
        breaker
    }

    /// Removes the breakers unused for `idle_timeout`; returns how many it removed. Call it
    /// periodically to free memory sooner than the bound does.
    pub fn evict_idle(&self) -> usize {
        let now = nanos(self.clock.now());
        let idle = nanos(self.idle_timeout);
        self.shards
            .iter()
            .map(|shard| {
                let mut members = shard.write();
                let before = members.len();
                members.retain(|_, member| now.saturating_sub(member.last_used()) < idle);
                before - members.len()
            })
            .sum()
    }

    fn shard_of(&self, key: &K) -> usize {
        (self.hasher.hash_one(key) as usize) & (self.shards.len() - 1)
    }

    /// Evicts the idle members of a full shard, or else its least recently used one.
    fn make_room(&self, members: &mut HashMap<K, Member<C>>, now: u64) {
        let idle = nanos(self.idle_timeout);
        members.retain(|_, member| now.saturating_sub(member.last_used()) < idle);
        if members.len() >= self.per_shard {
            let oldest = members
                .iter()
                .min_by_key(|(_, member)| member.last_used())
                .map(|(key, _)| key.clone());
            if let Some(key) = oldest {
                members.remove(&key);
            }
        }
    }

    fn build(&self, key: &K) -> Arc<SreBreaker<C>> {
        let mut config = self.config.clone();
        // Members draw distinct (still reproducible) sequences.
        config.seed = config.seed.map(|seed| seed ^ self.hasher.hash_one(key));
        let label = (self.key_label)(key);
        match SreBreaker::with_key(config, self.clock.clone(), Some(&label)) {
            Ok(breaker) => Arc::new(breaker),
            Err(_) => Arc::clone(&self.prototype),
        }
    }
}

impl<C> Member<C> {
    fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Refreshes the last use, at most once per [`LAST_USE_RESOLUTION`].
    fn touch(&self, now: u64) {
        if now.saturating_sub(self.last_used()) >= nanos(LAST_USE_RESOLUTION) {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl<K, C> fmt::Debug for BreakerGroup<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerGroup")
            .field("config", &self.config)
            .field("max_keys", &self.max_keys())
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}
