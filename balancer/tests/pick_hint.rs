//! Pick hints (`rampart_core::pick_hint`), honoured by `P2c` and `SharedP2c` alike: under a
//! scope that avoids an endpoint, the request goes to another ready one, and the endpoint it
//! went to is recorded; when every ready endpoint is avoided, the request goes where it would
//! have gone; outside a scope nothing changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use rampart_balancer::{P2c, P2cConfig, SharedP2c};
use rampart_core::pick_hint::{self, EndpointId};
use tower::{BoxError, Service};

/// An endpoint counting its calls, ready unless shut.
#[derive(Clone, Default)]
struct Counted {
    calls: Arc<AtomicUsize>,
    shut: Arc<AtomicBool>,
}

impl Service<()> for Counted {
    type Response = ();
    type Error = BoxError;
    type Future = std::future::Ready<Result<(), BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if self.shut.load(Ordering::Relaxed) {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn call(&mut self, (): ()) -> Self::Future {
        self.calls.fetch_add(1, Ordering::Relaxed);
        std::future::ready(Ok(()))
    }
}

fn id(key: usize) -> EndpointId {
    EndpointId::of(&key)
}

/// Sends one request through `balancer` within a scope avoiding `avoid`; the endpoint
/// recorded.
fn send_avoiding<B>(balancer: &mut B, avoid: &[EndpointId]) -> Option<EndpointId>
where
    B: Service<(), Error = BoxError>,
{
    let ready = balancer.poll_ready(&mut Context::from_waker(Waker::noop()));
    assert!(matches!(ready, Poll::Ready(Ok(()))), "an endpoint is ready");
    let (future, picked) = pick_hint::call_avoiding(avoid, || balancer.call(()));
    drop(future);
    picked
}

/// Runs the checks against a balancer over `endpoints` (keys 0, 1, 2), made by `make`.
fn check<B>(make: impl Fn(Vec<Counted>) -> B)
where
    B: Service<(), Error = BoxError>,
{
    let endpoints: Vec<Counted> = (0..3).map(|_| Counted::default()).collect();
    let calls = |key: usize| endpoints[key].calls.load(Ordering::Relaxed);
    let mut balancer = make(endpoints.clone());

    // Avoiding 0: every request goes to 1 or 2, and the one it went to is recorded.
    for _ in 0..100 {
        let before = (calls(1), calls(2));
        let picked = send_avoiding(&mut balancer, &[id(0)]);
        let expected = if calls(1) > before.0 { id(1) } else { id(2) };
        assert_eq!(picked, Some(expected));
    }
    assert_eq!(calls(0), 0, "the avoided endpoint got nothing");
    assert_eq!(calls(1) + calls(2), 100);

    // Avoiding 0 and 1: 2 alone.
    let before = calls(2);
    for _ in 0..20 {
        assert_eq!(send_avoiding(&mut balancer, &[id(0), id(1)]), Some(id(2)));
    }
    assert_eq!((calls(0), calls(2)), (0, before + 20));

    // Avoiding every endpoint: a preference, not a refusal.
    let sent = calls(0) + calls(1) + calls(2);
    for _ in 0..20 {
        assert!(send_avoiding(&mut balancer, &[id(0), id(1), id(2)]).is_some());
    }
    assert_eq!(calls(0) + calls(1) + calls(2), sent + 20);

    // Avoiding 0 while 2 is not ready: 1.
    endpoints[2].shut.store(true, Ordering::Relaxed);
    let before = [calls(0), calls(1), calls(2)];
    for _ in 0..20 {
        assert_eq!(send_avoiding(&mut balancer, &[id(0)]), Some(id(1)));
    }
    assert_eq!(
        [calls(0), calls(1), calls(2)],
        [before[0], before[1] + 20, before[2]]
    );
    endpoints[2].shut.store(false, Ordering::Relaxed);

    // Outside a scope: nothing avoided, nothing recorded; 0 gets its share again.
    let before = calls(0);
    for _ in 0..200 {
        assert!(matches!(
            balancer.poll_ready(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(()))
        ));
        drop(balancer.call(()));
    }
    assert!(calls(0) > before, "0 is picked again without the hint");
    let ((), picked) = pick_hint::call_avoiding(&[], || ());
    assert_eq!(picked, None);
}

#[test]
fn p2c_sends_to_an_endpoint_outside_the_hint_and_records_it() {
    check(|endpoints| {
        P2c::from_services(endpoints, P2cConfig::default().with_seed(4)).expect("valid")
    });
}

#[test]
fn the_shared_handle_sends_to_an_endpoint_outside_the_hint_and_records_it() {
    check(|endpoints| {
        SharedP2c::from_services(endpoints, P2cConfig::default().with_seed(4)).expect("valid")
    });
}
