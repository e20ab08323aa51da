//! [`Completion`]: the guard a response future keeps to record its call's end exactly once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::{Classify, Outcome};

/// Where a [`Completion`] records its call's end: a layer's shared state (a breaker, an
/// endpoint's statistics), together with what the call needs to say who it was.
pub trait Recorder {
    /// The call ended with `outcome`: the response's classification when it completed, or
    /// [`Outcome::Failure`] when the inner service panicked.
    fn record(&mut self, outcome: Outcome);

    /// The response future was dropped before the call ended: a cancellation (a client giving
    /// up), which the layer counts as it chooses.
    fn record_cancel(&mut self);
}

/// Records a call's end exactly once: the classified outcome when the response completes, a
/// failure when the inner service panics (in its `call` or in a poll of its future, as the panic
/// leaves it, whether or not a caller further up catches it), a cancellation when the response
/// future is dropped before either.
///
/// A response future creates it before calling the inner service (armed: dropped now, it
/// records a failure, for a panic in `call`), tells it [`called`](Self::called) when `call`
/// returns, and polls the inner future through [`poll_inner`](Self::poll_inner).
///
/// A panic is told apart from a cancellation by where it happens, never by
/// `std::thread::panicking()`, which is false when a caller catches the panic around `call` or
/// around polling and drops the future later, and true when the caller panics for reasons of
/// its own while the call is in flight.
///
/// ```
/// use std::future::ready;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
/// use rampart_core::{Completion, DefaultClassifier, Outcome, Recorder};
///
/// #[derive(Default)]
/// struct Ends(Vec<Option<Outcome>>);
///
/// impl Recorder for &mut Ends {
///     fn record(&mut self, outcome: Outcome) {
///         self.0.push(Some(outcome));
///     }
///     fn record_cancel(&mut self) {
///         self.0.push(None);
///     }
/// }
///
/// let mut cx = Context::from_waker(Waker::noop());
/// let mut ends = Ends::default();
///
/// // A call that completes with an error: recorded once, as a failure.
/// let mut completion = Completion::new(&mut ends, DefaultClassifier);
/// let response = pin!(ready(Err::<u32, &str>("reset"))); // what `call` returned
/// completion.called();
/// assert_eq!(completion.poll_inner(response, &mut cx), Poll::Ready(Err("reset")));
/// drop(completion);
/// assert_eq!(ends.0, [Some(Outcome::Failure)]);
///
/// // A response future dropped before its call ended: a cancellation.
/// let mut completion = Completion::new(&mut ends, DefaultClassifier);
/// completion.called();
/// drop(completion);
/// assert_eq!(ends.0, [Some(Outcome::Failure), None]);
/// ```
#[derive(Debug)]
pub struct Completion<R, L> {
    /// Taken when the recorder is handed over to a [`Deferred`](crate::Deferred) outcome.
    recorder: Option<R>,
    classifier: L,
    /// Set once the end is recorded.
    recorded: bool,
    /// Set from construction until the inner service's `call` returns: a guard dropped while
    /// it is set is unwinding from a panic in `call`.
    calling: bool,
    /// [`record_unended`] for this recorder type, captured where the bound is known, for
    /// `Drop`.
    on_drop: fn(&mut R, bool),
}

impl<R: Recorder, L> Completion<R, L> {
    /// A guard for a call about to be made, recording into `recorder` the outcome `classifier`
    /// gives: armed, so that a panic in the inner service's `call` counts as a failure.
    pub fn new(recorder: R, classifier: L) -> Self {
        Self {
            recorder: Some(recorder),
            classifier,
            recorded: false,
            calling: true,
            on_drop: record_unended::<R>,
        }
    }

    /// Polls the inner service's future; records the classified outcome when it completes,
    /// and a failure as the panic leaves if the poll panics.
    #[inline]
    pub fn poll_inner<F, T, E>(
        &mut self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        L: Classify<T, E>,
    {
        let poll = self.poll_watched(future, cx);
        if let Poll::Ready(result) = &poll {
            let outcome = self.classifier.classify(result.as_ref());
            self.record(outcome);
        }
        poll
    }

    /// Polls the inner service's future as [`poll_inner`](Self::poll_inner) does, except that
    /// when the response arrives and the classifier [defers](Classify::defer) its outcome, the
    /// recorder is handed over to that [`Deferred`](crate::Deferred) outcome, which records it
    /// exactly once when the response's body ends, fails or is dropped; nothing is recorded at
    /// the headers then. An `Err`, or a response the classifier does not defer, is recorded
    /// now, as `poll_inner` records it.
    #[inline]
    pub fn poll_inner_or_defer<F, T, E>(
        &mut self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        L: Classify<T, E>,
        R: Send + 'static,
    {
        let poll = self.poll_watched(future, cx);
        if let Poll::Ready(result) = &poll {
            let later = match result {
                Ok(response) => self.classifier.defer(response),
                Err(_) => None,
            };
            if let Some(deferred) = later {
                if !self.recorded {
                    self.recorded = true;
                    if let Some(recorder) = self.recorder.take() {
                        deferred.attach(recorder);
                    }
                }
            } else {
                let outcome = self.classifier.classify(result.as_ref());
                self.record(outcome);
            }
        }
        poll
    }

    /// Polls `future`, recording a failure as the panic leaves if the poll panics.
    #[inline]
    fn poll_watched<F: Future>(
        &mut self,
        future: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<F::Output> {
        let watch = PanicWatch(self);
        let poll = future.poll(cx);
        std::mem::forget(watch);
        poll
    }

    fn record(&mut self, outcome: Outcome) {
        if !self.recorded {
            self.recorded = true;
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.record(outcome);
            }
        }
    }
}

impl<R, L> Completion<R, L> {
    /// The inner service's `call` returned: from now on a drop before the end is a
    /// cancellation.
    pub fn called(&mut self) {
        self.calling = false;
    }
}

impl<R, L> Drop for Completion<R, L> {
    fn drop(&mut self) {
        if !self.recorded
            && let Some(recorder) = self.recorder.as_mut()
        {
            (self.on_drop)(recorder, self.calling);
        }
    }
}

/// A guard dropped before its call ended: dropped while calling, it unwinds from a panic in
/// `call` (a failure); after, the response future was dropped (a cancellation).
fn record_unended<R: Recorder>(recorder: &mut R, calling: bool) {
    if calling {
        recorder.record(Outcome::Failure);
    } else {
        recorder.record_cancel();
    }
}

/// Lives on the stack across one poll of the inner future and is forgotten when the poll
/// returns: it is dropped only by the unwinding of a panic in that poll, which it records as
/// the call's failure, whether or not a caller further up catches the panic.
struct PanicWatch<'a, R: Recorder, L>(&'a mut Completion<R, L>);

impl<R: Recorder, L> Drop for PanicWatch<'_, R, L> {
    fn drop(&mut self) {
        self.0.record(Outcome::Failure);
    }
}

#[cfg(test)]
mod tests {
    use std::future::{pending, ready};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::pin::pin;
    use std::task::Waker;

    use super::*;
    use crate::DefaultClassifier;

    /// Ends recorded: `Some(outcome)`, or `None` for a cancellation.
    #[derive(Debug, Default)]
    struct Ends(Vec<Option<Outcome>>);

    impl Recorder for &mut Ends {
        fn record(&mut self, outcome: Outcome) {
            self.0.push(Some(outcome));
        }

        fn record_cancel(&mut self) {
            self.0.push(None);
        }
    }

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn a_completed_call_records_its_classified_outcome_once() {
        let mut ends = Ends::default();
        let mut completion = Completion::new(&mut ends, DefaultClassifier);
        completion.called();
        let mut response = pin!(ready(Ok::<u32, &str>(7)));
        assert_eq!(
            completion.poll_inner(response.as_mut(), &mut cx()),
            Poll::Ready(Ok(7))
        );
        drop(completion);
        assert_eq!(ends.0, [Some(Outcome::Success)]);
    }

    #[test]
    fn a_pending_call_records_nothing_until_dropped_then_a_cancellation() {
        let mut ends = Ends::default();
        let mut completion = Completion::new(&mut ends, DefaultClassifier);
        completion.called();
        let response = pin!(pending::<Result<u32, &str>>());
        assert_eq!(completion.poll_inner(response, &mut cx()), Poll::Pending);
        drop(completion);
        assert_eq!(ends.0, [None]);
    }

    #[test]
    fn a_guard_dropped_while_calling_records_a_failure() {
        let mut ends = Ends::default();
        let completion = Completion::new(&mut ends, DefaultClassifier);
        drop(completion);
        assert_eq!(ends.0, [Some(Outcome::Failure)]);
    }

    #[test]
    fn a_panicking_poll_records_a_failure_once_though_the_panic_is_caught() {
        let mut ends = Ends::default();
        let mut completion = Completion::new(&mut ends, DefaultClassifier);
        completion.called();
        let response = pin!(std::future::poll_fn(|_| -> Poll<Result<u32, &str>> {
            panic!("inner service")
        }));
        let caught = catch_unwind(AssertUnwindSafe(|| {
            completion.poll_inner(response, &mut cx())
        }));
        assert!(caught.is_err());
        drop(completion);
        assert_eq!(ends.0, [Some(Outcome::Failure)]);
    }
}
