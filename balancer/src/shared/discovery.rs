//! The shared balancer's discovery stream: any tower [`Discover`] behind one object-safe
//! trait, so that the handle's type does not name it, polled by whichever handle finds it due.

use std::pin::Pin;
use std::task::{Context, Poll};

use tower::BoxError;
use tower::discover::{Change, Discover};

/// A stream of endpoint changes, boxed in the shared balancer.
pub(crate) trait Changes<K, Svc>: Send {
    fn poll_change(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Change<K, Svc>, BoxError>>>;
}

impl<D> Changes<D::Key, D::Service> for D
where
    D: Discover + Send,
    D::Error: Into<BoxError>,
{
    fn poll_change(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Change<D::Key, D::Service>, BoxError>>> {
        self.poll_discover(cx)
            .map(|change| change.map(|change| change.map_err(Into::into)))
    }
}

/// The boxed stream; `None` once it has ended.
pub(crate) type Stream<K, Svc> = Option<Pin<Box<dyn Changes<K, Svc>>>>;

/// What one drain of the stream found: the changes it had ready, and the error that stopped
/// it, if one did.
pub(crate) struct Drained<K, Svc> {
    pub(crate) changes: Vec<Change<K, Svc>>,
    pub(crate) error: Option<BoxError>,
}

/// Takes every change `stream` has ready (registering `cx`'s waker when it has no more), and
/// drops the stream when it ends.
pub(crate) fn drain<K, Svc>(stream: &mut Stream<K, Svc>, cx: &mut Context<'_>) -> Drained<K, Svc> {
    let mut drained = Drained {
        changes: Vec::new(),
        error: None,
    };
    while let Some(changes) = stream.as_mut() {
        match changes.as_mut().poll_change(cx) {
            Poll::Pending => break,
            Poll::Ready(None) => *stream = None,
            Poll::Ready(Some(Ok(change))) => drained.changes.push(change),
            Poll::Ready(Some(Err(error))) => {
                drained.error = Some(error);
                break;
            }
        }
    }
    drained
}
