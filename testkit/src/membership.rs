//! The membership model of a keyed group (a breaker group, a limiter group): which instance
//! serves each key, created on first use, bounded, evicting idle keys. Instances are known by
//! their index in the order the harness saw them made.

use std::collections::BTreeMap;
use std::time::Duration;

/// A keyed group refreshes a key's last use at most this often.
const LAST_USE_RESOLUTION: Duration = Duration::from_secs(1);

/// Which instance a keyed group serves each key with: created on first use, bounded, and
/// evicting idle keys (or else the least recently used) when it needs room, but never a key
/// in use (whose instance a live response future holds): a full group whose keys are all in
/// use grows past its bound. Exact for groups whose keys all share one shard: a bound of one
/// key, or more room than keys.
#[derive(Debug)]
pub struct Membership {
    max_keys: usize,
    idle_timeout: Duration,
    /// Per key: the index of its instance, and its last use.
    members: BTreeMap<u8, (usize, Duration)>,
}

impl Membership {
    /// An empty group.
    pub fn new(max_keys: usize, idle_timeout: Duration) -> Self {
        Self {
            max_keys,
            idle_timeout,
            members: BTreeMap::new(),
        }
    }

    /// The instance serving `key` at `now`, if the group holds one (a use of the key); `None`
    /// if a new one is made, after making room for it. `in_use(index)` says whether a live
    /// response future holds instance `index`; `freed(index)` whether instance `index` is gone,
    /// asked only to tell apart members used equally long ago (the group has no order among
    /// them, and evicts one of them).
    pub fn get(
        &mut self,
        key: u8,
        now: Duration,
        in_use: impl Fn(usize) -> bool,
        freed: impl Fn(usize) -> bool,
    ) -> Option<usize> {
        if let Some((index, last_used)) = self.members.get_mut(&key) {
            if now.saturating_sub(*last_used) >= LAST_USE_RESOLUTION {
                *last_used = now;
            }
            return Some(*index);
        }
        if self.members.len() >= self.max_keys {
            self.evict_idle(now, &in_use);
            if self.members.len() >= self.max_keys {
                self.evict_least_recently_used(in_use, freed);
            }
        }
        None
    }

    /// Evicts the least recently used key not in use, if any.
    fn evict_least_recently_used(
        &mut self,
        in_use: impl Fn(usize) -> bool,
        freed: impl Fn(usize) -> bool,
    ) {
        let free = || {
            self.members
                .iter()
                .filter(|(_, (index, _))| !in_use(*index))
        };
        let Some(oldest) = free().map(|(_, (_, last_used))| *last_used).min() else {
            // Every key is in use: the group grows past its bound.
            return;
        };
        let tied: Vec<(u8, usize)> = free()
            .filter(|(_, (_, last_used))| *last_used == oldest)
            .map(|(key, (index, _))| (*key, *index))
            .collect();
        // Among equals, the one the group freed (if it freed none, or another key, the
        // harness's next check finds the difference).
        let (key, _) = tied
            .iter()
            .copied()
            .find(|(_, index)| freed(*index))
            .unwrap_or(tied[0]);
        self.members.remove(&key);
    }

    /// The group made instance `index` for `key` at `now`.
    pub fn insert(&mut self, key: u8, index: usize, now: Duration) {
        self.members.insert(key, (index, now));
    }

    /// Removes the keys unused for the idle timeout and not in use (`in_use(index)`: a live
    /// response future holds instance `index`); returns how many.
    pub fn evict_idle(&mut self, now: Duration, in_use: impl Fn(usize) -> bool) -> usize {
        let before = self.members.len();
        let idle_timeout = self.idle_timeout;
        self.members.retain(|_, (index, last_used)| {
            in_use(*index) || now.saturating_sub(*last_used) < idle_timeout
        });
        before - self.members.len()
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group holds no key.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the group holds instance `index`.
    pub fn holds(&self, index: usize) -> bool {
        self.members.values().any(|(held, _)| *held == index)
    }
}
