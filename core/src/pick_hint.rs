//! Pick hints: a caller asks the balancer below it to prefer an endpoint other than some, and
//! learns which endpoint it picked.
//!
//! A hedged request is worth sending only to an endpoint other than the one still working on
//! the first copy: the same endpoint is likely still slow. The hedge layer and the balancer
//! are separate layers with a service stack between them, so the hint travels the way the
//! [`RequestContext`](crate::RequestContext) does: in a thread-local scope around one
//! synchronous `call`.
//!
//! # The caller (a hedge layer)
//!
//! Wraps the inner service's `call` in [`call_avoiding`], with the endpoints to avoid (empty
//! for a first copy: it only wants to learn the pick), and gets back the call's result and the
//! endpoint the balancer recorded, if any. Scopes nest (a hedge layer inside another): an
//! inner scope avoids the outer one's endpoints as well as its own, and its pick is reported
//! to the outer one too, so that the outer layer's hedges avoid it.
//!
//! # What a balancer must do
//!
//! Inside its `call` (synchronously, before it returns; the scope is closed once it has):
//!
//! 1. **Prefer an endpoint outside the list.** If the endpoint it would pick is
//!    [`is_avoided`], pick among the others instead (for power of two choices: the better of
//!    the ready endpoints not avoided). A balancer that chooses in `poll_ready` re-checks its
//!    choice in `call` and moves to another endpoint that is ready. It is a preference, never a
//!    refusal: when every ready endpoint is avoided, it picks as it would without the hint.
//! 2. **Record its pick**: [`record_pick`] with the endpoint it sends the request to, before
//!    `call` returns. When several balancers record in one scope, the last one is returned.
//!    A pick recorded in a nested scope is the enclosing scopes' pick too.
//! 3. **Name endpoints stably**: an [`EndpointId`] stays the same for an endpoint while it is
//!    in the balancer and differs between its endpoints: [`EndpointId::of`] its discovery
//!    key.
//!
//! Outside any scope [`is_avoided`] is false and [`record_pick`] does nothing: a balancer
//! under no hedge layer picks exactly as before, for a thread-local read. [`is_listening`]
//! says whether a scope is open, for a balancer that would rather not compute an id for
//! nothing.
//!
//! The hint crosses only synchronous calls on one thread: a `tower::buffer::Buffer` (or any
//! layer that calls the inner service from another task) between the two layers drops it, and
//! the balancer then picks as if there were no hint.
//!
//! ```
//! use rampart_core::pick_hint::{self, EndpointId};
//!
//! // The balancer's side, in its `call`: endpoints "a" and "b", "a" its first choice.
//! fn balancer_call() -> &'static str {
//!     let (a, b) = (EndpointId::of("a"), EndpointId::of("b"));
//!     let (picked, name) = if pick_hint::is_avoided(a) { (b, "b") } else { (a, "a") };
//!     pick_hint::record_pick(picked);
//!     name
//! }
//!
//! // The hedge layer's side: the first copy learns its endpoint, the hedge avoids it.
//! let (first, first_pick) = pick_hint::call_avoiding(&[], balancer_call);
//! assert_eq!((first, first_pick), ("a", Some(EndpointId::of("a"))));
//! let avoid: Vec<EndpointId> = first_pick.into_iter().collect();
//! let (hedge, hedge_pick) = pick_hint::call_avoiding(&avoid, balancer_call);
//! assert_eq!((hedge, hedge_pick), ("b", Some(EndpointId::of("b"))));
//!
//! // Outside a scope: no hint, nothing recorded.
//! assert_eq!(balancer_call(), "a");
//! assert!(!pick_hint::is_listening());
//! ```

use std::cell::RefCell;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::marker::PhantomData;

/// Most endpoints one scope can avoid; [`call_avoiding`] keeps the first this many of its
/// list and ignores the rest.
pub const MAX_AVOIDED: usize = 8;

/// An endpoint's name in a pick hint: a number the balancer gives each of its endpoints,
/// stable while the endpoint is in it and distinct between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(u64);

impl EndpointId {
    /// The endpoint numbered `id`.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The endpoint whose key is `key`: a hash of it, the same for equal keys within a
    /// process (two distinct keys share one with a chance of 2⁻⁶⁴).
    pub fn of<K: Hash + ?Sized>(key: &K) -> Self {
        // `DefaultHasher::new()` uses fixed keys: the same key hashes the same in every scope.
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        Self(hasher.finish())
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// The hint of the innermost open scope.
#[derive(Debug, Clone, Copy)]
struct Hint {
    avoid: [EndpointId; MAX_AVOIDED],
    len: usize,
    picked: Option<EndpointId>,
}

thread_local! {
    /// `None` outside any scope.
    static CURRENT: RefCell<Option<Hint>> = const { RefCell::new(None) };
}

/// Calls `call` with `avoid` as the endpoints a balancer below should not pick (the first
/// [`MAX_AVOIDED`] of them), and returns its result with the endpoint the balancer recorded
/// ([`record_pick`]) during it, if any.
///
/// Scopes nest, as hedge layers do (one hedging a request that another inside it hedges
/// again): an inner scope avoids its own list and then the outer scope's (up to
/// [`MAX_AVOIDED`] in all, its own first), since the outer caller's copies are still under way
/// too; the endpoint recorded in it is the outer scope's pick as well; and the outer scope's
/// own list is back when it ends, also when `call` unwinds.
#[inline]
pub fn call_avoiding<R>(avoid: &[EndpointId], call: impl FnOnce() -> R) -> (R, Option<EndpointId>) {
    let mut hint = Hint {
        avoid: [EndpointId(0); MAX_AVOIDED],
        len: 0,
        picked: None,
    };
    for endpoint in avoid.iter().take(MAX_AVOIDED) {
        hint.push(*endpoint);
    }
    let outer = CURRENT.with(|current| current.replace(Some(hint)));
    if let Some(outer) = &outer {
        // Nested: the outer scope's endpoints too, after this one's.
        hint.merge(outer);
        CURRENT.with(|current| *current.borrow_mut() = Some(hint));
    }
    let scope = Scope {
        outer,
        _not_send: PhantomData,
    };
    let result = call();
    (result, scope.close())
}

impl Hint {
    /// The endpoints this scope avoids.
    fn avoided(&self) -> &[EndpointId] {
        self.avoid.get(..self.len).unwrap_or_default()
    }

    /// Adds `outer`'s endpoints that are not in the list yet, while there is room.
    fn merge(&mut self, outer: &Self) {
        for endpoint in outer.avoided() {
            if self.len == MAX_AVOIDED {
                break;
            }
            if !self.avoided().contains(endpoint) {
                self.push(*endpoint);
            }
        }
    }

    /// Adds `endpoint` to the list, if there is room.
    fn push(&mut self, endpoint: EndpointId) {
        if let Some(slot) = self.avoid.get_mut(self.len) {
            *slot = endpoint;
            self.len += 1;
        }
    }
}

/// Restores the outer scope's hint when dropped (also on unwind).
struct Scope {
    outer: Option<Hint>,
    _not_send: PhantomData<*const ()>,
}

impl Scope {
    /// Ends the scope: the endpoint recorded in it, recorded in the outer scope as well.
    #[inline]
    fn close(mut self) -> Option<EndpointId> {
        let picked = CURRENT.with(|current| current.borrow().and_then(|hint| hint.picked));
        if let (Some(outer), Some(picked)) = (self.outer.as_mut(), picked) {
            outer.picked = Some(picked);
        }
        drop(self);
        picked
    }
}

impl Drop for Scope {
    /// Restores the outer scope's hint (its pick updated if the scope closed normally).
    #[inline]
    fn drop(&mut self) {
        let outer = self.outer.take();
        CURRENT.with(|current| *current.borrow_mut() = outer);
    }
}

/// Whether the current scope asks balancers not to pick `endpoint` (its own list or an outer
/// scope's): false outside any scope.
#[inline]
pub fn is_avoided(endpoint: EndpointId) -> bool {
    CURRENT.with(|current| {
        current
            .borrow()
            .is_some_and(|hint| hint.avoided().contains(&endpoint))
    })
}

/// Whether a scope is open: a caller wants the pick recorded (and may avoid endpoints).
#[inline]
pub fn is_listening() -> bool {
    CURRENT.with(|current| current.borrow().is_some())
}

/// Records the endpoint a balancer picked, for the caller that opened the current scope;
/// nothing outside any scope.
#[inline]
pub fn record_pick(endpoint: EndpointId) {
    CURRENT.with(|current| {
        if let Some(hint) = current.borrow_mut().as_mut() {
            hint.picked = Some(endpoint);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_scope_nothing_is_avoided_or_recorded() {
        assert!(!is_listening());
        assert!(!is_avoided(EndpointId::new(1)));
        record_pick(EndpointId::new(1));
        let ((), picked) = call_avoiding(&[], || ());
        assert_eq!(
            picked, None,
            "a pick made outside is not carried into a scope"
        );
    }

    #[test]
    fn a_scope_avoids_its_list_and_returns_the_last_pick() {
        let avoid = [EndpointId::new(3), EndpointId::new(5)];
        let (seen, picked) = call_avoiding(&avoid, || {
            let seen = [3, 4, 5].map(|id| is_avoided(EndpointId::new(id)));
            record_pick(EndpointId::new(4));
            record_pick(EndpointId::new(6));
            (is_listening(), seen)
        });
        assert_eq!(seen, (true, [true, false, true]));
        assert_eq!(picked, Some(EndpointId::new(6)));
        assert!(!is_listening(), "closed after the call");
    }

    #[test]
    fn scopes_nest_and_the_outer_hint_comes_back() {
        let outer = [EndpointId::new(1)];
        let ((inner_pick, avoided_inside), outer_pick) = call_avoiding(&outer, || {
            let ((), inner) = call_avoiding(&[EndpointId::new(2)], || {
                record_pick(EndpointId::new(7));
            });
            let avoided = (
                is_avoided(EndpointId::new(1)),
                is_avoided(EndpointId::new(2)),
            );
            record_pick(EndpointId::new(8));
            (inner, avoided)
        });
        assert_eq!(inner_pick, Some(EndpointId::new(7)));
        assert_eq!(avoided_inside, (true, false), "the outer list is back");
        assert_eq!(
            outer_pick,
            Some(EndpointId::new(8)),
            "the outer scope's own later pick wins"
        );
    }

    #[test]
    fn an_inner_scope_avoids_the_outer_list_too_and_reports_its_pick_outward() {
        let outer = [EndpointId::new(1), EndpointId::new(2)];
        let ((inner_avoids, inner_pick), outer_pick) = call_avoiding(&outer, || {
            // A first copy inside: an empty list of its own.
            call_avoiding(&[EndpointId::new(3)], || {
                record_pick(EndpointId::new(4));
                [1, 2, 3, 4].map(|id| is_avoided(EndpointId::new(id)))
            })
        });
        assert_eq!(
            inner_avoids,
            [true, true, true, false],
            "its own and the outer's"
        );
        assert_eq!(inner_pick, Some(EndpointId::new(4)));
        assert_eq!(outer_pick, Some(EndpointId::new(4)), "reported outward");
        assert!(!is_listening());
    }

    #[test]
    fn a_merged_list_keeps_the_inner_ones_first_without_repeats_up_to_the_limit() {
        let outer: Vec<EndpointId> = (0..MAX_AVOIDED as u64).map(EndpointId::new).collect();
        let inner = [EndpointId::new(1), EndpointId::new(100)];
        let ((avoided_outer, avoided_inner), _) = call_avoiding(&outer, || {
            call_avoiding(&inner, || {
                (
                    outer.iter().map(|&id| is_avoided(id)).collect::<Vec<_>>(),
                    inner.map(is_avoided),
                )
            })
            .0
        });
        assert_eq!(avoided_inner, [true, true], "the inner list comes first");
        // 1 (in both lists), then 0 and 2, 3, ... while there is room: all but the last.
        let kept = avoided_outer.iter().filter(|&&a| a).count();
        assert_eq!(kept, MAX_AVOIDED - 1, "1 once, and the room left");
        assert!(
            !avoided_outer[MAX_AVOIDED - 1],
            "the last outer one has no room"
        );
    }

    #[test]
    fn an_inner_scope_that_records_nothing_leaves_the_outer_pick() {
        let (inner_pick, outer_pick) = call_avoiding(&[], || {
            record_pick(EndpointId::new(5));
            call_avoiding(&[], || ()).1
        });
        assert_eq!(inner_pick, None);
        assert_eq!(outer_pick, Some(EndpointId::new(5)));
    }

    #[test]
    fn a_call_that_unwinds_closes_its_scope() {
        let unwound = std::panic::catch_unwind(|| {
            call_avoiding(&[EndpointId::new(1)], || panic!("inner service panicked"))
        });
        assert!(unwound.is_err());
        assert!(!is_listening());
        assert!(!is_avoided(EndpointId::new(1)));
    }

    #[test]
    fn at_most_max_avoided_endpoints_are_kept() {
        let avoid: Vec<EndpointId> = (0..=MAX_AVOIDED as u64).map(EndpointId::new).collect();
        let (avoided, _) = call_avoiding(&avoid, || {
            avoid.iter().map(|&id| is_avoided(id)).collect::<Vec<_>>()
        });
        assert!(avoided[..MAX_AVOIDED].iter().all(|&a| a));
        assert!(!avoided[MAX_AVOIDED], "the one past the limit is ignored");
    }

    #[test]
    fn ids_of_keys_are_stable_and_distinct() {
        assert_eq!(EndpointId::of("10.0.0.1:80"), EndpointId::of("10.0.0.1:80"));
        assert_ne!(EndpointId::of("10.0.0.1:80"), EndpointId::of("10.0.0.2:80"));
        assert_eq!(EndpointId::new(42).get(), 42);
    }
}
