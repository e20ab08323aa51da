//! [`QuotaGroup`]: the leases of every key in this process, bounded like the layers' keyed
//! groups, and the background asks that refill them from Redis.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rampart_core::{Clock, ConfigError, KeyedGroup, Switch, SystemClock, saturating_nanos};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::QuotaConfig;
use crate::error::QuotaExceeded;
use crate::events::Transitions;
use crate::lease::{Ask, Cold, Debts, Lease, Params, Redis, Take};
use crate::metrics::QuotaMetrics;
use crate::store::{Failure, Store};

/// The quota of every key, as this process sees it: a lease per key, refilled from Redis in
/// the background.
///
/// Each key's quota (the config's `rate` and `burst`) is shared by every process whose group
/// has the same Redis, `prefix` and `name`. [`check`](Self::check) decides a request without
/// waiting on anything: it takes a token from the key's lease, and when the lease runs low it
/// spawns an ask on the current tokio runtime (at most `max_in_flight` at once), bounded by
/// `redis_timeout`. Outside a tokio runtime no ask is made and the group serves from its
/// fallback.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rampart_core::ConfigError> {
/// use rampart_quota::{QuotaConfig, QuotaGroup};
///
/// let quota: QuotaGroup<String> = QuotaGroup::new(
///     QuotaConfig::per_second(500.0).with_redis_url("redis://127.0.0.1:6379").with_name("api"),
/// )?;
/// match quota.check(&"customer-42".to_owned()) {
///     Ok(()) => { /* serve */ }
///     Err(refused) => println!("429, retry in {:?}", refused.retry_after()),
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Keys
///
/// In Redis a key is its `Display` form, hashed: two keys that print alike share a quota, in
/// this process and across the fleet.
///
/// # Bounds
///
/// Keys come from requests, so the group holds at most `max_keys` leases (default 1 024,
/// [`KeyedGroup::DEFAULT_MAX_KEYS`]) and evicts those unused for `idle_timeout` (default 10
/// minutes) first when it needs room: see [`KeyedGroup`]. An evicted key's unspent tokens are
/// dropped, and so is the grant of an ask under way for it (an ask does not keep its lease in
/// the table: only a request being decided does, for that instant); the tokens it owes the
/// quota are kept by the group and charged by a later ask. A key back in the table after its
/// eviction is a new key: it draws on the local share that every key Redis never answered for
/// shares, not on one of its own. In Redis, each key's three entries expire once its quota is full again, or after
/// `presence`.
pub struct QuotaGroup<K, C = SystemClock> {
    config: QuotaConfig,
    members: KeyedGroup<K, Lease>,
    shared: Arc<Shared<C>>,
}

/// What the background asks share with the group.
struct Shared<C> {
    params: Params,
    clock: C,
    store: Store,
    health: Health,
    metrics: QuotaMetrics,
    events: Transitions,
    /// Every ask's permit: at most `max_in_flight` Redis calls at once.
    in_flight: Arc<Semaphore>,
    /// The asks of leases Redis never answered for (new keys) take one of these too: half of
    /// `max_in_flight` (at least one), so that a flood of new keys leaves the other half to
    /// the keys that hold leases.
    cold_in_flight: Arc<Semaphore>,
    /// The local share of the leases Redis never answered for, one for all of them.
    cold: Cold,
    /// Debts of leases dropped before an ask charged them.
    debts: Arc<Debts>,
    min_backoff: Duration,
    max_backoff: Duration,
    redis_timeout: Duration,
}

/// What the group knows of Redis.
#[derive(Debug)]
struct Health {
    /// The last call failed and none succeeded since.
    down: Switch,
    /// Failures in a row.
    failures: AtomicU32,
    /// While down, no call before this instant (nanoseconds).
    next_try: AtomicU64,
    /// The processes Redis counted for the key of its last answer.
    processes: AtomicU64,
}

/// # Construction
impl<K> QuotaGroup<K> {
    /// A group of the quota `config` describes, reading [`SystemClock`].
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`QuotaConfig::validate`]).
    pub fn new(config: QuotaConfig) -> Result<Self, ConfigError> {
        Self::new_with(config, SystemClock::new())
    }
}

impl<K, C: Clock> QuotaGroup<K, C> {
    /// A group of the quota `config` describes, reading `clock`. Leases go stale and asks are
    /// paced on this clock; the quota itself runs on Redis's.
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`QuotaConfig::validate`]).
    pub fn new_with(config: QuotaConfig, clock: C) -> Result<Self, ConfigError> {
        let client = config.validated_client()?;
        let shared = Shared {
            params: Params::new(&config),
            clock,
            store: Store::new(&config, client),
            health: Health {
                down: Switch::new(false),
                failures: AtomicU32::new(0),
                next_try: AtomicU64::new(0),
                processes: AtomicU64::new(1),
            },
            metrics: QuotaMetrics::new(&config.name),
            events: Transitions::new(&config.name),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            cold_in_flight: Arc::new(Semaphore::new((config.max_in_flight / 2).max(1))),
            cold: Cold::default(),
            debts: Arc::new(Debts::new(KeyedGroup::<K, Lease>::DEFAULT_MAX_KEYS)),
            min_backoff: config.min_backoff,
            max_backoff: config.max_backoff,
            redis_timeout: config.redis_timeout,
        };
        Ok(Self {
            config,
            members: KeyedGroup::default(),
            shared: Arc::new(shared),
        })
    }
}

impl<K, C> QuotaGroup<K, C> {
    /// The same group holding at most `max_keys` leases (it must be empty: call this before
    /// first use).
    ///
    /// # Errors
    ///
    /// `max_keys` is zero.
    pub fn with_max_keys(mut self, max_keys: usize) -> Result<Self, ConfigError> {
        self.members = KeyedGroup::new(max_keys, self.members.idle_timeout())?;
        Ok(self)
    }

    /// The same group evicting leases unused for `idle_timeout` when it needs room (it must be
    /// empty: call this before first use).
    ///
    /// # Errors
    ///
    /// `idle_timeout` is zero.
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Result<Self, ConfigError> {
        self.members = KeyedGroup::new(self.members.max_keys(), idle_timeout)?;
        Ok(self)
    }

    /// The configuration of the quota.
    pub fn config(&self) -> &QuotaConfig {
        &self.config
    }

    /// The clock the group reads.
    pub fn clock(&self) -> &C {
        &self.shared.clock
    }

    /// The most leases the group holds.
    pub fn max_keys(&self) -> usize {
        self.members.max_keys()
    }

    /// The number of leases the group holds now.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the group holds no lease.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether the group serves from its fallback: its last Redis call failed and none has
    /// succeeded since.
    pub fn fallback_active(&self) -> bool {
        self.shared.health.down.is_on()
    }

    /// The processes Redis counted sharing the key of its last answer (1 before it answered):
    /// the divisor of the local share of the keys Redis never answered for.
    pub fn processes(&self) -> u64 {
        self.shared.health.processes.load(Ordering::Relaxed)
    }
}

/// # Use
impl<K, C> QuotaGroup<K, C>
where
    K: Hash + Eq + Clone + fmt::Display,
    C: Clock,
{
    /// Decides a request of `key` now: `Ok` takes one token of its quota.
    ///
    /// # Errors
    ///
    /// [`QuotaExceeded`] when the key has no token for this process.
    pub fn check(&self, key: &K) -> Result<(), QuotaExceeded> {
        self.check_at(key, self.shared.clock.now())
    }

    /// Decides a request of `key` at `now` (read from the group's clock).
    ///
    /// # Errors
    ///
    /// [`QuotaExceeded`] when the key has no token for this process.
    #[inline]
    pub fn check_at(&self, key: &K, now: Duration) -> Result<(), QuotaExceeded> {
        let lease = self.members.get_or_insert_with(key, now, |key| {
            Arc::new(Lease::new(
                self.shared.store.redis_key(key),
                Arc::downgrade(&self.shared.debts),
            ))
        });
        let now = saturating_nanos(now);
        let shared = &*self.shared;
        let decision = lease.take_at(now, &shared.params, shared.health.view(now), &shared.cold);
        if decision.ask {
            Shared::spawn_ask(&self.shared, &lease, now);
        }
        match decision.take {
            Take::Leased => shared.metrics.leased(),
            Take::Local => shared.metrics.local(),
            Take::Open => shared.metrics.open(),
            Take::Refused(retry_after) => {
                shared.metrics.refused();
                return Err(QuotaExceeded::new(retry_after));
            }
        }
        Ok(())
    }

    /// The tokens this process holds for `key` now (0 for a key it holds no lease of): for
    /// tests and diagnostics, it visits every lease of the group.
    pub fn tokens(&self, key: &K) -> u64 {
        let mut tokens = 0;
        let redis_key = self.shared.store.redis_key(key);
        self.members.for_each(|lease| {
            if lease.redis_key() == &*redis_key {
                tokens = lease.tokens();
            }
        });
        tokens
    }

    /// Removes the leases unused for `idle_timeout`; returns how many it removed.
    pub fn evict_idle(&self) -> usize {
        self.members.evict_idle(self.shared.clock.now())
    }
}

impl<C: Clock> Shared<C> {
    /// Starts the ask `lease`'s caller claimed, on the current runtime; without one, or with
    /// `max_in_flight` asks already out, hands the claim back.
    #[cold]
    fn spawn_ask(this: &Arc<Self>, lease: &Arc<Lease>, now: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to ask on: as good as no Redis.
            let retry_at = this.failed(now, &Failure::NoRuntime);
            lease.failed(retry_at);
            return;
        };
        let held_back = now.saturating_add(saturating_nanos(this.min_backoff));
        let cold = if lease.is_warm() {
            None
        } else {
            let Ok(permit) = Arc::clone(&this.cold_in_flight).try_acquire_owned() else {
                lease.failed(held_back);
                return;
            };
            Some(permit)
        };
        let Ok(permit) = Arc::clone(&this.in_flight).try_acquire_owned() else {
            lease.failed(held_back);
            return;
        };
        let permit = Permits {
            _any: permit,
            _cold: cold,
        };
        // The ask holds its lease only while it reads or fills it, never while Redis answers:
        // a lease whose ask is under way is not in use, and the group may evict it (its grant
        // is then dropped), so that asks never hold the table past its bound.
        runtime.spawn(Arc::clone(this).ask(Arc::downgrade(lease), permit));
    }

    async fn ask(self: Arc<Self>, lease: Weak<Lease>, permit: Permits) {
        let Some(held) = lease.upgrade() else {
            // Evicted before the ask ran (its debt, if any, is with the group's).
            drop(permit);
            return;
        };
        let now = saturating_nanos(self.clock.now());
        if !self.health.may_call(now, &self) {
            held.failed(self.health.next_try.load(Ordering::Relaxed));
            return;
        }
        let processes = self.health.processes.load(Ordering::Relaxed);
        let mut ask = held.ask_at(now, &self.params, processes);
        let key = String::from(held.redis_key());
        drop(held);
        // What an earlier lease of this key spent and could not charge before it was evicted.
        ask.debt = ask.debt.saturating_add(self.debts.take(&key));
        let result = self.store.lease(&key, ask).await;
        let now = saturating_nanos(self.clock.now());
        let lease = lease.upgrade();
        match result {
            Ok(grant) => {
                if let Some(lease) = lease {
                    let jitter = 0.75 + fastrand::f64() / 2.0;
                    lease.answered_at(now, &self.params, ask, grant, jitter);
                }
                self.metrics.lease(grant.granted);
                self.health
                    .processes
                    .store(grant.processes.max(1), Ordering::Relaxed);
                self.health.failures.store(0, Ordering::Relaxed);
                if self.health.down.turn_off() {
                    self.metrics.fallback_active(false);
                    self.events.fallback_ended();
                }
                // Redis answers: charge the oldest debt of an evicted lease, one per ask.
                if let Some((owed, debt)) = self.debts.pop() {
                    let charge = Ask { want: 0, debt };
                    if let Err(failure) = self.store.lease(&owed, charge).await {
                        self.failed(saturating_nanos(self.clock.now()), &failure);
                    }
                }
            }
            Err(failure) => {
                let retry_at = self.failed(now, &failure);
                if let Some(lease) = lease {
                    lease.failed(retry_at);
                }
            }
        }
    }

    /// A Redis call failed at `now`: counts it, backs off, and returns when to try again.
    fn failed(&self, now: u64, failure: &Failure) -> u64 {
        match failure {
            Failure::Timeout => self.metrics.redis_error(true),
            Failure::Error(_) => self.metrics.redis_error(false),
            // Not Redis's failure: nothing was sent.
            Failure::NoRuntime => {}
        }
        let failures = self.health.failures.fetch_add(1, Ordering::Relaxed);
        let backoff = self
            .min_backoff
            .saturating_mul(1 << failures.min(20))
            .min(self.max_backoff);
        let retry_at = now.saturating_add(saturating_nanos(backoff));
        self.health.next_try.store(retry_at, Ordering::Relaxed);
        if self.health.down.turn_on() {
            self.metrics.fallback_active(true);
            self.events.fallback_started(failure, backoff);
        }
        retry_at
    }
}

/// What an ask holds while it runs: a permit of `max_in_flight`, and one of the cold half for
/// a lease Redis never answered for.
struct Permits {
    _any: OwnedSemaphorePermit,
    _cold: Option<OwnedSemaphorePermit>,
}

impl Health {
    /// What a request needs to know of Redis at `now`.
    #[inline]
    fn view(&self, now: u64) -> Redis {
        let down = self.down.is_on();
        Redis {
            down,
            processes: self.processes.load(Ordering::Relaxed),
            retry_in: if down {
                Duration::from_nanos(self.next_try.load(Ordering::Relaxed).saturating_sub(now))
            } else {
                Duration::ZERO
            },
        }
    }

    /// Whether an ask may call Redis at `now`: always while it answers; while it is down, one
    /// call (a probe) once the backoff has passed.
    fn may_call<C>(&self, now: u64, shared: &Shared<C>) -> bool {
        if !self.down.is_on() {
            return true;
        }
        let next = self.next_try.load(Ordering::Relaxed);
        // The probe holds the others back for as long as it may take.
        let hold = now.saturating_add(saturating_nanos(shared.redis_timeout));
        now >= next
            && self
                .next_try
                .compare_exchange(next, hold, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

impl<K, C> fmt::Debug for QuotaGroup<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaGroup")
            .field("config", &self.config)
            .field("members", &self.members)
            .field("fallback_active", &self.shared.health.down.is_on())
            .finish_non_exhaustive()
    }
}
