//! Budgeted retries for tower: retries that cannot become a retry storm.
//!
//! A retry rescues a request from a single failure, and multiplies the load on a backend that
//! fails every request: three attempts per request triple the traffic to a service exactly
//! when it can least take it, and the outage feeds itself. This crate's [`Retry`] layer only
//! retries what a [`Budget`] allows, and its budgets are a bounded share of real traffic:
//!
//! - [`RatioBudget`] (Finagle's and tower's semantics, with exact fractional accounting):
//!   a retry goes ahead only while, over the last `ttl` (10 s), retries ≤ `ratio` (0.2) ×
//!   requests + `min_per_sec` (10) × `ttl`;
//! - [`TokenBudget`] (gRPC's retry throttling, proposal A6): failures drain a token bucket,
//!   successes refill it, and retries stop while it is half empty.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower::BoxError> {
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use rampart_retry::{RatioConfig, RetryConfig, RetryLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! // A backend whose first call fails.
//! let calls = Arc::new(AtomicU32::new(0));
//! let counter = Arc::clone(&calls);
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new(RetryConfig::default(), RatioConfig::default().build()?)?)
//!     .service_fn(move |sku: u32| {
//!         let call = counter.fetch_add(1, Ordering::Relaxed);
//!         async move { if call == 0 { Err("connection reset".into()) } else { Ok::<_, tower::BoxError>(sku) } }
//!     });
//!
//! assert_eq!(client.oneshot(7).await?, 7); // rescued by one retry
//! assert_eq!(calls.load(Ordering::Relaxed), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # What a budget buys
//!
//! Measured in `tests/layer.rs` (paused time, a `rampart-fault` backend):
//!
//! - **Storm**: 1 000 requests over 10 s to a backend failing every call: tower-style naive
//!   3-attempt retries send it 3 000 calls; the default [`RatioBudget`] sends exactly 1 300, its
//!   bound (1 + 0.2) × 1 000 + 10/s × 10 s.
//! - **Isolated failures**: at 10 % independent failures, success rises from 90.0 % without
//!   retries to 99.9 % with the default `RatioBudget` (three attempts, 25 ms full-jitter
//!   backoff).
//! - [`TokenBudget`] with gRPC's defaults (10 tokens, 0.1 per success) does **not** rescue
//!   steady 10 % failures: each attempt drifts the bucket by 0.9 × 0.1 − 0.1 × 1 = −0.01 token,
//!   so it drains to its threshold and retries stop (91.7 % success, 184 retries for 10 000
//!   requests). It is an outage brake: choose it when retries must stop early.
//!
//! # The policy
//!
//! [`Policy`] (the default) retries attempts the classifier calls failures (`Err` by default;
//! `HttpClassifier` also counts 5xx and 429), and **never** retries a local rejection
//! ([`rampart_core::Rejected`], returned by `rampart-breaker`), a passed deadline
//! ([`rampart_core::DeadlineExceeded`]) or an error a [`never_retry`](Policy::never_retry)
//! check recognises. Requests are copied with `Clone`, or
//! by [`with_cloner`](Policy::with_cloner)'s function, which may refuse (`None`) a request whose
//! body cannot be replayed: such a request is not retried. Its pushback hook, or a custom
//! [`RetryPolicy`], can ask for a specific wait ([`Decision::RetryAfter`]: server pushback) or
//! for none ([`Decision::DontRetry`]); see [Pushback](#pushback-and-dont-retry).
//!
//! Each request deposits once; each attempt's outcome is reported to the budget; each retry
//! withdraws first, then waits the [`Backoff`] (exponential from 25 ms, doubling to 1 s, full
//! jitter, seedable). `max_attempts` (3, the first included) and an optional per-attempt
//! timeout ([`AttemptTimedOut`]) bound the rest, and the request's deadline if it has one
//! (see [Deadlines](#deadlines)). Dropping the response future stops the retries.
//!
//! These rules are a [`Retrier`], which takes plain values (the policy's [`Decision`], the
//! request's [`Attempts`], a copy of the request) and answers [`Next`]: stop, and why, or retry
//! after a wait. It holds no tower or tokio type, so another client can reuse it.
//!
//! # Criticality
//!
//! Lower classes stop retrying first when the budget runs low, and critical work keeps a share
//! of it, with no per-class configuration. A request's
//! [`Criticality`](rampart_core::Criticality) is the current
//! [`RequestContext`](rampart_core::RequestContext)'s when the layer is called
//! (`rampart_core::current_criticality()`: critical, the default, outside any scope), or the one
//! given to [`Retrier::start_for`]; its retries ask [`Budget::withdraw_for`]. A retry is granted
//! only while what the budget holds after it covers the share of its capacity that
//! [`kept_back`] keeps for the classes above: nothing for critical-plus and critical (a request
//! without a criticality retries exactly as before), a quarter for sheddable-plus, half for
//! sheddable. Capacity is [`RatioBudget`]'s allowance in its window (`ratio × deposits +
//! min_per_sec × ttl`) and [`TokenBudget`]'s tokens above its threshold when full (with 10
//! tokens, retries need more than 5 for critical, 6.25 for sheddable-plus, 7.5 for sheddable);
//! [`Unlimited`] grants every class.
//!
//! Measured in `tests/criticality.rs`: 100 retries earned, sheddable retries take 50 and stop,
//! sheddable-plus ones 25 more, critical ones the last 25
//! (`a_ratio_budget_drained_by_sheddable_retries_still_grants_critical_ones`); through the
//! layer, 20 failing sheddable requests earning 10 retries get 5, and a critical request after
//! them is still retried (`the_layer_retries_by_the_requests_context_and_counts_each_class`).
//!
//! # Deadlines
//!
//! A retry that cannot finish before the caller stops waiting only adds load. A request's
//! [`Deadline`](rampart_core::Deadline) is the current
//! [`RequestContext`](rampart_core::RequestContext)'s when the layer is called
//! (`rampart_core::current_deadline()`, read once with the criticality), an instant of the
//! layer's clock: [`RetryLayer::new`] reads [`SystemClock`](rampart_core::SystemClock), whose
//! origin every `SystemClock` of the process shares; [`RetryLayer::new_with`] takes another (a
//! `TokioClock` under paused time, a clone of the one that set the deadlines). For such a
//! request:
//!
//! - **The first attempt** is sent if any time remains (the server decides whether it can
//!   make it; `rampart-ratelimit` refuses a predicted miss itself). If none remains, no attempt
//!   is made: the request ends with [`DeadlineExceeded`](rampart_core::DeadlineExceeded) and
//!   deposits nothing into the budget.
//! - **A retry** needs some time left and no less than the **predicted latency**: the
//!   exponentially smoothed latency of the layer's successful attempts (each sample moves it an
//!   eighth of the way, as TCP's smoothed round-trip time), measured on the requests that carry
//!   a deadline. Successes only, because a retry is worth its work only if it can succeed in
//!   time, and a fast failure says nothing of how long a success takes; an attempt cut by a
//!   timeout has no latency to report. Before the first success the prediction is zero and
//!   only the time left counts. The same holds once the wait is over: a backoff (or the wait a
//!   policy asks for) that would end after the deadline, or leave less than the predicted
//!   latency, is not taken. Such a stop is [`StopReason::NoTimeLeft`]; it is decided before
//!   the budget is asked, so a retry skipped for lack of time spends nothing, and the last
//!   attempt's own result is returned (a stop never replaces an answer the layer has). If the
//!   time runs out while the service is not ready for a granted retry, the retry is not sent
//!   (its withdrawal stays spent, as when `poll_ready` fails) and the request ends with
//!   `DeadlineExceeded` (`a_retry_whose_service_is_ready_too_late_is_not_sent`).
//! - **Each attempt's timeout** is the sooner of [`RetryConfig::attempt_timeout`] and the
//!   deadline. An attempt cut at the deadline ends with `DeadlineExceeded` (not
//!   [`AttemptTimedOut`]) and is not retried. The deadline's timer is armed only when an
//!   attempt does not answer at its first poll (the clock is read then, before the service is
//!   polled, and an attempt first polled past the deadline is cut as the timer would have).
//!
//! A request without a deadline reads no clock and is retried exactly as before.
//!
//! Measured in `tests/deadline.rs` (paused time, the layer on a `TokioClock`):
//!
//! - after a 30 ms success, a request with 50 ms whose first attempt fails at 30 ms has 20 ms
//!   left and is not retried (its own error at 30 ms, one call); with 70 ms it is, and
//!   answers at 60 ms (`a_retry_is_skipped_when_less_than_the_predicted_latency_remains`);
//! - a 50 ms backoff with 40 ms left is not taken (the request ends at 0 ms); with attempts of
//!   30 ms, a 20 ms backoff is not taken with 45 ms left and is with 55 ms, the retry answering
//!   at 50 ms (`a_backoff_past_the_deadline_is_not_taken`);
//! - an attempt that never answers, with a 1 s attempt timeout and a 250 ms deadline, ends at
//!   exactly 250 ms with `DeadlineExceeded`, one call
//!   (`an_attempt_that_never_answers_ends_exactly_at_the_deadline`); with a 100 ms attempt
//!   timeout, attempts at 0 and 100 ms time out and are retried, the third is cut at 250 ms
//!   (three calls; 300 ms and `AttemptTimedOut` without a deadline:
//!   `each_attempt_times_out_at_the_sooner_of_its_timeout_and_the_deadline`);
//! - a request already past its deadline makes no call and no deposit
//!   (`a_request_past_its_deadline_makes_no_attempt_and_no_deposit`); a request without a
//!   deadline reads the layer's clock 0 times, one with a deadline and one retry 4 times
//!   (`a_request_without_a_deadline_reads_no_clock_and_retries_as_before`);
//! - in the model test (`tests/model.rs`, `retries_and_budgets_match_the_model_with_deadlines`:
//!   about 1.3 × 10⁵ random operations, half the requests with a deadline 0 to 300 ms away),
//!   every attempt, deposit, withdrawal and result is the model's, and the budget's balance
//!   exact, while attempts are cut at deadlines and retries skipped for lack of time.
//!
//! # Pushback and "don't retry"
//!
//! A server under load says when a retry can succeed, or that none can. After a failure,
//! [`Policy`] asks its [`pushback::ReadPushback`] hook ([`Policy::with_pushback`]; none by
//! default); `pushback::HttpPushback` (feature `http`) reads gRPC's `grpc-retry-pushback-ms`
//! as proposal A6 specifies (a non-negative integer is the wait in milliseconds; a negative,
//! malformed or repeated value means no retry), HTTP's `Retry-After` in delta-seconds (an
//! HTTP-date is ignored: the retry waits its backoff) and the "don't retry" mark
//! `rampart-retry: no`. The server's wait replaces the backoff for that retry
//! ([`Decision::RetryAfter`]); the budget is still asked. A broken or hostile server cannot
//! hold a client: a wait longer than [`RetryConfig::max_pushback`] (30 s) is not waited, and
//! the request stops with its answer ([`StopReason::Pushback`], as for
//! [`Decision::DontRetry`]); one that would end past the request's deadline is not taken
//! either ([`StopReason::NoTimeLeft`]).
//!
//! Retries multiply per hop: three attempts at each of three hops are 27 calls at the failing
//! service. Only the hop next to the failure should retry. With
//! [`RetryConfig::mark_gave_up`], a failed request the layer gives up on (attempts, budget,
//! pushback or time exhausted) ends with [`GaveUp`], the last error as its source, whose
//! [`dont_retry`](GaveUp::dont_retry) a server turns into the mark for its caller
//! ([`pushback::dont_retry_header`]: `grpc-retry-pushback-ms: -1` for gRPC, `rampart-retry:
//! no` for HTTP); [`Policy`] never retries an error that is, or wraps, such a `GaveUp` (a
//! retry layer below in the same process). An answer that is not an error (a 503 retried in
//! vain) is returned as it is, marked by the policy ([`RetryPolicy::mark_gave_up`]:
//! `HttpPushback` inserts a [`GaveUpMark`] into its extensions).
//!
//! Each attempt's number is current in the [`RequestContext`](rampart_core::RequestContext)
//! while the layer calls the service (`attempt()`: 0 for the first, 1 for the first retry, as
//! gRPC's `grpc-previous-rpc-attempts`), so a client-side layer inside it can send it on.
//!
//! Measured in `tests/pushback.rs` (paused time): a 503 with `grpc-retry-pushback-ms: 250` is
//! retried after exactly 250 ms, with `Retry-After: 2` after 2 s, instead of the 10 ms backoff
//! (`a_servers_pushback_replaces_the_backoff`); negative, empty, non-numeric, fractional and
//! repeated gRPC pushback and `rampart-retry: no` stop at once, one call
//! (`dont_retry_and_malformed_grpc_pushback_stop_at_once`); 31 s, 30 001 ms, 2⁶⁴ ms and a
//! 44-digit value are not waited, 30 s is, and 150 ms with 100 ms left is not
//! (`a_hostile_server_cannot_hold_a_client`); A → B → C with three attempts at each hop and C
//! failing: 9 calls at C, 3 with `mark_gave_up`
//! (`a_hop_that_gave_up_tells_the_hop_above_not_to_retry`).
//!
//! # Fleet floors
//!
//! A budget is per process, and so is [`RatioConfig::min_per_sec`]: a floor of 10 retries a
//! second per client is 10 000 a second from a thousand clients facing a dead backend.
//! [`RatioBudget::with_fleet_floor`] states the floor for the fleet and divides it by an
//! estimate of the number of clients, so the fleet's floors together stay at what was stated.
//! It is chosen over a floor that shrinks under pushback because it holds without any signal
//! from the server: a backend that is down answers nothing, pushback included. The default
//! budget is unchanged. Measured in `tests/fleet.rs` (1 000 budgets on one `ManualClock`,
//! 5 requests a second each, every call failing, three attempts): with the per-client floor the
//! backend takes 3.0 calls per request for the whole minute (15 000 a second); with
//! `with_fleet_floor(10, 1_000)`, 1.200, never more than 1 000 retries in a second
//! (`per_client_floors_add_up_to_a_storm_and_a_fleet_floor_does_not`).
//!
//! # Hedging
//!
//! A retry rescues a request from a failure; a hedge rescues it from a slow answer. "The Tail
//! at Scale" (Dean & Barroso, 2013) sends a second copy of a request still unanswered after
//! the 95th percentile of latencies and takes whichever answers first: the tail shrinks for a
//! few percent more load. Unbounded, hedging becomes the load: when every answer slows down,
//! every request passes the delay and is sent twice. [`HedgeLayer`] bounds its hedges as
//! Finagle's backup requests do, with the budget retries draw from:
//!
//! - **The delay** is the configured quantile ([`HedgeConfig::quantile`], 0.95) of the
//!   latencies of the last [`window`](HedgeConfig::window) (10 s in 10 buckets), at least
//!   [`min_delay`](HedgeConfig::min_delay) (1 ms), read from log-linear histograms of
//!   microseconds (within 6.25 %, never below) once per bucket, from the completed buckets.
//!   A record is a relaxed `fetch_add`, with no lock (a histogram is emptied for a new
//!   bucket by the one recorder that claims it; a record racing that drops its latency).
//!   The window counts each answer's latency from when its copy was sent (failures do not
//!   count, nor the requests the filter below keeps from hedging: the delay is for the
//!   others), and for a first copy that lost to its hedge, how long it had run by then: without
//!   these lower bounds, the slowest latencies would leave the window as soon as they are
//!   hedged, and the delay would fall. Until the completed buckets hold
//!   [`min_samples`](HedgeConfig::min_samples) (100) latencies, no request is hedged.
//! - **The budget**: each request deposits into the [`Budget`] and each hedge withdraws as a
//!   retry does ([`Budget::withdraw_for`] the request's criticality). Give one `Arc` of a
//!   budget to a [`RetryLayer`] and a [`HedgeLayer`] (or build the hedge layer with
//!   [`RetryLayer::hedge_layer`]), and retries and hedges together stay within its ratio. A
//!   request deposits once whichever of the two is outside: the first deposits and marks the
//!   request charged to the budget (a [`Budget::id`] in
//!   [`RequestContext::charged`](rampart_core::RequestContext::charged)), and the other,
//!   seeing the mark, deposits neither for it nor for its copies and retries. A layer with a
//!   budget of its own deposits into it for each request or copy that reaches it. An empty
//!   budget sends no hedge.
//! - **The deadline**: a hedge is not sent when the request's deadline
//!   (`rampart_core::current_deadline()`, read when the layer is called) leaves less than the
//!   predicted latency, the window's median; nothing is withdrawn then.
//! - **The cost**: only requests the filter allows ([`HedgeLayer::only_hedging`], a
//!   [`MayHedge`]: mark what is expensive or not idempotent) and the policy can copy
//!   ([`RetryPolicy::clone_request`]) are hedged. [`HedgeLayer::new`]'s default [`Policy`]
//!   copies every request that is `Clone`; [`RetryLayer::hedge_layer`] gives the hedge layer
//!   the retry layer's policy, so that what the retry layer would not retry (its cloner
//!   answers `None`) is never hedged.
//! - **Another endpoint**: the first copy's call and each hedge's are made inside a
//!   [`pick_hint`](rampart_core::pick_hint) scope; a balancer that honours it records the
//!   endpoint it picked, and each hedge asks it to avoid the endpoints still working on the
//!   request. A `tower::buffer::Buffer` between the layer and the balancer loses the hint (its
//!   worker calls the balancer outside the scope): use a balancer that is `Clone`
//!   (`rampart_balancer::SharedP2c`).
//! - **The answer**: the first copy to answer wins, the others are dropped (cancelled); a
//!   failure wins only when no other copy is under way. Up to
//!   [`max_hedges`](HedgeConfig::max_hedges) (1) copies go, a delay apart.
//!
//! The rules are a [`Hedger`], which takes instants and holds no tower type. The delay's
//! timer is armed at the first poll that finds no answer, so a request answered at once
//! registers none; tokio's timer fires on the millisecond.
//!
//! Differences from tower's `Hedge`: a budget; microsecond latencies instead of milliseconds;
//! no lock per request (tower's takes a mutex to read the delay and one to record a latency);
//! the deadline, the filter and the pick hints; the latencies of the losing first copies.
//!
//! Measured in `tests/hedge.rs` (paused time, answers of 10 ms, a delay of 10.239 ms): a
//! first copy stalled for a second is answered at 21 ms by its hedge, and dropped
//! (`a_slow_first_copy_is_hedged_and_dropped_when_the_hedge_answers`); with a ratio budget of
//! 0.1 and no reserve, 30 requests (20 of them slow, at once) send exactly 3 hedges and
//! refuse 17 (`a_ratio_budget_bounds_hedges_to_its_share_of_requests`); under a retry layer,
//! one deposit per request and one budget for the retry and the hedge
//! (`under_a_retry_layer_hedges_and_retries_share_one_budget_and_one_deposit`, and in
//! `tests/hedge_budget.rs` with the hedge layer outside, with two budgets, and through a
//! client called inside a retry's scope); a dropped request, a failing copy and a panicking
//! copy leave no copy under way.
//!
//! # Differences from tower's `Retry` and `TpsBudget`
//!
//! - Exact ratios: tower withdraws `1 / ratio` rounded down, so a 0.6 ratio allows 100 % (tower
//!   issue #857); ours allows 60 %.
//! - A budget that cannot be overdrawn by concurrent withdrawals, and no lock on deposits.
//! - Configuration errors instead of `assert!` panics.
//! - Both budgets also implement `tower::retry::budget::Budget`, for tower's own `Retry`.
//!
//! # Metrics
//!
//! Registered once when the layer is built (install your recorder first), labelled `name` and
//! `criticality` (the request's class: `sheddable`, `sheddable-plus`, `critical`,
//! `critical-plus`, as `CriticalityClass::as_str`; `critical` for a request that said none;
//! every series registered up front): `rampart_retry_attempts_total{kind="first"|"retry"}`
//! (attempts sent), `rampart_retry_budget_exhausted_total` (retries the budget refused) and
//! `rampart_retry_deadline_skips_total{kind="first"|"retry"}` (attempts not sent for lack of
//! time: a first attempt whose deadline had passed when the layer was called, a retry stopped
//! with [`StopReason::NoTimeLeft`] or not sent because the time ran out while the service was
//! not ready). The deadline's refusals are their own counter, as the budget's are, so that
//! `attempts_total` keeps counting exactly what was sent.
//!
//! The hedge layer's, labelled `name` and (but the gauge) `criticality`:
//! `rampart_retry_hedges_total{outcome="sent"|"won"|"refused_budget"|"refused_deadline"|"refused_policy"}`
//! (hedges sent; requests a hedge answered; hedges due and not sent, by reason, a request the
//! filter or the policy refused counted when it proved slower than the delay) and
//! `rampart_retry_hedge_delay_seconds` (the delay, 0 while the window is cold, set once per
//! bucket); [`HedgeLayer::stats`] gives the same counts. With feature `tracing`, hedging
//! starting and stopping (the window warm or cold) and the budget refusing hedges and
//! granting them again are events.
//!
//! # Cost
//!
//! Medians on our 2-vCPU benchmark machine (`benches/benches/retry.rs`, two runs): a deposit
//! and a withdrawal take 22.6 and 23.8 ns on `RatioBudget` (its window reads the clock's
//! recent time, on `SystemClock` the kernel's coarse clock, and each event is one atomic
//! write; 57.0 ns in an earlier run reading the time-stamp counter and writing twice; 17.9
//! and 20.0 ns on `CoarseClock`), 19.4 and 20.4 ns on `TokenBudget`, 80.6 and 86.8 ns on
//! tower's `TpsBudget`. The layer's success path costs 42.2 and 39.0 ns against tower's
//! `Retry`'s 44.5 and 44.5 ns (0.95× and 0.88×), over a bare service whose clone costs
//! nothing: the budget's deposit, and the reference to the service's shared state that the
//! response future keeps for a retry. tower's `Retry` clones its inner service at every call;
//! this layer clones it only for a request that is retried, and its response future boxes
//! what only some requests need (a timer, the retries' service), so that the future of a
//! request answered at once is 248 bytes instead of 456 over a client stack's breaker and
//! balancer (each move of it is a copy). Over that stack (`--bench stack`,
//! `rampart/retry_breaker_shared_p2c`, one run) the two changes took a request from 313.4 ns
//! to 292.9 ns (no clone) and then to 271.4 ns (the smaller future).
//! A request in a context that carries a criticality costs what one without does (two runs on
//! a busier machine: `rampart/retry_ratio_budget/sheddable` 45.9 and 49.2 ns against 46.6 and
//! 51.5 ns without), and so does a withdrawal asked as sheddable (`retry_budget/withdraw_for`:
//! 23.3 and 24.2 ns against 24.9 and 26.1 ns as critical). A request with a deadline that the
//! service answers at once costs 1.13–1.19× one without (two runs on a busier machine:
//! `rampart/retry_ratio_budget/deadline` 73.9 and 70.2 ns against 62.3 and 62.4 ns): two clock
//! reads and the latency observed, no timer, since the deadline's timer is armed only when an
//! attempt waits; a configured attempt timeout, whose timer is registered on every attempt,
//! costs 181.5 and 175.9 ns (`/attempt_timeout`).
//!
//! The hedge layer's path when no hedge fires (the service answers at once, the window warm:
//! a deposit, the delay read, a copy of the request kept, the first copy's endpoint asked for,
//! its latency observed; no timer) costs 0.23–0.25× tower's `Hedge` (two runs on a busy
//! machine, `retry_hedge/no_hedge`: `rampart/hedge` 95.7 and 127.8 ns against `tower/hedge`
//! 385.1 and 553.7 ns); `rampart/hedger`, the decision alone (a deposit, the delay read, a
//! latency observed), 33.4 and 46.3 ns. On the current machine, in the two runs above:
//! 97.3 and 103.7 ns against 233.1 and 260.9 ns (0.42× and 0.40×), the hedger 18.3 and
//! 18.6 ns.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod backoff;
mod budget;
mod config;
mod decide;
mod error;
mod events;
mod future;
mod hedge;
mod hold;
mod layer;
mod metrics;
mod policy;
pub mod pushback;
mod service;

pub use crate::backoff::Backoff;
pub use crate::budget::{
    Budget, BudgetSnapshot, RatioBudget, RatioConfig, TokenBudget, TokenConfig, Unlimited,
    kept_back,
};
pub use crate::config::RetryConfig;
pub use crate::decide::{Attempts, Next, Retrier, StopReason};
pub use crate::error::{AttemptTimedOut, GaveUp};
pub use crate::future::ResponseFuture;
pub use crate::hedge::{
    AnyRequest, Hedge, HedgeConfig, HedgeFuture, HedgeLayer, HedgeRefusal, HedgeStats, Hedger,
    MayHedge,
};
pub use crate::hold::PushbackHold;
pub use crate::layer::RetryLayer;
pub use crate::policy::{ByClone, CloneRequest, Decision, GaveUpMark, Policy, RetryPolicy};
pub use crate::service::Retry;
