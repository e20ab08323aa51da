//! The shared balancer's pick: power of two choices over the members that are ready, read
//! from the list without a lock.
//!
//! The pair is drawn from the whole list and drawn again while it holds a member that is not
//! ready (up to [`DRAWS`] times); after that, from the ready members alone. Both give every
//! pair of ready members the same chance, so the pick is the same as `P2c`'s, which keeps a
//! ready list: but keeping such a list shared would mean writing it whenever an endpoint
//! turns busy, on the request path of every handle.

use std::sync::Arc;
use std::time::Duration;

use crate::p2c::{Candidate, TwoChoices};
use crate::score::Score;
use crate::shared::members::Member;
use crate::state::cost_of;

/// Draws of the whole list before the pick falls back to listing the ready members.
const DRAWS: usize = 4;

/// The member to use at `now` among the ready ones of `list` (`None` if none is ready), as
/// their lanes of stripe `stripe` see them, with the score gauges of the candidates refreshed
/// when due.
pub(crate) fn pick<'a, K, Svc, S: Score>(
    choices: &mut TwoChoices,
    score: &S,
    list: &'a [Arc<Member<K, Svc>>],
    (now, stripe): (Duration, usize),
) -> Option<&'a Arc<Member<K, Svc>>> {
    if list.len() >= 2 {
        for _ in 0..DRAWS {
            let [a, b] = choices.draw(list.len())?;
            let (a, b) = (&list[a], &list[b]);
            if a.is_ready() && b.is_ready() {
                return Some(better(choices, score, [a, b], (now, stripe)));
            }
        }
    }
    let ready: Vec<&Arc<Member<K, Svc>>> = list.iter().filter(|m| m.is_ready()).collect();
    if let Some([a, b]) = choices.draw(ready.len()) {
        return Some(better(choices, score, [ready[a], ready[b]], (now, stripe)));
    }
    let only = *ready.first()?;
    let metrics = &only.record.metrics;
    if metrics.score_due(now) {
        metrics.publish_score(cost_of(score, &only.record.lane(stripe).stats, now), now);
    }
    Some(only)
}

/// The better of two drawn members at `now` as their lanes of stripe `stripe` see them (by
/// [`TwoChoices`]' rule), both their score gauges refreshed when due.
fn better<'a, K, Svc, S: Score>(
    choices: &TwoChoices,
    score: &S,
    drawn: [&'a Arc<Member<K, Svc>>; 2],
    (now, stripe): (Duration, usize),
) -> &'a Arc<Member<K, Svc>> {
    let candidates = drawn.map(|member| {
        let lane = member.record.lane(stripe);
        Candidate {
            cost: cost_of(score, &lane.stats, now),
            last_pick: lane.last_pick(),
        }
    });
    for (member, candidate) in drawn.iter().zip(&candidates) {
        let metrics = &member.record.metrics;
        if metrics.score_due(now) {
            metrics.publish_score(candidate.cost, now);
        }
    }
    #[cfg(feature = "tracing")]
    {
        let [a, b] = candidates.map(|candidate| candidate.cost);
        note_avoidance(drawn[0], a, b);
        note_avoidance(drawn[1], b, a);
    }
    drawn[choices.choose(now, candidates[0], candidates[1])]
}

/// Reports `member` entering or leaving avoidance, from a pick in which it cost `cost`
/// against a rival's `rival`.
#[cfg(feature = "tracing")]
fn note_avoidance<K, Svc>(member: &Member<K, Svc>, cost: f64, rival: f64) {
    use std::sync::atomic::Ordering;
    let mut avoided = member.record.avoided.load(Ordering::Relaxed);
    if let Some(now) = crate::events::crossed(&mut avoided, cost, rival) {
        // One handle reports a transition: the one that flips the flag.
        if member
            .record
            .avoided
            .compare_exchange(!now, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            crate::events::report(&member.record.name, &member.record.label, now, cost, rival);
        }
    }
}
