//! Fleet-wide quotas on Redis for tower: one limit per key shared by every process, served
//! from local leases, with a safe fallback when Redis is away.
//!
//! Everything else in rampart is local to a process. A quota that belongs to a tenant, an API
//! key or a downstream dependency is not ("customer X may make 500 requests a second across all
//! our gateways"), and dividing it by the number of processes by hand is wrong whenever traffic
//! is uneven or the fleet scales. This crate keeps each key's quota in Redis, where one atomic
//! script shares it out, and keeps Redis off the request path: each process takes **leases**,
//! batches of tokens sized from its own recent demand, and serves requests from them.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use rampart_quota::{QuotaConfig, QuotaExceeded, QuotaGroup, QuotaLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! // 10 requests a second per tenant across the fleet. Nothing listens on port 1, so this
//! // process serves from its local share of the quota: all of it, alone as it is.
//! let quota: QuotaGroup<String> = QuotaGroup::new(
//!     QuotaConfig::per_second(10.0).with_redis_url("redis://127.0.0.1:1").with_name("api"),
//! )?;
//! let service = ServiceBuilder::new()
//!     .layer(QuotaLayer::new(quota, |(tenant, _): &(String, u32)| tenant.clone()))
//!     .service_fn(|(_, n): (String, u32)| async move { Ok::<_, tower::BoxError>(n * 2) });
//!
//! let mut refused = 0;
//! for n in 0..15 {
//!     match service.clone().oneshot(("acme".to_owned(), n)).await {
//!         Ok(answer) => assert_eq!(answer, n * 2),
//!         Err(err) => refused += u32::from(err.is::<QuotaExceeded>()),
//!     }
//! }
//! assert_eq!(refused, 5, "a burst of 10, then one token every 100 ms");
//! # Ok(())
//! # }
//! ```
//!
//! # The atomic step: GCRA, in one Lua script
//!
//! Each key's quota is a GCRA (generic cell rate algorithm) in Redis: one number per key, its
//! theoretical arrival time (TAT), on Redis's own clock (`TIME`, so the fleet's clocks never
//! need to agree). A lease of `n` tokens moves the TAT `n` emission intervals forward, as far
//! as the burst allows. GCRA rather than a sliding window because a lease is a batch: GCRA
//! grants `n` tokens at once exactly, in O(1) time and one key whatever the rate, where a
//! sliding log stores every grant and a sliding counter approximates at the window's edges.
//! The script (`src/lease.lua`) also charges the tokens the process spent before the quota
//! answered (its debt), keeps the processes that asked for the key lately and what each wanted
//! (two sorted sets, trimmed to `presence`), caps the grant at the processes' max-min fair
//! share (below), and returns the grant, the time to the next token, and the processes'
//! count.
//!
//! # Leases, not round trips
//!
//! A request takes one token from its key's lease in hand: a few atomics, no Redis. Each
//! request also counts toward the key's demand. When half a lease is spent, the request that
//! notices spawns an ask in the background (one per key at a time, `max_in_flight` per group),
//! for `demand × lease_horizon` tokens (at most `max_lease`). So at steady demand a process asks
//! about once per `lease_horizon`, ahead of need. Tokens unspent for `lease_ttl` are dropped.
//!
//! A lease runs out before its refill only when demand jumps: the requests that find it empty
//! are refused until the refill arrives (one round trip). A key with no live lease (new, or
//! idle past `lease_ttl`) is served from the process's local share of the quota (below) until
//! Redis answers, and the tokens so spent are charged to the quota by the first ask: the
//! fleet's total stays exact over time. The keys Redis never answered for share **one** local
//! share between them (the cold budget), so that a key evicted from the table and back, by a
//! flood of other keys or by more keys in use than the table holds, comes back with no fresh
//! share: its requests draw on the same budget as every other new key's. A lease evicted with
//! tokens still owed hands its debt to the group (up to 1 024 keys), and the key's next ask, or
//! failing that a later ask of any key, charges it.
//!
//! # Fairness: max-min, by water-filling in the script
//!
//! Redis keeps, beside each key's TAT, what each process present (those that asked within
//! `presence`) wanted at its last ask. A want covers a lease horizon, and a process takes about
//! half of it each cadence (half a lease horizon). The pool of a cadence is the larger of what
//! the quota earns in it and what it holds now, `max(rate × cadence, available)`. The script
//! water-fills the pool over the processes' wants: sorted by want, every process that wants
//! less than an equal share of what is left takes all it wants, and the **level** where the
//! rest no longer fit is the cap of each grant, `min(want, available, level)` (at least one
//! token; the whole pool when every want fits). While the quota has plenty, every process gets
//! what it asks for. A process that got less refuses the requests its lease cannot serve and
//! asks again after the cadence, jittered by up to a quarter either way so that the
//! processes' asks keep no fixed order (without it, the process whose ask follows the longest
//! lull kept the largest shares: 33 % more than another heavy one in the 10:1 run, 5 % with
//! it).
//!
//! At saturation this is **max-min fairness over the cadence**: a process that wants less than
//! its share gets all it wants, the rest is shared equally among those that want more, and the
//! whole rate is granted however few processes are busy. The script's tests drive real leases
//! against it at given instants (a quota of 1 000/s over 10 s): one process wanting 2 000/s
//! among seven wanting 30/s got 8 124 and the seven their whole 300 each (the fleet 10 223,
//! +2.2 %); two busy among eighteen wanting 5/s got 4 595 and 4 574 (the fleet 10 069), where
//! an equal share of the pool among every process present, light ones included, gave the busy
//! ones 4 773 and 1 972–1 992 (the fleet 6 873 and 4 864). For the whole rate to be granted,
//! what a cadence earns must fit in the burst: `burst ≥ rate × lease_horizon / 2` (the default
//! burst, one second of the rate, holds it for horizons up to 2 s).
//!
//! # When Redis is down, slow or unreachable
//!
//! No request waits on Redis: asks run in the background, and each Redis call counts as failed
//! after `redis_timeout`. After a failure the group serves from its [`Fallback`], by default
//! the **local share**: the key's rate and burst divided by the number of processes Redis last
//! counted for it (a GCRA on the local clock), so that a fleet that all falls back still admits
//! about the quota. [`Fallback::FailOpen`] admits everything, [`Fallback::FailClosed`] refuses
//! what leases in hand cannot serve. Tokens spent from the fallback are not charged later.
//!
//! While Redis is down one probe goes out after a backoff (`min_backoff`, doubling to
//! `max_backoff`, 500 ms by default); the first answer ends the fallback, and leases resume. The
//! fallback's start and end are a metric (`rampart_quota_fallback_active`) and a `tracing`
//! event (feature `tracing`). The Redis client's connection manager reconnects underneath.
//!
//! # Hostile keys
//!
//! Keys come from requests. In Redis each key is `prefix:{name:SHA-1 of the key}` (the key's
//! `Display` form, hashed: 40 hex characters whatever it holds), and its three entries expire:
//! the TAT once the quota is full again, the process set and their wants after `presence`. In the process, the
//! leases live in a [`KeyedGroup`](rampart_core::KeyedGroup), bounded (`max_keys`, 1 024 by
//! default) and evicting idle keys first (an ask under way does not keep its key in the table);
//! a flood of new keys makes at most half of `max_in_flight` Redis calls at a time, leaving the
//! other half to the keys that hold leases, and draws on the one cold budget: evicting a key
//! gives it no tokens back. No metric carries a key.
//!
//! # Figures
//!
//! Measured by `tests/fleet.rs` against a real `redis-server` on 127.0.0.1: four independent
//! groups in one test process (each its own connection, leases and process id) share one key's
//! quota of 1 000 requests a second (burst 1 000, the default lease horizon of 500 ms), each
//! offered a steady demand in real time, counted over the last 10 s of a 12 s run (the first
//! two drain the burst). Two runs on our 2-vCPU machine, under other builds:
//!
//! | run | the fleet over 10 s | each process | admissions per Redis call |
//! | --- | --- | --- | --- |
//! | even: 500/s each (2× the quota) | +0.57 %, +1.16 % of 10 000 | 2 455–2 653 (an equal share: 2 500) | 64, 62 |
//! | 10:1: 600/s × 3 and 60/s | +0.85 %, −0.40 % | the light one 600 of its 600 both times; the heavy ones 3 037–3 280 (an equal share of the rest: 3 133) | 74, 71 |
//!
//! The test asserts ±3 % for the fleet, at least 50 admissions per Redis call, and the light
//! process's whole demand (97 %). The fleet's excess is the burst's tail: a second's admissions
//! vary by a few percent with the jittered asks, and the 10 s totals stay within ±1.2 %.
//!
//! Redis killed at 3 s and started again (empty) at 6 s, the same four processes at 500/s each
//! (`redis_stopped_mid_run_the_fleet_keeps_to_the_local_share_then_to_the_quota`): no request
//! failed but by the quota's refusal; from 3.5 s to 6 s each process admitted 752–813 (its local
//! share allows 625 over 2.5 s plus its burst of 250: at most 875); every process was on leases
//! again 0.88–0.99 s after the restart (the test asserts 2 s), and the fleet admitted 1 977–2 068
//! over 8–10 s. The test asserts that this is exact: at least 97 % of the rate, and no more than
//! the tokens the processes held at 8 s, what the restarted quota still held then (the tail of
//! its fresh burst) and what it earned in the 2 s.
//!
//! No request waits on Redis: with Redis paused (connections open, no answers), the longest
//! `check` took 0.19 ms against a `redis_timeout` of 200 ms
//! (`a_redis_that_stops_answering_is_a_fallback_no_request_waits_on_it_and_a_probe_ends_it`
//! in `tests/redis.rs` asserts under 50 ms).
//!
//! # Cost
//!
//! On our 2-vCPU benchmark machine (`benches/benches/quota.rs`, medians of two runs, the
//! first under other builds): the layer's request path served from a lease (a group lookup, a
//! clock read, a token, the demand count) took 100.4 and 54.2 ns, against 73.5 and 39.2 ns for
//! tower's `ConcurrencyLimit` in the same runs: 1.37× and 1.38× (the issue's bound: 2×). A
//! Redis call runs in the background and costs the request path one task spawn when a lease
//! runs low.
//!
//! How many Redis calls, per key: a process whose demand the quota covers asks when half its
//! lease is spent, once per `demand × lease_horizon / 2` admitted requests (a process at 10
//! requests a second with the default horizon asks every 2.5 requests: a light key costs calls,
//! not tokens). At saturation every process asks about once per cadence (`lease_horizon / 2`,
//! jittered), so the fleet makes about `N` calls per cadence for `rate × lease_horizon / 2`
//! admissions: `rate × lease_horizon / (2 N)` admissions per call (with the defaults at 1 000
//! a second: 125 for 4 processes at most, 62 for 8, 31 for 16; the fleet test measured 62–74
//! for 4, the light process's asks included). For large fleets on one key, a longer
//! `lease_horizon` keeps the calls down.
//!
//! # Configuration
//!
//! [`QuotaConfig`]: `rate` and `burst` (per key), `redis_url`, `prefix` and `name` (the Redis
//! namespace), `lease_horizon` (500 ms), `max_lease`, `lease_ttl` (2 s), `presence` (2 s),
//! `redis_timeout` (50 ms), `min_backoff`/`max_backoff` (50 ms to 500 ms), `max_in_flight` (64),
//! `fallback`. Validation returns a [`ConfigError`](rampart_core::ConfigError) naming the
//! field at fault.
//!
//! # Errors
//!
//! A refused request resolves to [`QuotaExceeded`], boxed in `tower::BoxError`, with the time
//! until a token is expected (`rampart::http` answers it with 429 and `Retry-After`); errors of
//! the inner service pass through untouched.
//!
//! # Metrics
//!
//! Registered once when a group is built (install your recorder first), labelled `name`:
//!
//! - `rampart_quota_requests_total{outcome}`: `leased` (granted from a lease), `local`
//!   (granted from the local share), `open` (granted by [`Fallback::FailOpen`]), `refused`;
//! - `rampart_quota_leases_total` and `rampart_quota_leased_tokens_total`: Redis's answers
//!   to asks, and the tokens they granted;
//! - `rampart_quota_redis_errors_total{kind="timeout"|"error"}`;
//! - `rampart_quota_fallback_active`: 1 while the group serves from its fallback.
//!
//! # Feature flags
//!
//! - `tracing`: the fallback's start and end as `tracing` events (target `rampart::quota`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod config;
mod error;
mod events;
mod future;
mod group;
mod layer;
mod lease;
mod metrics;
mod service;
mod store;

pub use crate::config::{Fallback, QuotaConfig};
pub use crate::error::QuotaExceeded;
pub use crate::future::ResponseFuture;
pub use crate::group::QuotaGroup;
pub use crate::layer::QuotaLayer;
pub use crate::service::Quota;
