//! `fleet-layers` at its default duration, seeds 1 to 3 (the main job's): the rampart stack meets its threshold
//! (calls reaching C per user request while C is down), only the hop next to the failure
//! retries, and the other stacks show what the scenario contrasts it with.

mod support;

use rampart_lab::report::ScenarioReport;
use rampart_lab::{Options, thresholds};
use support::figure;

const NAIVE: &str = "naive 3 attempts";
const PER_HOP: &str = "per-hop RatioBudget";
const TOWER: &str = "tower Retry+TpsBudget";
const RAMPART: &str = "rampart + don't retry";

fn run(seed: u64, scale: f64) -> ScenarioReport {
    support::run("fleet-layers", Options { seed, scale })
}

/// The calls reaching `hop` ("A", "B" or "C") per user request, while C is down (`column` 0)
/// or fails partly (1), from `stack`'s table.
fn hop_calls(report: &ScenarioReport, stack: &str, hop: &str, column: usize) -> f64 {
    let stack = report.stack(stack).expect("the stack");
    let (_, values) = stack.tables[0]
        .rows
        .iter()
        .find(|(label, _)| label == hop)
        .unwrap_or_else(|| panic!("no row for {hop}"));
    values[column]
}

#[test]
fn only_the_hop_next_to_the_failure_retries_for_seeds_1_to_3() {
    for seed in 1..=3 {
        let report = run(seed, 1.0);
        let check = report
            .checks
            .iter()
            .find(|check| check.stack == RAMPART && check.figure == "c_calls_down")
            .expect("the threshold on the rampart stack");
        assert_eq!(check.threshold, thresholds::FLEET_LAYERS_AMPLIFICATION);
        assert!(
            report.passed(),
            "seed {seed}: c_calls_down = {}",
            check.value
        );
        let c_down = |stack| figure(&report, stack, "c_calls_down");
        assert!(
            c_down(RAMPART) <= thresholds::FLEET_LAYERS_AMPLIFICATION,
            "seed {seed}"
        );
        // B's answers say "don't retry": A and the user's client never retry while C is down
        // (B's own budget grants its 20 % and its floor).
        for hop in ["A", "B"] {
            assert_eq!(
                hop_calls(&report, RAMPART, hop, 0),
                1.0,
                "seed {seed}: {hop}"
            );
        }
        assert!(
            (1.15..=1.25).contains(&c_down(RAMPART)),
            "seed {seed}: {}",
            c_down(RAMPART)
        );
        // Three attempts at each of three layers: 27 calls at C per request.
        assert!(c_down(NAIVE) > 26.0, "seed {seed}: {}", c_down(NAIVE));
        // Budgets at each layer compound: about 1.2 per layer.
        assert!(c_down(PER_HOP) > 1.7, "seed {seed}: {}", c_down(PER_HOP));
        assert!(
            hop_calls(&report, PER_HOP, "A", 0) > 1.15,
            "seed {seed}: the user's client retries A"
        );
        // tower's budget, fed by successes only, has nothing but its floor in an outage.
        assert!(c_down(TOWER) < 1.15, "seed {seed}: {}", c_down(TOWER));

        // With C failing 20 %, B's retries recover most failures (none retried: 80 %
        // success), the per-hop stacks all of them; B's budget alone falls a little short of
        // what three attempts ask for, a gap of about three points.
        let success = |stack| figure(&report, stack, "success_partial");
        assert!(success(RAMPART) > 0.96, "seed {seed}: {}", success(RAMPART));
        assert!(
            success(PER_HOP) > 0.999,
            "seed {seed}: {}",
            success(PER_HOP)
        );
        let gap = figure(&report, RAMPART, "success_gap");
        assert!(
            (gap - (success(PER_HOP) - success(RAMPART))).abs() < 1e-12,
            "seed {seed}"
        );
        assert!(gap < 0.04, "seed {seed}: {gap}");
        for hop in ["A", "B"] {
            assert_eq!(
                hop_calls(&report, RAMPART, hop, 1),
                1.0,
                "seed {seed}: {hop}"
            );
        }
    }
}

#[test]
fn every_stack_has_each_charted_series_bin_by_bin() {
    // At half the duration: 10 s down, then 10 s at 20 %.
    let report = run(1, 0.5);
    let bins = (report.duration_s / report.bin_s).ceil() as usize;
    assert_eq!(report.charts[0].series, "c_calls", "the headline chart");
    for stack in &report.stacks {
        for chart in report.charts.iter().filter(|chart| chart.stack.is_none()) {
            assert_eq!(
                stack.series.get(&chart.series).map(Vec::len),
                Some(bins),
                "{} lacks {}",
                stack.name,
                chart.series
            );
        }
        let rows: Vec<&str> = stack.tables[0]
            .rows
            .iter()
            .map(|(label, _)| label.as_str())
            .collect();
        assert_eq!(rows, ["A", "B", "C"], "{}", stack.name);
    }
    // The charts of one stack: a line per hop, each a series the stack has.
    let of_one_stack: Vec<_> = report
        .charts
        .iter()
        .filter_map(|chart| Some((chart.stack.as_deref()?, chart)))
        .collect();
    assert_eq!(
        of_one_stack
            .iter()
            .map(|(stack, _)| *stack)
            .collect::<Vec<_>>(),
        [PER_HOP, RAMPART]
    );
    for (name, chart) in of_one_stack {
        let stack = report.stack(name).expect("the stack");
        let labels: Vec<&str> = chart
            .lines
            .iter()
            .map(|(label, _)| label.as_str())
            .collect();
        assert_eq!(labels, ["A", "B", "C"], "{name}");
        for (_, series) in &chart.lines {
            assert_eq!(
                stack.series.get(series).map(Vec::len),
                Some(bins),
                "{name}: {series}"
            );
        }
    }
    // While C is down nothing succeeds; in the partial phase the naive stack's 27 calls per
    // request fall to about 1.28.
    let naive = report.stack(NAIVE).expect("naive");
    let success = &naive.series["success"];
    assert_eq!(success[5], 0.0);
    assert!(success[15] > 0.99, "{}", success[15]);
    assert!(naive.series["c_calls"][5] > 20.0);
    assert!(naive.series["c_calls"][15] < 2.0);
}
