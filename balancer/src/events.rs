//! State transitions as `tracing` events (feature `tracing`): an endpoint entering avoidance
//! (it lost a pick at more than [`AVOID_ABOVE`] times its rival's cost) and leaving it (its
//! cost came back within [`RETURN_BELOW`] times a rival's). The gap between the two keeps an
//! endpoint near the line from flapping. Each is reported once per transition, never per
//! request.
//!
//! Events carry the target `rampart::balancer`, the balancer's `name` and the `endpoint`
//! label. Without the feature nothing is tracked.

/// An endpoint costing more than this multiple of its rival's cost is avoided.
pub(crate) const AVOID_ABOVE: f64 = 4.0;
/// An avoided endpoint costing less than this multiple of a rival's cost is no longer avoided.
pub(crate) const RETURN_BELOW: f64 = 2.0;

/// Updates `avoided` for an endpoint that cost `cost` in a pick against a rival costing
/// `rival`; returns the new state when it changed.
#[cfg_attr(not(feature = "tracing"), allow(dead_code))]
pub(crate) fn crossed(avoided: &mut bool, cost: f64, rival: f64) -> Option<bool> {
    let now = if *avoided {
        // A NaN cost keeps the endpoint avoided.
        cost.partial_cmp(&(RETURN_BELOW * rival)) != Some(std::cmp::Ordering::Less)
    } else {
        cost > AVOID_ABOVE * rival
    };
    (now != *avoided).then(|| {
        *avoided = now;
        now
    })
}

/// Reports that the endpoint `endpoint` of the balancer `name` entered (`avoided`) or left
/// avoidance.
#[cfg(feature = "tracing")]
pub(crate) fn report(name: &str, endpoint: &str, avoided: bool, cost: f64, rival: f64) {
    if avoided {
        tracing::warn!(
            target: "rampart::balancer",
            name,
            endpoint,
            cost,
            rival_cost = rival,
            "endpoint avoided: it costs far more than its peers"
        );
    } else {
        tracing::info!(
            target: "rampart::balancer",
            name,
            endpoint,
            cost,
            rival_cost = rival,
            "endpoint no longer avoided"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avoidance_has_a_gap_between_entering_and_leaving() {
        let mut avoided = false;
        assert_eq!(crossed(&mut avoided, 3.9, 1.0), None);
        assert_eq!(crossed(&mut avoided, 4.1, 1.0), Some(true));
        assert_eq!(crossed(&mut avoided, 5.0, 1.0), None);
        // Between the lines: still avoided.
        assert_eq!(crossed(&mut avoided, 3.0, 1.0), None);
        assert_eq!(crossed(&mut avoided, 1.9, 1.0), Some(false));
        assert_eq!(crossed(&mut avoided, 3.0, 1.0), None);
        // A NaN cost never flips the state.
        assert_eq!(crossed(&mut avoided, f64::NAN, 1.0), None);
        assert!(!avoided);
    }
}
