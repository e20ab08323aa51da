//! [`RuntimeServer`]: the door of a `SimRuntime`, where each request becomes a task.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;
use tower::{BoxError, Service};

use super::Unanswered;
use super::handler::Burn;
use super::shared::Shared;
use crate::MissingRuntime;
use crate::error::in_runtime;

/// A stack served by a [`SimRuntime`](crate::SimRuntime): each call is a request arriving at
/// the server, which becomes a task in the runtime's run queue. When a worker reaches it, the
/// task calls the stack (waiting for its readiness first) and delivers the stack's answer; an
/// answer given without calling the handler (a refusal) first costs the worker the runtime's
/// `refusal_cost`.
///
/// The task runs whether or not its caller still waits: dropping the response future does not
/// take the request back, as a server that already accepted it does not notice its client has
/// gone.
///
/// # Sharing
///
/// Clones share the runtime; each task calls its own clone of the stack, as a server clones
/// its service per connection.
#[derive(Debug, Clone)]
pub struct RuntimeServer<S> {
    pub(super) shared: Arc<Shared>,
    pub(super) stack: S,
}

impl<S> RuntimeServer<S> {
    /// The stack every task calls a clone of.
    pub fn get_ref(&self) -> &S {
        &self.stack
    }
}

impl<S, Req> Service<Req> for RuntimeServer<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = RuntimeFuture<S::Response>;

    /// Always ready: the runtime accepts every request, and queues it.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        if !in_runtime() {
            return RuntimeFuture {
                state: State::NoRuntime,
            };
        }
        let (respond, answer) = oneshot::channel();
        let mut stack = self.stack.clone();
        let shared = Arc::downgrade(&self.shared);
        let refusal_cost = self.shared.config.refusal_cost;
        let task = async move {
            let ready = std::future::poll_fn(|cx| stack.poll_ready(cx).map_err(Into::into));
            let result = match ready.await {
                Ok(()) => stack.call(request).await.map_err(Into::into),
                Err(err) => Err(err),
            };
            let handled = shared
                .upgrade()
                .is_some_and(|shared| shared.state.lock().handled());
            if !handled && !refusal_cost.is_zero() {
                Burn::new(shared, refusal_cost).await;
            }
            respond.send(result).is_ok()
        };
        self.shared.spawn(Box::pin(task));
        RuntimeFuture {
            state: State::Waiting(answer),
        }
    }
}

/// The response future of a [`RuntimeServer`]: resolves when the request's task delivers the
/// stack's answer.
///
/// Fails with [`MissingRuntime`] when called outside a tokio runtime, and with
/// [`Unanswered`] when the task ended without an answer (it panicked, or the runtime was
/// dropped).
///
/// # Cancellation
///
/// Dropping it abandons the request: its task still runs, and the runtime counts it as
/// [`abandoned`](crate::RuntimeStats::abandoned) if the handler ran.
#[derive(Debug)]
pub struct RuntimeFuture<T> {
    state: State<T>,
}

#[derive(Debug)]
enum State<T> {
    /// Waiting for the task's answer.
    Waiting(oneshot::Receiver<Result<T, BoxError>>),
    /// Called outside a tokio runtime.
    NoRuntime,
    /// The output has been returned.
    Done,
}

impl<T> Future for RuntimeFuture<T> {
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let state = &mut self.get_mut().state;
        let output = match state {
            State::Waiting(answer) => match std::task::ready!(Pin::new(answer).poll(cx)) {
                Ok(result) => result,
                Err(_) => Err(Unanswered::new().into()),
            },
            State::NoRuntime => Err(MissingRuntime::new().into()),
            State::Done => return Poll::Pending,
        };
        *state = State::Done;
        Poll::Ready(output)
    }
}
