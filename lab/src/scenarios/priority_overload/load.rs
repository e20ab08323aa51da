//! The offered load: the steps, each class's share of them, the arrivals and their classes.

use std::ops::Range;
use std::time::Duration;

use rampart_core::CriticalityClass;

use super::Options;
use crate::sim::{self, Record};

/// Each step's length.
const STEP: Duration = Duration::from_secs(10);
/// Each class's share of the offered load, by [`CriticalityClass::index`] (sheddable first).
const SHARES: [f64; 4] = [0.60, 0.25, 0.10, 0.05];

/// The steps' names, for the figures that single them out.
pub(super) const FIVE: &str = "5 C";
pub(super) const SPIKE: &str = "spike";
/// Each step: its name, the offered load (a multiple of capacity) and the sheddable class's
/// multiplier (the others unchanged).
const LOAD: [(&str, f64, f64); 5] = [
    ("0.8 C", 0.8, 1.0),
    ("2 C", 2.0, 1.0),
    (FIVE, 5.0, 1.0),
    (SPIKE, 0.8, 12.0),
    ("0.8 C again", 0.8, 1.0),
];

/// One step of the offered load.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    pub(super) name: &'static str,
    pub(super) start: Duration,
    pub(super) end: Duration,
    /// Each class's offered load, in units of capacity, by class index.
    pub(super) demand: [f64; 4],
}

impl Step {
    pub(super) fn length(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }

    /// The part of the step its figures are measured in: from `settle` into it (half the step
    /// when that is shorter) to its end.
    pub(super) fn measured(&self, settle: Duration) -> Range<Duration> {
        self.start + settle.min(self.length() / 2)..self.end
    }
}

/// One request, as its stack treated it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Request {
    pub(super) record: Record,
    /// Its class's index.
    pub(super) class: usize,
    /// Whether its client's breaker refused it locally.
    pub(super) local: bool,
}

/// The steps of [`LOAD`], each [`STEP`] long (scaled), one after the other.
pub(super) fn steps(options: &Options) -> Vec<Step> {
    let length = options.scaled(STEP);
    (0_u32..)
        .zip(LOAD)
        .map(|(n, (name, load, sheddable))| Step {
            name,
            start: length * n,
            end: length * (n + 1),
            demand: std::array::from_fn(|class| {
                let spike = if class == CriticalityClass::Sheddable.index() {
                    sheddable
                } else {
                    1.0
                };
                load * SHARES[class] * spike
            }),
        })
        .collect()
}

/// The offered rate of each class at `at`, in requests per second, by class index.
fn rates(steps: &[Step], capacity: f64, at: Duration) -> [f64; 4] {
    let step = steps
        .iter()
        .find(|step| at < step.end)
        .or(steps.last())
        .expect("steps");
    step.demand.map(|demand| demand * capacity)
}

/// The arrivals of the whole run (strictly increasing, so that a record's sending time names
/// its request) and each one's class index, drawn by the classes' shares of the offered load
/// at its instant.
pub(super) fn arrivals(
    seed: u64,
    steps: &[Step],
    capacity: f64,
    duration: Duration,
) -> (Vec<Duration>, Vec<usize>) {
    let mut arrivals = sim::arrivals(seed, duration, |at| rates(steps, capacity, at).iter().sum());
    for n in 1..arrivals.len() {
        if arrivals[n] <= arrivals[n - 1] {
            arrivals[n] = arrivals[n - 1] + Duration::from_nanos(1);
        }
    }
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x00C1_A55E_5EED);
    let classes = arrivals
        .iter()
        .map(|&at| {
            let rates = rates(steps, capacity, at);
            let mut draw = rng.f64() * rates.iter().sum::<f64>();
            let mut class = 0;
            while class < 3 && draw >= rates[class] {
                draw -= rates[class];
                class += 1;
            }
            class
        })
        .collect();
    (arrivals, classes)
}

/// The records joined with their requests' classes and local refusals (by sending time: the
/// arrivals are strictly increasing).
pub(super) fn requests(
    records: &[Record],
    arrivals: &[Duration],
    classes: &[usize],
    local: &[bool],
) -> Vec<Request> {
    records
        .iter()
        .filter_map(|record| {
            let n = arrivals.binary_search(&record.at).ok()?;
            Some(Request {
                record: *record,
                class: classes[n],
                local: local[n],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steps_offer_each_class_its_share_and_the_spike_only_sheddable() {
        let steps = steps(&Options {
            seed: 1,
            scale: 1.0,
        });
        let [first, two, five, spike, last] = steps.as_slice() else {
            panic!("five steps");
        };
        let (sheddable, critical) = (
            CriticalityClass::Sheddable.index(),
            CriticalityClass::Critical.index(),
        );
        assert!((first.demand.iter().sum::<f64>() - 0.8).abs() < 1e-9);
        assert!((two.demand.iter().sum::<f64>() - 2.0).abs() < 1e-9);
        // At 5× the two critical classes alone ask for 0.75 of capacity.
        assert!((five.demand[critical..].iter().sum::<f64>() - 0.75).abs() < 1e-9);
        assert!((spike.demand[sheddable] - 12.0 * first.demand[sheddable]).abs() < 1e-9);
        assert_eq!(spike.demand[1..], first.demand[1..]);
        assert_eq!(last.demand, first.demand);
        assert_eq!(last.end, Duration::from_secs(50));
    }

    #[test]
    fn arrivals_are_strictly_increasing_and_classes_follow_their_shares() {
        let steps = steps(&Options {
            seed: 1,
            scale: 1.0,
        });
        let capacity = 800.0;
        for seed in 1..=3 {
            let (arrivals, classes) = arrivals(seed, &steps, capacity, Duration::from_secs(50));
            assert!(arrivals.windows(2).all(|pair| pair[0] < pair[1]));
            let again = super::arrivals(seed, &steps, capacity, Duration::from_secs(50));
            assert_eq!((&arrivals, &classes), (&again.0, &again.1), "seeded");
            for step in &steps {
                let of_step: Vec<usize> = arrivals
                    .iter()
                    .zip(&classes)
                    .filter(|&(&at, _)| at >= step.start && at < step.end)
                    .map(|(_, &class)| class)
                    .collect();
                let n = of_step.len() as f64;
                let demand: f64 = step.demand.iter().sum();
                let offered = n / step.length().as_secs_f64() / capacity;
                assert!(
                    (offered / demand - 1.0).abs() < 0.05,
                    "{offered} for {demand}"
                );
                for class in 0..4 {
                    let expected = step.demand[class] / demand;
                    let share = of_step.iter().filter(|&&c| c == class).count() as f64 / n;
                    // Within five standard deviations of a binomial share.
                    let sigma = (expected * (1.0 - expected) / n).sqrt();
                    assert!(
                        (share - expected).abs() < 5.0 * sigma,
                        "seed {seed}, {}: class {class} {share} for {expected}",
                        step.name
                    );
                }
            }
        }
    }
}
