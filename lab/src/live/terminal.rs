//! What a live run prints beside the lab's tables: per second, what each limiter saw.

use std::fmt::Write as _;

use crate::report::{ScenarioReport, StackReport};
use crate::table::number;

/// The per-second columns printed, from the overview's series.
const COLUMNS: [(&str, &str); 9] = [
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

/// Per second, for each stack of the overview with a limiter: the load, goodput, shed and
/// timeouts (shares), and what its limiter saw.
pub fn limiter_seconds(overview: &ScenarioReport) -> String {
    let mut out = String::new();
    for stack in overview.stacks.iter().filter(|s| has_limiter(s)) {
        let _ = writeln!(out, "what {} saw, per second", stack.name);
        let header: Vec<String> = COLUMNS
            .iter()
            .map(|(_, title)| format!("  {title:>12}"))
            .collect();
        let _ = writeln!(out, "  {:>4}{}", "s", header.join(""));
        let seconds = stack.series.get("goodput").map_or(0, Vec::len);
        for second in 0..seconds {
            let cells: Vec<String> = COLUMNS
                .iter()
                .map(|(series, _)| {
                    let value = stack
                        .series
                        .get(*series)
                        .and_then(|values| values.get(second))
                        .copied()
                        .unwrap_or(f64::NAN);
                    format!("  {:>12}", number(value))
                })
                .collect();
            let _ = writeln!(out, "  {second:>4}{}", cells.join(""));
        }
        out.push('\n');
    }
    out
}

fn has_limiter(stack: &StackReport) -> bool {
    stack
        .series
        .get("max_inflight")
        .is_some_and(|values| values.iter().any(|value| value.is_finite()))
}
