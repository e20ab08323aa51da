//! [`Score`]: how an endpoint's statistics become the cost P2C compares.

use std::fmt;

/// What an endpoint looks like when it is a candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    /// The effective latency, in milliseconds: the EWMA, or the age of the in-flight requests
    /// when most of them are older than it (judged on 64 of them when there are more). Zero
    /// when nothing is known.
    pub lag_ms: f64,
    /// Requests in flight on the endpoint.
    pub inflight: u64,
    /// The EWMA of outcomes, from 0 (all failing) to 1 (all succeeding).
    pub success: f64,
    /// The endpoint's static weight (1 unless set): a weight of 2 makes it look half as costly.
    pub weight: f64,
}

/// Turns an endpoint's [`Load`] into a cost; of two candidates, P2C picks the cheaper.
///
/// Three are built in, so that the same traffic can be balanced each way and compared:
/// [`PeakSuccess`] (the default), [`Kratos`] and [`PeakEwma`].
pub trait Score: fmt::Debug + Send + Sync + 'static {
    /// The cost of sending the next request to an endpoint with this load (lower is better).
    fn cost(&self, load: &Load) -> f64;
}

/// The floor of the success ratio in a cost: an endpoint failing every call costs 1 000 times
/// more than a healthy one, not infinitely more.
const MIN_SUCCESS: f64 = 0.001;
/// Added to every latency, in milliseconds: Kratos's allowance for the gap between zones, which
/// also keeps a zero-latency endpoint from costing nothing.
const LAG_BIAS_MS: f64 = 5.0;

/// `(lag_ms + 5) × (inflight + 1) / (max(success, 0.001) × weight)`: latency, load and
/// failures all count in full. The default.
///
/// It is the only one of the three that handles both a slow endpoint and one failing fast: the
/// crate documentation's "What the score is for" gives the figures (`tests/fleet.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeakSuccess;

impl Score for PeakSuccess {
    #[inline]
    fn cost(&self, load: &Load) -> f64 {
        (load.lag_ms + LAG_BIAS_MS) * (load.inflight + 1) as f64
            / (load.success.max(MIN_SUCCESS) * load.weight)
    }
}

/// `sqrt(lag_ms + 5) × (inflight + 1) / (max(success, 0.001) × weight)`: Kratos's cost. The
/// square root damps latency differences (10× slower looks about 3× costlier), so a slow
/// endpoint keeps more traffic than with [`PeakSuccess`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kratos;

impl Score for Kratos {
    #[inline]
    fn cost(&self, load: &Load) -> f64 {
        (load.lag_ms + LAG_BIAS_MS).sqrt() * (load.inflight + 1) as f64
            / (load.success.max(MIN_SUCCESS) * load.weight)
    }
}

/// `lag × (inflight + 1)`: tower's `PeakEwma` cost, blind to failures. An endpoint that fails
/// fast looks fast, and draws traffic: a black hole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeakEwma;

impl Score for PeakEwma {
    #[inline]
    fn cost(&self, load: &Load) -> f64 {
        load.lag_ms * (load.inflight + 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(lag_ms: f64, inflight: u64, success: f64) -> Load {
        Load {
            lag_ms,
            inflight,
            success,
            weight: 1.0,
        }
    }

    #[test]
    fn peak_success_counts_latency_load_and_failures_in_full() {
        assert_eq!(PeakSuccess.cost(&load(5.0, 0, 1.0)), 10.0);
        assert_eq!(PeakSuccess.cost(&load(5.0, 1, 1.0)), 20.0);
        assert_eq!(PeakSuccess.cost(&load(5.0, 0, 0.5)), 20.0);
        assert_eq!(
            PeakSuccess.cost(&load(5.0, 0, 0.0)),
            10_000.0,
            "success floored at 0.001"
        );
        let weighted = Load {
            weight: 2.0,
            ..load(5.0, 0, 1.0)
        };
        assert_eq!(PeakSuccess.cost(&weighted), 5.0);
    }

    #[test]
    fn peak_ewma_ignores_failures() {
        assert_eq!(PeakEwma.cost(&load(10.0, 1, 0.0)), 20.0);
    }
}
