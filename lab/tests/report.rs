//! The report: the same seed gives the same JSON, and the HTML page is well-formed with each
//! scenario's charts in its section.

use quick_xml::Reader;
use quick_xml::events::Event;
use rampart_lab::{LabReport, Options, html, scenarios, table};

fn short_run(seed: u64) -> LabReport {
    rampart_lab::run(&scenarios::all(), Options { seed, scale: 0.2 }, |_, _| {})
}

#[test]
fn the_same_seed_gives_the_same_json_and_another_seed_does_not() {
    let first = serde_json::to_string(&short_run(3)).expect("serialisable");
    let second = serde_json::to_string(&short_run(3)).expect("serialisable");
    assert!(first == second, "two runs with seed 3 differ");
    let other = serde_json::to_string(&short_run(4)).expect("serialisable");
    assert!(first != other, "the seed changes nothing");
}

#[test]
fn the_html_page_parses_and_holds_each_scenarios_charts() {
    let report = short_run(5);
    let page = html::page(&report).expect("drawn");
    let mut reader = Reader::from_str(&page);
    let (mut sections, mut charts, mut depth) = (Vec::new(), Vec::new(), 0_i32);
    let mut current = None;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(element) => {
                depth += 1;
                match element.name().as_ref() {
                    b"section" => {
                        let id = element
                            .try_get_attribute("id")
                            .expect("valid attributes")
                            .expect("an id");
                        let id = String::from_utf8(id.value.into_owned()).expect("UTF-8");
                        sections.push(id.clone());
                        current = Some(id);
                    }
                    b"svg" => charts.push(current.clone().expect("charts sit in sections")),
                    _ => {}
                }
            }
            Event::End(_) => depth -= 1,
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced elements");
    let names: Vec<String> = report.scenarios.iter().map(|s| s.name.clone()).collect();
    assert_eq!(sections, names);
    let expected: Vec<String> = report
        .scenarios
        .iter()
        .flat_map(|s| {
            assert!(!s.charts.is_empty(), "{} has no chart", s.name);
            vec![s.name.clone(); s.charts.len()]
        })
        .collect();
    assert_eq!(charts, expected, "each scenario's charts, in its section");
    for scenario in &report.scenarios {
        for stack in &scenario.stacks {
            assert!(
                page.contains(&html::escape(&stack.name)),
                "{} is missing",
                stack.name
            );
        }
    }
}

#[test]
fn tables_print_each_threshold_beside_its_figure() {
    let report = short_run(6);
    for scenario in &report.scenarios {
        let text = table::scenario(scenario);
        for check in &scenario.checks {
            let line = text
                .lines()
                .find(|line| line.trim_start().starts_with(&check.stack))
                .unwrap_or_else(|| panic!("no row for {}", check.stack));
            assert!(
                line.contains(&table::bound(check)),
                "{line:?} lacks {}",
                table::bound(check)
            );
        }
    }
    let summary = table::summary(&report);
    let checks: usize = report.scenarios.iter().map(|s| s.checks.len()).sum();
    assert!(summary.contains(&format!("of {checks} thresholds met")));
}
