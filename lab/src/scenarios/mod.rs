//! The scenarios, each comparing stacks on the same arrivals.

mod balancing;
mod deadline_chain;
mod deadline_overload;
mod fleet_layers;
mod fleet_storm;
mod full_stack;
mod hedge;
mod outage;
mod overload;
mod overload_runtime;
mod priority_overload;
mod retry_storm;

use std::time::Duration;

use crate::report::{Chart, Check, ScenarioReport, StackReport};

/// What a run is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The seed of every draw (arrivals, service times, faults, balancer and breaker draws).
    pub seed: u64,
    /// Simulated duration as a multiple of the scenario's default (phases scale with it).
    pub scale: f64,
}

impl Options {
    /// `duration` scaled.
    pub fn scaled(&self, duration: Duration) -> Duration {
        duration.mul_f64(self.scale)
    }
}

/// Told each stack's name as a scenario starts it.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// Runs a scenario.
pub type Run = fn(&Options, Progress<'_>) -> ScenarioReport;

/// A scenario: its name, what it shows, how long it runs by default, and the run itself,
/// which reports each stack's name to `progress` as it starts it.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// The name (`rampart-lab run NAME`).
    pub name: &'static str,
    /// One line on what happens.
    pub description: &'static str,
    /// The simulated duration at scale 1.
    pub duration: Duration,
    /// The stacks compared, in order.
    pub stacks: &'static [&'static str],
    /// Runs it.
    pub run: Run,
}

impl Scenario {
    /// The report of a run of it: `duration` simulated, series in bins of `bin`, the `charts`
    /// drawn from the `stacks`' series, and the `checks` on them.
    fn report(
        &self,
        duration: Duration,
        bin: Duration,
        charts: Vec<Chart>,
        stacks: Vec<StackReport>,
        checks: Vec<Check>,
    ) -> ScenarioReport {
        ScenarioReport {
            name: self.name.to_owned(),
            description: self.description.to_owned(),
            duration_s: duration.as_secs_f64(),
            bin_s: bin.as_secs_f64(),
            charts,
            stacks,
            checks,
        }
    }
}

/// Every scenario, in the order the lab runs them.
pub fn all() -> [Scenario; 17] {
    [
        overload::OVERLOAD,
        overload::OVERLOAD_IO,
        overload_runtime::OVERLOAD_RUNTIME,
        overload_runtime::OVERLOAD_RUNTIME_BLOCKING,
        outage::OUTAGE,
        retry_storm::RETRY_STORM,
        balancing::SLOW_ENDPOINT,
        balancing::BLACK_HOLE,
        full_stack::FULL_STACK,
        priority_overload::PRIORITY_OVERLOAD,
        deadline_overload::DEADLINE_OVERLOAD,
        deadline_chain::DEADLINE_CHAIN,
        fleet_storm::FLEET_STORM,
        fleet_layers::FLEET_LAYERS,
        hedge::HEDGE_TAIL,
        hedge::HEDGE_SHIFT,
        hedge::HEDGE_HEAVY,
    ]
}

/// The scenario named `name`.
pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|scenario| scenario.name == name)
}
