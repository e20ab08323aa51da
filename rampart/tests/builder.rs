//! `ServiceBuilderExt`: each method adds its layer, honours the classifier or policy it is
//! given, and hands back the configuration error instead of a builder.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rampart::breaker::BreakerConfig;
use rampart::ratelimit::BbrConfig;
use rampart::retry::{HedgeConfig, Policy, RatioConfig, RetryConfig};
use rampart::{Outcome, Rejected, ServiceBuilderExt};
use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};

/// Answers every request with status 503: a successful call carrying a refusal.
async fn unavailable((): ()) -> Result<u16, BoxError> {
    Ok(503)
}

/// A 5xx answer is a failure, any other answer a success; errors are failures.
#[allow(clippy::trivially_copy_pass_by_ref)] // A classifier's signature.
fn by_status(result: Result<&u16, &BoxError>) -> Outcome {
    match result {
        Ok(status) if *status >= 500 => Outcome::Failure,
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::Failure,
    }
}

/// How many of `requests` calls through `service` the breaker rejected.
async fn rejections<S>(service: S, requests: usize) -> usize
where
    S: tower::Service<(), Response = u16, Error = BoxError> + Clone,
{
    let mut rejected = 0;
    for _ in 0..requests {
        if let Err(error) = service.clone().oneshot(()).await {
            assert!(error.is::<Rejected>(), "unexpected error: {error}");
            rejected += 1;
        }
    }
    rejected
}

#[tokio::test]
async fn sre_breaker_with_judges_answers_by_its_classifier() {
    let config = || BreakerConfig::default().with_seed(3);
    // By default an answer is a success, so 503s never trip the breaker ...
    let blind = ServiceBuilder::new()
        .sre_breaker(config())
        .expect("valid")
        .service_fn(unavailable);
    assert_eq!(rejections(blind, 500).await, 0);
    // ... judged by status, the backend refuses everything and the breaker throttles.
    let judging = ServiceBuilder::new()
        .sre_breaker_with(config(), by_status)
        .expect("valid")
        .service_fn(unavailable);
    assert!(rejections(judging, 500).await > 250);
}

#[tokio::test(start_paused = true)]
async fn budgeted_retry_with_retries_what_its_policy_calls_a_failure() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = {
        let calls = Arc::clone(&calls);
        service_fn(move |(): ()| {
            calls.fetch_add(1, Ordering::Relaxed);
            unavailable(())
        })
    };
    let retrying = ServiceBuilder::new()
        .budgeted_retry_with(
            RetryConfig::default().with_max_attempts(2).with_seed(1),
            RatioConfig::default().build().expect("valid"),
            Policy::new().with_classifier(by_status),
        )
        .expect("valid")
        .service(counted.clone());
    assert_eq!(retrying.oneshot(()).await.expect("an answer"), 503);
    assert_eq!(
        calls.swap(0, Ordering::Relaxed),
        2,
        "the 503 was retried once"
    );

    // The default policy retries only errors: the 503 is an answer.
    let plain = ServiceBuilder::new()
        .budgeted_retry(
            RetryConfig::default().with_max_attempts(2).with_seed(1),
            RatioConfig::default().build().expect("valid"),
        )
        .expect("valid")
        .service(counted);
    assert_eq!(plain.oneshot(()).await.expect("an answer"), 503);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn each_method_returns_the_configuration_error_naming_the_field() {
    let breaker = ServiceBuilder::new()
        .sre_breaker(BreakerConfig::default().with_k(0.5))
        .map(|_| ())
        .expect_err("k below 1 is invalid");
    assert_eq!(breaker.field(), "k");

    let with_classifier = ServiceBuilder::new()
        .sre_breaker_with(BreakerConfig::default().with_k(f64::NAN), by_status)
        .map(|_| ())
        .expect_err("a NaN k is invalid");
    assert_eq!(with_classifier.field(), "k");

    let limiter = ServiceBuilder::new()
        .bbr_limit(BbrConfig::default().with_cpu_threshold(1.5))
        .map(|_| ())
        .expect_err("a CPU threshold above 1 is invalid");
    assert_eq!(limiter.field(), "cpu_threshold");

    let retry = ServiceBuilder::new()
        .budgeted_retry(
            RetryConfig::default().with_max_attempts(0),
            RatioConfig::default().build().expect("valid"),
        )
        .map(|_| ())
        .expect_err("zero attempts is invalid");
    assert_eq!(retry.field(), "max_attempts");

    let hedge = ServiceBuilder::new()
        .budgeted_hedge(
            HedgeConfig::default().with_quantile(1.0),
            RatioConfig::default().build().expect("valid"),
        )
        .map(|_| ())
        .expect_err("the maximum as the quantile is invalid");
    assert_eq!(hedge.field(), "quantile");
}
