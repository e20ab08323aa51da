//! `priority-overload`: four criticality classes offered 0.8, 2 and 5 times a server's
//! capacity, then 0.8 again with the sheddable class alone spiking to 12 times its share; the
//! stacks that shed without looking at the class, with fixed per-class partitions, and by
//! criticality; and clients with a breaker in front of the criticality-aware server.
//!
//! Every stack receives the same arrivals, each of the same class (drawn once from the seed,
//! by the classes' shares of the offered load at its instant). A stack that reads the class
//! sees it as the current request context's criticality while the stack handles the request
//! (as a server-side layer reading it from a header would install it); the priority-blind
//! stack gets the same requests with no context, so every one is the default class.
//!
//! The figures of each step are measured from [`SETTLE`] into it (half the step when it is
//! shorter), so they say where a stack settles, not how it gets there.

mod clients;
mod figures;
mod load;
mod partitions;
mod stacks;

use std::time::Duration;

use rampart_core::CriticalityClass;

use self::figures::{BIN, Frame};
use self::load::{arrivals, requests, steps};
use self::stacks::{Stack, run_stack};
use super::overload::WORKERS;
use super::{Options, Scenario};
use crate::report::{Chart, Check, ScenarioReport, StackReport};
use crate::sim::simulate;
use crate::thresholds;

/// How long into a step before its figures are measured.
const SETTLE: Duration = Duration::from_secs(2);
/// The classes, from the most critical down (the order of the tables and charts).
const CLASSES: [CriticalityClass; 4] = [
    CriticalityClass::CriticalPlus,
    CriticalityClass::Critical,
    CriticalityClass::SheddablePlus,
    CriticalityClass::Sheddable,
];

const BLIND: &str = "BBR (priority-blind)";
const TOWER: &str = "tower GCL+LS";
const PARTITIONED: &str = "static partitions";
const CRITICALITY: &str = "rampart BBR + criticality";
const CLIENT_SIDE: &str = "rampart breaker → BBR + criticality";

pub(super) const PRIORITY_OVERLOAD: Scenario = Scenario {
    name: "priority-overload",
    description: "four classes (critical-plus 5 %, critical 10 %, sheddable-plus 25 %, sheddable 60 %) offered 0.8 → 2 → 5× a server's capacity (8 workers, 10 ms), 0.8× with sheddable alone 12×, 0.8×; 10 s each",
    duration: Duration::from_secs(50),
    stacks: &[BLIND, TOWER, PARTITIONED, CRITICALITY, CLIENT_SIDE],
    run,
};

fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> ScenarioReport {
    let config = super::overload::server(options.seed);
    let capacity = config.capacity();
    let steps = steps(options);
    let duration = steps.last().expect("steps").end;
    let (arrivals, classes) = arrivals(options.seed, &steps, capacity, duration);
    let frame = Frame {
        steps: &steps,
        settle: SETTLE,
        duration,
        capacity,
    };
    let stacks = [
        Stack::Blind,
        Stack::Tower,
        Stack::Partitioned,
        Stack::Criticality,
        Stack::Clients,
    ];
    let mut reports = Vec::new();
    for (name, stack) in PRIORITY_OVERLOAD.stacks.iter().zip(stacks) {
        progress(name);
        let (records, local) = simulate(run_stack(
            stack,
            config.clone(),
            &arrivals,
            &classes,
            options.seed,
        ));
        let requests = requests(&records, &arrivals, &classes, &local);
        let mut report = figures::summarise(name, &requests, &frame);
        if stack == Stack::Clients {
            report = clients::client_side(report, &requests, &frame);
        }
        reports.push(report);
    }
    let checks = checks(&reports);
    let mut charts = vec![
        Chart::new("goodput", "goodput, all classes (share of capacity)"),
        Chart::p99(),
        Chart::new("shed", "requests shed (share)"),
    ];
    for (slug, stack) in [
        ("criticality", CRITICALITY),
        ("blind", BLIND),
        ("partitions", PARTITIONED),
        ("tower", TOWER),
    ] {
        charts.push(by_class(
            &format!("goodput-by-class-{slug}"),
            stack,
            "goodput",
            "goodput per class (share of capacity)",
        ));
    }
    charts.push(by_class(
        "local-refusals-by-class",
        CLIENT_SIDE,
        "local_refused",
        "refused by the client's breaker (share of the class)",
    ));
    PRIORITY_OVERLOAD.report(duration, BIN, charts, reports, checks)
}

/// A chart named `name` of `stack`'s series `{series}_{class}`, a line per class.
fn by_class(name: &str, stack: &str, series: &str, y_label: &str) -> Chart {
    let names: Vec<String> = CLASSES
        .iter()
        .map(|class| format!("{series}_{}", class.as_str()))
        .collect();
    let lines: Vec<(&str, &str)> = CLASSES
        .iter()
        .zip(&names)
        .map(|(class, series)| (class.as_str(), series.as_str()))
        .collect();
    Chart::of_stack(name, stack, &lines, y_label)
}

/// The thresholds: the criticality-aware server's, and its clients' local refusals.
fn checks(reports: &[StackReport]) -> Vec<Check> {
    vec![
        Check::at_least(
            reports,
            CRITICALITY,
            "critical_plus_served",
            thresholds::PRIORITY_CRITICAL_SERVED,
        ),
        Check::at_least(
            reports,
            CRITICALITY,
            "critical_served",
            thresholds::PRIORITY_CRITICAL_SERVED,
        ),
        Check::at_most(
            reports,
            CRITICALITY,
            "critical_p99_vs_unloaded",
            thresholds::PRIORITY_P99_RATIO,
        ),
        Check::at_least(
            reports,
            CRITICALITY,
            "goodput_5c",
            thresholds::PRIORITY_GOODPUT,
        ),
        Check::at_least(
            reports,
            CRITICALITY,
            "goodput_spike",
            thresholds::PRIORITY_GOODPUT,
        ),
        Check::at_most(
            reports,
            CRITICALITY,
            "inversions",
            thresholds::PRIORITY_INVERSIONS,
        ),
        Check::at_most(
            reports,
            CRITICALITY,
            "ideal_distance",
            thresholds::PRIORITY_IDEAL_DISTANCE,
        ),
        Check::at_most(
            reports,
            CLIENT_SIDE,
            "critical_local_refused",
            thresholds::PRIORITY_CLIENT_REFUSED,
        ),
    ]
}
