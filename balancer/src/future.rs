//! [`ResponseFuture`]: the response of a request sent to an endpoint, whose end it records
//! once on the endpoint's statistics, or the immediate error when no endpoint was ready.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project::pin_project;
use rampart_core::{
    Classify, Clock, Completion, DefaultClassifier, Outcome, Recorder, SystemClock,
};
use tower::BoxError;

use crate::NoEndpoints;
use crate::endpoint::{EndpointStats, Ticket};
use crate::shared::Lane;

/// Records a request's end on its endpoint, through a [`Completion`]: its outcome and latency
/// when the response completes, a failure when the endpoint panics (as the panic leaves it),
/// nothing but the in-flight count when the response future is dropped before either (a
/// cancellation).
#[derive(Debug)]
pub(crate) struct Sent<C> {
    stats: Stats,
    ticket: Ticket,
    clock: C,
}

/// Whose statistics a request ends on: a [`P2c`](crate::P2c) endpoint's, or the lane of a
/// [`SharedP2c`](crate::SharedP2c) endpoint that the request was picked on, which holds them
/// (one reference per request either way).
#[derive(Debug)]
pub(crate) enum Stats {
    Owned(Arc<EndpointStats>),
    Shared(Arc<Lane>),
}

impl Stats {
    #[inline]
    fn get(&self) -> &EndpointStats {
        match self {
            Self::Owned(stats) => stats,
            Self::Shared(lane) => &lane.stats,
        }
    }
}

impl<C> Sent<C> {
    /// The request holding `ticket`, sent to the endpoint of `stats`, its end read on `clock`.
    pub(crate) fn new(stats: Stats, ticket: Ticket, clock: C) -> Self {
        Self {
            stats,
            ticket,
            clock,
        }
    }
}

impl<C: Clock> Recorder for Sent<C> {
    fn record(&mut self, outcome: Outcome) {
        let finish = self.ticket.arrival.finish(&self.clock);
        self.stats.get().end(&self.ticket, Some((outcome, finish)));
    }

    fn record_cancel(&mut self) {
        // A cancellation reads no clock: only the in-flight count changes.
        self.stats.get().end(&self.ticket, None);
    }
}

/// The response future of [`P2c`](crate::P2c).
///
/// # Outcomes at the end of the body
///
/// When the classifier [defers](rampart_core::Classify::defer) a response's outcome (a gRPC
/// answer whose status comes in its trailers, with `GrpcClassifier` and `GrpcBody`), the
/// request stays in flight on its endpoint until the body ends, fails or is dropped, and its
/// outcome and latency are recorded then (a body dropped before its end is a cancellation).
///
/// # Cancellation
///
/// Dropping it before it completes drops the endpoint's future; the endpoint's in-flight count
/// goes down, and its latency and success are left alone (a client giving up says nothing about
/// the endpoint).
///
/// # Panics
///
/// A panic in the endpoint (in its `call`, or in a poll of its future) counts as a failure,
/// recorded as the panic leaves it, whether or not a caller catches the panic; the future
/// dropped afterwards records nothing more.
#[pin_project]
#[derive(Debug)]
pub struct ResponseFuture<F, C = SystemClock, L = DefaultClassifier> {
    #[pin]
    state: State<F, C, L>,
}

#[pin_project(project = StateProj)]
#[derive(Debug)]
enum State<F, C, L> {
    /// Sent to an endpoint; its outcome is recorded on completion.
    Sent {
        #[pin]
        future: F,
        completion: Completion<Sent<C>, L>,
    },
    /// No endpoint was available.
    NoEndpoint,
    /// The output has been returned.
    Done,
}

impl<F, C, L> ResponseFuture<F, C, L> {
    /// The endpoint's `call` returned `future`.
    pub(crate) fn sent(future: F, mut completion: Completion<Sent<C>, L>) -> Self {
        completion.called();
        Self {
            state: State::Sent { future, completion },
        }
    }

    pub(crate) fn no_endpoint() -> Self {
        Self {
            state: State::NoEndpoint,
        }
    }
}

impl<F, C, L, T, E> Future for ResponseFuture<F, C, L>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
    C: Clock,
    L: Classify<T, E>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let output = match state.as_mut().project() {
            StateProj::Sent { future, completion } => {
                ready!(completion.poll_inner_or_defer(future, cx)).map_err(Into::into)
            }
            StateProj::NoEndpoint => Err(NoEndpoints::new().into()),
            StateProj::Done => return Poll::Pending,
        };
        state.set(State::Done);
        Poll::Ready(output)
    }
}
