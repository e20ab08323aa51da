//! The figures of one stack: per step and class (goodput, p99, shed, distance from the ideal
//! strict-priority allocation), priority inversions, the headline figures the thresholds bound,
//! and the per-second series.

use std::time::Duration;

use rampart_core::CriticalityClass;

use super::CLASSES;
use super::load::{Request, Step};
use crate::report::{StackReport, Table};
use crate::sim::{self, Fate, Record};

/// The series' bins.
pub(super) const BIN: Duration = Duration::from_secs(1);
/// The bins in which inversions are counted.
const INVERSION_BIN: Duration = Duration::from_millis(100);

/// Where a stack's figures are measured.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frame<'a> {
    pub(super) steps: &'a [Step],
    /// How long into each step before its figures are measured.
    pub(super) settle: Duration,
    pub(super) duration: Duration,
    /// The server's capacity, in requests per second (C).
    pub(super) capacity: f64,
}

/// The strict-priority allocation of one unit of capacity to `demand` (each class's, in units
/// of C, by class index): filled from critical-plus downward, each class taking what it asks
/// for of what is left.
pub(super) fn ideal(demand: [f64; 4]) -> [f64; 4] {
    let mut left = 1.0_f64;
    let mut allocation = [0.0; 4];
    for class in CriticalityClass::ALL.iter().rev() {
        let index = class.index();
        allocation[index] = demand[index].min(left);
        left -= allocation[index];
    }
    allocation
}

/// One class's figures in one step.
#[derive(Debug, Clone, Copy)]
struct ClassStep {
    demand: f64,
    ideal: f64,
    goodput: f64,
    served: f64,
    p99_ms: f64,
    shed: f64,
}

impl ClassStep {
    fn distance(&self) -> f64 {
        (self.goodput - self.ideal).abs()
    }
}

/// The smallest of `values`, NaN if any is (a figure that could not be measured fails its
/// check rather than vanish from it).
fn least(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(f64::INFINITY, |a, b| {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            a.min(b)
        }
    })
}

/// The largest of `values`, NaN if any is.
fn most(values: impl IntoIterator<Item = f64>) -> f64 {
    -least(values.into_iter().map(|v| -v))
}

fn records<'a>(requests: impl IntoIterator<Item = &'a Request>) -> Vec<&'a Record> {
    requests
        .into_iter()
        .map(|request| &request.record)
        .collect()
}

pub(super) fn refused(record: &Record) -> bool {
    record.fate == Fate::Refused
}

/// `requests` (sorted by sending time) grouped into bins of `bin` over `duration`.
pub(super) fn binned(
    requests: &[Request],
    duration: Duration,
    bin: Duration,
) -> Vec<Vec<&Request>> {
    let bins = (duration.as_secs_f64() / bin.as_secs_f64()).ceil() as usize;
    let mut grouped = vec![Vec::new(); bins.max(1)];
    let last = grouped.len() - 1;
    for request in requests {
        let index = (request.record.at.as_secs_f64() / bin.as_secs_f64()) as usize;
        grouped[index.min(last)].push(request);
    }
    grouped
}

/// The share of all decisions that are priority inversions: in each bin of
/// [`INVERSION_BIN`], every admission of a class while a strictly more critical class had a
/// refusal in the same bin.
pub(super) fn inversions(requests: &[Request], duration: Duration) -> f64 {
    let mut inverted = 0_usize;
    for bin in binned(requests, duration, INVERSION_BIN) {
        let (mut admitted, mut refusals) = ([0_usize; 4], [0_usize; 4]);
        for request in bin {
            if refused(&request.record) {
                refusals[request.class] += 1;
            } else {
                admitted[request.class] += 1;
            }
        }
        for class in 0..4 {
            if refusals[class + 1..].iter().any(|&n| n > 0) {
                inverted += admitted[class];
            }
        }
    }
    inverted as f64 / (requests.len() as f64).max(1.0)
}

/// Every class's figures in `step`, by class index, measured after `frame.settle`.
fn per_class(requests: &[Request], step: &Step, frame: &Frame<'_>) -> [ClassStep; 4] {
    let measured = step.measured(frame.settle);
    let span = measured.end.saturating_sub(measured.start).as_secs_f64();
    let ideal = ideal(step.demand);
    std::array::from_fn(|class| {
        let sent = records(
            requests
                .iter()
                .filter(|request| request.class == class && measured.contains(&request.record.at)),
        );
        let served = sent.iter().filter(|record| record.is_good()).count() as f64;
        ClassStep {
            demand: step.demand[class],
            ideal: ideal[class],
            goodput: served / span / frame.capacity,
            served: served / sent.len() as f64,
            p99_ms: sim::success_quantile_ms(&sent, 0.99),
            shed: sim::share(&sent, refused),
        }
    })
}

/// The stack's report: headline figures, per-second series overall and per class, and the
/// table per step and class.
pub(super) fn summarise(name: &str, requests: &[Request], frame: &Frame<'_>) -> StackReport {
    let by_step: Vec<[ClassStep; 4]> = frame
        .steps
        .iter()
        .map(|step| per_class(requests, step, frame))
        .collect();
    let settled = |step: &Step| {
        let measured = step.measured(frame.settle);
        records(
            requests
                .iter()
                .filter(move |r| measured.contains(&r.record.at)),
        )
    };
    let total_goodput = |step: &Step| {
        let measured = step.measured(frame.settle);
        let sent = settled(step);
        let served = sent.iter().filter(|record| record.is_good()).count() as f64;
        served / measured.end.saturating_sub(measured.start).as_secs_f64() / frame.capacity
    };
    let step_named = |name: &str| {
        frame
            .steps
            .iter()
            .find(|step| step.name == name)
            .expect("the scenario's steps")
    };
    let unloaded_p99 = sim::success_quantile_ms(&settled(&frame.steps[0]), 0.99);
    let (critical_plus, critical) = (
        CriticalityClass::CriticalPlus.index(),
        CriticalityClass::Critical.index(),
    );
    let mut report = StackReport::new(name)
        .figure("goodput_5c", total_goodput(step_named(super::load::FIVE)))
        .figure(
            "goodput_spike",
            total_goodput(step_named(super::load::SPIKE)),
        )
        .figure(
            "critical_plus_served",
            least(by_step.iter().map(|c| c[critical_plus].served)),
        )
        .figure(
            "critical_served",
            least(by_step.iter().map(|c| c[critical].served)),
        )
        .figure("unloaded_p99_ms", unloaded_p99)
        .figure(
            "critical_p99_vs_unloaded",
            most(
                by_step
                    .iter()
                    .flat_map(|c| [c[critical_plus].p99_ms, c[critical].p99_ms])
                    .map(|p99| p99 / unloaded_p99),
            ),
        )
        .figure(
            "ideal_distance",
            most(by_step.iter().flatten().map(ClassStep::distance)),
        )
        .figure("inversions", inversions(requests, frame.duration));
    report = series(report, requests, frame);
    report.table(table(name, frame, &by_step))
}

/// The per-second series: goodput (share of C), p99 of successes and shed share, overall and
/// per class (`goodput_critical-plus`, ...).
fn series(mut report: StackReport, requests: &[Request], frame: &Frame<'_>) -> StackReport {
    let bins = binned(requests, frame.duration, BIN);
    let goodput = |sent: &[&Record]| {
        let served = sent.iter().filter(|record| record.is_good()).count() as f64;
        served / BIN.as_secs_f64() / frame.capacity
    };
    let overall: Vec<Vec<&Record>> = bins
        .iter()
        .map(|bin| records(bin.iter().copied()))
        .collect();
    report = report
        .series("goodput", overall.iter().map(|bin| goodput(bin)).collect())
        .series(
            "p99_ms",
            overall
                .iter()
                .map(|bin| sim::success_quantile_ms(bin, 0.99))
                .collect(),
        )
        .series(
            "shed",
            overall.iter().map(|bin| sim::share(bin, refused)).collect(),
        );
    for class in CLASSES {
        let of_class: Vec<Vec<&Record>> = bins
            .iter()
            .map(|bin| records(bin.iter().copied().filter(|r| r.class == class.index())))
            .collect();
        let name = class.as_str();
        report = report
            .series(
                &format!("goodput_{name}"),
                of_class.iter().map(|bin| goodput(bin)).collect(),
            )
            .series(
                &format!("p99_ms_{name}"),
                of_class
                    .iter()
                    .map(|bin| sim::success_quantile_ms(bin, 0.99))
                    .collect(),
            )
            .series(
                &format!("shed_{name}"),
                of_class
                    .iter()
                    .map(|bin| sim::share(bin, refused))
                    .collect(),
            );
    }
    report
}

fn table(name: &str, frame: &Frame<'_>, by_step: &[[ClassStep; 4]]) -> Table {
    let columns = [
        "step · class",
        "demand (C)",
        "ideal (C)",
        "goodput (C)",
        "served (of demand)",
        "distance (C)",
        "p99_ms",
        "shed",
    ];
    let rows = frame
        .steps
        .iter()
        .zip(by_step)
        .flat_map(|(step, classes)| {
            CLASSES.iter().map(move |class| {
                let c = classes[class.index()];
                (
                    format!("{} · {}", step.name, class.as_str()),
                    vec![
                        c.demand,
                        c.ideal,
                        c.goodput,
                        c.served,
                        c.distance(),
                        c.p99_ms,
                        c.shed,
                    ],
                )
            })
        })
        .collect();
    Table {
        title: format!(
            "{name}: per step and class, from {} s into each step",
            frame.settle.as_secs_f64()
        ),
        columns: columns.iter().map(|&c| c.to_owned()).collect(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ideal_fills_capacity_from_the_most_critical_down() {
        // By class index: sheddable, sheddable-plus, critical, critical-plus.
        let five = ideal([3.0, 1.25, 0.5, 0.25]);
        assert_eq!(five, [0.0, 0.25, 0.5, 0.25]);
        let light = ideal([0.48, 0.2, 0.08, 0.04]);
        assert_eq!(light, [0.48, 0.2, 0.08, 0.04]);
        let spike = ideal([5.76, 0.2, 0.08, 0.04]);
        assert!((spike[0] - 0.68).abs() < 1e-12);
    }

    fn request(ms: u64, class: usize, fate: Fate) -> Request {
        Request {
            record: Record {
                at: Duration::from_millis(ms),
                latency: Duration::from_millis(1),
                fate,
            },
            class,
            local: false,
        }
    }

    #[test]
    fn an_admission_is_an_inversion_only_beside_a_higher_refusal_in_its_bin() {
        let requests = [
            // Bin 0: critical refused, sheddable admitted (an inversion), critical-plus
            // admitted (none: nothing above it).
            request(10, 2, Fate::Refused),
            request(20, 0, Fate::Served),
            request(30, 3, Fate::Served),
            // Bin 1: sheddable refused, critical admitted: the right order.
            request(110, 0, Fate::Refused),
            request(120, 2, Fate::TimedOut),
            // Bin 2: a sheddable admitted; the refusal of bin 0 is another bin's.
            request(250, 0, Fate::Served),
        ];
        let share = inversions(&requests, Duration::from_millis(300));
        assert!((share - 1.0 / 6.0).abs() < 1e-12, "{share}");
    }

    #[test]
    fn unmeasured_figures_propagate() {
        assert_eq!(least([0.5, 0.2, 0.9]), 0.2);
        assert_eq!(most([0.5, 0.2, 0.9]), 0.9);
        assert!(least([0.5, f64::NAN]).is_nan());
        assert!(most([f64::NAN, 0.5]).is_nan());
    }
}
