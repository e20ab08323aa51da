//! rampart-balancer: `P2cConfig` (with `WhenEmpty`), built into a `P2c` over a few
//! endpoints (or none) and used on a paused runtime, and `P2c::set_weight`.

use std::time::Duration;

use rampart::balancer::{NoEndpoints, P2c, P2cConfig, PeakSuccess, WhenEmpty};
use rampart::core::ManualClock;
use tokio::runtime::Runtime;
use tower::discover::ServiceList;
use tower::{BoxError, Service, ServiceExt, service_fn};

use super::harness::{Builder, Used, ensure, paused_runtime};
use super::hostile::Draw;

/// Requests sent through each balancer.
const REQUESTS: u32 = 6;
/// How long an empty balancer is given to fail fast: longer than any ordinary `after`.
const HORIZON: Duration = Duration::from_secs(2 * 3_600);

/// Clock steps between requests: none, a millisecond, a `tau` or two, years.
const JUMPS: &[Duration] = &[
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_secs(1),
    Duration::from_secs(365 * 24 * 3_600),
    Duration::MAX,
];

/// A configuration, a weight for one endpoint, the number of endpoints (zero: none), and a
/// seed for the requests.
pub type Case = (P2cConfig, f64, usize, u64);

/// An endpoint that answers `n`, or fails every request if `failing`.
fn endpoint(
    failing: bool,
) -> impl Service<u32, Response = u32, Error = BoxError, Future: Send> + Send + Clone {
    service_fn(move |n: u32| async move {
        if failing {
            Err::<u32, BoxError>("failing endpoint".into())
        } else {
            Ok(n)
        }
    })
}

fn draw_case(draw: &mut Draw) -> Case {
    let when_empty = match draw.rng().u32(..3) {
        0 => WhenEmpty::Wait,
        1 => WhenEmpty::FailFast { after: None },
        _ => WhenEmpty::FailFast {
            after: Some(draw.duration("when_empty", Duration::ZERO..=Duration::from_secs(2))),
        },
    };
    let mut config = P2cConfig::default()
        .with_when_empty(when_empty)
        .with_seed(draw.rng().u64(..));
    config.tau = draw.duration("tau", Duration::from_millis(1)..=Duration::from_secs(10));
    config.force_pick_after = draw.duration(
        "force_pick_after",
        Duration::from_millis(10)..=Duration::from_secs(10),
    );
    config.name = draw.name("name");
    let endpoints = draw.pick(&[0, 2, 3, 5]);
    (
        config,
        draw.f64("weight", 0.1..=10.0),
        endpoints,
        draw.rng().u64(..),
    )
}

fn case_bad((config, weight, _, _): &Case) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if config.tau.is_zero() {
        bad.push("tau");
    }
    if config.force_pick_after.is_zero() {
        bad.push("force_pick_after");
    }
    if config.name.is_empty() {
        bad.push("name");
    }
    // Documented as "above zero"; the check (and its message) says from `f64::MIN_POSITIVE`,
    // so subnormal weights are refused too.
    if !(weight.is_finite() && *weight >= f64::MIN_POSITIVE) {
        bad.push("weight");
    }
    bad
}

/// Requests over the endpoints (one failing), the clock stepping between them: every request
/// is answered by the endpoint picked, and the snapshot's figures stay sane. With no endpoint,
/// the balancer waits or fails fast, as `when_empty` says.
fn use_balancer(runtime: &Runtime, case: &Case) -> Result<Used, rampart::ConfigError> {
    let (config, weight, endpoints, seed) = case;
    let clock = ManualClock::new();
    let services = (0..*endpoints)
        .map(|at| endpoint(at == 0))
        .collect::<Vec<_>>();
    let mut balancer = P2c::new_with(
        ServiceList::new::<u32>(services),
        config.clone(),
        clock.clone(),
        PeakSuccess,
    )?;
    let mut rng = fastrand::Rng::with_seed(*seed);
    let used = runtime.block_on(async {
        if *endpoints == 0 {
            return empty(&mut balancer, config.when_empty).await;
        }
        for n in 0..REQUESTS {
            let answer = balancer
                .ready()
                .await
                .map_err(|e| e.to_string())?
                .call(n)
                .await;
            ensure!(
                answer.as_ref().map_or(true, |&m| m == n),
                "request {n} answered {answer:?}"
            );
            clock.advance(JUMPS[rng.usize(..JUMPS.len())]);
        }
        Ok(())
    });
    let known = balancer.set_weight(&1, *weight)?;
    Ok(used.and_then(|()| {
        ensure!(known == (*endpoints > 0), "endpoint 1 known: {known}");
        let snapshot = balancer.snapshot();
        let picks: u64 = snapshot.iter().map(|e| e.picks).sum();
        ensure!(
            picks == u64::from(REQUESTS) || *endpoints == 0,
            "{picks} picks for {REQUESTS} requests"
        );
        for e in &snapshot {
            ensure!(
                (0.0..=1.0).contains(&e.success) && e.inflight == 0,
                "endpoint {e:?}"
            );
            ensure!(e.score >= 0.0, "score {}", e.score);
        }
        Ok(())
    }))
}

/// An empty balancer waits (for `Wait`, or an `after` beyond the horizon) or fails the request
/// with `NoEndpoints`.
async fn empty<D>(balancer: &mut P2c<D, u32, ManualClock>, when_empty: WhenEmpty) -> Used
where
    D: tower::discover::Discover<Key = usize>,
    D::Service: Service<u32, Response = u32, Error = BoxError>,
    D::Error: Into<BoxError>,
{
    let fails = match when_empty {
        WhenEmpty::Wait => false,
        WhenEmpty::FailFast { after } => after.is_none_or(|after| after < HORIZON),
    };
    match tokio::time::timeout(HORIZON, balancer.ready()).await {
        Err(_) => ensure!(!fails, "waited, with {when_empty:?}"),
        Ok(ready) => {
            let error = ready.map_err(|e| e.to_string())?.call(0).await.err();
            ensure!(
                fails && error.is_some_and(|e| e.is::<NoEndpoints>()),
                "an empty balancer ({when_empty:?}) answered"
            );
        }
    }
    Ok(())
}

/// `P2cConfig` (and `set_weight`), built into a balancer with a manual clock and used.
pub const CONFIG: Builder<Runtime, Case> = Builder {
    name: "P2cConfig",
    context: paused_runtime,
    draw: draw_case,
    bad_fields: case_bad,
    build_and_use: use_balancer,
    costly_shape: |_| None,
    validate: |_| Ok(()),
};
