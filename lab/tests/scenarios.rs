//! Every scenario at half its default duration meets its thresholds, and shows the contrast it
//! exists to show.

mod support;

use rampart_lab::report::ScenarioReport;
use rampart_lab::{Options, scenarios};
use support::{figure, run_checked};

const OPTIONS: Options = Options {
    seed: 1,
    scale: 0.5,
};

fn run(name: &str) -> ScenarioReport {
    run_with(name, OPTIONS)
}

fn run_with(name: &str, options: Options) -> ScenarioReport {
    run_checked(name, options)
}

#[test]
fn overload_bbr_keeps_goodput_where_the_unprotected_server_collapses() {
    let report = run("overload");
    assert!(
        figure(&report, "none", "goodput") < 0.1,
        "the unprotected server should collapse"
    );
    // A concurrency limit set too low wastes capacity; one set too high lets latency grow.
    assert!(figure(&report, "tower CL+LS W/2", "goodput") < 0.6);
    assert!(figure(&report, "tower CL+LS 10W", "p99_vs_unloaded") > 3.0);
}

#[test]
fn overload_io_needs_the_latency_gate_when_cpu_stays_cool() {
    let report = run("overload-io");
    assert!(
        figure(&report, "rampart BBR Cpu", "goodput") < 0.1,
        "a CPU gate never opens at 30 % CPU"
    );
    assert!(figure(&report, "rampart BBR Either", "goodput") >= 0.9);
}

#[test]
fn outage_adaptive_breaker_stops_the_calls_and_readmits_quickly() {
    let report = run("outage");
    assert!(
        figure(&report, "none", "leak") > 0.99,
        "without a breaker every request reaches the backend"
    );
    assert!(
        figure(&report, "rampart breaker Sre", "recovery_s") > 5.0,
        "the SRE formula recovers slowly"
    );
}

#[test]
fn retry_storm_budget_bounds_amplification() {
    let report = run("retry-storm");
    assert!(
        figure(&report, "naive 3 attempts", "amplification_down") > 2.9,
        "naive retries triple the load"
    );
    assert!(
        figure(&report, "rampart TokenBudget", "success_partial") < 0.99,
        "gRPC's token budget stops retrying at 10 %"
    );
}

#[test]
fn retry_storm_measures_the_outage_to_its_end_when_it_ends_mid_second() {
    // At three quarters of its length the outage ends at 22.5 s: the backend's count must be
    // read there, not at the last whole second (which would leave half a second of retries
    // out and understate the amplification).
    let scenario = scenarios::find("retry-storm").expect("a known scenario");
    let options = Options {
        seed: 1,
        scale: 0.75,
    };
    let report = rampart_lab::run(&[scenario], options, |_, _| {})
        .scenarios
        .remove(0);
    assert!(
        figure(&report, "naive 3 attempts", "amplification_down") > 2.95,
        "naive retries triple the load: {}",
        figure(&report, "naive 3 attempts", "amplification_down")
    );
}

#[test]
fn slow_endpoint_p2c_avoids_the_slow_one() {
    let report = run("slow-endpoint");
    let round_robin = figure(&report, "round robin", "share");
    assert!(
        (0.18..0.22).contains(&round_robin),
        "round robin sends it a fifth, got {round_robin}"
    );
    assert!(figure(&report, "round robin", "p99_ms") > 100.0);
}

#[test]
fn black_hole_success_aware_cost_avoids_fast_failures() {
    let report = run("black-hole");
    assert!(
        figure(&report, "tower P2C+PeakEwma", "error_rate") > 0.2,
        "a latency-only cost prefers the fast failures"
    );
    assert!(figure(&report, "round robin", "error_rate") > 0.15);
}

#[test]
fn full_stack_keeps_the_fleet_serving_through_overload_and_degradation() {
    let report = run("full-stack");
    assert!(figure(&report, "none", "goodput") < 0.2);
    assert!(
        figure(&report, "rampart", "attempts_per_request") < 1.25,
        "retries stay within the budget"
    );
}

#[test]
fn overload_runtime_the_old_default_fails_on_a_host_cpu_gauge_and_the_delay_signal_holds() {
    let report = run("overload-runtime");
    assert!(figure(&report, "none", "goodput") < 0.05);
    // The CPU gate reading the whole two-CPU host never opens for a one-worker runtime: the
    // live failure (3 % at 2×, 2 % at 3×), here as bad as no limiter at all.
    assert!(figure(&report, "rampart BBR Cpu (host)", "goodput") < 0.05);
    assert_eq!(figure(&report, "rampart BBR Cpu (host)", "shed"), 0.0);
    // Reading the worker's own CPU it holds, as it did live in a 1-CPU cgroup.
    assert!(figure(&report, "rampart BBR Cpu", "goodput") >= 0.9);
    // Without a limiter every request of the 3× phase is served after its client gave up.
    assert!(figure(&report, "none", "wasted") > 0.99);
    assert!(figure(&report, "rampart BBR default", "wasted") < 0.01);
}

#[test]
fn overload_runtime_blocking_only_the_delay_signal_sees_the_queue() {
    let report = run("overload-runtime-blocking");
    // A handler that never yields keeps one request in flight as the limiter counts it:
    // neither the in-flight limit (whatever the gate) nor anything else sheds.
    for stack in ["none", "rampart BBR Cpu", "rampart BBR Latency"] {
        assert!(figure(&report, stack, "goodput") < 0.05, "{stack}");
        assert_eq!(figure(&report, stack, "shed"), 0.0, "{stack}");
    }
    assert!(figure(&report, "rampart BBR default", "shed") > 0.5);
}

#[test]
fn priority_overload_sheds_the_least_critical_first_for_seeds_1_to_3() {
    for seed in 1..=3 {
        let report = run_with("priority-overload", Options { seed, ..OPTIONS });
        // Shedding blind to the class refuses critical work as often as any: at 5× capacity
        // four critical requests in five.
        for blind in ["BBR (priority-blind)", "tower GCL+LS"] {
            assert!(
                figure(&report, blind, "critical_served") < 0.3,
                "seed {seed}: {blind}"
            );
            assert!(
                figure(&report, blind, "inversions") > 0.1,
                "seed {seed}: {blind}"
            );
        }
        // Fixed partitions protect the critical classes only up to their shares, and leave
        // the allocation far from strict priority.
        assert!(
            figure(&report, "static partitions", "critical_served") < 0.9,
            "seed {seed}"
        );
        assert!(
            figure(&report, "static partitions", "ideal_distance") > 0.1,
            "seed {seed}"
        );
    }
}

#[test]
fn priority_overload_charts_each_class_of_one_stack_from_series_it_has() {
    let scenario = scenarios::find("priority-overload").expect("a known scenario");
    let report = rampart_lab::run(&[scenario], OPTIONS, |_, _| {})
        .scenarios
        .remove(0);
    let bins = (report.duration_s / report.bin_s).ceil() as usize;
    let of_one_stack: Vec<_> = report.charts.iter().filter(|c| c.stack.is_some()).collect();
    assert_eq!(
        of_one_stack.len(),
        5,
        "four stacks' goodput, the clients' refusals"
    );
    for chart in of_one_stack {
        let name = chart.stack.as_deref().expect("one stack");
        let stack = report
            .stack(name)
            .unwrap_or_else(|| panic!("no stack {name}"));
        assert_eq!(chart.lines.len(), 4, "a line per class");
        for (_, series) in &chart.lines {
            assert_eq!(
                stack.series.get(series).map(Vec::len),
                Some(bins),
                "{name} lacks {series}"
            );
        }
    }
    // Each stack's table: a row per step and class.
    for stack in &report.stacks {
        assert_eq!(stack.tables.len(), 1, "{}", stack.name);
        assert_eq!(stack.tables[0].rows.len(), 5 * 4, "{}", stack.name);
    }
}

#[test]
fn deadline_chain_a_propagated_deadline_keeps_the_bottleneck_serving_for_seeds_1_to_3() {
    for seed in 1..=3 {
        let report = run_with("deadline-chain", Options { seed, ..OPTIONS });
        let fixed = "fixed timeouts 500/250 ms";
        let propagated = "propagated deadline";
        // Without a deadline the bottleneck's limiter sees only the requests someone still
        // waits for: the work of those abandoned stays queued on C, and most of C's time goes
        // to answers that arrive after their client gave up.
        assert!(
            figure(&report, fixed, "wasted_c") > 0.5,
            "seed {seed}: {}",
            figure(&report, fixed, "wasted_c")
        );
        assert!(figure(&report, fixed, "short_work_c") > 0.5, "seed {seed}");
        // With it, C refuses what cannot finish in time and works on what can.
        assert!(
            figure(&report, propagated, "wasted_c") < 0.02,
            "seed {seed}"
        );
        assert!(
            figure(&report, propagated, "short_work_c") < 0.02,
            "seed {seed}"
        );
        assert!(
            figure(&report, propagated, "short_entry_bc") < 0.01,
            "seed {seed}"
        );
    }
}

#[test]
fn deadline_overload_serves_answers_in_time_and_wastes_no_work_for_seeds_1_to_3() {
    for seed in 1..=3 {
        let report = run_with("deadline-overload", Options { seed, scale: 0.25 });
        // A FIFO server works through a queue of answers nobody waits for any more.
        assert!(
            figure(&report, "none (FIFO)", "useful_goodput") < 0.1,
            "seed {seed}"
        );
        assert!(
            figure(&report, "none (FIFO)", "wasted") > 0.9,
            "seed {seed}"
        );
        // A limiter blind to deadlines admits work behind a backlog its clients have left.
        let blind = "rampart BBR without deadlines";
        assert!(
            figure(&report, blind, "useful_goodput") < 0.5,
            "seed {seed}"
        );
        assert!(figure(&report, blind, "wasted") > 0.5, "seed {seed}");
        // Dropping only the expired still starts work that ends too late.
        assert!(
            figure(&report, "expired only", "wasted") > 0.04,
            "seed {seed}"
        );
        // CoDel refuses only after a request has waited in the queue.
        assert!(
            figure(&report, "CoDel (5 ms / 100 ms)", "refuse_p99_ms") > 5.0,
            "seed {seed}"
        );
    }
}

#[test]
fn fleet_storm_a_fleet_floor_and_pushback_bound_a_thousand_clients_for_seeds_1_to_3() {
    let rampart = "rampart pushback + fleet floor";
    for seed in 1..=3 {
        let report = run_with("fleet-storm", Options { seed, scale: 0.25 });
        // Per-client floors add up to twice the fleet's traffic: every failed request retries
        // twice during the outage, and the clients retry into the shedding at half capacity.
        for stack in [
            "naive 3 attempts",
            "per-client RatioBudget",
            "tower TpsBudget",
        ] {
            let down = figure(&report, stack, "amplification_down");
            assert!(down > 2.5, "seed {seed}: {stack} {down}");
            let after_pushback = figure(&report, stack, "pushback_retries");
            assert!(
                after_pushback > 0.5,
                "seed {seed}: {stack} {after_pushback}"
            );
        }
        // rampart offers the backends barely more than the clients' own traffic while they
        // shed, and serves as much as any.
        let offered = figure(&report, rampart, "offered_half");
        assert!(offered < 5_000.0 * 1.05, "seed {seed}: {offered}");
        let served = figure(&report, rampart, "success_half");
        let naive = figure(&report, "naive 3 attempts", "success_half");
        assert!(served >= naive - 0.01, "seed {seed}: {served} vs {naive}");
    }
}
