//! [`Deferred`]: an outcome known only when a response's body ends.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Outcome, Recorder};

/// The outcome of a call whose response arrived but whose end is still to come: a gRPC answer
/// whose `grpc-status` travels in the trailers after its messages.
///
/// A response body wrapper (`GrpcBody`, feature `grpc`) holds one and ends it when its stream
/// ends, fails or is dropped; a copy travels in the response (its extensions), where a
/// classifier's [`defer`](crate::Classify::defer) finds it. A layer's [`Completion`] then hands
/// its [`Recorder`] over instead of recording at the response's headers
/// ([`Completion::poll_inner_or_defer`]); several layers (a breaker over a balancer) may each
/// hand theirs over to the same response.
///
/// Each recorder records exactly once: the outcome given to [`end`](Self::end), or a
/// cancellation given to [`cancel`](Self::cancel), whichever comes first; one attached after
/// the end records the end at once. A `Deferred` dropped (every copy of it) with recorders
/// still waiting records their cancellation, so that no call is lost.
///
/// [`Completion`]: crate::Completion
/// [`Completion::poll_inner_or_defer`]: crate::Completion::poll_inner_or_defer
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use rampart_core::{Deferred, Outcome, Recorder};
///
/// #[derive(Clone, Default)]
/// struct Ends(Arc<Mutex<Vec<Option<Outcome>>>>);
///
/// impl Recorder for Ends {
///     fn record(&mut self, outcome: Outcome) {
///         self.0.lock().unwrap().push(Some(outcome));
///     }
///     fn record_cancel(&mut self) {
///         self.0.lock().unwrap().push(None);
///     }
/// }
///
/// let ends = Ends::default();
/// let deferred = Deferred::new();
/// deferred.attach(ends.clone());
/// assert!(ends.0.lock().unwrap().is_empty()); // nothing until the body ends
/// deferred.end(Outcome::Failure); // the trailers said UNAVAILABLE
/// deferred.cancel(); // the body dropped afterwards: already ended, nothing more
/// assert_eq!(*ends.0.lock().unwrap(), [Some(Outcome::Failure)]);
/// ```
#[derive(Clone, Default)]
pub struct Deferred {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The recorders handed over, waiting for the end.
    waiting: Vec<Box<dyn Recorder + Send>>,
    /// The end, once known.
    ended: Option<End>,
}

/// How a deferred call ended.
#[derive(Debug, Clone, Copy)]
enum End {
    /// With this outcome.
    Outcome(Outcome),
    /// Dropped before its end.
    Cancelled,
}

impl Deferred {
    /// An outcome still to come, with no recorder waiting for it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands `recorder` over: it records the end when it comes, or at once if it has come.
    pub fn attach<R: Recorder + Send + 'static>(&self, recorder: R) {
        let mut recorder = recorder;
        let mut state = self.shared.state.lock();
        let Some(end) = state.ended else {
            state.waiting.push(Box::new(recorder));
            return;
        };
        drop(state);
        tell(&mut recorder, end);
    }

    /// The call ended with `outcome`; the first end wins, later ones are ignored.
    pub fn end(&self, outcome: Outcome) {
        self.finish(End::Outcome(outcome));
    }

    /// The response was dropped before its end: a cancellation, unless it had already ended.
    pub fn cancel(&self) {
        self.finish(End::Cancelled);
    }

    /// Whether the end (an outcome or a cancellation) has come.
    pub fn is_ended(&self) -> bool {
        self.shared.state.lock().ended.is_some()
    }

    fn finish(&self, end: End) {
        let waiting = {
            let mut state = self.shared.state.lock();
            if state.ended.is_some() {
                return;
            }
            state.ended = Some(end);
            std::mem::take(&mut state.waiting)
        };
        // Recorded outside the lock: a recorder never runs under it.
        for mut recorder in waiting {
            tell(&mut *recorder, end);
        }
    }
}

fn tell<R: Recorder + ?Sized>(recorder: &mut R, end: End) {
    match end {
        End::Outcome(outcome) => recorder.record(outcome),
        End::Cancelled => recorder.record_cancel(),
    }
}

impl Drop for Shared {
    /// The last copy is gone with recorders still waiting: nobody can end them any more.
    fn drop(&mut self) {
        let state = self.state.get_mut();
        if state.ended.is_none() {
            for recorder in &mut state.waiting {
                recorder.record_cancel();
            }
        }
    }
}

impl fmt::Debug for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("Deferred")
            .field("waiting", &state.waiting.len())
            .field("ended", &state.ended)
            .finish()
    }
}
