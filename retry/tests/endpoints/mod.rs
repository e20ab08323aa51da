//! A stand-in for a balancer that honours pick hints, for the hedge tests.

use std::task::{Context, Poll};

use rampart_core::pick_hint::{self, EndpointId};
use tower::Service;

/// `N` endpoints preferred in order: each call goes to the first endpoint the current pick
/// hints do not avoid (the first when they avoid all), and records that pick.
#[derive(Clone)]
pub(crate) struct InOrder<B, const N: usize> {
    pub(crate) endpoints: [B; N],
}

impl<B: Service<u32>, const N: usize> Service<u32> for InOrder<B, N> {
    type Response = B::Response;
    type Error = B::Error;
    type Future = B::Future;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), B::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> B::Future {
        let id = |index: usize| EndpointId::new(u64::try_from(index).expect("few endpoints"));
        let pick = (0..N)
            .find(|&index| !pick_hint::is_avoided(id(index)))
            .unwrap_or(0);
        pick_hint::record_pick(id(pick));
        self.endpoints[pick].call(request)
    }
}
