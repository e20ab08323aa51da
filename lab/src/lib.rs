//! The rampart lab: fault-injection scenarios that show what each rampart layer buys, beside
//! the unprotected stack and tower's built-ins, on the same simulated traffic.
//!
//! Every scenario runs on tokio's paused clock over `rampart-fault`'s simulated servers and
//! faulty endpoints, fed by an open-loop Poisson load generator, so a minute of traffic takes a
//! fraction of a second and the same seed gives the same numbers. The binary (`cargo run
//! --release -p rampart-lab`) prints a table per scenario and writes `report.json` and a
//! self-contained `report.html` with charts of every scenario. `rampart-lab live` runs the
//! overload scenario on a real axum server instead, in real time (see [`live`]).
//!
//! ```no_run
//! use rampart_lab::{Options, run, scenarios};
//!
//! let overload = scenarios::find("overload").unwrap();
//! let report = run(&[overload], Options { seed: 7, scale: 0.5 }, |_, _| {});
//! println!("{}", rampart_lab::table::scenario(&report.scenarios[0]));
//! ```

pub mod html;
pub mod live;
pub mod report;
pub mod scenarios;
pub mod sim;
pub mod table;
pub mod thresholds;

pub use report::LabReport;
pub use scenarios::{Options, Scenario};

/// Runs `scenarios` in order with `options`, telling `progress` each scenario's and stack's
/// name as it starts it.
pub fn run(
    scenarios: &[Scenario],
    options: Options,
    mut progress: impl FnMut(&Scenario, &str),
) -> LabReport {
    let reports = scenarios
        .iter()
        .map(|scenario| (scenario.run)(&options, &mut |stack| progress(scenario, stack)))
        .collect();
    LabReport {
        seed: options.seed,
        scenarios: reports,
    }
}
