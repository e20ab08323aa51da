//! `rampart-lab`: runs the scenarios, prints their tables, writes `report.json`,
//! `report.html` and each scenario's charts (`NAME.svg`, the headline, and `NAME-SERIES.svg`),
//! and exits non-zero if a rampart result misses its threshold. `rampart-lab live` runs the
//! overload scenario on a real server instead (see the library's `live` module).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rampart_lab::{LabReport, Options, Scenario, html, live, scenarios, table};

/// Fault-injection scenarios comparing rampart's layers with the unprotected stack and tower's
/// built-ins, on simulated traffic.
#[derive(Debug, Parser)]
#[command(name = "rampart-lab", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Seed of every random draw: the same seed gives the same report.
    #[arg(long, default_value_t = 1, global = true)]
    seed: u64,
    /// Where to write report.json, report.html and the charts.
    #[arg(long, default_value = "target/rampart-lab", global = true)]
    out: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists the scenarios.
    List,
    /// Runs one scenario.
    Run {
        /// The scenario's name (see `list`).
        name: String,
        /// Simulated seconds (the phases scale with it); the scenario's default otherwise.
        #[arg(long)]
        duration: Option<f64>,
    },
    /// The overload scenario on a real axum server in a child process, in real time (under
    /// two minutes): every stack at 0.5, 1, 2 and 3× the server's capacity and on a ramp.
    Live(live::LiveArgs),
    /// The live mode's server (started by `live`).
    #[command(hide = true)]
    LiveServer(live::ServerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (chosen, scale) = match cli.command {
        Some(Command::List) => {
            for scenario in scenarios::all() {
                println!(
                    "{:<14} {:>4} s  {}",
                    scenario.name,
                    scenario.duration.as_secs(),
                    scenario.description
                );
            }
            return ExitCode::SUCCESS;
        }
        Some(Command::Run { name, duration }) => {
            let Some(scenario) = scenarios::find(&name) else {
                eprintln!("no scenario named {name:?}; `rampart-lab list` shows them");
                return ExitCode::from(2);
            };
            let scale = match duration {
                None => 1.0,
                Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
                    seconds / scenario.duration.as_secs_f64()
                }
                Some(seconds) => {
                    eprintln!("--duration must be a positive number of seconds, not {seconds}");
                    return ExitCode::from(2);
                }
            };
            (vec![scenario], scale)
        }
        None => (scenarios::all().to_vec(), 1.0),
        Some(Command::Live(args)) => return live::main(&args, cli.seed, &cli.out),
        Some(Command::LiveServer(args)) => return live::child_main(&args),
    };
    let options = Options {
        seed: cli.seed,
        scale,
    };
    let started = Instant::now();
    let report = run_with_progress(&chosen, options);
    for scenario in &report.scenarios {
        print_out(&format!("{}\n", table::scenario(scenario)));
    }
    print_out(&table::summary(&report));
    match write(&report, &cli.out) {
        Ok(()) => print_out(&format!(
            "report: {} ({:.1} s); the figures and every series in {}, the charts beside them\n",
            cli.out.join("report.html").display(),
            started.elapsed().as_secs_f64(),
            cli.out.join("report.json").display(),
        )),
        Err(error) => {
            eprintln!(
                "could not write the report to {}: {error}",
                cli.out.display()
            );
            return ExitCode::FAILURE;
        }
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        eprintln!("a rampart result missed its threshold (marked MISSED above)");
        ExitCode::FAILURE
    }
}

/// Runs the scenarios with a progress bar each, counting their stacks.
fn run_with_progress(chosen: &[Scenario], options: Options) -> LabReport {
    let style = ProgressStyle::with_template("{prefix:>14} [{bar:24}] {pos}/{len} {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let mut reports = Vec::new();
    for scenario in chosen {
        let bar = ProgressBar::new(scenario.stacks.len() as u64)
            .with_style(style.clone())
            .with_prefix(scenario.name);
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut started = false;
        let one = rampart_lab::run(std::slice::from_ref(scenario), options, |_, stack| {
            if started {
                bar.inc(1);
            }
            started = true;
            bar.set_message(stack.to_owned());
        });
        bar.inc(1);
        bar.finish_with_message("done");
        reports.extend(one.scenarios);
    }
    LabReport {
        seed: options.seed,
        scenarios: reports,
    }
}

/// Prints to stdout; a closed pipe (`rampart-lab | head`) is not an error worth a panic.
fn print_out(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn write(report: &LabReport, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    html::write_report(out, report, report)?;
    for scenario in &report.scenarios {
        for (index, chart) in scenario.charts.iter().enumerate() {
            let name = if index == 0 {
                format!("{}.svg", scenario.name)
            } else {
                format!("{}-{}.svg", scenario.name, chart.series)
            };
            std::fs::write(out.join(name), html::chart(scenario, chart)?)?;
        }
    }
    Ok(())
}
