//! [`Priorities`]: how the limiter sheds by criticality, from the least important band upward,
//! with no per-class numbers in its configuration.
//!
//! The limiter counts, per criticality band ([`Criticality::band`]), the requests that arrive
//! (`ArrivalRates`, smoothed per bucket) and those in flight. Once per bucket it turns each
//! band's arrival rate into the concurrency that band asks for (Little's law, at the response
//! time of the newest completed bucket). While the limiter sheds, a request's in-flight cap
//! depends on its band:
//!
//! - **Bands whose demand, with all bands above, fits under the limit** are *protected*: they
//!   are shed only above `limit + min(3√limit, demand of the bands below)`. The margin lets the
//!   ordinary bursts of important traffic through at the expense of the bands below, which are
//!   held back to make room; with nothing below, the cap is the limit, as without criticality.
//! - **The other bands** are capped at `limit − (concurrency the bands above ask for and do
//!   not use now)`. The first of them, the threshold band, gets what the bands above leave:
//!   its admitted share is proportional to the room, not all or nothing. The bands below find
//!   the threshold band's unmet demand reserved above them, and are shed.
//!
//! Capacity the important bands do not use flows down (work-conserving): the reservation is
//! what they ask for and do not hold at this instant. With every request in one band (no
//! criticality anywhere) both caps are the limit: the limiter behaves exactly as without.

use std::array;

use rampart_core::{ArrivalRates, Criticality, CriticalityClass};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

const BANDS: usize = Criticality::BANDS;

/// The limiter's per-band demand and in-flight counts.
#[derive(Debug)]
pub(crate) struct Priorities {
    arrivals: ArrivalRates,
    /// Requests of each band admitted and not yet out of flight.
    inflight: [AtomicU64; BANDS],
    /// The concurrency each band asks for (`f64` bits), set once per bucket.
    demand: [AtomicU64; BANDS],
    /// The class of the threshold band, as of the last refresh (`CriticalityClass::index`);
    /// `u8::MAX` when every band's demand fits under the limit.
    threshold: AtomicU8,
}

/// Where the threshold band moved at a refresh: from one class to another (`None`: every
/// band's demand fits).
pub(crate) type ThresholdMove = (Option<CriticalityClass>, Option<CriticalityClass>);

impl Priorities {
    pub(crate) fn new() -> Self {
        Self {
            arrivals: ArrivalRates::new(),
            inflight: array::from_fn(|_| AtomicU64::new(0)),
            demand: array::from_fn(|_| AtomicU64::new(0.0_f64.to_bits())),
            threshold: AtomicU8::new(u8::MAX),
        }
    }

    /// Counts an arrival in `band`'s demand, admitted or not.
    #[inline]
    pub(crate) fn arrived(&self, criticality: Criticality) {
        self.arrivals.record(criticality);
    }

    /// Counts an admitted request of `band` in flight.
    #[inline]
    pub(crate) fn enter(&self, band: usize) {
        self.inflight[band].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a request of `band` out of flight.
    #[inline]
    pub(crate) fn leave(&self, band: usize) {
        self.inflight[band].fetch_sub(1, Ordering::Relaxed);
    }

    /// Requests of `band` in flight.
    pub(crate) fn inflight(&self, band: usize) -> u64 {
        self.inflight[band].load(Ordering::Relaxed)
    }

    /// Requests in flight per class (`CriticalityClass::index` order).
    pub(crate) fn inflight_by_class(&self) -> [u64; 4] {
        array::from_fn(|class| {
            (class * 4..class * 4 + 4)
                .map(|band| self.inflight(band))
                .sum()
        })
    }

    /// Once per `bucket`: folds the arrivals into the rates and sets each band's demand, in
    /// requests in flight, from a response time of `rt_seconds` with `buckets_per_second`;
    /// returns the threshold's move when it changed class against a limit of `limit`.
    pub(crate) fn refresh(
        &self,
        bucket: u64,
        rt_seconds: f64,
        buckets_per_second: f64,
        limit: u64,
    ) -> Option<ThresholdMove> {
        self.arrivals.fold(bucket)?;
        let rates = self.arrivals.rates();
        let per_rate = rt_seconds * buckets_per_second;
        let mut above = 0.0;
        let mut threshold = None;
        for band in (0..BANDS).rev() {
            let demand = rates[band] * per_rate;
            self.demand[band].store(demand.to_bits(), Ordering::Relaxed);
            above += demand;
            if threshold.is_none() && demand > 0.0 && above > limit as f64 {
                threshold = Some(CriticalityClass::ALL[band / 4]);
            }
        }
        let index = threshold.map_or(u8::MAX, |class| class.index() as u8);
        let before = self.threshold.swap(index, Ordering::Relaxed);
        (before != index).then(|| (class_at(before), threshold))
    }

    /// Whether a band above `band` asks for anything.
    pub(crate) fn demand_above(&self, band: usize) -> bool {
        (band + 1..BANDS)
            .any(|above| self.demand[above].load(Ordering::Relaxed) != 0.0_f64.to_bits())
    }

    /// The in-flight count above which a request of `band` is shed while the limiter sheds,
    /// against a limit of `limit` (see the module docs).
    pub(crate) fn cap(&self, band: usize, limit: u64) -> u64 {
        let demand = |band: usize| f64::from_bits(self.demand[band].load(Ordering::Relaxed));
        let above: f64 = (band + 1..BANDS).map(demand).sum();
        let limit_f = limit as f64;
        if above + demand(band) <= limit_f {
            let below: f64 = (0..band).map(demand).sum();
            let margin = (3.0 * limit_f.sqrt()).min(below);
            return limit.saturating_add(margin as u64);
        }
        let unused: f64 = (band + 1..BANDS)
            .map(|above| (demand(above) - self.inflight(above) as f64).max(0.0))
            .sum();
        limit.saturating_sub(unused.ceil() as u64)
    }
}

fn class_at(index: u8) -> Option<CriticalityClass> {
    CriticalityClass::ALL.get(usize::from(index)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 10;

    /// Priorities whose demand per band is `demand` (in requests in flight), after one refresh.
    fn with_demand(demand: &[(Criticality, u64)]) -> Priorities {
        let priorities = Priorities::new();
        for &(criticality, count) in demand {
            for _ in 0..count {
                priorities.arrived(criticality);
            }
        }
        // One bucket per second and a response time of one second: a rate is its demand.
        priorities.refresh(0, 1.0, 1.0, LIMIT);
        priorities
    }

    fn hold(priorities: &Priorities, criticality: Criticality, count: usize) {
        for _ in 0..count {
            priorities.enter(criticality.band());
        }
    }

    #[test]
    fn one_band_alone_is_capped_at_the_limit_whatever_its_demand() {
        for demand in [0, 3, 10, 50] {
            let priorities = with_demand(&[(Criticality::CRITICAL, demand)]);
            assert_eq!(priorities.cap(Criticality::CRITICAL.band(), LIMIT), LIMIT);
        }
        let idle = Priorities::new();
        assert_eq!(idle.cap(Criticality::SHEDDABLE.band(), LIMIT), LIMIT);
    }

    #[test]
    fn important_bands_that_fit_get_a_margin_paid_by_the_bands_below() {
        let priorities = with_demand(&[(Criticality::CRITICAL, 6), (Criticality::SHEDDABLE, 30)]);
        // 3√10 = 9.5, and the sheddable band asks for 30: a margin of 9.
        assert_eq!(priorities.cap(Criticality::CRITICAL.band(), LIMIT), 19);
        let small = with_demand(&[(Criticality::CRITICAL, 6), (Criticality::SHEDDABLE, 2)]);
        assert_eq!(
            small.cap(Criticality::CRITICAL.band(), LIMIT),
            12,
            "as much as below"
        );
    }

    #[test]
    fn the_threshold_band_gets_what_the_bands_above_leave_unused() {
        let priorities = with_demand(&[
            (Criticality::CRITICAL, 6),
            (Criticality::SHEDDABLE_PLUS, 10),
            (Criticality::SHEDDABLE, 30),
        ]);
        let threshold = Criticality::SHEDDABLE_PLUS.band();
        assert_eq!(priorities.cap(threshold, LIMIT), 4, "6 reserved, none held");
        hold(&priorities, Criticality::CRITICAL, 5);
        assert_eq!(priorities.cap(threshold, LIMIT), 9, "1 reserved");
        hold(&priorities, Criticality::CRITICAL, 3);
        assert_eq!(
            priorities.cap(threshold, LIMIT),
            LIMIT,
            "over its demand: none"
        );
    }

    #[test]
    fn the_bands_below_the_threshold_find_its_unmet_demand_reserved() {
        let priorities = with_demand(&[
            (Criticality::SHEDDABLE_PLUS, 12),
            (Criticality::SHEDDABLE, 30),
        ]);
        hold(&priorities, Criticality::SHEDDABLE_PLUS, 8);
        assert_eq!(priorities.cap(Criticality::SHEDDABLE.band(), LIMIT), 6);
        hold(&priorities, Criticality::SHEDDABLE_PLUS, 2);
        // sheddable-plus holds 10 of the 12 it asks for: sheddable may fill the limit only to 8.
        assert_eq!(priorities.cap(Criticality::SHEDDABLE.band(), LIMIT), 8);
    }

    #[test]
    fn levels_order_requests_inside_a_class() {
        let high = Criticality::with_level(CriticalityClass::SheddablePlus, 100);
        let low = Criticality::with_level(CriticalityClass::SheddablePlus, 10);
        let priorities = with_demand(&[(high, 8), (low, 8)]);
        assert_eq!(priorities.cap(high.band(), LIMIT), LIMIT + 8);
        assert_eq!(priorities.cap(low.band(), LIMIT), 2);
    }

    #[test]
    fn the_threshold_class_is_reported_when_it_moves() {
        let priorities = Priorities::new();
        for _ in 0..30 {
            priorities.arrived(Criticality::SHEDDABLE);
        }
        for _ in 0..5 {
            priorities.arrived(Criticality::CRITICAL);
        }
        let moved = priorities.refresh(0, 1.0, 1.0, LIMIT);
        assert_eq!(moved, Some((None, Some(CriticalityClass::Sheddable))));
        for _ in 0..30 {
            priorities.arrived(Criticality::SHEDDABLE);
            priorities.arrived(Criticality::CRITICAL);
        }
        let moved = priorities.refresh(1, 1.0, 1.0, LIMIT);
        assert_eq!(
            moved,
            Some((
                Some(CriticalityClass::Sheddable),
                Some(CriticalityClass::Critical)
            ))
        );
        assert_eq!(
            priorities.refresh(1, 1.0, 1.0, LIMIT),
            None,
            "once per bucket"
        );
    }
}
