//! The stacks the live mode puts in front of the handler, one line each in [`STACKS`], and the
//! axum application each makes: `GET /work` behind the stack (and, outermost, the layer that
//! records the [`signals`](super::signals) each request finds as it reaches the stack),
//! `GET /stats` beside it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use rampart_core::ConfigError;
use rampart_ratelimit::{BbrConfig, BbrLimitLayer, Gate};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::util::MapRequestLayer;
use tower::{BoxError, ServiceBuilder};

use super::signals::Signals;
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
    /// rampart's BBR limiter, one for the whole server: `BbrConfig::default()` with these
    /// changes.
    Rampart(Tuning),
}

/// What a rampart stack changes in `BbrConfig::default()`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// Its gate, when not the default's.
    pub gate: Option<Gate>,
    /// Its `max_delay`, when not the default's.
    pub max_delay: MaxDelay,
}

/// A rampart stack's `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxDelay {
    /// The default's.
    Default,
    /// `None`: the limiter reads no scheduling delay.
    Off,
    /// This delay.
    At(Duration),
}

impl Tuning {
    /// `BbrConfig::default()` as it is.
    pub const DEFAULT: Self = Self {
        gate: None,
        max_delay: MaxDelay::Default,
    };

    /// The default with `gate`.
    pub const fn gate(gate: Gate) -> Self {
        Self {
            gate: Some(gate),
            max_delay: MaxDelay::Default,
        }
    }

    /// The default with `max_delay`.
    pub const fn max_delay(max_delay: MaxDelay) -> Self {
        Self {
            gate: None,
            max_delay,
        }
    }

    /// The configuration: `BbrConfig::default()` with these changes.
    pub fn config(&self) -> BbrConfig {
        let config = match self.gate {
            None => BbrConfig::default(),
            Some(gate) => BbrConfig::default().with_gate(gate),
        };
        match self.max_delay {
            MaxDelay::Default => config,
            MaxDelay::Off => config.with_max_delay(None),
            MaxDelay::At(max_delay) => config.with_max_delay(Some(max_delay)),
        }
    }
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
    /// Whether `rampart-lab live` runs it unless `--stacks` names others (the default run
    /// stays under two minutes).
    pub by_default: bool,
}

/// Every stack, in the order the live mode runs them.
#[rustfmt::skip]
pub const STACKS: &[Stack] = &[
    stack("none", Guard::None, "the handler alone"),
    stack("tower-2", Guard::TowerGlobal(2), "tower GlobalConcurrencyLimit(2) + LoadShed"),
    stack("tower-16", Guard::TowerGlobal(16), "tower GlobalConcurrencyLimit(16) + LoadShed"),
    stack("rampart", Guard::Rampart(Tuning::DEFAULT), "rampart BBR, BbrConfig::default()"),
    stack("rampart-cpu", Guard::Rampart(Tuning::gate(Gate::Cpu)), "rampart BBR, Gate::Cpu"),
    stack("rampart-latency", Guard::Rampart(Tuning::gate(Gate::LATENCY)), "rampart BBR, Gate::LATENCY"),
    stack("rampart-either", Guard::Rampart(Tuning::gate(Gate::EITHER)), "rampart BBR, Gate::EITHER"),
    named("tower-3", Guard::TowerGlobal(3), "tower GlobalConcurrencyLimit(3) + LoadShed"),
    named("tower-4", Guard::TowerGlobal(4), "tower GlobalConcurrencyLimit(4) + LoadShed"),
    named("rampart-no-delay", Guard::Rampart(Tuning::max_delay(MaxDelay::Off)), "rampart BBR, default, max_delay: None"),
    named("rampart-delay-25", Guard::Rampart(Tuning::max_delay(MaxDelay::At(Duration::from_millis(25)))), "rampart BBR, default, max_delay: 25 ms"),
];

/// A stack of the default run.
const fn stack(name: &'static str, guard: Guard, what: &'static str) -> Stack {
    Stack {
        name,
        guard,
        what,
        by_default: true,
    }
}

/// A stack run only when `--stacks` names it.
const fn named(name: &'static str, guard: Guard, what: &'static str) -> Stack {
    Stack {
        name,
        guard,
        what,
        by_default: false,
    }
}

/// The stacks of the default run, in order.
pub fn by_default() -> impl Iterator<Item = &'static Stack> {
    STACKS.iter().filter(|stack| stack.by_default)
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
/// refusal answers 503), with the layer recording the [`Signals`] outermost; `GET /stats`
/// answers [`Stats`] as JSON, unguarded, and takes the signals.
///
/// # Errors
///
/// Outside a tokio runtime (the signals' heartbeat runs on it), or if rampart's limiter cannot
/// be built (no readable CPU usage for a CPU gate).
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
        Guard::Rampart(tuning) => {
            let limiter = Arc::new(tuning.config().with_name("live").build()?);
            let stack = ServiceBuilder::new()
                .layer(refusals)
                .layer(BbrLimitLayer::from_limiter(Arc::clone(&limiter)));
            (
                Router::new().route("/work", work_route).route_layer(stack),
                Some(limiter),
            )
        }
    };
    let signals = Arc::new(Signals::start()?);
    let recorder = Arc::clone(&signals);
    // A later route layer wraps the earlier: this one sees each request before the stack.
    let router = router.route_layer(MapRequestLayer::new(move |request: Request| {
        recorder.observe(request.headers());
        request
    }));
    // Added after the route layers, so neither the stack nor the signals see it.
    Ok(router.route(
        "/stats",
        get(move || {
            let stats = Stats {
                handled: handled.load(Ordering::Relaxed),
                limiter: limiter.as_deref().map(LimiterStats::of),
                signals: signals.take(),
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
