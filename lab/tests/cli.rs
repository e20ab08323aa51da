//! The `rampart-lab` binary: its commands, its report files and its exit status.

use std::path::PathBuf;
use std::process::Command;

fn lab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart-lab"))
}

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn list_names_every_scenario() {
    let output = lab().arg("list").output().expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    for scenario in rampart_lab::scenarios::all() {
        assert!(
            text.contains(scenario.name),
            "{} is not listed",
            scenario.name
        );
    }
}

#[test]
fn run_writes_the_json_and_html_reports_and_exits_zero() {
    let out = out_dir("cli-run");
    let output = lab()
        .args(["run", "outage", "--duration", "20", "--seed", "2", "--out"])
        .arg(&out)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("rampart breaker Adaptive"),
        "no table: {stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("written"))
            .expect("JSON");
    assert_eq!(json["seed"], 2);
    assert_eq!(json["scenarios"][0]["name"], "outage");
    assert_eq!(json["scenarios"][0]["duration_s"], 20.0);
    assert!(
        std::fs::read_to_string(out.join("report.html"))
            .expect("written")
            .contains("<svg")
    );
}

#[test]
fn an_unknown_scenario_or_a_bad_duration_is_a_usage_error() {
    let unknown = lab()
        .args(["run", "no-such-scenario"])
        .output()
        .expect("runs");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no-such-scenario"));
    let negative = lab()
        .args(["run", "outage", "--duration=-3"])
        .output()
        .expect("runs");
    assert_eq!(negative.status.code(), Some(2));
}
