//! The driver: finds the server's capacity, then for each stack starts a server child, loads
//! it with the script's arrivals while watching it, and stops it.

use std::path::PathBuf;
use std::time::Duration;

use super::aggregate::BIN;
use super::child::ServerChild;
use super::load::{self, Sent, Target};
use super::observe::{self, Observation};
use super::script::Script;
use super::stacks::{self, Stack};
use super::work::Handler;

/// Requests the generator lets wait at once; arrivals beyond are counted as unsent.
pub const MAX_IN_FLIGHT: usize = 1_000;
/// Closed-loop clients of the capacity measurement.
const CAPACITY_CLIENTS: usize = 32;
/// The capacity measurement's warm-up, and its length.
const CAPACITY_WARM_UP: Duration = Duration::from_millis(500);
const CAPACITY_MEASURE: Duration = Duration::from_secs(2);

/// One stack's run: what was sent and what the server showed.
#[derive(Debug, Clone)]
pub struct StackRun {
    /// The stack.
    pub stack: Stack,
    /// The requests and their fates.
    pub sent: Sent,
    /// The looks at the server, one a second.
    pub seen: Vec<Observation>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The seed of the arrivals.
    pub seed: u64,
    /// The offered load over time.
    pub script: Script,
    /// The stacks, in order.
    pub stacks: Vec<Stack>,
    /// How the handler spends its CPU.
    pub handler: Handler,
    /// The client's timeout.
    pub timeout: Duration,
    /// `cgroup.procs` files each server child joins.
    pub join: Vec<PathBuf>,
}

/// The unprotected server's capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Successes per second under closed-loop load.
    pub rps: f64,
    /// The CPUs the server process used meanwhile (NaN where `/proc` does not tell): under
    /// one while it has a CPU of its own means the host's other work took part of it.
    pub cpus: f64,
}

/// Below this many CPUs used while the capacity was measured, the server did not have its CPU
/// (the host's other work, or a starved client, took it).
pub const SHORT_OF_CPU: f64 = 0.9;

impl Capacity {
    /// The capacity of the server with its whole CPU, in requests per second: as measured
    /// when it had at least [`SHORT_OF_CPU`], scaled to one CPU otherwise (the CPU one request
    /// costs, measured, divides the CPU the server has: its threads can use one).
    pub fn of_one_cpu(&self) -> f64 {
        if self.is_short_of_cpu() {
            self.rps / self.cpus
        } else {
            self.rps
        }
    }

    /// Whether the server had less than its CPU while measured.
    pub fn is_short_of_cpu(&self) -> bool {
        self.cpus.is_finite() && self.cpus > 0.01 && self.cpus < SHORT_OF_CPU
    }
}

/// Measures the capacity of the unprotected server: closed-loop clients for a few seconds,
/// and the server's CPU use meanwhile.
///
/// # Errors
///
/// If the server cannot be started.
pub async fn capacity(spec: &Spec) -> Result<Capacity, String> {
    let unprotected = stacks::find("none").ok_or("the stack table has no 'none'")?;
    let child = start(spec, unprotected)?;
    let target = Target::new(child.addr());
    let pid = child.id();
    let cpu_use = async {
        tokio::time::sleep(CAPACITY_WARM_UP).await;
        let before = observe::process_cpu_seconds(pid);
        tokio::time::sleep(CAPACITY_MEASURE).await;
        match (before, observe::process_cpu_seconds(pid)) {
            (Some(before), Some(after)) => (after - before) / CAPACITY_MEASURE.as_secs_f64(),
            _ => f64::NAN,
        }
    };
    let (rps, cpus) = tokio::join!(
        load::capacity(
            &target,
            CAPACITY_CLIENTS,
            CAPACITY_WARM_UP,
            CAPACITY_MEASURE
        ),
        cpu_use,
    );
    Ok(Capacity { rps, cpus })
}

/// Runs every stack of `spec` at `capacity`, telling `progress` each stack as it starts it.
///
/// # Errors
///
/// If a server cannot be started.
pub async fn stacks(
    spec: &Spec,
    capacity: f64,
    mut progress: impl FnMut(&Stack),
) -> Result<Vec<StackRun>, String> {
    let arrivals = spec.script.arrivals(spec.seed, capacity);
    let looks = (spec.script.duration().as_secs_f64() / BIN.as_secs_f64()).ceil() as u32 + 1;
    let mut runs = Vec::with_capacity(spec.stacks.len());
    for &stack in &spec.stacks {
        progress(&stack);
        let child = start(spec, stack)?;
        // The watcher's own pool: its polls never wait behind the load's connections.
        let (target, watcher) = (Target::new(child.addr()), Target::new(child.addr()));
        let (sent, seen) = tokio::join!(
            load::open_loop(&target, &arrivals, spec.timeout, MAX_IN_FLIGHT),
            observe::watch(&watcher, Some(child.id()), BIN, looks),
        );
        drop(child);
        runs.push(StackRun { stack, sent, seen });
    }
    Ok(runs)
}

fn start(spec: &Spec, stack: Stack) -> Result<ServerChild, String> {
    ServerChild::start(stack.name, spec.handler, &spec.join)
        .map_err(|error| format!("cannot start the server for {}: {error}", stack.name))
}
