//! [`KeyedGroup`]: one shared value per key, created on first use, bounded, idle-evicted;
//! [`KeyLabel`]: how its members name their key in metrics.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

use crate::clock::saturating_nanos;
use crate::{ConfigError, check};

/// Most shards a group splits its keys over, to keep threads looking up different keys from
/// contending on one lock.
const MAX_SHARDS: usize = 8;
/// How often a member's last-use time is refreshed: finer would make every lookup write to a
/// shared cache line; idle timeouts are minutes.
const LAST_USE_RESOLUTION: Duration = Duration::from_secs(1);

/// One shard: some of the keys, behind their own lock.
type Shard<K, V> = RwLock<HashMap<K, Member<V>>>;

struct Member<V> {
    value: Arc<V>,
    /// When the key was last used, in nanoseconds of the caller's clock.
    last_used: AtomicU64,
}

/// One value per key (a breaker or a limiter per route, operation or peer), created the first
/// time its key is used, exactly once however many threads ask at the same time.
///
/// The group holds at most `max_keys` values. Adding one more first evicts the values unused
/// for `idle_timeout`, and if none is that idle, the least recently used one. A value in use
/// (an `Arc` to it held outside the group, as a request in flight holds its breaker; or, in a
/// group built [`with_busy`](Self::with_busy), work in flight by the value's own count, as a
/// limiter's) is never evicted, since its work would then be counted in a value the group has forgotten;
/// a full shard whose every value is in use grows past its share until one is free. Keys are spread
/// over up to 8 shards, each with its own lock and an equal share of `max_keys`, so a group
/// may evict before it holds `max_keys` values when the keys hash unevenly.
///
/// Instants are the caller's (`now` from any one [`Clock`](crate::Clock)): the group reads no
/// clock itself.
///
/// # Defaults
///
/// The layers' keyed groups (a breaker or a limiter per key) start from the same bounds:
/// [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS) values (1 024) and
/// [`DEFAULT_IDLE_TIMEOUT`](Self::DEFAULT_IDLE_TIMEOUT) (10 minutes), which
/// [`KeyedGroup::default`] holds; and their members label their metrics by [`KeyLabel`],
/// by default the key's `Debug` form.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rampart_core::KeyedGroup;
///
/// let group = KeyedGroup::<&str, String>::new(100, Duration::from_secs(600))?;
/// let now = Duration::ZERO;
/// let a = group.get_or_insert_with(&"a", now, |key| format!("made for {key}").into());
/// let again = group.get_or_insert_with(&"a", now, |_| unreachable!("made once"));
/// assert!(std::sync::Arc::ptr_eq(&a, &again));
///
/// let bounded = KeyedGroup::<&str, String>::default();
/// assert_eq!(bounded.max_keys(), KeyedGroup::<&str, String>::DEFAULT_MAX_KEYS);
/// assert_eq!(bounded.idle_timeout(), Duration::from_secs(600));
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
pub struct KeyedGroup<K, V> {
    shards: Box<[Shard<K, V>]>,
    per_shard: usize,
    idle_timeout: Duration,
    hasher: RandomState,
    /// Whether a value has work in flight that holds a part of it rather than the value.
    busy: fn(&V) -> bool,
}

/// # Construction
impl<K, V> KeyedGroup<K, V> {
    /// The bound on the number of values a layer's keyed group holds unless told otherwise:
    /// routes and operations, not user ids, fit in it.
    pub const DEFAULT_MAX_KEYS: usize = 1_024;

    /// How long a value of a layer's keyed group may go unused, unless told otherwise, before
    /// it is the first to be evicted.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

    /// An empty group of at most `max_keys` values, evicting values idle for `idle_timeout`
    /// when it needs room.
    ///
    /// # Errors
    ///
    /// `max_keys` is zero, or `idle_timeout` is zero.
    pub fn new(max_keys: usize, idle_timeout: Duration) -> Result<Self, ConfigError> {
        check::at_least("max_keys", max_keys, 1)?;
        check::positive("idle_timeout", idle_timeout)?;
        Ok(Self::with_valid_bounds(max_keys, idle_timeout))
    }

    /// `max_keys` and `idle_timeout` must be positive.
    fn with_valid_bounds(max_keys: usize, idle_timeout: Duration) -> Self {
        // A power of two no larger than `max_keys`, so the shards' shares add up to at most it.
        let shards = MAX_SHARDS.min(1 << max_keys.max(1).ilog2());
        Self {
            shards: (0..shards).map(|_| RwLock::new(HashMap::new())).collect(),
            per_shard: max_keys / shards,
            idle_timeout,
            hasher: RandomState::new(),
            busy: |_| false,
        }
    }

    /// The same group, counting a value as in use also while `busy` says so: for values whose
    /// work in flight holds a part of them rather than an `Arc` to the whole (a limiter's
    /// permits hold only its window).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::Duration;
    /// use rampart_core::KeyedGroup;
    ///
    /// let group = KeyedGroup::<u32, AtomicU64>::new(1, Duration::from_secs(1))?
    ///     .with_busy(|inflight| inflight.load(Ordering::Relaxed) > 0);
    /// group.get_or_insert_with(&1, Duration::ZERO, |_| AtomicU64::new(1).into());
    /// assert_eq!(group.evict_idle(Duration::from_secs(5)), 0, "busy: kept");
    /// group.get_or_insert_with(&1, Duration::ZERO, |_| unreachable!()).store(0, Ordering::Relaxed);
    /// assert_eq!(group.evict_idle(Duration::from_secs(5)), 1, "idle and not busy: evicted");
    /// # Ok::<(), rampart_core::ConfigError>(())
    /// ```
    #[must_use]
    pub fn with_busy(self, busy: fn(&V) -> bool) -> Self {
        Self { busy, ..self }
    }
}

impl<K, V> Default for KeyedGroup<K, V> {
    /// An empty group of at most [`DEFAULT_MAX_KEYS`](Self::DEFAULT_MAX_KEYS) values,
    /// evicting those idle for [`DEFAULT_IDLE_TIMEOUT`](Self::DEFAULT_IDLE_TIMEOUT) first.
    fn default() -> Self {
        Self::with_valid_bounds(Self::DEFAULT_MAX_KEYS, Self::DEFAULT_IDLE_TIMEOUT)
    }
}

/// # Observing and evicting
impl<K, V> KeyedGroup<K, V> {
    /// The most values the group holds.
    pub fn max_keys(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    /// How long a value may go unused before it is the first to be evicted.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The number of values the group holds now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    /// Whether the group holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` on every value the group holds, shard by shard under the shard's read lock,
    /// without taking a handle to any (so it never makes a value look in use). A key added
    /// meanwhile to a shard already visited is not seen.
    pub fn for_each(&self, mut f: impl FnMut(&V)) {
        for shard in &*self.shards {
            for member in shard.read().values() {
                f(&member.value);
            }
        }
    }

    /// Removes the values unused for `idle_timeout` as of `now` and not in use; returns how
    /// many.
    pub fn evict_idle(&self, now: Duration) -> usize {
        let (now, idle) = (saturating_nanos(now), saturating_nanos(self.idle_timeout));
        self.shards
            .iter()
            .map(|shard| {
                let mut members = shard.write();
                let before = members.len();
                members.retain(|_, member| member.in_use(self.busy) || !member.idle(now, idle));
                before - members.len()
            })
            .sum()
    }
}

/// # Looking up
impl<K: Hash + Eq + Clone, V> KeyedGroup<K, V> {
    /// The value of `key`, made by `make(key)` if the group has none, as of instant `now`.
    pub fn get_or_insert_with(
        &self,
        key: &K,
        now: Duration,
        make: impl FnOnce(&K) -> Arc<V>,
    ) -> Arc<V> {
        let now = saturating_nanos(now);
        let shard = &self.shards[self.shard_of(key)];
        if let Some(member) = shard.read().get(key) {
            member.touch(now);
            return Arc::clone(&member.value);
        }
        let mut members = shard.write();
        // Another thread may have made it between the two locks: it is made only once.
        if let Some(member) = members.get(key) {
            member.touch(now);
            return Arc::clone(&member.value);
        }
        if members.len() >= self.per_shard {
            self.make_room(&mut members, now);
        }
        let value = make(key);
        let member = Member {
            value: Arc::clone(&value),
            last_used: AtomicU64::new(now),
        };
        members.insert(key.clone(), member);
        value
    }

    /// A hash of `key`, stable for the life of the group (to derive per-key seeds).
    pub fn hash_of(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard_of(&self, key: &K) -> usize {
        (self.hash_of(key) as usize) & (self.shards.len() - 1)
    }

    /// Evicts the idle members of a full shard, or else its least recently used one.
    fn make_room(&self, members: &mut HashMap<K, Member<V>>, now: u64) {
        let idle = saturating_nanos(self.idle_timeout);
        members.retain(|_, member| member.in_use(self.busy) || !member.idle(now, idle));
        if members.len() >= self.per_shard {
            let oldest = members
                .iter()
                .filter(|(_, member)| !member.in_use(self.busy))
                .min_by_key(|(_, member)| member.last_used())
                .map(|(key, _)| key.clone());
            if let Some(key) = oldest {
                members.remove(&key);
            }
        }
    }
}

impl<V> Member<V> {
    fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// Whether the value is unused for `idle` nanoseconds as of `now`.
    fn idle(&self, now: u64, idle: u64) -> bool {
        now.saturating_sub(self.last_used()) >= idle
    }

    /// Whether an `Arc` to the value is held outside the group, or `busy` says the value has
    /// work in flight. (Read under the shard's write lock, so no new handle can be taken
    /// meanwhile; one dropped meanwhile only makes the answer cautious.)
    fn in_use(&self, busy: fn(&V) -> bool) -> bool {
        Arc::strong_count(&self.value) > 1 || busy(&self.value)
    }

    /// Refreshes the last use, at most once per [`LAST_USE_RESOLUTION`].
    fn touch(&self, now: u64) {
        if now.saturating_sub(self.last_used()) >= saturating_nanos(LAST_USE_RESOLUTION) {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

/// How a keyed group's members name their key in metrics: the value of their `key` label.
///
/// By default the key's `Debug` form; a group whose keys print badly (or too uniquely) for a
/// metrics backend takes a function of its own.
///
/// ```
/// use rampart_core::KeyLabel;
///
/// assert_eq!(KeyLabel::default().label(&"/search"), "\"/search\"");
/// let by_length = KeyLabel::new(|path: &&str| format!("{}-char path", path.len()));
/// assert_eq!(by_length.label(&"/search"), "7-char path");
/// ```
pub struct KeyLabel<K: ?Sized>(Arc<dyn Fn(&K) -> String + Send + Sync>);

impl<K: ?Sized> KeyLabel<K> {
    /// Labels each key with `label(key)`.
    pub fn new(label: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        Self(Arc::new(label))
    }

    /// The label of `key`.
    pub fn label(&self, key: &K) -> String {
        (self.0)(key)
    }
}

impl<K: fmt::Debug + ?Sized> Default for KeyLabel<K> {
    /// The key's `Debug` form.
    fn default() -> Self {
        Self::new(|key: &K| format!("{key:?}"))
    }
}

impl<K: ?Sized> Clone for KeyLabel<K> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<K: ?Sized> fmt::Debug for KeyLabel<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLabel").finish_non_exhaustive()
    }
}

impl<K, V> fmt::Debug for KeyedGroup<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedGroup")
            .field("len", &self.len())
            .field("max_keys", &self.max_keys())
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_key_asked_for_by_many_threads_at_once_is_made_once() {
        for _ in 0..20 {
            let group = Arc::new(KeyedGroup::<u32, AtomicU64>::new(64, SECOND).expect("valid"));
            let made = Arc::new(AtomicU64::new(0));
            let start = Arc::new(Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    let (group, made, start) =
                        (Arc::clone(&group), Arc::clone(&made), Arc::clone(&start));
                    std::thread::spawn(move || {
                        start.wait();
                        group.get_or_insert_with(&7, Duration::ZERO, |_| {
                            made.fetch_add(1, Ordering::Relaxed);
                            Arc::new(AtomicU64::new(0))
                        })
                    })
                })
                .collect();
            let values: Vec<_> = threads
                .into_iter()
                .map(|t| t.join().expect("no panic"))
                .collect();
            assert_eq!(made.load(Ordering::Relaxed), 1);
            assert!(values.iter().all(|v| Arc::ptr_eq(v, &values[0])));
        }
    }

    #[test]
    fn never_holds_more_than_max_keys() {
        for max_keys in [1, 3, 16, 100] {
            let group = KeyedGroup::<u32, ()>::new(max_keys, SECOND).expect("valid");
            for key in 0..1_000 {
                group.get_or_insert_with(&key, Duration::ZERO, |_| Arc::new(()));
                assert!(group.len() <= max_keys, "{} > {max_keys}", group.len());
            }
            assert!(group.max_keys() <= max_keys && group.max_keys() * 2 > max_keys);
        }
    }

    #[test]
    fn a_full_group_evicts_the_idle_then_the_least_recently_used() {
        let group = KeyedGroup::<&str, u32>::new(1, Duration::from_secs(60)).expect("valid");
        let first =
            Arc::downgrade(&group.get_or_insert_with(&"a", Duration::ZERO, |_| Arc::new(1)));
        group.get_or_insert_with(&"b", 5 * SECOND, |_| Arc::new(2));
        assert_eq!(group.len(), 1);
        assert!(first.upgrade().is_none(), "`a` was evicted");
        let again = group.get_or_insert_with(&"a", 6 * SECOND, |_| Arc::new(3));
        assert_eq!(*again, 3, "and made anew");
    }

    #[test]
    fn a_value_in_use_is_never_evicted() {
        // A request in flight holds its key's value: evicting it would count the request's
        // completion in a value the group has forgotten.
        let group = KeyedGroup::<&str, u32>::new(1, Duration::from_secs(60)).expect("valid");
        let busy = group.get_or_insert_with(&"a", Duration::ZERO, |_| Arc::new(1));
        group.get_or_insert_with(&"b", 120 * SECOND, |_| Arc::new(2));
        assert_eq!(
            group.len(),
            2,
            "a full shard whose values are all in use grows"
        );
        assert!(Arc::ptr_eq(
            &busy,
            &group.get_or_insert_with(&"a", 121 * SECOND, |_| Arc::new(3))
        ));
        assert_eq!(group.evict_idle(400 * SECOND), 1, "`b` only: `a` is in use");
        drop(busy);
        assert_eq!(group.evict_idle(400 * SECOND), 1, "`a`, once free");
        assert!(group.is_empty());
    }

    #[test]
    fn idle_values_are_evicted_on_request() {
        let group = KeyedGroup::<&str, ()>::new(64, Duration::from_secs(60)).expect("valid");
        group.get_or_insert_with(&"old", Duration::ZERO, |_| Arc::new(()));
        group.get_or_insert_with(&"recent", 30 * SECOND, |_| Arc::new(()));
        assert_eq!(group.evict_idle(61 * SECOND), 1);
        assert_eq!(group.evict_idle(121 * SECOND), 1);
        assert!(group.is_empty());
    }

    #[test]
    fn the_default_group_holds_the_default_bounds() {
        let group = KeyedGroup::<u32, ()>::default();
        assert_eq!(group.max_keys(), 1_024);
        assert_eq!(group.idle_timeout(), Duration::from_secs(600));
        for key in 0..2_000 {
            group.get_or_insert_with(&key, Duration::ZERO, |_| Arc::new(()));
        }
        assert!(group.len() <= 1_024, "{}", group.len());
    }

    #[test]
    fn a_key_label_is_the_debug_form_unless_told_otherwise() {
        assert_eq!(KeyLabel::default().label(&("GET", 7)), r#"("GET", 7)"#);
        let label = KeyLabel::new(|key: &u32| format!("shard-{}", key % 4));
        assert_eq!(label.clone().label(&9), "shard-1");
    }

    #[test]
    fn zero_bounds_are_config_errors() {
        assert_eq!(
            KeyedGroup::<u8, ()>::new(0, SECOND).unwrap_err().field(),
            "max_keys"
        );
        assert_eq!(
            KeyedGroup::<u8, ()>::new(1, Duration::ZERO)
                .unwrap_err()
                .field(),
            "idle_timeout"
        );
    }
}
