//! [`P2cState`]: what a [`P2c`](crate::P2c) balancer holds apart from its classifier, and the
//! steps of its `poll_ready`: applying discovery, polling pending endpoints, the pick (by
//! [`TwoChoices`]) and its score publishing, and the empty-set timer.

use std::fmt;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_core::pick_hint::{self, EndpointId};
use rampart_core::{Arrival, Clock, Timing};
use tokio::time::Sleep;
use tower::discover::{Change, Discover};
use tower::{BoxError, Service};

use crate::endpoint::EndpointStats;
use crate::metrics::BalancerMetrics;
use crate::p2c::{Candidate, TwoChoices};
use crate::score::{Load, Score};
use crate::set::{Endpoint, EndpointSet};
use crate::{P2cConfig, WhenEmpty};

/// A balancer's state: its endpoints, discovery, pick, clock and score.
pub(crate) struct P2cState<D: Discover, C, S> {
    discover: Pin<Box<D>>,
    discovery_ended: bool,
    pub(crate) set: EndpointSet<D::Key, D::Service>,
    /// The endpoint `poll_ready` chose for the next `call`, and the request's arrival.
    pub(crate) chosen: Option<(usize, Arrival)>,
    /// The next `call` fails: nothing was ready.
    pub(crate) fail_next: bool,
    empty_timer: Option<Pin<Box<Sleep>>>,
    choices: TwoChoices,
    pub(crate) config: P2cConfig,
    pub(crate) clock: C,
    /// How requests are placed in time and which are timed.
    pub(crate) timing: Timing,
    pub(crate) score: S,
    metrics: BalancerMetrics,
    pub(crate) label: fn(&D::Key) -> String,
}

impl<D: Discover, C, S> P2cState<D, C, S> {
    /// The state of a new balancer; `config` must be valid.
    pub(crate) fn new(discover: D, config: P2cConfig, clock: C, score: S) -> Self
    where
        D::Key: fmt::Debug,
        C: Clock,
    {
        Self {
            discover: Box::pin(discover),
            discovery_ended: false,
            set: EndpointSet::new(),
            chosen: None,
            fail_next: false,
            empty_timer: None,
            choices: TwoChoices::from_valid(&config),
            metrics: BalancerMetrics::new(&config.name),
            timing: config.timing(&clock),
            config,
            clock,
            score,
            label: |key| format!("{key:?}"),
        }
    }

    /// No endpoint is ready: wait, or fail the next request.
    fn poll_empty(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self.config.when_empty {
            WhenEmpty::Wait => Poll::Pending,
            WhenEmpty::FailFast { after: None } => {
                self.fail_next = true;
                Poll::Ready(Ok(()))
            }
            WhenEmpty::FailFast { after: Some(after) } => {
                let timer = self
                    .empty_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.empty_timer = None;
                    self.fail_next = true;
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
        }
    }
}

/// The cost `score` gives an endpoint with `stats` at `now`.
pub(crate) fn cost_of<S: Score>(score: &S, stats: &EndpointStats, now: Duration) -> f64 {
    score.cost(&Load {
        lag_ms: stats.effective_lag_ns(now) / 1e6,
        inflight: stats.inflight(),
        success: stats.success(),
        weight: stats.weight(),
    })
}

impl<D, C, S> P2cState<D, C, S>
where
    D: Discover,
    D::Key: Hash + Eq + Clone,
    D::Error: Into<BoxError>,
    C: Clock,
    S: Score,
{
    /// `poll_ready` when no endpoint is chosen yet: applies discovery, promotes the pending
    /// endpoints that became ready, then picks until the chosen endpoint is ready (or the
    /// set is empty).
    pub(crate) fn poll_choose<Req>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>>
    where
        D::Service: Service<Req>,
    {
        self.update_discovery(cx)?;
        self.promote_pending::<Req>(cx);
        while !self.set.ready().is_empty() {
            self.empty_timer = None;
            let now = self.timing.instant(&self.clock);
            let Some(at) = self.pick(now) else { break };
            match Service::<Req>::poll_ready(&mut self.set.get_mut(at).service, cx) {
                Poll::Ready(Ok(())) => {
                    // Timed or not, drawn now that the request goes ahead.
                    let arrival = self.timing.arrival_at(now, &self.clock);
                    self.chosen = Some((at, arrival));
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending => self.set.make_pending(at),
                Poll::Ready(Err(_)) => self.remove_at(at),
            }
        }
        self.poll_empty(cx)
    }

    /// Applies every change the discovery stream has ready.
    fn update_discovery(&mut self, cx: &mut Context<'_>) -> Result<(), BoxError> {
        while !self.discovery_ended {
            match self.discover.as_mut().poll_discover(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => self.discovery_ended = true,
                Poll::Ready(Some(Err(error))) => return Err(error.into()),
                Poll::Ready(Some(Ok(Change::Insert(key, service)))) => self.insert(key, service),
                Poll::Ready(Some(Ok(Change::Remove(key)))) => {
                    if let Some(at) = self.set.find(&key) {
                        self.remove_at(at);
                    }
                }
            }
        }
        Ok(())
    }

    fn insert(&mut self, key: D::Key, service: D::Service) {
        if let Some(at) = self.set.find(&key) {
            // A replacement: new service, same statistics. It must be polled ready anew.
            self.set.get_mut(at).service = service;
            self.set.make_pending(at);
            return;
        }
        let now = self.timing.instant(&self.clock);
        let stats = Arc::new(EndpointStats::new(
            self.set.median_warm_lag(),
            self.config.tau,
            self.timing.tick(),
        ));
        let metrics = self.metrics.endpoint((self.label)(&key));
        self.set
            .add(Endpoint::new(key, service, stats, metrics, now));
        self.metrics.endpoints.set(self.set.len() as f64);
    }

    /// Polls every pending endpoint; ready ones become candidates, failed ones are dropped.
    fn promote_pending<Req>(&mut self, cx: &mut Context<'_>)
    where
        D::Service: Service<Req>,
    {
        let mut nth = 0;
        while let Some(at) = self.set.pending(nth) {
            match Service::<Req>::poll_ready(&mut self.set.get_mut(at).service, cx) {
                Poll::Pending => nth += 1,
                Poll::Ready(Ok(())) => self.set.make_ready(at),
                Poll::Ready(Err(_)) => self.remove_at(at),
            }
        }
    }

    /// The endpoint to use at `now`, of the ready ones (`None` if there is none), with the
    /// score gauges of the candidates refreshed when due.
    fn pick(&mut self, now: Duration) -> Option<usize> {
        let (set, score) = (&self.set, &self.score);
        let ready = set.ready();
        let pair = self.choices.pick(now, ready.len(), |position| {
            let endpoint = set.get(ready[position]);
            Candidate {
                cost: cost_of(score, &endpoint.stats, now),
                last_pick: endpoint.last_pick,
            }
        });
        let Some(pair) = pair else {
            let &only = self.set.ready().first()?;
            if self.set.get(only).metrics.score_due(now) {
                let cost = cost_of(&self.score, &self.set.get(only).stats, now);
                self.set.get_mut(only).metrics.publish_score(cost, now);
            }
            return Some(only);
        };
        let drawn = pair.drawn.map(|position| ready[position]);
        let chosen = if pair.chosen == pair.drawn[0] {
            drawn[0]
        } else {
            drawn[1]
        };
        // Both candidates' costs are published, so that an endpoint the balancer avoids shows
        // the cost it is avoided for, not the one it had when last picked.
        for (at, cost) in drawn.into_iter().zip(pair.costs) {
            let metrics = &mut self.set.get_mut(at).metrics;
            if metrics.score_due(now) {
                metrics.publish_score(cost, now);
            }
        }
        #[cfg(feature = "tracing")]
        {
            let [a_cost, b_cost] = pair.costs;
            self.note_avoidance(drawn[0], a_cost, b_cost);
            self.note_avoidance(drawn[1], b_cost, a_cost);
        }
        Some(chosen)
    }

    /// The endpoint to send to in place of `at` (chosen by `poll_ready` at `now`) when the
    /// caller's pick hint asks to avoid it: the better of two drawn among the ready endpoints
    /// not avoided, polled ready now (one that is not ready is moved to the pending list, to be
    /// polled with the task's waker at the next `poll_ready`). `at` itself when it is not
    /// avoided or no other endpoint is ready: a hint is a preference, never a refusal. Only a
    /// `call` made inside the caller's scope sees its hint: behind a `Buffer` there is none.
    pub(crate) fn honour_hint<Req>(&mut self, at: usize, now: Duration) -> usize
    where
        D::Service: Service<Req>,
    {
        if !pick_hint::is_avoided(EndpointId::of(&self.set.get(at).key)) {
            return at;
        }
        let mut others: Vec<usize> = self
            .set
            .ready()
            .iter()
            .copied()
            .filter(|&other| {
                other != at && !pick_hint::is_avoided(EndpointId::of(&self.set.get(other).key))
            })
            .collect();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        while !others.is_empty() {
            let (set, score) = (&self.set, &self.score);
            let nth = match self.choices.pick(now, others.len(), |nth| {
                let endpoint = set.get(others[nth]);
                Candidate {
                    cost: cost_of(score, &endpoint.stats, now),
                    last_pick: endpoint.last_pick,
                }
            }) {
                Some(pair) => pair.chosen,
                None => 0,
            };
            let other = others.swap_remove(nth);
            match Service::<Req>::poll_ready(&mut self.set.get_mut(other).service, &mut cx) {
                Poll::Ready(Ok(())) => return other,
                // Polled again, with the task's waker, by the next `poll_ready`.
                Poll::Pending | Poll::Ready(Err(_)) => self.set.make_pending(other),
            }
        }
        at
    }

    /// Reports endpoint `at` entering or leaving avoidance, from a pick in which it cost
    /// `cost` against a rival's `rival`.
    #[cfg(feature = "tracing")]
    fn note_avoidance(&mut self, at: usize, cost: f64, rival: f64) {
        let endpoint = self.set.get_mut(at);
        if let Some(avoided) = crate::events::crossed(&mut endpoint.avoided, cost, rival) {
            let label = (self.label)(&endpoint.key);
            crate::events::report(&self.config.name, &label, avoided, cost, rival);
        }
    }

    /// Drops endpoint `at` (its requests in flight complete normally) and keeps `chosen`
    /// pointing at the same endpoint, or at none if it was the one dropped.
    fn remove_at(&mut self, at: usize) {
        let moved = self.set.remove(at);
        self.metrics.endpoints.set(self.set.len() as f64);
        self.chosen = match self.chosen {
            Some((chosen, _)) if chosen == at => None,
            Some((chosen, when)) if Some(chosen) == moved => Some((at, when)),
            other => other,
        };
    }
}
