//! [`Lease`]: one key's tokens in this process, and the decision of each request, given the
//! time and what is known of Redis. No clock, no Redis, no tower: the group calls it with the
//! instant and carries its asks to Redis.
//!
//! A request takes a token from the lease in hand (atomics only). When the lease is empty or
//! stale it falls to the slow path, under the key's lock:
//!
//! - Redis is down: the configured [`Fallback`] (by default the local share, the quota divided
//!   by the processes Redis last counted);
//! - Redis said lately that the quota is short (it granted less than this process asked):
//!   refused until the process may ask again;
//! - a live lease, spent faster than foreseen: refused until its refill, on the way, arrives
//!   (within `redis_timeout`);
//! - otherwise (a new key, or a lease gone stale in a quiet spell): served from the local share,
//!   and the tokens so spent are owed to the quota, charged by the next ask ("debt"), so the
//!   fleet's total stays exact over time.
//!
//! The local share of a lease Redis never answered for is not its own: every such lease of a
//! group draws from one [`Cold`] budget, so that a key evicted from the table and inserted again
//! (a flood of other keys, or more keys in use than the table holds) does not come back with a
//! whole local share each time. A lease dropped with a debt unpaid hands it to the group's
//! [`Debts`], which a later ask charges.
//!
//! Each request also counts toward the key's demand, from which the next ask is sized.

use std::collections::VecDeque;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::Fallback;

/// What every lease of a group is sized and decided by, derived once from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    /// Tokens per second of the quota.
    pub(crate) rate: f64,
    /// Nanoseconds per token of the quota.
    pub(crate) interval: f64,
    pub(crate) burst: u64,
    /// `lease_horizon` in nanoseconds.
    pub(crate) horizon: u64,
    /// `lease_ttl` in nanoseconds.
    pub(crate) ttl: u64,
    pub(crate) max_lease: u64,
    pub(crate) fallback: Fallback,
    /// `redis_timeout`: an ask under way is answered within it.
    pub(crate) answer_within: Duration,
}

impl Params {
    pub(crate) fn new(config: &crate::QuotaConfig) -> Self {
        Self {
            rate: config.rate,
            interval: 1e9 / config.rate,
            burst: config.burst,
            horizon: rampart_core::saturating_nanos(config.lease_horizon),
            ttl: rampart_core::saturating_nanos(config.lease_ttl),
            max_lease: config.max_lease,
            fallback: config.fallback,
            answer_within: config.redis_timeout,
        }
    }

    /// The shortest time between two asks of a process for one key while the quota is short:
    /// the cadence at which the quota is shared out (half the lease horizon).
    fn cadence(&self) -> u64 {
        (self.horizon / 2).max(1)
    }
}

/// What the group knows of Redis when a request comes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Redis {
    /// Redis failed its last call and has not answered since.
    pub(crate) down: bool,
    /// The most processes Redis counted for any key of the group (1 before it answered).
    pub(crate) processes: u64,
    /// How long until the group tries Redis again, while it is down.
    pub(crate) retry_in: Duration,
}

/// How a request was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// From the lease Redis granted.
    Leased,
    /// From the process's local share of the quota.
    Local,
    /// Admitted by [`Fallback::FailOpen`] while Redis is down.
    Open,
    /// Refused: the quota (or, while Redis is down, the local share or
    /// [`Fallback::FailClosed`]) has no token; one is expected after the delay.
    Refused(Duration),
}

/// A request's decision, and whether its caller should now ask Redis for a lease (exactly one
/// caller is told so per ask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) take: Take,
    pub(crate) ask: bool,
}

/// What to ask Redis for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ask {
    /// Tokens wanted: the demand seen since the last ask, over the lease horizon.
    pub(crate) want: u64,
    /// Tokens spent from the local share while Redis was up, owed to the quota.
    pub(crate) debt: u64,
}

/// What Redis answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) granted: u64,
    /// Until the quota holds its next token.
    pub(crate) next_token: Duration,
    /// The processes that asked for this key lately, this one included.
    pub(crate) processes: u64,
}

/// The local share of every lease of a group that Redis never answered for: one GCRA of the
/// key's rate and burst divided by the processes, however many such leases there are.
#[derive(Debug, Default)]
pub(crate) struct Cold {
    tat: Mutex<f64>,
}

impl Cold {
    fn take(&self, now: u64, params: &Params, processes: u64) -> Take {
        local_take(&mut self.tat.lock(), now, params, processes)
    }
}

/// Debts of leases dropped before an ask charged them (evicted from the table): at most
/// `capacity` keys, the oldest dropped past it.
#[derive(Debug)]
pub(crate) struct Debts {
    owed: Mutex<VecDeque<(Box<str>, u64)>>,
    capacity: usize,
}

impl Debts {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            owed: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn owe(&self, redis_key: &str, debt: u64) {
        let mut owed = self.owed.lock();
        if let Some((_, owed)) = owed.iter_mut().find(|(key, _)| &**key == redis_key) {
            *owed = owed.saturating_add(debt);
            return;
        }
        if owed.len() >= self.capacity {
            owed.pop_front();
        }
        owed.push_back((redis_key.into(), debt));
    }

    /// Takes what `redis_key` owes.
    pub(crate) fn take(&self, redis_key: &str) -> u64 {
        let mut owed = self.owed.lock();
        match owed.iter().position(|(key, _)| &**key == redis_key) {
            Some(at) => owed.remove(at).map_or(0, |(_, debt)| debt),
            None => 0,
        }
    }

    /// Takes the oldest debt.
    pub(crate) fn pop(&self) -> Option<(Box<str>, u64)> {
        self.owed.lock().pop_front()
    }
}

/// One key's lease in this process.
#[derive(Debug)]
pub(crate) struct Lease {
    /// The key's name in Redis (namespaced and hashed).
    redis_key: Box<str>,
    /// Redis answered an ask of this lease: its local share is its own from then on.
    warm: AtomicBool,
    /// Where its unpaid debt goes when it is dropped.
    debts: Weak<Debts>,
    /// Tokens in hand; never negative.
    tokens: AtomicI64,
    /// When the tokens in hand go stale (nanoseconds).
    expires: AtomicU64,
    /// An ask starts when the tokens in hand fall to this: half the last ask.
    low_water: AtomicI64,
    /// Requests seen since the last ask, admitted or not.
    demand: AtomicU64,
    /// An ask is claimed and not yet answered.
    asking: AtomicBool,
    /// No ask before this instant (nanoseconds).
    next_ask: AtomicU64,
    slow: Mutex<Slow>,
}

#[derive(Debug, Default)]
struct Slow {
    /// The processes Redis counted for this key at its last answer (0: never answered).
    processes: u64,
    /// Until when the quota is known to be short: the lease's last ask got less than it wanted.
    short_until: u64,
    /// The theoretical arrival time of the local share's GCRA (nanoseconds, fractional), once
    /// the lease is warm (before, the group's [`Cold`] budget serves it).
    local_tat: f64,
    /// Tokens spent from the local share while Redis was up, not yet charged.
    debt: u64,
    /// The instant of the last ask.
    last_ask: Option<u64>,
}

impl Lease {
    pub(crate) fn new(redis_key: Box<str>, debts: Weak<Debts>) -> Self {
        Self {
            redis_key,
            warm: AtomicBool::new(false),
            debts,
            tokens: AtomicI64::new(0),
            expires: AtomicU64::new(0),
            low_water: AtomicI64::new(0),
            demand: AtomicU64::new(0),
            asking: AtomicBool::new(false),
            next_ask: AtomicU64::new(0),
            slow: Mutex::new(Slow::default()),
        }
    }

    pub(crate) fn redis_key(&self) -> &str {
        &self.redis_key
    }

    /// Whether Redis answered an ask of this lease.
    pub(crate) fn is_warm(&self) -> bool {
        self.warm.load(Ordering::Relaxed)
    }

    /// Tokens in hand (stale or not).
    pub(crate) fn tokens(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed).max(0) as u64
    }

    /// Decides a request at `now` (nanoseconds).
    #[inline]
    pub(crate) fn take_at(&self, now: u64, params: &Params, redis: Redis, cold: &Cold) -> Decision {
        self.demand.fetch_add(1, Ordering::Relaxed);
        if now < self.expires.load(Ordering::Acquire) {
            let taken = self
                .tokens
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tokens| {
                    (tokens > 0).then(|| tokens - 1)
                });
            if let Ok(before) = taken {
                let ask = before - 1 <= self.low_water.load(Ordering::Relaxed) && self.claim(now);
                return Decision {
                    take: Take::Leased,
                    ask,
                };
            }
        }
        self.take_slow(now, params, redis, cold)
    }

    #[cold]
    fn take_slow(&self, now: u64, params: &Params, redis: Redis, cold: &Cold) -> Decision {
        let mut slow = self.slow.lock();
        let ask = self.claim(now);
        let processes = if slow.processes > 0 {
            slow.processes
        } else {
            redis.processes.max(1)
        };
        let warm = self.is_warm();
        let local = |slow: &mut Slow| {
            if warm {
                local_take(&mut slow.local_tat, now, params, processes)
            } else {
                cold.take(now, params, processes)
            }
        };
        let take = if redis.down {
            match params.fallback {
                Fallback::LocalShare => local(&mut slow),
                Fallback::FailOpen => Take::Open,
                Fallback::FailClosed => Take::Refused(redis.retry_in),
            }
        } else if now < slow.short_until {
            Take::Refused(Duration::from_nanos(slow.short_until - now))
        } else if now < self.expires.load(Ordering::Relaxed) {
            // A live lease, spent: demand outran it. Its refill is on the way, or the ask is
            // held back (no permit, a backoff) until `next_ask`.
            if self.asking.load(Ordering::Relaxed) {
                Take::Refused(params.answer_within)
            } else {
                let next_ask = self.next_ask.load(Ordering::Relaxed);
                Take::Refused(
                    Duration::from_nanos(next_ask.saturating_sub(now)).max(params.answer_within),
                )
            }
        } else {
            let take = local(&mut slow);
            if take == Take::Local {
                slow.debt += 1;
            }
            take
        };
        Decision { take, ask }
    }

    /// Whether the caller is the one to ask now: no ask in flight, and none held back.
    #[inline]
    fn claim(&self, now: u64) -> bool {
        now >= self.next_ask.load(Ordering::Relaxed)
            && !self.asking.load(Ordering::Relaxed)
            && self
                .asking
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// The ask the claimant sends at `now`: sized from the demand since the last ask, with the
    /// debt to charge (which it takes: a failed ask may have been applied, so a debt is never
    /// sent twice).
    pub(crate) fn ask_at(&self, now: u64, params: &Params, redis_processes: u64) -> Ask {
        let mut slow = self.slow.lock();
        let demand = self.demand.swap(0, Ordering::Relaxed);
        let estimate = match slow.last_ask {
            Some(last) => {
                let elapsed = now.saturating_sub(last).max(params.cadence());
                demand as f64 * 1e9 / elapsed as f64
            }
            // Nothing to go by: a fair share of the quota.
            None => params.rate / redis_processes.max(1) as f64,
        };
        slow.last_ask = Some(now);
        let want = (estimate * params.horizon as f64 / 1e9).ceil();
        let want = (want as u64).clamp(1, params.max_lease);
        Ask {
            want,
            debt: std::mem::take(&mut slow.debt),
        }
    }

    /// Redis granted `grant` at `now` for `ask`. When the grant falls short, the next ask
    /// waits the cadence times `jitter` (drawn by the caller around 1, so that the processes'
    /// asks do not keep one order, and none keeps the place after the longest lull).
    pub(crate) fn answered_at(
        &self,
        now: u64,
        params: &Params,
        ask: Ask,
        grant: Grant,
        jitter: f64,
    ) {
        let mut slow = self.slow.lock();
        slow.processes = grant.processes.max(1);
        self.warm.store(true, Ordering::Relaxed);
        if grant.granted > 0 {
            let granted = grant.granted.min(i64::MAX as u64) as i64;
            if self.expires.load(Ordering::Relaxed) <= now {
                self.tokens.store(granted, Ordering::Relaxed);
            } else {
                self.tokens.fetch_add(granted, Ordering::Relaxed);
            }
            self.expires
                .store(now.saturating_add(params.ttl), Ordering::Release);
        }
        self.low_water
            .store((ask.want / 2) as i64, Ordering::Relaxed);
        if grant.granted < ask.want {
            let cadence = (params.cadence() as f64 * jitter) as u64;
            let wait = cadence.max(rampart_core::saturating_nanos(grant.next_token));
            slow.short_until = now.saturating_add(wait);
            self.next_ask.store(slow.short_until, Ordering::Relaxed);
        } else {
            slow.short_until = 0;
            self.next_ask.store(now, Ordering::Relaxed);
        }
        self.asking.store(false, Ordering::Release);
    }

    /// The ask failed (Redis down, slow or refusing the script): no ask again before
    /// `retry_at`.
    pub(crate) fn failed(&self, retry_at: u64) {
        let _slow = self.slow.lock();
        self.next_ask.store(retry_at, Ordering::Relaxed);
        self.asking.store(false, Ordering::Release);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let debt = self.slow.get_mut().debt;
        if debt > 0
            && let Some(debts) = self.debts.upgrade()
        {
            debts.owe(&self.redis_key, debt);
        }
    }
}

/// One token of this process's share of the quota, `1 / processes` of its rate and burst, by
/// GCRA on the local clock, whose theoretical arrival time is `tat`.
fn local_take(tat: &mut f64, now: u64, params: &Params, processes: u64) -> Take {
    let processes = processes.max(1);
    let interval = params.interval * processes as f64;
    let burst = (params.burst / processes).max(1);
    let tau = burst as f64 * interval;
    let now = now as f64;
    let next = tat.max(now) + interval;
    if next - now <= tau {
        *tat = next;
        Take::Local
    } else {
        Take::Refused(Duration::from_nanos((next - tau - now).ceil() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QuotaConfig;

    const MS: u64 = 1_000_000;
    const UP: Redis = Redis {
        down: false,
        processes: 1,
        retry_in: Duration::ZERO,
    };

    fn params(rate: f64, burst: u64, fallback: Fallback) -> Params {
        Params::new(
            &QuotaConfig::per_second(rate)
                .with_burst(burst)
                .with_fallback(fallback),
        )
    }

    fn full(lease: &Lease, now: u64, params: &Params, granted: u64) -> Ask {
        let ask = lease.ask_at(now, params, 1);
        lease.answered_at(
            now,
            params,
            ask,
            Grant {
                granted,
                next_token: Duration::ZERO,
                processes: 4,
            },
            1.0,
        );
        ask
    }

    #[test]
    fn a_lease_serves_exactly_its_tokens_and_asks_once_at_half() {
        let budget = Cold::default();
        let p = params(1_000.0, 1_000, Fallback::LocalShare);
        let lease = Lease::new("k".into(), Weak::new());
        // The first ask: a fair share of the quota over the horizon (1 000/s × 0.5 s).
        assert_eq!(lease.ask_at(0, &p, 1).want, 500);
        lease.answered_at(
            0,
            &p,
            Ask { want: 100, debt: 0 },
            Grant {
                granted: 100,
                next_token: Duration::ZERO,
                processes: 1,
            },
            1.0,
        );
        let mut asks = 0;
        for i in 0..100 {
            let decision = lease.take_at(MS, &p, UP, &budget);
            assert_eq!(decision.take, Take::Leased, "token {i}");
            asks += u32::from(decision.ask);
        }
        assert_eq!(asks, 1, "one claimant, at the low-water mark");
        assert_eq!(lease.tokens(), 0);
        // Out of tokens, the refill on its way: refused until it comes.
        let decision = lease.take_at(MS, &p, UP, &budget);
        assert_eq!(decision.take, Take::Refused(p.answer_within));
        assert!(!decision.ask, "the ask already in flight is the only one");
        // The lease gone stale, Redis up, no shortage said: the local share, owed to the quota.
        assert_eq!(lease.take_at(p.ttl, &p, UP, &budget).take, Take::Local);
        assert_eq!(lease.ask_at(p.ttl, &p, 1).debt, 1);
    }

    #[test]
    fn stale_tokens_are_not_spent() {
        let budget = Cold::default();
        let p = params(1_000.0, 1_000, Fallback::FailClosed);
        let lease = Lease::new("k".into(), Weak::new());
        full(&lease, 0, &p, 10);
        assert_eq!(lease.take_at(p.ttl - 1, &p, UP, &budget).take, Take::Leased);
        let down = Redis {
            down: true,
            processes: 1,
            retry_in: Duration::from_millis(300),
        };
        assert_eq!(
            lease.take_at(p.ttl, &p, down, &budget).take,
            Take::Refused(Duration::from_millis(300)),
            "9 tokens in hand, stale"
        );
    }

    #[test]
    fn a_short_quota_refuses_until_the_next_ask_and_asks_at_the_cadence() {
        let budget = Cold::default();
        let p = params(1_000.0, 1_000, Fallback::LocalShare);
        let lease = Lease::new("k".into(), Weak::new());
        let ask = lease.ask_at(0, &p, 1);
        lease.answered_at(
            0,
            &p,
            ask,
            Grant {
                granted: 2,
                next_token: Duration::from_millis(1),
                processes: 2,
            },
            1.0,
        );
        assert_eq!(lease.take_at(1, &p, UP, &budget).take, Take::Leased);
        assert_eq!(lease.take_at(2, &p, UP, &budget).take, Take::Leased);
        let refused = lease.take_at(3, &p, UP, &budget);
        assert_eq!(
            refused.take,
            Take::Refused(Duration::from_nanos(250 * MS - 3))
        );
        assert!(!refused.ask, "no ask before the cadence");
        let later = lease.take_at(250 * MS, &p, UP, &budget);
        assert!(later.ask, "asks again at the cadence");
        // The demand seen sizes the ask: 4 requests over 250 ms, 16 a second, 8 over 0.5 s.
        let next = lease.ask_at(250 * MS, &p, 1);
        assert_eq!(next.want, 8);
    }

    #[test]
    fn the_ask_follows_the_demand() {
        let budget = Cold::default();
        let p = params(10_000.0, 10_000, Fallback::LocalShare);
        let lease = Lease::new("k".into(), Weak::new());
        full(&lease, 0, &p, 10_000);
        for i in 0..2_000 {
            lease.take_at(i * MS / 2, &p, UP, &budget); // 2 000 requests a second for 1 s
        }
        let ask = lease.ask_at(1_000 * MS, &p, 1);
        assert_eq!(ask.want, 1_000, "2 000/s over the 0.5 s horizon");
        let capped = Params {
            max_lease: 300,
            ..p
        };
        assert_eq!(
            Lease::new("c".into(), Weak::new())
                .ask_at(0, &capped, 1)
                .want,
            300
        );
    }

    #[test]
    fn the_local_share_is_the_quota_over_the_processes() {
        let budget = Cold::default();
        let p = params(1_000.0, 100, Fallback::LocalShare);
        let lease = Lease::new("k".into(), Weak::new());
        full(&lease, 0, &p, 0); // Redis counted 4 processes
        let down = Redis {
            down: true,
            processes: 1,
            retry_in: Duration::from_secs(1),
        };
        // A burst of 100 / 4 = 25 at once, then 250 a second.
        let admitted = (0..100)
            .filter(|_| lease.take_at(0, &p, down, &budget).take == Take::Local)
            .count();
        assert_eq!(admitted, 25);
        let mut admitted = 0;
        for ms in 1..=1_000 {
            for _ in 0..10 {
                admitted +=
                    u32::from(lease.take_at(ms * MS, &p, down, &budget).take == Take::Local);
            }
        }
        assert_eq!(admitted, 250);
        // A key Redis never answered for divides by the group's count.
        let cold = Lease::new("c".into(), Weak::new());
        let hint = Redis {
            processes: 10,
            ..down
        };
        let admitted = (0..100)
            .filter(|_| cold.take_at(0, &p, hint, &budget).take == Take::Local)
            .count();
        assert_eq!(admitted, 10);
        // Spent while Redis was down: owed to nobody.
        assert_eq!(cold.ask_at(0, &p, 1).debt, 0);
    }

    #[test]
    fn fail_open_and_fail_closed() {
        let budget = Cold::default();
        let down = Redis {
            down: true,
            processes: 1,
            retry_in: Duration::from_millis(40),
        };
        let open = params(1.0, 1, Fallback::FailOpen);
        let lease = Lease::new("k".into(), Weak::new());
        assert!((0..1_000).all(|_| lease.take_at(0, &open, down, &budget).take == Take::Open));
        let closed = params(1_000.0, 1_000, Fallback::FailClosed);
        assert_eq!(
            lease.take_at(0, &closed, down, &budget).take,
            Take::Refused(Duration::from_millis(40))
        );
    }

    #[test]
    fn a_failed_ask_holds_back_the_next_until_told() {
        let budget = Cold::default();
        let p = params(1_000.0, 1_000, Fallback::LocalShare);
        let lease = Lease::new("k".into(), Weak::new());
        assert!(lease.take_at(0, &p, UP, &budget).ask);
        lease.failed(100 * MS);
        assert!(!lease.take_at(99 * MS, &p, UP, &budget).ask);
        assert!(lease.take_at(100 * MS, &p, UP, &budget).ask);
    }

    #[test]
    fn new_leases_share_one_cold_budget_and_a_dropped_lease_hands_its_debt_on() {
        let budget = Cold::default();
        let p = params(10.0, 10, Fallback::LocalShare);
        let debts = std::sync::Arc::new(Debts::new(4));
        // A key evicted and inserted again 100 times in a second, 10 requests each time: the
        // one budget's burst of 10 and the 10 tokens it earns, not a whole share each time.
        let mut admitted = 0;
        for ms in 0..100 {
            let lease = Lease::new("k".into(), std::sync::Arc::downgrade(&debts));
            for _ in 0..10 {
                admitted +=
                    u32::from(lease.take_at(ms * 10 * MS, &p, UP, &budget).take == Take::Local);
            }
        }
        assert_eq!(admitted, 10 + 9);
        // Each token was owed to the quota by the lease that spent it, and handed on when it
        // was dropped: the key's next ask charges them all.
        assert_eq!(debts.take("k"), 19);
        assert_eq!(debts.take("k"), 0);
        // Redis down: the same budget.
        let down = Redis { down: true, ..UP };
        let fresh = Lease::new("j".into(), Weak::new());
        assert!(matches!(
            fresh.take_at(1_000 * MS, &p, down, &budget).take,
            Take::Local
        ));
        assert!(matches!(
            fresh.take_at(1_000 * MS, &p, down, &budget).take,
            Take::Refused(_)
        ));
        // At most `capacity` keys owe at once: the oldest debt goes first.
        let few = Debts::new(2);
        for key in ["a", "b", "c"] {
            few.owe(key, 1);
        }
        assert_eq!((few.take("a"), few.take("b"), few.take("c")), (0, 1, 1));
    }

    #[test]
    fn a_spent_lease_whose_ask_is_held_back_says_when_it_may_ask() {
        let budget = Cold::default();
        let p = params(1_000.0, 1_000, Fallback::LocalShare);
        let lease = Lease::new("k".into(), Weak::new());
        lease.answered_at(
            0,
            &p,
            Ask { want: 2, debt: 0 },
            Grant {
                granted: 2,
                next_token: Duration::ZERO,
                processes: 1,
            },
            1.0,
        );
        let claimed = lease.take_at(MS, &p, UP, &budget);
        assert_eq!(
            claimed,
            Decision {
                take: Take::Leased,
                ask: true
            }
        );
        // No permit for the ask: held back 300 ms.
        lease.failed(301 * MS);
        assert_eq!(lease.take_at(MS, &p, UP, &budget).take, Take::Leased);
        assert_eq!(
            lease.take_at(MS, &p, UP, &budget).take,
            Take::Refused(Duration::from_millis(300))
        );
    }
}
