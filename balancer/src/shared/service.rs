//! The [`Service`] impl of [`SharedP2c`]: the pick and its readiness in `poll_ready`, the
//! request sent in `call`; and `Clone`.

use std::sync::Arc;
use std::task::{Context, Poll};

use rampart_core::pick_hint;
use rampart_core::{Arrival, Classify, Clock, Completion};
use tower::{BoxError, Service};

use crate::WhenEmpty;
use crate::future::{ResponseFuture, Sent, Stats};
use crate::p2c::TwoChoices;
use crate::score::Score;
use crate::shared::state::Shared;
use crate::shared::{Chosen, SharedP2c, pick};

impl<K, Svc, C, S, L, Req> Service<Req> for SharedP2c<K, Svc, C, S, L>
where
    K: std::hash::Hash + Eq,
    Svc: Service<Req> + Clone,
    Svc::Error: Into<BoxError>,
    C: Clock + Clone,
    S: Score,
    L: Classify<Svc::Response, Svc::Error> + Clone,
{
    type Response = Svc::Response;
    type Error = BoxError;
    type Future = ResponseFuture<Svc::Future, C, L>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.chosen.is_some() || self.fail_next {
            return Poll::Ready(Ok(()));
        }
        let shared = &*self.shared;
        let mut waiting = false;
        loop {
            shared.maintain::<Req>()?;
            if let Some(chosen) = choose::<Req, _, _, _, _>(&mut self.choices, shared) {
                self.chosen = Some(chosen);
                self.empty_timer = None;
                return Poll::Ready(Ok(()));
            }
            if waiting {
                break;
            }
            // Nothing ready: wait for a change, then look once more, so that a change made
            // between the look and the wait is not missed.
            shared.signals.wait(cx.waker());
            waiting = true;
        }
        self.poll_empty(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let Some(mut chosen) = self.chosen.take() else {
            // Nothing was ready (or `poll_ready` was not called): fail this request.
            self.fail_next = false;
            return ResponseFuture::no_endpoint();
        };
        if pick_hint::is_listening() {
            if pick_hint::is_avoided(chosen.id)
                && let Some(other) = choose_avoiding::<Req, _, _, _, _>(
                    &mut self.choices,
                    &self.shared,
                    chosen.arrival,
                )
            {
                chosen = other;
            }
            pick_hint::record_pick(chosen.id);
        }
        let Chosen {
            lane,
            mut service,
            arrival,
            ..
        } = chosen;
        lane.picked(arrival.at);
        // Tracked before the call: if the endpoint's `call` panics, the guard ends it.
        let ticket = lane.stats.begin(arrival);
        let sent = Sent::new(Stats::Shared(lane), ticket, self.shared.clock.clone());
        let completion = Completion::new(sent, self.classifier.clone());
        ResponseFuture::sent(service.call(request), completion)
    }
}

/// Picks a ready endpoint and polls a clone of its service ready; an endpoint whose clone is
/// not ready is parked and another picked, one that fails is dropped. `None` when no endpoint
/// is ready.
fn choose<Req, K, Svc, C, S>(
    choices: &mut TwoChoices,
    shared: &Shared<K, Svc, C, S>,
) -> Option<Chosen<Svc>>
where
    Svc: Service<Req> + Clone,
    C: Clock,
    S: Score,
{
    let list = shared.members.load();
    let now = shared.timing.instant(&shared.clock);
    let stripe = shared.thread_stripe();
    let mut cx = Context::from_waker(&shared.probe_waker);
    // Each miss takes an endpoint out of the candidates: at most one try per endpoint.
    for _ in 0..list.len() {
        let member = pick::pick(choices, &shared.score, &list, (now, stripe))?;
        let mut service = member.service.clone();
        match Service::<Req>::poll_ready(&mut service, &mut cx) {
            Poll::Ready(Ok(())) => {
                return Some(Chosen {
                    lane: Arc::clone(member.record.lane(stripe)),
                    id: member.id,
                    service,
                    // Timed or not, drawn now that the request goes ahead.
                    arrival: shared.timing.arrival_at(now, &shared.clock),
                });
            }
            Poll::Pending => shared.park(member, service),
            Poll::Ready(Err(_)) => shared.drop_member(member),
        }
    }
    None
}

/// For a request arriving at `arrival` whose pick hint avoids the endpoint chosen: the
/// better of two drawn among the ready endpoints not avoided, a clone of it polled ready as
/// in [`choose`]; `None` when none of them is ready (the request then goes where it was
/// going: a hint is a preference, never a refusal).
fn choose_avoiding<Req, K, Svc, C, S>(
    choices: &mut TwoChoices,
    shared: &Shared<K, Svc, C, S>,
    arrival: Arrival,
) -> Option<Chosen<Svc>>
where
    Svc: Service<Req> + Clone,
    S: Score,
{
    let list = shared.members.load();
    let mut others: Vec<_> = list
        .iter()
        .filter(|member| member.is_ready() && !pick_hint::is_avoided(member.id))
        .cloned()
        .collect();
    drop(list);
    let stripe = shared.thread_stripe();
    let mut cx = Context::from_waker(&shared.probe_waker);
    while !others.is_empty() {
        let member = Arc::clone(pick::pick(
            choices,
            &shared.score,
            &others,
            (arrival.at, stripe),
        )?);
        others.retain(|other| !Arc::ptr_eq(other, &member));
        let mut service = member.service.clone();
        match Service::<Req>::poll_ready(&mut service, &mut cx) {
            Poll::Ready(Ok(())) => {
                return Some(Chosen {
                    lane: Arc::clone(member.record.lane(stripe)),
                    id: member.id,
                    service,
                    arrival,
                });
            }
            Poll::Pending => shared.park(&member, service),
            Poll::Ready(Err(_)) => shared.drop_member(&member),
        }
    }
    None
}

impl<K, Svc, C, S, L> SharedP2c<K, Svc, C, S, L> {
    /// No endpoint is ready: wait, or fail the next request.
    fn poll_empty(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self.shared.config.when_empty {
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

impl<K, Svc, C, S, L: Clone> Clone for SharedP2c<K, Svc, C, S, L> {
    /// Another handle on the same endpoints, with no pick in progress and draws of its own.
    fn clone(&self) -> Self {
        // Its own stream of draws: with a seed, the balancer's next one (reproducible in a
        // test or a simulation, for a counter written by every clone); without, from this
        // thread's generator (no shared counter to write).
        let nth = match self.shared.config.seed {
            Some(_) => self.shared.next_handle(),
            None => 0,
        };
        let choices = TwoChoices::for_handle(&self.shared.config, nth);
        Self {
            shared: self.shared.clone(),
            classifier: self.classifier.clone(),
            choices,
            chosen: None,
            fail_next: false,
            empty_timer: None,
        }
    }
}
