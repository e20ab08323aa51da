//! [`Priorities`]: how the limiter sheds by criticality, from the least important band upward,
//! with no per-class numbers in its configuration.
//!
//! The limiter counts, per criticality band ([`Criticality::band`]), the requests that arrive
//! (`ArrivalRates`, smoothed per bucket). Once per bucket it divides each band's arrival rate
//! by the most completions the window has seen in a bucket: the band's *share* of the
//! capacity. From the top band down, the first band at which the shares add up to the whole
//! capacity is the *threshold*: the bands above it can all be served, it can be served in
//! part, the bands below it not at all. (When everything fits, the lowest band that asks for
//! anything stands in for it.)
//!
//! While the limiter sheds, each band has its own in-flight cap, a ladder around the limit
//! (trunk reservation, as telephone exchanges keep lines for priority calls):
//!
//! - the threshold band is capped at the limit: it fills the capacity the bands above leave,
//!   a proportional share, and keeps the workers busy;
//! - each band above it may go `r` higher than the band below it, where `r` is the reservation
//!   that keeps the traffic of that band and those above it from climbing past it: with `x`
//!   their share of the capacity, a burst climbs `r` places with probability about
//!   `(x / (1 + x))^r` (arrivals at rate `x` against departures at the capacity's), so
//!   `r = ⌈ln ε / ln(x / (1 + x))⌉` with `ε` = 3·10⁻⁴: 10 places for three quarters of the
//!   capacity, 4 for a tenth;
//! - each band below it is capped lower by the reservation of the bands above it, and the
//!   threshold band's unmet demand keeps the in-flight count above that: they are shed.
//!
//! Capacity the important bands do not use flows down (work-conserving): their reservations
//! are places above the limit, taken only by their own bursts, and the threshold band fills
//! everything below it. With every request in one band (no criticality anywhere) the ladder is
//! that band alone, at the limit: the limiter decides exactly as without.
//!
//! So the arrivals of the default band (requests that say no criticality, or the default) are
//! counted only while another band arrives too (`ArrivalRates` keeps that rule): a service
//! whose requests carry no criticality pays no counter for it. When another band first
//! arrives, the default band's rate starts from the newest bucket's completions (until then
//! every completion was of the default band), then follows its counts; once the other bands'
//! shares have fallen to nothing, its counting stops again.

use std::array;

use rampart_core::{ArrivalRates, Criticality, CriticalityClass};
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

const BANDS: usize = Criticality::BANDS;

/// The band of requests that say no criticality (`Criticality::default()`, critical).
const DEFAULT_BAND: usize = Criticality::CRITICAL.band();

/// How rarely an excursion of the traffic above a rung may climb past it: 3 in 10 000.
///
/// The estimate `(x / (1 + x))^r` is the chance that arrivals at rate `x` outnumber `r`
/// departures at the capacity's before the in-flight count falls back, a random walk; a real
/// server's excursions are longer (service times vary, several workers finish together), and
/// the lab's `priority-overload` scenario measured this target to keep the sheds of the
/// critical classes within half a percent where one in a thousand let them reach one.
const BLOCKING: f64 = 0.0003;

/// The share of the capacity below which a band asks for nothing.
const NEGLIGIBLE: f64 = 0.001;

/// The limiter's per-band demand and caps.
#[derive(Debug)]
pub(crate) struct Priorities {
    arrivals: ArrivalRates,
    /// Each band's share of the capacity (`f64` bits), set once per bucket.
    share: [AtomicU64; BANDS],
    /// Each band's cap, less the limit: its rung on the ladder, set once per bucket.
    rung: [AtomicI64; BANDS],
    /// The class of the threshold band, as of the last refresh (`CriticalityClass::index`);
    /// `u8::MAX` when every band's demand fits, or only one band asks.
    threshold: AtomicU8,
}

/// Where the threshold band moved at a refresh: from one class to another (`None`: every
/// band's demand fits).
pub(crate) type ThresholdMove = (Option<CriticalityClass>, Option<CriticalityClass>);

impl Priorities {
    pub(crate) fn new() -> Self {
        Self {
            arrivals: ArrivalRates::new(),
            share: array::from_fn(|_| AtomicU64::new(0.0_f64.to_bits())),
            rung: array::from_fn(|_| AtomicI64::new(0)),
            threshold: AtomicU8::new(u8::MAX),
        }
    }

    /// Counts an arrival in `criticality`'s band, admitted or not (the default band's only
    /// while another band asks).
    #[inline]
    pub(crate) fn arrived(&self, criticality: Criticality) {
        self.arrivals.record(criticality);
    }

    /// Once per `bucket`: folds the arrivals into the rates and sets each band's share of a
    /// capacity of `capacity` requests per bucket, and the ladder of caps; returns the
    /// threshold's move when it changed class. `last_pass` gives the newest completed
    /// bucket's completions, read only when another band has just begun to arrive.
    pub(crate) fn refresh(
        &self,
        bucket: u64,
        capacity: f64,
        limit: u64,
        last_pass: impl FnOnce() -> u64,
    ) -> Option<ThresholdMove> {
        // Once another band has just begun to arrive, after arrivals of the default band that
        // were not counted, the newest bucket's completions estimate them: until the change
        // every completion was of the default band (at most the other band's few completions
        // too, which errs towards the default band). Later buckets count them.
        self.arrivals.fold(bucket, last_pass)?;
        let rates = self.arrivals.rates();
        let shares: [f64; BANDS] = array::from_fn(|band| {
            let share = rates[band] / capacity.max(1.0);
            // A band gone quiet decays towards zero without reaching it: below a thousandth
            // of the capacity it asks for nothing.
            if share < NEGLIGIBLE { 0.0 } else { share }
        });
        let others_quiet = shares
            .iter()
            .enumerate()
            .all(|(band, &share)| band == DEFAULT_BAND || share == 0.0);
        if others_quiet {
            self.arrivals.unmix();
        }
        for (band, share) in shares.iter().enumerate() {
            self.share[band].store(share.to_bits(), Ordering::Relaxed);
        }
        let (anchor, over) = anchor(&shares);
        for (band, rung) in ladder(&shares, anchor, limit).into_iter().enumerate() {
            self.rung[band].store(rung, Ordering::Relaxed);
        }
        // Traffic of one band has no threshold worth reporting: it is shed as a whole.
        let several = shares.iter().filter(|&&share| share > 0.0).count() > 1;
        let threshold = (over && several).then(|| CriticalityClass::ALL[anchor / 4]);
        let index = threshold.map_or(u8::MAX, |class| class.index() as u8);
        let before = self.threshold.swap(index, Ordering::Relaxed);
        (before != index).then(|| (class_at(before), threshold))
    }

    /// Whether a band above `band` asks for anything.
    pub(crate) fn demand_above(&self, band: usize) -> bool {
        self.share[band + 1..]
            .iter()
            .any(|share| share.load(Ordering::Relaxed) != 0.0_f64.to_bits())
    }

    /// The in-flight count above which a request of `band` is shed while the limiter sheds,
    /// against a limit of `limit`: its rung on the ladder (see the module docs).
    #[inline]
    pub(crate) fn cap(&self, band: usize, limit: u64) -> u64 {
        let rung = self.rung[band].load(Ordering::Relaxed);
        limit.saturating_add_signed(rung)
    }
}

/// The threshold band: the first, from the top, at which the shares add up to the whole
/// capacity (`true`), or the lowest band that asks for anything when none does (`false`;
/// band 0 when no band asks).
fn anchor(shares: &[f64; BANDS]) -> (usize, bool) {
    let mut above = 0.0;
    let mut lowest = 0;
    for band in (0..BANDS).rev() {
        if shares[band] > 0.0 {
            above += shares[band];
            lowest = band;
            if above >= 1.0 {
                return (band, true);
            }
        }
    }
    (lowest, false)
}

/// Each band's rung, from `anchor`'s 0: up by the reservation of each band above that asks
/// for anything, down by it below (never below `-limit`). The bands above the threshold ask
/// for less than the capacity, so each step up is at most 12 places, and the in-flight count
/// climbs them only as far as their bursts take it.
fn ladder(shares: &[f64; BANDS], anchor: usize, limit: u64) -> [i64; BANDS] {
    let mut rungs = [0_i64; BANDS];
    let floor = i64::try_from(limit).map_or(i64::MIN, |limit| -limit);
    let from_top = |band: usize| shares[band..].iter().sum::<f64>();
    for band in anchor + 1..BANDS {
        let step = if shares[band] > 0.0 {
            reservation(from_top(band))
        } else {
            0
        };
        rungs[band] = rungs[band - 1].saturating_add(step);
    }
    for band in (0..anchor).rev() {
        let step = if shares[band + 1] > 0.0 {
            reservation(from_top(band + 1))
        } else {
            0
        };
        rungs[band] = (rungs[band + 1] - step).max(floor);
    }
    rungs
}

/// The places to keep free above the traffic below for traffic that takes `share` of the
/// capacity, so that it finds them all taken once in `1 / BLOCKING` arrivals.
fn reservation(share: f64) -> i64 {
    let up = share / (1.0 + share);
    if up <= 0.0 {
        return 0;
    }
    (BLOCKING.ln() / up.ln()).ceil().clamp(1.0, 1e6) as i64
}

fn class_at(index: u8) -> Option<CriticalityClass> {
    CriticalityClass::ALL.get(usize::from(index)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 50;

    /// Shares per band: `(criticality, share of the capacity)`.
    fn shares(of: &[(Criticality, f64)]) -> [f64; BANDS] {
        let mut shares = [0.0; BANDS];
        for &(criticality, share) in of {
            shares[criticality.band()] += share;
        }
        shares
    }

    fn caps(of: &[(Criticality, f64)], limit: u64) -> impl Fn(Criticality) -> u64 + use<> {
        let shares = shares(of);
        let (anchor, _) = anchor(&shares);
        let rungs = ladder(&shares, anchor, limit);
        move |criticality: Criticality| limit.saturating_add_signed(rungs[criticality.band()])
    }

    /// The four classes at a total offered load of `load` times the capacity.
    fn classes(load: f64) -> Vec<(Criticality, f64)> {
        vec![
            (Criticality::CRITICAL_PLUS, 0.05 * load),
            (Criticality::CRITICAL, 0.10 * load),
            (Criticality::SHEDDABLE_PLUS, 0.25 * load),
            (Criticality::SHEDDABLE, 0.60 * load),
        ]
    }

    #[test]
    fn the_reservation_keeps_a_burst_from_climbing_past_it_but_3_times_in_10_000() {
        for (share, places) in [(0.1, 4), (0.25, 6), (0.75, 10), (1.0, 12), (2.0, 21)] {
            assert_eq!(reservation(share), places, "share {share}");
            let full = (share / (1.0 + share)).powi(places as i32);
            assert!(full <= BLOCKING, "share {share}: {full}");
        }
        assert_eq!(reservation(0.0), 0);
        assert_eq!(reservation(1e-9), 1, "any demand gets a place");
    }

    #[test]
    fn one_band_alone_is_capped_at_the_limit_whatever_its_demand() {
        for share in [0.0, 0.3, 1.0, 5.0] {
            let cap = caps(&[(Criticality::CRITICAL, share)], LIMIT);
            assert_eq!(cap(Criticality::CRITICAL), LIMIT, "share {share}");
        }
    }

    #[test]
    fn at_five_times_the_capacity_the_threshold_is_sheddable_plus_and_the_ladder_climbs_from_it() {
        let cap = caps(&classes(5.0), LIMIT);
        assert_eq!(cap(Criticality::SHEDDABLE_PLUS), LIMIT, "the threshold");
        // Critical traffic and above take 0.75 of the capacity: 10 places above the limit;
        // critical-plus, 0.25: 6 more.
        assert_eq!(cap(Criticality::CRITICAL), LIMIT + 10);
        assert_eq!(cap(Criticality::CRITICAL_PLUS), LIMIT + 16);
        // Below the threshold: 2 of the capacity above it, 21 places down, where the
        // threshold's own unmet demand keeps the in-flight count from falling.
        assert_eq!(cap(Criticality::SHEDDABLE), LIMIT - 21);
    }

    #[test]
    fn when_everything_fits_the_lowest_band_stands_at_the_limit() {
        let cap = caps(&classes(0.8), LIMIT);
        assert_eq!(cap(Criticality::SHEDDABLE), LIMIT);
        // 0.32, 0.12 and 0.04 of the capacity from the top: 6, 4 and 3 places.
        assert_eq!(cap(Criticality::SHEDDABLE_PLUS), LIMIT + 6);
        assert_eq!(cap(Criticality::CRITICAL), LIMIT + 10);
        assert_eq!(cap(Criticality::CRITICAL_PLUS), LIMIT + 13);
    }

    #[test]
    fn a_band_that_asks_nothing_shares_the_rung_below_it() {
        let cap = caps(
            &[(Criticality::CRITICAL, 0.3), (Criticality::SHEDDABLE, 2.0)],
            LIMIT,
        );
        let idle = Criticality::with_level(CriticalityClass::SheddablePlus, 90);
        assert_eq!(cap(idle), LIMIT, "the threshold's rung");
        assert_eq!(cap(Criticality::CRITICAL_PLUS), cap(Criticality::CRITICAL));
    }

    #[test]
    fn levels_order_requests_inside_a_class() {
        let high = Criticality::with_level(CriticalityClass::SheddablePlus, 100);
        let low = Criticality::with_level(CriticalityClass::SheddablePlus, 10);
        let cap = caps(&[(high, 0.6), (low, 0.6)], LIMIT);
        assert_eq!(cap(low), LIMIT, "the threshold");
        assert_eq!(cap(high), LIMIT + 9);
    }

    #[test]
    fn no_rung_falls_below_an_empty_server() {
        let many: Vec<_> = (0..16)
            .map(|band| {
                let class = CriticalityClass::ALL[band / 4];
                (Criticality::with_level(class, (band % 4 * 32) as u8), 0.2)
            })
            .collect();
        let cap = caps(&many, 4);
        assert_eq!(cap(Criticality::SHEDDABLE), 0);
        // Sixteen bands of a fifth of the capacity: the five at the top fit, each a step.
        let top = cap(Criticality::with_level(CriticalityClass::CriticalPlus, 127));
        assert_eq!(
            top,
            4 + [0.2, 0.4, 0.6, 0.8].map(reservation).iter().sum::<i64>() as u64
        );
    }

    #[test]
    fn the_default_band_alone_is_not_counted_and_its_rate_starts_from_the_completions_when_another_arrives()
     {
        assert_eq!(Criticality::default().band(), DEFAULT_BAND);
        let priorities = Priorities::new();
        for _ in 0..500 {
            priorities.arrived(Criticality::CRITICAL);
        }
        let last_pass = std::cell::Cell::new(false);
        priorities.refresh(0, 100.0, LIMIT, || {
            last_pass.set(true);
            0
        });
        assert!(!last_pass.get(), "one band: nothing to estimate");
        assert_eq!(priorities.arrivals.rates(), [0.0; BANDS], "nothing counted");
        assert_eq!(
            priorities.cap(DEFAULT_BAND, LIMIT),
            LIMIT,
            "alone, at the limit"
        );

        // Mid-bucket, sheddable traffic begins: the critical arrivals before it went uncounted.
        for _ in 0..30 {
            priorities.arrived(Criticality::CRITICAL);
        }
        for _ in 0..300 {
            priorities.arrived(Criticality::SHEDDABLE);
        }
        for _ in 0..20 {
            priorities.arrived(Criticality::CRITICAL);
        }
        priorities.refresh(1, 100.0, LIMIT, || 90);
        let rates = priorities.arrivals.rates();
        assert_eq!(rates[DEFAULT_BAND], 90.0, "the newest bucket's completions");
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(rates[Criticality::SHEDDABLE.band()], 300.0 * 0.3));
        assert!(priorities.demand_above(Criticality::SHEDDABLE.band()));

        // From then on every arrival of the default band counts.
        for _ in 0..50 {
            priorities.arrived(Criticality::CRITICAL);
        }
        priorities.refresh(2, 100.0, LIMIT, || unreachable!("counted now"));
        assert!(close(
            priorities.arrivals.rates()[DEFAULT_BAND],
            90.0 * 0.7 + 50.0 * 0.3
        ));

        // The sheddable traffic stops; once its share has decayed to nothing, the default band
        // goes uncounted again.
        priorities.refresh(40, 100.0, LIMIT, || 0);
        assert!(!priorities.arrivals.mixed());
        for _ in 0..50 {
            priorities.arrived(Criticality::CRITICAL);
        }
        let before = priorities.arrivals.rates()[DEFAULT_BAND];
        priorities.refresh(41, 100.0, LIMIT, || 0);
        assert!(
            close(priorities.arrivals.rates()[DEFAULT_BAND], before * 0.7),
            "uncounted"
        );
    }

    #[test]
    fn refresh_turns_arrivals_into_shares_and_reports_the_threshold_moving() {
        let priorities = Priorities::new();
        let arrive = |criticality, count| {
            for _ in 0..count {
                priorities.arrived(criticality);
            }
        };
        arrive(Criticality::SHEDDABLE, 300);
        arrive(Criticality::CRITICAL, 50);
        // 100 completions per bucket at best: sheddable asks 3 times that.
        let moved = priorities.refresh(0, 100.0, LIMIT, || 0);
        assert_eq!(moved, Some((None, Some(CriticalityClass::Sheddable))));
        assert_eq!(priorities.cap(Criticality::SHEDDABLE.band(), LIMIT), LIMIT);
        // Critical asks for half the capacity: 8 places.
        assert_eq!(
            priorities.cap(Criticality::CRITICAL.band(), LIMIT),
            LIMIT + 8
        );
        assert!(priorities.demand_above(Criticality::SHEDDABLE.band()));
        assert!(!priorities.demand_above(Criticality::CRITICAL.band()));

        arrive(Criticality::CRITICAL, 300);
        let moved = priorities.refresh(1, 100.0, LIMIT, || 0);
        // 0.7 × 0.5 + 0.3 × 3: critical's share is 1.25.
        assert_eq!(
            moved,
            Some((
                Some(CriticalityClass::Sheddable),
                Some(CriticalityClass::Critical)
            ))
        );
        assert_eq!(
            priorities.refresh(1, 100.0, LIMIT, || 0),
            None,
            "once per bucket"
        );

        arrive(Criticality::CRITICAL, 6_000);
        let moved = priorities.refresh(30, 100.0, LIMIT, || 0);
        // Long after the sheddable traffic stopped (its rate decayed below a thousandth of the
        // capacity), critical alone is over the capacity: one band, no threshold to report.
        assert_eq!(moved, Some((Some(CriticalityClass::Critical), None)));
        assert_eq!(
            priorities.cap(Criticality::CRITICAL.band(), LIMIT),
            LIMIT,
            "alone"
        );
    }
}
