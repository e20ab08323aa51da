//! `FaultLayer`'s injected panics, in a test binary of their own: the silent panic hook set
//! here would hide other tests' panic messages.

use std::time::Duration;

use rampart_fault::{FaultConfig, FaultLayer};
use tower::{Layer, ServiceExt, service_fn};

#[tokio::test(start_paused = true)]
async fn panics_are_injected_at_their_rate_when_the_response_is_polled() {
    std::panic::set_hook(Box::new(|_| {}));
    let config = FaultConfig::default()
        .with_delay(Duration::from_millis(1))
        .with_panic_rate(0.05)
        .with_seed(4);
    let (layer, handle) = FaultLayer::pair(config).expect("valid");
    let service = layer.layer(service_fn(
        |n: u32| async move { Ok::<_, std::io::Error>(n) },
    ));

    let mut panicked = 0_u64;
    for n in 0..2_000 {
        let call = service.clone().oneshot(n);
        match tokio::spawn(call).await {
            Ok(result) => assert_eq!(result.expect("no error injected"), n),
            Err(join_error) => {
                assert!(join_error.is_panic(), "{join_error}");
                panicked += 1;
            }
        }
    }
    let _ = std::panic::take_hook();
    assert!((70..=130).contains(&panicked), "{panicked} panicked");
    assert_eq!(handle.stats().panics, panicked);
    assert_eq!(handle.stats().requests, 2_000);
}
