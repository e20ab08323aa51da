//! The results of a lab run: per scenario, per stack, summary figures and time series, and the
//! checks against the thresholds.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// Everything one run of the lab measured.
#[derive(Debug, Clone, Serialize)]
pub struct LabReport {
    /// The seed every scenario drew from.
    pub seed: u64,
    /// The scenarios, in the order they ran.
    pub scenarios: Vec<ScenarioReport>,
}

/// One scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// The scenario's name (`rampart-lab run NAME`).
    pub name: String,
    /// What happens in it.
    pub description: String,
    /// Simulated seconds.
    pub duration_s: f64,
    /// Width of a series bin, in seconds.
    pub bin_s: f64,
    /// The charts of the report, the headline first: each draws one series of every stack.
    pub charts: Vec<Chart>,
    /// Each stack's results, in the order they ran.
    pub stacks: Vec<StackReport>,
    /// The thresholds rampart's stacks are held to.
    pub checks: Vec<Check>,
}

/// A table of figures: named columns, and rows each a label and one value per column (NaN,
/// `null` in JSON, when there is nothing to measure).
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    /// What it shows.
    pub title: String,
    /// The name of the label column, then of each value column.
    pub columns: Vec<String>,
    /// Each row's label and values.
    pub rows: Vec<(String, Vec<f64>)>,
}

/// Which series a chart draws: one series of every stack (a line per stack), or several
/// series of one stack (a line per series, [`Chart::of_stack`]).
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// The series' name in every stack; for a chart of one stack, the chart's own name, unique
    /// in its scenario.
    pub series: String,
    /// The y axis's label.
    pub y_label: String,
    /// The x axis's label, when it is not simulated time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_label: Option<String>,
    /// The one stack drawn, for a chart of one stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// For a chart of one stack: each line's label and the series it draws.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<(String, String)>,
}

impl Chart {
    /// A chart of `series` over simulated time, its y axis labelled `y_label`.
    pub fn new(series: &str, y_label: &str) -> Self {
        Self {
            series: series.to_owned(),
            y_label: y_label.to_owned(),
            x_label: None,
            stack: None,
            lines: Vec::new(),
        }
    }

    /// A chart named `name` of `stack` alone, one line per `(label, series)` of `lines`.
    pub fn of_stack(name: &str, stack: &str, lines: &[(&str, &str)], y_label: &str) -> Self {
        Self {
            stack: Some(stack.to_owned()),
            lines: lines
                .iter()
                .map(|&(label, series)| (label.to_owned(), series.to_owned()))
                .collect(),
            ..Self::new(name, y_label)
        }
    }

    /// The chart of the series `p99_ms`, the per-bin p99 of successes (`sim::p99_series`).
    pub fn p99() -> Self {
        Self::new("p99_ms", "p99 of successes (ms)")
    }

    /// The chart, its x axis labelled `x_label`.
    #[must_use]
    pub fn with_x_label(self, x_label: &str) -> Self {
        Self {
            x_label: Some(x_label.to_owned()),
            ..self
        }
    }
}

/// One stack's results in a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct StackReport {
    /// The stack's name.
    pub name: String,
    /// Summary figures, by name, in the order the scenario reports them (NaN, `null` in
    /// JSON, when there is nothing to measure: the p99 of no successes).
    #[serde(serialize_with = "in_order")]
    pub figures: Vec<(String, f64)>,
    /// Time series, one value per bin, by name.
    pub series: BTreeMap<String, Vec<f64>>,
    /// Tables of the stack's figures beyond its row (its figures per phase and class), shown
    /// below the scenario's table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<Table>,
}

impl StackReport {
    /// An empty report for `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            figures: Vec::new(),
            series: BTreeMap::new(),
            tables: Vec::new(),
        }
    }

    /// Adds a table.
    #[must_use]
    pub fn table(mut self, table: Table) -> Self {
        self.tables.push(table);
        self
    }

    /// Adds a figure (or replaces the one of that name).
    #[must_use]
    pub fn figure(mut self, name: &str, value: f64) -> Self {
        self.set(name, value);
        self
    }

    /// Sets a figure.
    pub fn set(&mut self, name: &str, value: f64) {
        match self.figures.iter_mut().find(|(figure, _)| figure == name) {
            Some((_, old)) => *old = value,
            None => self.figures.push((name.to_owned(), value)),
        }
    }

    /// Adds a series.
    #[must_use]
    pub fn series(mut self, name: &str, values: Vec<f64>) -> Self {
        self.series.insert(name.to_owned(), values);
        self
    }

    /// A figure's value (NaN when missing).
    pub fn get(&self, name: &str) -> f64 {
        self.figures
            .iter()
            .find(|(figure, _)| figure == name)
            .map_or(f64::NAN, |&(_, value)| value)
    }
}

/// A threshold a stack's figure must meet.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The stack held to it.
    pub stack: String,
    /// The figure checked.
    pub figure: String,
    /// How the value must compare with the bound.
    pub op: Op,
    /// The bound.
    pub threshold: f64,
    /// The measured value.
    pub value: f64,
    /// Whether the value meets the bound.
    pub passed: bool,
}

impl Check {
    /// `stack`'s `figure` must be at least `threshold`.
    pub fn at_least(stacks: &[StackReport], stack: &str, figure: &str, threshold: f64) -> Self {
        Self::new(stacks, stack, figure, Op::AtLeast, threshold)
    }

    /// `stack`'s `figure` must be at most `threshold`.
    pub fn at_most(stacks: &[StackReport], stack: &str, figure: &str, threshold: f64) -> Self {
        Self::new(stacks, stack, figure, Op::AtMost, threshold)
    }

    fn new(stacks: &[StackReport], stack: &str, figure: &str, op: Op, threshold: f64) -> Self {
        let value = self::figure(stacks, stack, figure);
        let passed = match op {
            Op::AtLeast => value >= threshold,
            Op::AtMost => value <= threshold,
        };
        Self {
            stack: stack.to_owned(),
            figure: figure.to_owned(),
            op,
            threshold,
            value,
            passed,
        }
    }
}

/// How a check's value must compare with its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    /// At least the bound.
    #[serde(rename = ">=")]
    AtLeast,
    /// At most the bound.
    #[serde(rename = "<=")]
    AtMost,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AtLeast => "≥",
            Self::AtMost => "≤",
        })
    }
}

/// `stack`'s `figure` among `stacks` (NaN when either is missing).
pub fn figure(stacks: &[StackReport], stack: &str, figure: &str) -> f64 {
    stacks
        .iter()
        .find(|s| s.name == stack)
        .map_or(f64::NAN, |s| s.get(figure))
}

impl LabReport {
    /// Whether every scenario met every threshold.
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(ScenarioReport::passed)
    }
}

impl ScenarioReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|check| check.passed)
    }

    /// The stack named `name`.
    pub fn stack(&self, name: &str) -> Option<&StackReport> {
        self.stacks.iter().find(|stack| stack.name == name)
    }
}

/// Serialises figures as a JSON object whose keys keep their order.
fn in_order<S: Serializer>(figures: &[(String, f64)], serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(figures.len()))?;
    for (name, value) in figures {
        map.serialize_entry(name, value)?;
    }
    map.end()
}
