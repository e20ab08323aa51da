//! The self-contained HTML report: a summary of the checks, then per scenario its description,
//! its charts (inline SVGs drawn by `plotters`, one line per stack) and its figures.
//!
//! The page is also well-formed XML, so tools (and the lab's tests) can parse it.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::Serialize;

use crate::report::{Chart, LabReport, ScenarioReport, Table};
use crate::table;

const CHART_SIZE: (u32, u32) = (960, 380);
/// Line colours, one per stack (rampart's stacks come last in each scenario).
const COLOURS: [RGBColor; 8] = [
    RGBColor(150, 150, 150),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 114, 178),
    RGBColor(204, 121, 167),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(40, 40, 40),
];

/// Escapes text for HTML (and XML).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One of a scenario's charts, as an SVG document: the chart's series over time, one line per
/// stack.
///
/// # Errors
///
/// If `plotters` fails to draw (it does not, into a string).
pub fn chart(
    scenario: &ScenarioReport,
    chart: &Chart,
) -> Result<String, Box<dyn std::error::Error>> {
    let points = |values: Option<&Vec<f64>>| -> Vec<(f64, f64)> {
        values
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .enumerate()
            .map(|(bin, &value)| ((bin as f64 + 0.5) * scenario.bin_s, value))
            .filter(|(_, value)| value.is_finite())
            .collect()
    };
    let lines: Vec<(&str, Vec<(f64, f64)>)> = match &chart.stack {
        // One stack, a line per series.
        Some(name) => {
            let stack = scenario.stack(name);
            chart
                .lines
                .iter()
                .map(|(label, series)| {
                    let values = stack.and_then(|stack| stack.series.get(series));
                    (label.as_str(), points(values))
                })
                .collect()
        }
        None => scenario
            .stacks
            .iter()
            .map(|stack| (stack.name.as_str(), points(stack.series.get(&chart.series))))
            .collect(),
    };
    let caption = match &chart.stack {
        Some(stack) => format!("{}: {stack}", scenario.name),
        None => scenario.name.clone(),
    };
    let highest = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|&(_, y)| y))
        .fold(0.0_f64, f64::max);
    // Headroom above the highest line for the legend.
    let top = if highest <= 0.0 { 1.0 } else { highest * 1.45 };

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut plot = ChartBuilder::on(&root)
            .caption(&caption, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..scenario.duration_s, 0.0..top)?;
        plot.configure_mesh()
            .x_desc(chart.x_label.as_deref().unwrap_or("simulated time (s)"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .y_desc(chart.y_label.as_str())
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (index, (name, points)) in lines.into_iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            let width = if chart.stack.is_none() && name.starts_with("rampart") {
                3
            } else {
                2
            };
            plot.draw_series(LineSeries::new(points, colour.stroke_width(width)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
                });
        }
        plot.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 14))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// Writes `json` as `report.json` (pretty-printed) and the page of `lab` as `report.html`
/// into `folder`, creating it if need be.
///
/// # Errors
///
/// If the folder or a file cannot be written, `json` fails to serialise, or a chart fails to
/// draw.
pub fn write_report(
    folder: &Path,
    json: &impl Serialize,
    lab: &LabReport,
) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(folder)?;
    std::fs::write(
        folder.join("report.json"),
        serde_json::to_string_pretty(json)?,
    )?;
    std::fs::write(folder.join("report.html"), page(lab)?)?;
    Ok(())
}

/// The whole report as one HTML page.
///
/// # Errors
///
/// If a chart fails to draw.
pub fn page(report: &LabReport) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    out.push_str("<title>rampart lab report</title>\n<style>\n");
    out.push_str(STYLE);
    out.push_str("</style>\n</head>\n<body>\n");
    let _ = writeln!(
        out,
        "<h1>rampart lab report</h1>\n<p>Seed {}. Every stack of a scenario receives the same arrivals; goodput counts successes within the client's deadline.</p>",
        report.seed
    );
    out.push_str("<h2>Thresholds</h2>\n<table>\n<tr><th>scenario</th><th>stack</th><th>figure</th><th>value</th><th>threshold</th></tr>\n");
    for scenario in &report.scenarios {
        for check in &scenario.checks {
            let class = if check.passed { "ok" } else { "missed" };
            let _ = writeln!(
                out,
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&scenario.name),
                escape(&check.stack),
                escape(&check.figure),
                table::number(check.value),
                escape(&table::bound(check)),
            );
        }
    }
    out.push_str("</table>\n");
    for scenario in &report.scenarios {
        let _ = writeln!(
            out,
            "<section id=\"{}\">\n<h2>{}</h2>\n<p>{}</p>",
            escape(&scenario.name),
            escape(&scenario.name),
            escape(&scenario.description)
        );
        for one in &scenario.charts {
            out.push_str("<figure>\n");
            out.push_str(&chart(scenario, one)?);
            out.push_str("\n</figure>\n");
        }
        out.push_str("<table>\n");
        for (index, row) in table::cells(scenario).iter().enumerate() {
            let tag = if index == 0 { "th" } else { "td" };
            out.push_str("<tr>");
            for cell in row {
                let _ = write!(out, "<{tag}>{}</{tag}>", escape(cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
        for stack in &scenario.stacks {
            for one in &stack.tables {
                table_of(&mut out, one);
            }
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    Ok(out)
}

/// Writes `table` with its title.
fn table_of(out: &mut String, table: &Table) {
    let _ = writeln!(out, "<h3>{}</h3>\n<table>\n<tr>", escape(&table.title));
    for column in &table.columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out.push_str("</tr>\n");
    for (label, values) in &table.rows {
        let _ = write!(out, "<tr><td>{}</td>", escape(label));
        for &value in values {
            let _ = write!(out, "<td>{}</td>", escape(&table::number(value)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

const STYLE: &str =
    "body { font-family: sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.ok td:last-child { color: #0a7d3b; }
tr.missed td:last-child { color: #b00020; font-weight: bold; }
figure { margin: 0; }
";
