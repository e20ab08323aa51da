//! What a live run prints beside the lab's tables: per second, what each limiter saw and the
//! signals requests found as they reached each stack; per phase, those signals beside the
//! clients' p99 and timeouts.

use std::fmt::Write as _;

use super::signal_figures::PhaseSignals;
use crate::report::{ScenarioReport, StackReport};
use crate::table::number;

/// The per-second columns of what a limiter saw, from the overview's series.
const LIMITER_COLUMNS: [(&str, &str); 9] = [
    ("offered", "offered"),
    ("goodput", "goodput"),
    ("shed", "shed"),
    ("timeouts", "timeouts"),
    ("cpu", "cpu"),
    ("server_cpu", "server cpu"),
    ("inflight", "inflight"),
    ("max_inflight", "max inflight"),
    ("delay_ms", "delay ms"),
];

/// The per-second columns of the signals, from the overview's series.
const SIGNAL_COLUMNS: [(&str, &str); 12] = [
    ("offered", "offered"),
    ("goodput", "goodput"),
    ("timeouts", "timeouts"),
    ("delay_mean_ms", "delay ms"),
    ("delay_max_ms", "max"),
    ("age_mean_ms", "age ms"),
    ("age_max_ms", "max"),
    ("queue_mean", "queue"),
    ("queue_max", "max"),
    ("tasks_mean", "tasks"),
    ("tasks_max", "max"),
    ("busy", "busy"),
];

/// Per second, for each stack of the overview with a limiter: the load, goodput, shed and
/// timeouts (shares), and what its limiter saw.
pub fn limiter_seconds(overview: &ScenarioReport) -> String {
    let mut out = String::new();
    for stack in overview.stacks.iter().filter(|s| has_limiter(s)) {
        let _ = writeln!(out, "what {} saw, per second", stack.name);
        seconds(&mut out, stack, &LIMITER_COLUMNS, 12);
    }
    out
}

/// Per second, for every stack of the overview: the load, goodput and timeouts (shares), and
/// the signals requests found as they reached the stack (means and maxima).
pub fn signal_seconds(overview: &ScenarioReport) -> String {
    let mut out = String::new();
    for stack in &overview.stacks {
        let _ = writeln!(
            out,
            "signals at {}'s stack, per second (scheduling delay and request age in ms, tokio's \
             global queue depth and alive tasks: mean, max; worker busy share)",
            stack.name
        );
        seconds(&mut out, stack, &SIGNAL_COLUMNS, 9);
    }
    out
}

/// `stack`'s series in `columns`, one row per second, cells `width` wide.
fn seconds(out: &mut String, stack: &StackReport, columns: &[(&str, &str)], width: usize) {
    let header: Vec<String> = columns
        .iter()
        .map(|(_, title)| format!("  {title:>width$}"))
        .collect();
    let _ = writeln!(out, "  {:>4}{}", "s", header.join(""));
    let count = stack.series.get("goodput").map_or(0, Vec::len);
    for second in 0..count {
        let cells: Vec<String> = columns
            .iter()
            .map(|(series, _)| {
                let value = stack
                    .series
                    .get(*series)
                    .and_then(|values| values.get(second))
                    .copied()
                    .unwrap_or(f64::NAN);
                format!("  {:>width$}", number(value))
            })
            .collect();
        let _ = writeln!(out, "  {second:>4}{}", cells.join(""));
    }
    out.push('\n');
}

/// The "signals by phase" table: per stack and phase, each signal's mean and max over the
/// seconds wholly inside the phase, beside the clients' p99 and timeouts.
pub fn signals_by_phase(rows: &[PhaseSignals]) -> String {
    const TITLES: [&str; 15] = [
        "stack",
        "phase",
        "s",
        "delay ms",
        "max",
        "age ms",
        "max",
        "queue",
        "max",
        "tasks",
        "max",
        "busy",
        "unstamped",
        "p99 ms",
        "timeouts",
    ];
    let mut table: Vec<Vec<String>> = vec![TITLES.iter().map(|&t| t.to_owned()).collect()];
    for row in rows {
        let mut cells = vec![
            row.stack.clone(),
            row.phase.clone(),
            row.seconds.to_string(),
        ];
        cells.extend(
            [
                row.delay_mean_ms,
                row.delay_max_ms,
                row.age_mean_ms,
                row.age_max_ms,
                row.queue_mean,
                row.queue_max,
                row.tasks_mean,
                row.tasks_max,
                row.busy,
            ]
            .map(number),
        );
        cells.push(row.unstamped.to_string());
        cells.extend([row.p99_ms, row.timeouts].map(number));
        table.push(cells);
    }
    let widths: Vec<usize> = (0..TITLES.len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = "signals by phase (at the stack, over the seconds wholly inside each phase: \
                   scheduling delay and request age in ms, tokio's global queue depth and alive \
                   tasks, mean and max; worker busy share; the clients' p99 and timeout share)\n"
        .to_owned();
    for (index, row) in table.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &width))| {
                if c < 2 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        let _ = writeln!(out, "  {}", line.join("  "));
        if index == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "─".repeat(w)).collect();
            let _ = writeln!(out, "  {}", rule.join("  "));
        }
    }
    out.push('\n');
    out
}

fn has_limiter(stack: &StackReport) -> bool {
    stack
        .series
        .get("max_inflight")
        .is_some_and(|values| values.iter().any(|value| value.is_finite()))
}
