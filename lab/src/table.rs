//! Terminal tables: one per scenario, each threshold printed beside the figure it bounds, and a
//! summary of every check.

use std::fmt::Write as _;

use crate::report::{Check, LabReport, ScenarioReport};

/// A figure, with as many digits as its size deserves.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if value.is_nan() {
        "—".to_owned()
    } else if magnitude == 0.0 {
        "0".to_owned()
    } else if magnitude < 0.01 {
        format!("{value:.4}")
    } else if magnitude < 10.0 {
        format!("{value:.3}")
    } else if magnitude < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// How a check reads beside its figure: `[≥ 0.900 ok]`.
pub fn bound(check: &Check) -> String {
    let verdict = if check.passed { "ok" } else { "MISSED" };
    format!("[{} {} {verdict}]", check.op, number(check.threshold))
}

/// The figure names of a scenario, in the order its stacks first report them.
pub fn columns(scenario: &ScenarioReport) -> Vec<&str> {
    let mut columns: Vec<&str> = Vec::new();
    for stack in &scenario.stacks {
        for (name, _) in &stack.figures {
            if !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    columns
}

/// The cells of a scenario's table: a header row, then one row per stack.
pub fn cells(scenario: &ScenarioReport) -> Vec<Vec<String>> {
    let columns = columns(scenario);
    let mut rows = vec![
        std::iter::once("stack".to_owned())
            .chain(columns.iter().map(|&c| c.to_owned()))
            .collect::<Vec<_>>(),
    ];
    for stack in &scenario.stacks {
        let mut row = vec![stack.name.clone()];
        for &column in &columns {
            let mut cell = stack
                .figures
                .iter()
                .find(|(name, _)| name == column)
                .map_or_else(String::new, |&(_, value)| number(value));
            for check in scenario
                .checks
                .iter()
                .filter(|c| c.stack == stack.name && c.figure == column)
            {
                cell.push(' ');
                cell.push_str(&bound(check));
            }
            row.push(cell);
        }
        rows.push(row);
    }
    rows
}

/// A scenario's table, titled with its name and description.
pub fn scenario(scenario: &ScenarioReport) -> String {
    let rows = cells(scenario);
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| {
            rows.iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!("{} — {}\n", scenario.name, scenario.description);
    for (index, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &width))| {
                let pad = width - cell.chars().count();
                if c == 0 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        let _ = writeln!(out, "  {}", line.join("  "));
        if index == 0 {
            let rule: Vec<String> = widths.iter().map(|&w| "─".repeat(w)).collect();
            let _ = writeln!(out, "  {}", rule.join("  "));
        }
    }
    out
}

/// Every check of the run, one line each, and the verdict.
pub fn summary(report: &LabReport) -> String {
    let mut out = format!("summary (seed {})\n", report.seed);
    let mut missed = 0;
    for scenario in &report.scenarios {
        for check in &scenario.checks {
            missed += usize::from(!check.passed);
            let _ = writeln!(
                out,
                "  {:<14} {:<26} {:<22} {:>9} {}",
                scenario.name,
                check.stack,
                check.figure,
                number(check.value),
                bound(check)
            );
        }
    }
    let total: usize = report.scenarios.iter().map(|s| s.checks.len()).sum();
    let _ = writeln!(out, "  {} of {total} thresholds met", total - missed);
    out
}
