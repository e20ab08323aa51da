//! A live run as the lab reports it: an overview (per-second charts of every stack, the
//! client's side, what each limiter saw and the signals requests found as they reached the
//! stack), one table per phase, with the thresholds rampart's default stack is held to, and the
//! signals by phase.

use serde::Serialize;

use super::aggregate::{self, BIN, PhaseFigures};
use super::run::StackRun;
use super::script::Script;
use super::signal_figures::{self, PhaseSignals};
use super::work::Handler;
use crate::report::{Chart, Check, LabReport, ScenarioReport, StackReport};
use crate::thresholds;

/// The stack held to the thresholds.
pub const HELD: &str = "rampart";
/// The stack it is compared with.
pub const UNPROTECTED: &str = "none";

/// How a run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// The server's capacity with its whole CPU, in requests per second: the offered loads
    /// and the goodput are multiples of it.
    pub capacity_rps: f64,
    /// The capacity as measured at the start (the same, unless the server had less than its
    /// CPU meanwhile).
    pub measured_rps: f64,
    /// The CPUs the server used while its capacity was measured (under 0.9: a busy host).
    pub capacity_cpus: f64,
    /// How the handler spent its CPU.
    pub handler: Handler,
    /// CPU per request, in milliseconds.
    pub work_ms: f64,
    /// The client's timeout, in milliseconds.
    pub timeout_ms: f64,
    /// The cgroup the server ran in, or why it ran in none.
    pub cgroup: String,
    /// Whether this was the CI check's script.
    pub check: bool,
}

/// Everything a live run measured, as `report.json` holds it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveReport {
    /// How it was set up.
    pub setup: Setup,
    /// The phases, in order.
    pub phases: Vec<PhaseSpan>,
    /// Wall-clock seconds of the whole run.
    pub wall_s: f64,
    /// Per stack and phase, the signals requests found as they reached the stack, beside the
    /// clients' p99 and timeouts.
    pub signals_by_phase: Vec<PhaseSignals>,
    /// The overview and the per-phase tables, with their checks.
    pub lab: LabReport,
}

/// A phase of the run.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSpan {
    /// Its name (`2×`).
    pub name: String,
    /// When it started, in seconds since the start of the run.
    pub start_s: f64,
    /// When it ended.
    pub end_s: f64,
    /// The offered load at its start, as a multiple of capacity.
    pub from: f64,
    /// The offered load at its end.
    pub to: f64,
}

impl LiveReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.lab.passed()
    }
}

/// The report of `runs` on `script`.
pub fn build(setup: Setup, seed: u64, script: &Script, runs: &[StackRun]) -> LiveReport {
    let spans = script.spans();
    let per_phase: Vec<Vec<PhaseFigures>> = runs
        .iter()
        .map(|run| {
            spans
                .iter()
                .map(|&(_, from, to)| {
                    aggregate::phase(&run.sent.records, from, to, setup.capacity_rps)
                })
                .collect()
        })
        .collect();
    let signals_by_phase = runs
        .iter()
        .zip(&per_phase)
        .flat_map(|(run, figures)| {
            spans
                .iter()
                .zip(figures)
                .map(|(&(phase, from, to), figures)| {
                    signal_figures::phase_signals(
                        run.stack.name,
                        &phase.name,
                        (from, to),
                        &run.seen,
                        figures,
                    )
                })
        })
        .collect();
    let mut scenarios = vec![overview(&setup, script, runs, &per_phase)];
    for (index, &(phase, from, to)) in spans.iter().enumerate() {
        let stacks: Vec<StackReport> = runs
            .iter()
            .zip(&per_phase)
            .map(|(run, figures)| phase_row(run, &figures[index], &figures[0]))
            .collect();
        let stacks = versus_unprotected(stacks);
        let checks = checks(&phase.name, setup.check, &stacks);
        scenarios.push(ScenarioReport {
            name: format!("live-{}", phase.name),
            description: format!(
                "offered {} capacity ({:.0} → {:.0} requests/s) for {:.1} s, from {:.1} s",
                phase.name,
                phase.from * setup.capacity_rps,
                phase.to * setup.capacity_rps,
                phase.duration.as_secs_f64(),
                from.as_secs_f64(),
            ),
            duration_s: to.saturating_sub(from).as_secs_f64(),
            bin_s: BIN.as_secs_f64(),
            charts: Vec::new(),
            stacks,
            checks,
        });
    }
    LiveReport {
        phases: spans
            .iter()
            .map(|&(phase, from, to)| PhaseSpan {
                name: phase.name.clone(),
                start_s: from.as_secs_f64(),
                end_s: to.as_secs_f64(),
                from: phase.from,
                to: phase.to,
            })
            .collect(),
        setup,
        wall_s: 0.0,
        signals_by_phase,
        lab: LabReport { seed, scenarios },
    }
}

/// A stack's row in a phase's table; `unloaded` is its first phase's figures.
fn phase_row(run: &StackRun, figures: &PhaseFigures, unloaded: &PhaseFigures) -> StackReport {
    StackReport::new(run.stack.name)
        .figure("goodput", figures.goodput)
        .figure("p50_ms", figures.p50_ms)
        .figure("p99_ms", figures.p99_ms)
        .figure("p99_vs_unloaded", figures.p99_ms / unloaded.p99_ms)
        .figure("shed", figures.shed)
        .figure("timeouts", figures.timeouts)
        .figure("errors", figures.errors)
}

/// Adds `goodput_vs_none` to every stack but the unprotected one, when it ran.
fn versus_unprotected(mut stacks: Vec<StackReport>) -> Vec<StackReport> {
    let Some(none) = stacks.iter().find(|s| s.name == UNPROTECTED) else {
        return stacks;
    };
    let baseline = none.get("goodput");
    for stack in stacks.iter_mut().filter(|s| s.name != UNPROTECTED) {
        let ratio = stack.get("goodput") / baseline;
        stack.set("goodput_vs_none", ratio);
    }
    stacks
}

/// The thresholds of phase `phase` (none when the default stack did not run): in the CI check
/// the 2× phase's; otherwise the 2× and 3× phases', the live targets.
fn checks(phase: &str, check: bool, stacks: &[StackReport]) -> Vec<Check> {
    if !stacks.iter().any(|s| s.name == HELD) {
        return Vec::new();
    }
    match (check, phase) {
        (true, "2×") => vec![
            Check::at_least(stacks, HELD, "goodput", thresholds::LIVE_CHECK_GOODPUT),
            Check::at_most(
                stacks,
                HELD,
                "p99_vs_unloaded",
                thresholds::LIVE_CHECK_P99_RATIO,
            ),
            Check::at_least(
                stacks,
                HELD,
                "goodput_vs_none",
                thresholds::LIVE_CHECK_VS_NONE,
            ),
        ],
        (false, "2×" | "3×") => vec![
            Check::at_least(stacks, HELD, "goodput", thresholds::LIVE_GOODPUT),
            Check::at_most(stacks, HELD, "p99_vs_unloaded", thresholds::LIVE_P99_RATIO),
        ],
        _ => Vec::new(),
    }
}

/// The overview: per-stack totals and every per-second series, charted.
fn overview(
    setup: &Setup,
    script: &Script,
    runs: &[StackRun],
    per_phase: &[Vec<PhaseFigures>],
) -> ScenarioReport {
    let duration = script.duration();
    let phases: Vec<&str> = script.phases().iter().map(|p| p.name.as_str()).collect();
    let stacks = runs
        .iter()
        .zip(per_phase)
        .map(|(run, figures)| {
            let mut report = StackReport::new(run.stack.name)
                .figure("sent", run.sent.sent as f64)
                .figure("unsent", run.sent.unsent as f64)
                .figure("send_lag_p99_ms", run.sent.lag_p99.as_secs_f64() * 1e3)
                .figure(
                    "unloaded_p99_ms",
                    figures.first().map_or(f64::NAN, |f| f.p99_ms),
                );
            let series = aggregate::client_series(&run.sent.records, duration, setup.capacity_rps)
                .into_iter()
                .chain(aggregate::server_series(
                    &run.seen,
                    duration,
                    setup.capacity_rps,
                ))
                .chain(signal_figures::signal_series(
                    &run.seen,
                    duration,
                    setup.capacity_rps,
                ));
            for (name, values) in series {
                report = report.series(name, values);
            }
            report
        })
        .collect();
    let chart = |series: &str, y_label: &str| Chart::new(series, y_label).with_x_label("time (s)");
    ScenarioReport {
        name: "live".to_owned(),
        description: format!(
            "a real axum server in a child process (one tokio worker; a {} handler burning {} ms \
             of CPU per request); capacity {:.0} requests/s ({:.0} measured with the server \
             using {:.2} CPU); {}; open-loop Poisson arrivals, {} ms client timeout; phases {}",
            setup.handler.name(),
            setup.work_ms,
            setup.capacity_rps,
            setup.measured_rps,
            setup.capacity_cpus,
            setup.cgroup,
            setup.timeout_ms,
            phases.join(", "),
        ),
        duration_s: duration.as_secs_f64(),
        bin_s: BIN.as_secs_f64(),
        charts: vec![
            chart("goodput", "goodput (share of capacity)"),
            chart("p99_ms", "p99 of successes (ms)"),
            chart("shed", "requests shed (share)"),
            chart("timeouts", "requests timed out (share)"),
            chart("cpu", "CPU usage the limiter reads"),
            chart("server_cpu", "server process CPU (CPUs)"),
            chart("inflight", "in flight, as the limiter counts"),
            chart("max_inflight", "the limiter's max in flight"),
            chart("delay_ms", "the limiter's scheduling delay (ms)"),
            chart("delay_max_ms", "scheduling delay at the stack, max (ms)"),
            chart("age_mean_ms", "request age at the stack, mean (ms)"),
            chart("age_max_ms", "request age at the stack, max (ms)"),
            chart("queue_max", "tokio global queue depth at the stack, max"),
            chart("tasks_mean", "tokio alive tasks at the stack, mean"),
            chart("busy", "worker busy share"),
        ],
        stacks,
        checks: Vec::new(),
    }
}
