//! `rampart-lab live`: the overload scenario on a real server, in real time.
//!
//! A real axum server runs in a child process (this binary, as the hidden `live-server`
//! command), so that its CPU is its own: one tokio worker thread, a handler burning about
//! 2 ms of CPU per request (yielding to the runtime three times, or never), behind one of the
//! [`stacks`], and a `/stats` route beside them telling what the stack's limiter sees. Where
//! this process may create a cgroup (root on Linux), the child runs in one limited to one
//! CPU, as in a pod with a 1-CPU limit; the report says whether it did.
//!
//! The driver first measures the unprotected server's capacity (closed loop, 2 s; scaled to a
//! whole CPU when the server had less, on a busy host, and said so), then loads
//! each stack with the lab's own open-loop generator (a hyper client; Poisson arrivals from
//! the lab's seeded generator, the same for every stack; a 200 ms client timeout): 0.5×, 1×,
//! 2× and 3× capacity for `--seconds-per-phase` each (2.5 s by default) and a ramp from 0.5×
//! to 3× over twice that, about 15 s per stack and under two minutes for the seven stacks of
//! the default run (four more run when `--stacks` names them: tower's limit at 3 and 4, and
//! two that isolate the scheduling-delay rule). Goodput is the answers within the timeout, as a share of capacity.
//!
//! For every stack, the server also measures the candidate signals for the queue in front of
//! the limiter, at the moment each request reaches the stack (see [`signals`]): the scheduling
//! delay a heartbeat measures, tokio's global queue depth and alive tasks, the worker's busy
//! share, and the request's age from the `x-request-start` stamp the load generator puts on it
//! at its arrival.
//!
//! `--check` (CI) runs `none` and `rampart` on a shorter script (0.5×, a ramp to 2×, 2×) and
//! fails unless rampart's default stack keeps its goodput and p99 at 2× and beats `none`.
//!
//! The report: the lab's tables (one per phase) and charts (per second: goodput, p99, shed,
//! timeouts, what each limiter saw: CPU, in-flight, max in-flight, scheduling delay; and the
//! signals at each stack), a "signals by phase" table (each signal's mean and max per stack
//! and phase, beside the clients' p99 and timeouts), in `live/report.html` and
//! `live/report.json` under the lab's output folder.

pub mod aggregate;
pub mod cgroup;
pub mod child;
pub mod load;
pub mod observe;
pub mod report;
pub mod run;
pub mod script;
pub mod server;
pub mod signal_figures;
pub mod signals;
pub mod stacks;
pub mod stats;
pub mod terminal;
pub mod work;

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub use self::server::{ServerArgs, child_main};

use self::cgroup::{Cgroup, CgroupMode};
use self::report::{LiveReport, Setup};
use self::run::StackRun;
use self::script::Script;
use self::server::WORK;
use self::work::Handler;
use crate::{html, table};

/// The client's timeout.
pub const TIMEOUT: Duration = Duration::from_millis(200);

/// `rampart-lab live`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct LiveArgs {
    /// Run the server in a cgroup limited to one CPU: when this process may create one
    /// (auto), never (off), or always, failing when it cannot (on).
    #[arg(long, value_enum, default_value_t = CgroupMode::Auto)]
    pub cgroup: CgroupMode,
    /// How the handler spends its 2 ms of CPU: yielding to the runtime between four slices,
    /// or blocking its worker throughout.
    #[arg(long, value_enum, default_value_t = Handler::Yielding)]
    pub handler: Handler,
    /// The stacks to run, comma-separated [default: the first seven; with --check:
    /// none,rampart]: none, tower-2, tower-16, rampart, rampart-cpu, rampart-latency,
    /// rampart-either, and, only when named, tower-3, tower-4, rampart-no-delay and
    /// rampart-delay-25.
    #[arg(long, value_delimiter = ',')]
    pub stacks: Option<Vec<String>>,
    /// Seconds each load level lasts (the ramp lasts twice that).
    #[arg(long, default_value_t = 2.5)]
    pub seconds_per_phase: f64,
    /// The CI check: a ramp to 2× capacity; rampart's default stack must keep its goodput
    /// and p99, and beat the unprotected server.
    #[arg(long)]
    pub check: bool,
}

/// Runs `rampart-lab live`: prints the tables, writes the report under `out`, and fails when
/// a threshold is missed.
pub fn main(args: &LiveArgs, seed: u64, out: &Path) -> ExitCode {
    let started = Instant::now();
    let (script, chosen) = match choose(args) {
        Ok(chosen) => chosen,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(2);
        }
    };
    let (cgroup, place) = match place(args.cgroup) {
        Ok(placed) => placed,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    println!("live: the server runs {place}");
    let spec = run::Spec {
        seed,
        script,
        stacks: chosen,
        handler: args.handler,
        timeout: TIMEOUT,
        join: cgroup
            .as_ref()
            .map(|c| c.procs().to_vec())
            .unwrap_or_default(),
    };
    let measured = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the driver's runtime: {error}"))
        .and_then(|runtime| {
            runtime.block_on(async {
                tokio::select! {
                    measured = measure(&spec) => measured,
                    _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
                }
            })
        });
    // The children are gone: remove the cgroup before reporting.
    drop(cgroup);
    let (capacity, runs) = match measured {
        Ok(measured) => measured,
        Err(error) => {
            eprintln!("live: {error}");
            return ExitCode::FAILURE;
        }
    };
    let setup = Setup {
        capacity_rps: capacity.of_one_cpu(),
        measured_rps: capacity.rps,
        capacity_cpus: capacity.cpus,
        handler: args.handler,
        work_ms: WORK.as_secs_f64() * 1e3,
        timeout_ms: TIMEOUT.as_secs_f64() * 1e3,
        cgroup: format!("the server ran {place}"),
        check: args.check,
    };
    let mut live = report::build(setup, seed, &spec.script, &runs);
    live.wall_s = started.elapsed().as_secs_f64();
    print(&live);
    let folder = out.join(if args.check { "live-check" } else { "live" });
    if let Err(error) = html::write_report(&folder, &live, &live.lab) {
        eprintln!(
            "could not write the report to {}: {error}",
            folder.display()
        );
        return ExitCode::FAILURE;
    }
    println!(
        "report: {} ({:.1} s)",
        folder.join("report.html").display(),
        live.wall_s
    );
    if live.passed() {
        ExitCode::SUCCESS
    } else {
        eprintln!("rampart's default stack missed a live threshold (marked MISSED above)");
        ExitCode::FAILURE
    }
}

/// The script and the stacks `args` ask for.
fn choose(args: &LiveArgs) -> Result<(Script, Vec<stacks::Stack>), String> {
    let script = if args.check {
        Script::check(args.seconds_per_phase)
    } else {
        Script::levels(args.seconds_per_phase)
    };
    let script = script.map_err(|error| format!("--seconds-per-phase: {error}"))?;
    let names = args.stacks.clone().unwrap_or_else(|| {
        if args.check {
            vec![report::UNPROTECTED.to_owned(), report::HELD.to_owned()]
        } else {
            stacks::by_default()
                .map(|stack| stack.name.to_owned())
                .collect()
        }
    });
    let chosen = stacks::chosen(&names).map_err(|error| format!("--stacks: {error}"))?;
    let has = |name: &str| chosen.iter().any(|stack| stack.name == name);
    if args.check && !(has(report::UNPROTECTED) && has(report::HELD)) {
        return Err("--check compares the stacks 'none' and 'rampart': keep both".to_owned());
    }
    Ok((script, chosen))
}

/// The cgroup the server runs in (per `mode`), and where it runs, in words.
fn place(mode: CgroupMode) -> Result<(Option<Cgroup>, String), String> {
    if mode == CgroupMode::Off {
        return Ok((
            None,
            "NOT in a CPU-limited cgroup (--cgroup off)".to_owned(),
        ));
    }
    match Cgroup::create() {
        Ok(cgroup) => {
            let place = format!("in {}", cgroup.description());
            Ok((Some(cgroup), place))
        }
        Err(reason) if mode == CgroupMode::On => Err(format!(
            "--cgroup on: cannot create a CPU-limited cgroup: {reason}"
        )),
        Err(reason) => Ok((None, format!("NOT in a CPU-limited cgroup ({reason})"))),
    }
}

/// The capacity, then every stack's run, telling progress on standard error.
async fn measure(spec: &run::Spec) -> Result<(run::Capacity, Vec<StackRun>), String> {
    let total = spec.stacks.len();
    eprintln!("live: measuring the unprotected server's capacity (closed loop, 2.5 s)");
    let capacity = run::capacity(spec).await?;
    println!(
        "live: capacity {:.0} requests/s ({:.0} measured, the server using {:.2} CPU); {:.1} s \
         of load per stack",
        capacity.of_one_cpu(),
        capacity.rps,
        capacity.cpus,
        spec.script.duration().as_secs_f64()
    );
    if capacity.is_short_of_cpu() {
        println!(
            "live: WARNING: the server had {:.2} of its CPU while its capacity was measured, \
             so its capacity is the measured one scaled to a whole CPU: the host is busy, and \
             every figure of this run depends on what else runs on it",
            capacity.cpus
        );
    }
    if capacity.of_one_cpu() < 10.0 {
        return Err(format!(
            "the server's capacity is implausible: {:.1} requests/s",
            capacity.of_one_cpu()
        ));
    }
    let mut index = 0;
    let runs = run::stacks(spec, capacity.of_one_cpu(), |stack| {
        index += 1;
        eprintln!("live: [{index}/{total}] {} ({})", stack.name, stack.what);
    })
    .await?;
    Ok((capacity, runs))
}

fn print(live: &LiveReport) {
    let mut text = String::new();
    for scenario in &live.lab.scenarios {
        text.push_str(&table::scenario(scenario));
        text.push('\n');
    }
    if let Some(overview) = live.lab.scenarios.first() {
        text.push_str(&terminal::limiter_seconds(overview));
        text.push_str(&terminal::signal_seconds(overview));
    }
    text.push_str(&terminal::signals_by_phase(&live.signals_by_phase));
    text.push_str(&table::summary(&live.lab));
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
