//! The stacks the live mode puts in front of the handler, one line each in [`STACKS`], and the
//! axum application each makes: `GET /work` behind the stack, `GET /stats` beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rampart_core::ConfigError;
use rampart_ratelimit::{BbrConfig, Gate, RateLimitLayer};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{BoxError, ServiceBuilder};

use super::stats::{LimiterStats, Stats};
use super::work::Work;
use crate::sim::is_refusal;

/// What guards the handler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Guard {
    /// Nothing.
    None,
    /// tower's `LoadShed` over a `GlobalConcurrencyLimit` of this many requests: one semaphore
    /// for every connection (a `ConcurrencyLimit` route layer would get one per connection).
    TowerGlobal(usize),
    /// rampart's BBR limiter, one for the whole server: `BbrConfig::default()`, with this gate
    /// when there is one.
    Rampart(Option<Gate>),
}

/// A named stack.
#[derive(Debug, Clone, Copy)]
pub struct Stack {
    /// Its name on the command line and in the report.
    pub name: &'static str,
    /// What it puts in front of the handler.
    pub guard: Guard,
    /// What it is, in a few words.
    pub what: &'static str,
}

/// Every stack, in the order the live mode runs them.
#[rustfmt::skip]
pub const STACKS: &[Stack] = &[
    stack("none", Guard::None, "the handler alone"),
    stack("tower-2", Guard::TowerGlobal(2), "tower GlobalConcurrencyLimit(2) + LoadShed"),
    stack("tower-16", Guard::TowerGlobal(16), "tower GlobalConcurrencyLimit(16) + LoadShed"),
    stack("rampart", Guard::Rampart(None), "rampart BBR, BbrConfig::default()"),
    stack("rampart-cpu", Guard::Rampart(Some(Gate::Cpu)), "rampart BBR, Gate::Cpu"),
    stack("rampart-latency", Guard::Rampart(Some(Gate::LATENCY)), "rampart BBR, Gate::LATENCY"),
    stack("rampart-either", Guard::Rampart(Some(Gate::EITHER)), "rampart BBR, Gate::EITHER"),
];

const fn stack(name: &'static str, guard: Guard, what: &'static str) -> Stack {
    Stack { name, guard, what }
}

/// The stack named `name`.
pub fn find(name: &str) -> Option<Stack> {
    STACKS.iter().copied().find(|stack| stack.name == name)
}

/// The stacks named in `names`, in that order.
///
/// # Errors
///
/// The first name that is not a stack's, with the names there are.
pub fn chosen(names: &[String]) -> Result<Vec<Stack>, String> {
    names
        .iter()
        .map(|name| {
            find(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = STACKS.iter().map(|stack| stack.name).collect();
                format!("no stack named {name:?}; the stacks: {}", known.join(", "))
            })
        })
        .collect()
}

/// The application of `guard` over `work`: `GET /work` runs the work behind the guard (a
/// refusal answers 503), `GET /stats` answers [`Stats`] as JSON, unguarded.
///
/// # Errors
///
/// If rampart's limiter cannot be built (no readable CPU usage for a CPU gate).
pub fn app(guard: Guard, work: Work) -> Result<Router, ConfigError> {
    let handled = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&handled);
    let work_route = get(move || {
        let counted = Arc::clone(&counted);
        async move {
            work.run().await;
            counted.fetch_add(1, Ordering::Relaxed);
            "done"
        }
    });
    let refusals = HandleErrorLayer::new(refusal_status);
    let (router, limiter) = match guard {
        Guard::None => (Router::new().route("/work", work_route), None),
        Guard::TowerGlobal(limit) => {
            let stack = ServiceBuilder::new()
                .layer(refusals)
                .layer(LoadShedLayer::new())
                .layer(GlobalConcurrencyLimitLayer::new(limit));
            (
                Router::new().route("/work", work_route).route_layer(stack),
                None,
            )
        }
        Guard::Rampart(gate) => {
            let config = match gate {
                None => BbrConfig::default(),
                Some(gate) => BbrConfig::default().with_gate(gate),
            };
            let limiter = Arc::new(config.with_name("live").build()?);
            let stack = ServiceBuilder::new()
                .layer(refusals)
                .layer(RateLimitLayer::from_limiter(Arc::clone(&limiter)));
            (
                Router::new().route("/work", work_route).route_layer(stack),
                Some(limiter),
            )
        }
    };
    // Added after the route layer, so the limiter never sees it.
    Ok(router.route(
        "/stats",
        get(move || {
            let stats = Stats {
                handled: handled.load(Ordering::Relaxed),
                limiter: limiter.as_deref().map(LimiterStats::of),
            };
            let body = serde_json::to_string(&stats).unwrap_or_default();
            std::future::ready(([(header::CONTENT_TYPE, "application/json")], body))
        }),
    ))
}

/// A refusal of the stack (rampart's or tower's) is a 503; anything else a 500.
async fn refusal_status(error: BoxError) -> impl IntoResponse {
    let status = if is_refusal(&error) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    (status, error.to_string())
}
