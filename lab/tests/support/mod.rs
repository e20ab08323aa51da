//! What the scenario tests share: running one scenario and reading its figures.

// Each test file uses what it needs of this module.
#![allow(dead_code)]

use rampart_lab::report::ScenarioReport;
use rampart_lab::{Options, scenarios};

/// Runs the scenario `name` with `options`, and checks that it checks something, meets every
/// threshold it states, and reports every one of its stacks.
pub(crate) fn run_checked(name: &str, options: Options) -> ScenarioReport {
    let report = run(name, options);
    let missed: Vec<String> = report
        .checks
        .iter()
        .filter(|check| !check.passed)
        .map(|check| {
            format!(
                "{} {} = {} (must be {} {})",
                check.stack, check.figure, check.value, check.op, check.threshold
            )
        })
        .collect();
    assert!(!report.checks.is_empty(), "{name} checks nothing");
    assert!(
        missed.is_empty(),
        "{name}, seed {}, missed: {missed:?}",
        options.seed
    );
    report
}

/// Runs the scenario `name` with `options`, and checks that it reports every one of its stacks.
pub(crate) fn run(name: &str, options: Options) -> ScenarioReport {
    let scenario = scenarios::find(name).expect("a known scenario");
    let report = rampart_lab::run(&[scenario], options, |_, _| {})
        .scenarios
        .remove(0);
    assert_eq!(report.stacks.len(), scenario.stacks.len());
    report
}

/// `stack`'s `figure` in `report`.
pub(crate) fn figure(report: &ScenarioReport, stack: &str, figure: &str) -> f64 {
    report
        .stack(stack)
        .unwrap_or_else(|| panic!("no stack {stack}"))
        .get(figure)
}
