//! The live mode's deterministic parts (the script and its arrivals, the figures, the cgroup
//! and `/proc` parsing, the signals' stamps, accumulators and figures), and its plumbing end to
//! end on a loopback server in this process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use rampart_lab::live::aggregate::{self, Tally};
use rampart_lab::live::cgroup::{Hierarchy, Mount, Plan, mounts, plan};
use rampart_lab::live::load::{self, Sent, Target};
use rampart_lab::live::observe::{Observation, cpu_seconds};
use rampart_lab::live::report::{self, Setup};
use rampart_lab::live::run::StackRun;
use rampart_lab::live::script::Script;
use rampart_lab::live::signal_figures::{self, PhaseSignals};
use rampart_lab::live::signals::{
    self, Accumulator, REQUEST_START, Unstamped, request_age, request_start, request_start_value,
};
use rampart_lab::live::stacks::{self, Guard, MaxDelay, STACKS, Tuning};
use rampart_lab::live::stats::{LimiterStats, Readings, SignalStats, Stats};
use rampart_lab::live::terminal;
use rampart_lab::live::work::{Handler, Work};
use rampart_lab::live::{server, stacks::app};
use rampart_lab::sim::{Fate, Record};

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

// The script and its arrivals.

#[test]
fn the_levels_script_holds_each_level_then_ramps_over_two_phases() {
    let script = Script::levels(2.0).expect("a valid length");
    let names: Vec<&str> = script.phases().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["0.5×", "1×", "2×", "3×", "ramp 0.5→3×"]);
    assert_eq!(script.duration(), 12 * S);
    let spans: Vec<(Duration, Duration)> = script
        .spans()
        .iter()
        .map(|&(_, from, to)| (from, to))
        .collect();
    assert_eq!(
        spans,
        [
            (Duration::ZERO, 2 * S),
            (2 * S, 4 * S),
            (4 * S, 6 * S),
            (6 * S, 8 * S),
            (8 * S, 12 * S)
        ]
    );
    for (at, factor) in [
        (Duration::ZERO, 0.5),
        (1_999 * MS, 0.5),
        (2 * S, 1.0),
        (5 * S, 2.0),
        (7 * S, 3.0),
        (8 * S, 0.5),
        (10 * S, 1.75),
        (12 * S, 0.0),
    ] {
        assert!(
            (script.factor(at) - factor).abs() < 1e-9,
            "at {at:?}: {} instead of {factor}",
            script.factor(at)
        );
    }
}

#[test]
fn the_check_script_ramps_to_twice_capacity_and_holds_it() {
    let script = Script::check(1.5).expect("a valid length");
    let names: Vec<&str> = script.phases().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["0.5×", "ramp 0.5→2×", "2×"]);
    assert_eq!(script.duration(), 6 * S);
    assert!((script.factor(2_250 * MS) - 1.25).abs() < 1e-9);
    assert!((script.factor(5 * S) - 2.0).abs() < 1e-9);
}

#[test]
fn a_phase_length_out_of_range_is_refused_by_its_field() {
    for seconds in [0.0, -1.0, 0.05, 601.0, f64::NAN, f64::INFINITY] {
        let error = Script::levels(seconds).expect_err("out of range");
        assert_eq!(error.field(), "seconds_per_phase", "{seconds}");
        assert_eq!(
            Script::check(seconds).expect_err("out of range").field(),
            "seconds_per_phase"
        );
    }
}

#[test]
fn arrivals_are_reproducible_from_the_seed_and_follow_the_script() {
    let script = Script::levels(2.0).expect("a valid length");
    let arrivals = script.arrivals(7, 400.0);
    assert_eq!(arrivals, script.arrivals(7, 400.0));
    assert_ne!(arrivals, script.arrivals(8, 400.0));
    assert!(arrivals.windows(2).all(|pair| pair[0] <= pair[1]));
    // The expected counts: 400, 800, 1 600, 2 400 in the levels, 2 800 on the ramp.
    let count = |from: Duration, to: Duration| {
        arrivals.iter().filter(|&&at| at >= from && at < to).count() as f64
    };
    for ((from, to), expected) in [
        ((Duration::ZERO, 2 * S), 400.0),
        ((2 * S, 4 * S), 800.0),
        ((4 * S, 6 * S), 1_600.0),
        ((6 * S, 8 * S), 2_400.0),
        ((8 * S, 12 * S), 2_800.0),
    ] {
        let seen = count(from, to);
        assert!(
            (seen - expected).abs() < 4.0 * expected.sqrt(),
            "{seen} arrivals in {from:?}..{to:?}, expected about {expected}"
        );
    }
}

// The figures.

fn record(at_ms: u32, latency_ms: u32, fate: Fate) -> Record {
    Record {
        at: MS * at_ms,
        latency: MS * latency_ms,
        fate,
    }
}

/// In [1 s, 2 s): 80 successes taking 1..=80 ms, 10 shed, 6 timed out, 4 failed; one of
/// each before and after, which the phase must not count.
fn phase_records() -> Vec<Record> {
    let mut records = vec![
        record(999, 1, Fate::Served),
        record(500, 200, Fate::TimedOut),
    ];
    for n in 0..100 {
        let at = 1_000 + n * 10;
        records.push(match n {
            0..80 => record(at, n + 1, Fate::Served),
            80..90 => record(at, 1, Fate::Refused),
            90..96 => record(at, 200, Fate::TimedOut),
            _ => record(at, 3, Fate::Failed),
        });
    }
    records.push(record(2_000, 1, Fate::Refused));
    records.sort_by_key(|record| record.at);
    records
}

#[test]
fn a_phase_counts_goodput_against_capacity_and_shares_of_what_was_sent() {
    let records = phase_records();
    let figures = aggregate::phase(&records, S, 2 * S, 100.0);
    assert_eq!(figures.sent, 100);
    assert!((figures.goodput - 0.8).abs() < 1e-9, "{figures:?}");
    assert!((figures.shed - 0.10).abs() < 1e-9);
    assert!((figures.timeouts - 0.06).abs() < 1e-9);
    assert!((figures.errors - 0.04).abs() < 1e-9);
    // Of the 80 successes (1..=80 ms): the 41st and the 80th.
    assert!((figures.p50_ms - 41.0).abs() < 1e-9, "{figures:?}");
    assert!((figures.p99_ms - 80.0).abs() < 1e-9, "{figures:?}");
}

#[test]
fn a_phase_without_successes_has_no_percentiles_and_no_goodput() {
    let records = [record(0, 200, Fate::TimedOut), record(10, 1, Fate::Refused)];
    let figures = aggregate::phase(&records, Duration::ZERO, S, 50.0);
    assert!(figures.p50_ms.is_nan() && figures.p99_ms.is_nan());
    assert_eq!(figures.goodput, 0.0);
    assert_eq!((figures.shed, figures.timeouts), (0.5, 0.5));
}

#[test]
fn a_tally_counts_every_record_once() {
    let records = phase_records();
    let tally = Tally::of(&records);
    assert_eq!(
        tally,
        Tally {
            ok: 81,
            shed: 11,
            timeout: 7,
            error: 4
        }
    );
    assert_eq!(tally.total(), records.len() as u64);
}

#[test]
fn answers_become_fates() {
    let fate = |answer: Option<Result<StatusCode, ()>>| load::fate(answer.as_ref());
    assert_eq!(fate(None), Fate::TimedOut);
    assert_eq!(fate(Some(Ok(StatusCode::OK))), Fate::Served);
    assert_eq!(
        fate(Some(Ok(StatusCode::SERVICE_UNAVAILABLE))),
        Fate::Refused
    );
    assert_eq!(
        fate(Some(Ok(StatusCode::INTERNAL_SERVER_ERROR))),
        Fate::Failed
    );
    assert_eq!(fate(Some(Err(()))), Fate::Failed);
}

fn look(at_ms: u32, cpu_seconds: f64, handled: u64, inflight: Option<u64>) -> Observation {
    Observation {
        at: MS * at_ms,
        stats: Some(Stats {
            handled,
            limiter: inflight.map(|inflight| LimiterStats {
                cpu: 0.5,
                inflight,
                max_inflight: 8,
                max_pass: 40,
                min_rt_ms: 2.0,
                overloaded: false,
                delay_ms: None,
            }),
            signals: SignalStats::default(),
        }),
        cpu_seconds: Some(cpu_seconds),
    }
}

#[test]
fn a_second_shows_the_limiter_at_its_end_and_the_server_over_it() {
    let seen = [
        look(0, 10.0, 0, Some(1)),
        look(1_000, 10.5, 200, Some(3)),
        look(2_000, 11.5, 600, Some(7)),
    ];
    let series: std::collections::BTreeMap<_, _> = aggregate::server_series(&seen, 3 * S, 400.0)
        .into_iter()
        .collect();
    let second = |name: &str, bin: usize| series[name][bin];
    assert_eq!(series["inflight"].len(), 3);
    assert_eq!((second("inflight", 0), second("inflight", 1)), (3.0, 7.0));
    assert!(
        second("inflight", 2).is_nan(),
        "no look ends the last second"
    );
    assert!(
        second("delay_ms", 0).is_nan(),
        "this limiter reads no delay"
    );
    assert!((second("server_cpu", 0) - 0.5).abs() < 1e-9);
    assert!((second("server_cpu", 1) - 1.0).abs() < 1e-9);
    assert!((second("handled", 1) - 1.0).abs() < 1e-9);
    let unguarded = [look(0, 0.0, 0, None), look(1_000, 0.2, 10, None)];
    let series: std::collections::BTreeMap<_, _> = aggregate::server_series(&unguarded, S, 400.0)
        .into_iter()
        .collect();
    assert!(series["cpu"][0].is_nan() && series["max_inflight"][0].is_nan());
    assert!((series["server_cpu"][0] - 0.2).abs() < 1e-9);
}

// What the operating system tells.

/// This kind of host: v1 controllers each on their own mount, and an empty unified mount.
const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

/// A v2-only host (and a proc mount, with optional fields, that is not a cgroup).
const UNIFIED: &str = "\
22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw
25 1 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";

/// `cgroup.controllers` files under /sys/fs/cgroup exist and are empty (no controller
/// enabled in v2).
fn no_controllers(path: &Path) -> Option<String> {
    path.starts_with("/sys/fs/cgroup").then(String::new)
}

#[test]
fn mountinfo_gives_each_hierarchy_and_its_controllers() {
    let found = mounts(HYBRID);
    let controllers: Vec<(&Path, &Hierarchy)> = found
        .iter()
        .map(|m| (m.point.as_path(), &m.hierarchy))
        .collect();
    let v1 = |names: &[&str]| Hierarchy::V1(names.iter().map(|&n| n.to_owned()).collect());
    assert_eq!(
        controllers,
        [
            (Path::new("/sys/fs/cgroup/cpu"), &v1(&["cpu"])),
            (Path::new("/sys/fs/cgroup/cpuacct"), &v1(&["cpuacct"])),
            (Path::new("/sys/fs/cgroup/cpuset"), &v1(&["cpuset"])),
            (Path::new("/sys/fs/cgroup/systemd"), &v1(&[])),
            (Path::new("/sys/fs/cgroup/unified"), &Hierarchy::V2),
        ]
    );
    assert_eq!(
        mounts(UNIFIED),
        [Mount {
            point: PathBuf::from("/sys/fs/cgroup"),
            hierarchy: Hierarchy::V2
        }]
    );
}

#[test]
fn mount_points_are_unescaped() {
    let line = "50 31 0:40 / /mnt/my\\040cgroups rw - cgroup cgroup rw,cpu,cpuacct\n";
    let found = mounts(line);
    assert_eq!(found[0].point, PathBuf::from("/mnt/my cgroups"));
    assert_eq!(
        found[0].hierarchy,
        Hierarchy::V1(vec!["cpu".to_owned(), "cpuacct".to_owned()])
    );
}

#[test]
fn on_a_hybrid_host_the_v1_cpu_controller_is_chosen_with_its_own_cpuacct() {
    let chosen = plan(&mounts(HYBRID), no_controllers);
    assert_eq!(
        chosen,
        Ok(Plan::V1 {
            cpu: PathBuf::from("/sys/fs/cgroup/cpu"),
            cpuacct: Some(PathBuf::from("/sys/fs/cgroup/cpuacct")),
        })
    );
    let joint = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
    assert_eq!(
        plan(&mounts(joint), no_controllers),
        Ok(Plan::V1 {
            cpu: PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
            cpuacct: None,
        })
    );
}

#[test]
fn v2_is_chosen_only_where_it_offers_the_cpu_controller() {
    let offered = |path: &Path| {
        (path == Path::new("/sys/fs/cgroup/cgroup.controllers"))
            .then(|| "cpuset cpu io memory pids\n".to_owned())
    };
    assert_eq!(
        plan(&mounts(UNIFIED), offered),
        Ok(Plan::V2 {
            root: PathBuf::from("/sys/fs/cgroup")
        })
    );
    assert!(plan(&mounts(UNIFIED), no_controllers).is_err());
    let only_memory = |_: &Path| Some("memory cpuset".to_owned());
    assert!(plan(&mounts(UNIFIED), only_memory).is_err());
    assert!(plan(&[], offered).is_err());
}

#[test]
fn proc_stat_gives_user_and_system_seconds_past_an_awkward_name() {
    let stat = "4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 \
                3 0 12345 1000000 500 18446744073709551615";
    assert_eq!(cpu_seconds(stat), Some(3.0));
    assert_eq!(cpu_seconds("4242 (truncated) S 1 2"), None);
    assert_eq!(cpu_seconds("no name here"), None);
}

#[test]
fn a_capacity_measured_short_of_cpu_is_scaled_to_a_whole_cpu() {
    use rampart_lab::live::run::Capacity;
    let whole = Capacity {
        rps: 470.0,
        cpus: 0.97,
    };
    assert!(!whole.is_short_of_cpu());
    assert_eq!(whole.of_one_cpu(), 470.0);
    let busy = Capacity {
        rps: 300.0,
        cpus: 0.6,
    };
    assert!(busy.is_short_of_cpu());
    assert!((busy.of_one_cpu() - 500.0).abs() < 1e-9);
    for unknown in [f64::NAN, 0.0] {
        let unread = Capacity {
            rps: 300.0,
            cpus: unknown,
        };
        assert_eq!(unread.of_one_cpu(), 300.0, "{unknown}");
    }
}

// The stack table.

#[test]
fn every_stack_of_the_table_is_found_by_its_name() {
    for stack in STACKS {
        assert_eq!(stacks::find(stack.name).map(|s| s.guard), Some(stack.guard));
    }
    let chosen = stacks::chosen(&["rampart".to_owned(), " none".to_owned()]).expect("known");
    assert_eq!(chosen[0].guard, Guard::Rampart(Tuning::DEFAULT));
    assert_eq!(chosen[1].guard, Guard::None);
    let unknown = stacks::chosen(&["tower-5".to_owned()]).expect_err("unknown");
    assert!(
        unknown.contains("tower-5") && unknown.contains("tower-16"),
        "{unknown}"
    );
}

#[test]
fn the_delay_rule_stacks_change_only_max_delay_and_run_only_when_named() {
    let config = |name: &str| match stacks::find(name).map(|s| s.guard) {
        Some(Guard::Rampart(tuning)) => tuning.config(),
        other => panic!("{name} is not a rampart stack: {other:?}"),
    };
    let default = rampart_ratelimit::BbrConfig::default();
    assert_eq!(config("rampart"), default);
    assert_eq!(
        config("rampart-no-delay"),
        default.clone().with_max_delay(None)
    );
    assert_eq!(
        config("rampart-delay-25"),
        default.clone().with_max_delay(Some(25 * MS))
    );
    assert_eq!(
        config("rampart-latency"),
        default.with_gate(rampart_ratelimit::Gate::LATENCY)
    );
    assert_eq!(
        Tuning::max_delay(MaxDelay::Off),
        Tuning {
            gate: None,
            max_delay: MaxDelay::Off
        }
    );
    let default_run: Vec<&str> = stacks::by_default().map(|s| s.name).collect();
    assert_eq!(
        default_run,
        [
            "none",
            "tower-2",
            "tower-16",
            "rampart",
            "rampart-cpu",
            "rampart-latency",
            "rampart-either"
        ]
    );
    let named = stacks::chosen(&["rampart-no-delay".to_owned(), "rampart-delay-25".to_owned()])
        .expect("selectable by name");
    assert_eq!(named.len(), 2);
}

// The signals.

fn value(text: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(text).expect("a valid header value")
}

#[test]
fn a_request_start_stamp_is_t_and_microseconds_since_the_epoch() {
    let arrived = Duration::from_micros(1_700_000_000_123_456);
    let stamp = request_start_value(arrived).expect("digits make a header value");
    assert_eq!(stamp, "t=1700000000123456");
    assert_eq!(request_start(Some(&stamp)), Ok(arrived));
    assert_eq!(
        request_start(Some(&value(" t=42 "))),
        Ok(42 * Duration::from_micros(1))
    );
    // Sub-microsecond parts are dropped, not rounded up into the future.
    let stamp = request_start_value(Duration::from_nanos(1_999)).expect("a value");
    assert_eq!(stamp, "t=1");
}

#[test]
fn a_request_age_is_now_minus_its_stamp() {
    let now = Duration::from_secs(1_700_000_000);
    let stamp = request_start_value(now.saturating_sub(37 * MS)).expect("a value");
    assert_eq!(request_age(Some(&stamp), now), Ok(37 * MS));
}

#[test]
fn a_missing_request_start_is_told_apart_from_a_malformed_one() {
    let now = Duration::from_secs(1_700_000_000);
    assert_eq!(request_age(None, now), Err(Unstamped::Missing));
    for text in [
        "",
        "t=",
        "1700000000123456",
        "t=abc",
        "t=-5",
        "t=+5",
        "t=1.5",
        "t=1700000000.123",
        "t= 5",
        "T=5",
        "t=99999999999999999999999",
    ] {
        assert_eq!(
            request_age(Some(&value(text)), now),
            Err(Unstamped::Malformed),
            "{text:?}"
        );
    }
    let not_text = http::HeaderValue::from_bytes(b"t=\xff").expect("an opaque value");
    assert_eq!(request_age(Some(&not_text), now), Err(Unstamped::Malformed));
}

#[test]
fn a_request_start_in_the_future_is_an_age_of_zero() {
    let now = Duration::from_secs(1_700_000_000);
    let ahead = request_start_value(now + S).expect("a value");
    assert_eq!(request_age(Some(&ahead), now), Ok(Duration::ZERO));
    let last = value(&format!("t={}", u64::MAX));
    assert_eq!(request_age(Some(&last), now), Ok(Duration::ZERO));
}

#[test]
fn an_accumulator_gives_count_sum_and_max_since_its_last_take_and_starts_afresh() {
    let accumulator = Accumulator::new();
    assert_eq!(accumulator.take(), Readings::default());
    for reading in [3, 9, 0, 4] {
        accumulator.record(reading);
    }
    let taken = accumulator.take();
    assert_eq!(
        taken,
        Readings {
            count: 4,
            sum: 16,
            max: 9
        }
    );
    assert_eq!((taken.mean(), taken.max()), (Some(4.0), Some(9.0)));
    // Afresh: the old maximum does not linger.
    assert_eq!(accumulator.take(), Readings::default());
    accumulator.record(2);
    assert_eq!(
        accumulator.take(),
        Readings {
            count: 1,
            sum: 2,
            max: 2
        }
    );
}

#[test]
fn an_accumulator_saturates_its_sum() {
    let accumulator = Accumulator::new();
    accumulator.record(u64::MAX);
    accumulator.record(5);
    assert_eq!(
        accumulator.take(),
        Readings {
            count: 2,
            sum: u64::MAX,
            max: u64::MAX
        }
    );
}

#[test]
fn an_accumulator_loses_no_reading_to_concurrent_takes() {
    let accumulator = std::sync::Arc::new(Accumulator::new());
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let accumulator = std::sync::Arc::clone(&accumulator);
            std::thread::spawn(move || (0..10_000).for_each(|_| accumulator.record(1)))
        })
        .collect();
    let mut total = Readings::default();
    while !writers.iter().all(std::thread::JoinHandle::is_finished) {
        total = total.merged(accumulator.take());
        std::thread::yield_now();
    }
    for writer in writers {
        writer.join().expect("no panic");
    }
    total = total.merged(accumulator.take());
    assert_eq!((total.count, total.sum, total.max), (20_000, 20_000, 1));
}

#[test]
fn readings_without_a_reading_have_no_mean_and_merge_as_one() {
    let none = Readings::default();
    assert_eq!((none.mean(), none.max()), (None, None));
    let a = Readings {
        count: 2,
        sum: 10,
        max: 7,
    };
    let b = Readings {
        count: 3,
        sum: 5,
        max: 4,
    };
    assert_eq!(
        a.merged(b),
        Readings {
            count: 5,
            sum: 15,
            max: 7
        }
    );
    assert_eq!(a.merged(none), a);
}

#[test]
fn the_busy_share_is_busy_time_over_elapsed_time_per_worker() {
    assert_eq!(signals::busy_share(750 * MS, S, 1), Some(0.75));
    assert_eq!(signals::busy_share(S, S, 2), Some(0.5));
    assert_eq!(signals::busy_share(S, Duration::ZERO, 1), None);
    assert_eq!(signals::busy_share(S, S, 0), None);
}

/// A look at `at_ms` whose signals are `requests` requests with these delays, ages, global
/// queue depths and alive tasks (all alike), in microseconds.
fn signal_look(at_ms: u32, requests: u64, delay_us: u64, age_us: u64, busy: f64) -> Observation {
    let alike = |value: u64| Readings {
        count: requests,
        sum: value * requests,
        max: value,
    };
    Observation {
        at: MS * at_ms,
        stats: Some(Stats {
            handled: 0,
            limiter: None,
            signals: SignalStats {
                delay_us: alike(delay_us),
                age_us: alike(age_us),
                missing_stamp: 1,
                malformed_stamp: 0,
                global_queue: alike(2),
                alive_tasks: alike(30),
                busy: Some(busy),
            },
        }),
        cpu_seconds: None,
    }
}

#[test]
fn a_second_s_signals_are_what_the_read_at_its_end_took() {
    let seen = [
        signal_look(0, 0, 0, 0, 0.0),
        signal_look(1_000, 100, 500, 2_000, 0.5),
        Observation {
            at: 2_000 * MS,
            stats: None,
            cpu_seconds: None,
        },
        signal_look(3_000, 400, 20_000, 150_000, 1.0),
    ];
    let series: std::collections::BTreeMap<_, _> =
        signal_figures::signal_series(&seen, 4 * S, 200.0)
            .into_iter()
            .collect();
    let second = |name: &str, bin: usize| series[name][bin];
    assert_eq!(series["delay_mean_ms"].len(), 4);
    assert_eq!(second("reached", 0), 0.5);
    assert_eq!(
        (second("delay_mean_ms", 0), second("delay_max_ms", 0)),
        (0.5, 0.5)
    );
    assert_eq!(
        (second("age_mean_ms", 0), second("age_max_ms", 0)),
        (2.0, 2.0)
    );
    assert_eq!(
        (second("queue_mean", 0), second("tasks_max", 0)),
        (2.0, 30.0)
    );
    assert_eq!((second("busy", 0), second("unstamped", 0)), (0.5, 1.0));
    assert!(
        second("age_mean_ms", 1).is_nan(),
        "the read ending second 1 got no answer"
    );
    assert_eq!(second("age_max_ms", 2), 150.0);
    assert!(
        second("delay_mean_ms", 3).is_nan(),
        "no read ends the last second"
    );
    let quiet = [
        signal_look(0, 0, 0, 0, 0.0),
        signal_look(1_000, 0, 0, 0, 0.1),
    ];
    let series: std::collections::BTreeMap<_, _> = signal_figures::signal_series(&quiet, S, 200.0)
        .into_iter()
        .collect();
    assert_eq!(series["reached"][0], 0.0);
    assert!(
        series["delay_mean_ms"][0].is_nan() && series["queue_max"][0].is_nan(),
        "no request, no reading"
    );
}

#[test]
fn a_phase_s_signals_come_from_the_seconds_wholly_inside_it() {
    // Seconds 0, 1, 2 and 3 end with reads at 1, 2, 3 and 4 s.
    let seen = [
        signal_look(0, 0, 0, 0, 0.0),
        signal_look(1_000, 100, 500, 1_000, 0.2),
        signal_look(2_000, 300, 900, 3_000, 0.4),
        signal_look(3_000, 100, 20_000, 150_000, 1.0),
        signal_look(4_000, 100, 40_000, 190_000, 1.0),
    ];
    let figures = aggregate::PhaseFigures {
        goodput: 1.0,
        p50_ms: 2.0,
        p99_ms: 7.0,
        sent: 500,
        shed: 0.0,
        timeouts: 0.01,
        errors: 0.0,
    };
    // From 0.5 s to 3 s: seconds 1 and 2 only.
    let phase = signal_figures::phase_signals("none", "1×", (500 * MS, 3 * S), &seen, &figures);
    assert_eq!(
        phase,
        PhaseSignals {
            stack: "none".to_owned(),
            phase: "1×".to_owned(),
            seconds: 2,
            requests: 400,
            delay_mean_ms: (300.0 * 0.9 + 100.0 * 20.0) / 400.0,
            delay_max_ms: 20.0,
            age_mean_ms: (300.0 * 3.0 + 100.0 * 150.0) / 400.0,
            age_max_ms: 150.0,
            queue_mean: 2.0,
            queue_max: 2.0,
            tasks_mean: 30.0,
            tasks_max: 30.0,
            busy: 0.7,
            unstamped: 2,
            p99_ms: 7.0,
            timeouts: 0.01,
        }
    );
    let short = signal_figures::phase_signals("none", "2×", (500 * MS, S), &seen, &figures);
    assert_eq!((short.seconds, short.requests), (0, 0));
    assert!(short.delay_mean_ms.is_nan() && short.busy.is_nan());
    assert_eq!(
        short.p99_ms, 7.0,
        "the clients' figures hold without seconds"
    );
}

// The plumbing, end to end.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_requests_to_a_loopback_server_are_each_accounted_for_once() {
    let listener = server::bind(0).await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let app = app(Guard::None, Work::new(10_000, Handler::Yielding)).expect("no limiter to build");
    let serving = tokio::spawn(server::serve(listener, app));
    let target = Target::new(addr);
    let arrivals: Vec<Duration> = (0..50).map(|n| 10 * MS * n).collect();
    // A timeout no loopback answer comes near: every request must succeed.
    let sent = load::open_loop(&target, &arrivals, Duration::from_secs(10), 100).await;
    let tally = Tally::of(&sent.records);
    assert_eq!((sent.sent, sent.unsent), (50, 0));
    assert_eq!(tally.total(), sent.sent, "{tally:?}");
    assert_eq!(tally.ok, 50, "{tally:?}");
    let ats: Vec<Duration> = sent.records.iter().map(|r| r.at).collect();
    assert_eq!(ats, arrivals);
    let stats = target.stats(Duration::from_secs(10)).await.expect("stats");
    assert_eq!(stats.handled, 50);
    assert_eq!(stats.limiter, None);
    serving.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_route_answers_beside_rampart_s_limiter() {
    let listener = server::bind(0).await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let guard = Guard::Rampart(Tuning::gate(rampart_ratelimit::Gate::LATENCY));
    let app = app(guard, Work::new(10_000, Handler::Blocking)).expect("a latency gate");
    let serving = tokio::spawn(server::serve(listener, app));
    let target = Target::new(addr);
    let sent = load::open_loop(&target, &[Duration::ZERO], Duration::from_secs(10), 1).await;
    assert_eq!(Tally::of(&sent.records).ok, 1);
    let stats = target.stats(Duration::from_secs(10)).await.expect("stats");
    let limiter = stats.limiter.expect("rampart's stack has a limiter");
    assert_eq!((stats.handled, limiter.inflight), (1, 0));
    serving.abort();
}

/// Sends `GET /work` over a fresh connection with these extra header lines, and reads the
/// answer's status line.
async fn raw_get(addr: std::net::SocketAddr, headers: &str) -> String {
    use std::io::{Read as _, Write as _};
    let request =
        format!("GET /work HTTP/1.1\r\nhost: loopback\r\n{headers}connection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connects");
        stream.write_all(request.as_bytes()).expect("sent");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answered");
        answer.lines().next().unwrap_or_default().to_owned()
    })
    .await
    .expect("joined")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_reaching_the_stack_is_in_one_stats_read_with_its_stamp_counted() {
    let listener = server::bind(0).await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    // The unprotected stack: signals are measured for every stack, and this one never sheds.
    let app = app(Guard::None, Work::new(10_000, Handler::Yielding)).expect("no limiter");
    let serving = tokio::spawn(server::serve(listener, app));
    let target = Target::new(addr);
    // What the server did before: nothing reached the stack.
    let before = target.stats(Duration::from_secs(10)).await.expect("stats");
    assert_eq!(before.signals.requests(), 0);
    let arrivals: Vec<Duration> = (0..5).map(|n| 5 * MS * n).collect();
    let sent = load::open_loop(&target, &arrivals, Duration::from_secs(10), 10).await;
    assert_eq!(Tally::of(&sent.records).ok, 5);
    assert!(raw_get(addr, "").await.ends_with("200 OK"));
    let malformed = format!("{REQUEST_START}: t=soon\r\n");
    assert!(raw_get(addr, &malformed).await.ends_with("200 OK"));
    let signals = target
        .stats(Duration::from_secs(10))
        .await
        .expect("stats")
        .signals;
    assert_eq!(signals.requests(), 7);
    assert_eq!(signals.age_us.count, 5, "{signals:?}");
    assert_eq!((signals.missing_stamp, signals.malformed_stamp), (1, 1));
    assert_eq!(
        (signals.global_queue.count, signals.alive_tasks.count),
        (7, 7)
    );
    assert!(signals.alive_tasks.max >= 1, "{signals:?}");
    assert!(signals.busy.is_some(), "time passed between the reads");
    // Taken: the next read starts afresh.
    let after = target
        .stats(Duration::from_secs(10))
        .await
        .expect("stats")
        .signals;
    assert_eq!(
        (after.requests(), after.age_us, after.missing_stamp),
        (0, Readings::default(), 0)
    );
    serving.abort();
}

// The report.

/// A run of `stack` on the check's script (1 s phases, capacity 100/s): at 0.5× 50 successes
/// taking `unloaded_ms`; at 2× (from 2 s to 4 s) `served` successes taking `loaded_ms`, the
/// rest of 400 timed out.
fn check_run(stack: &str, unloaded_ms: u32, served: u32, loaded_ms: u32) -> StackRun {
    let mut records: Vec<Record> = (0..50)
        .map(|n| record(n * 20, unloaded_ms, Fate::Served))
        .collect();
    records.extend((0..400).map(|n| {
        let at = 2_000 + n * 5;
        if n < served {
            record(at, loaded_ms, Fate::Served)
        } else {
            record(at, 200, Fate::TimedOut)
        }
    }));
    StackRun {
        stack: stacks::find(stack).expect("a stack of the table"),
        sent: Sent {
            sent: records.len() as u64,
            unsent: 0,
            records,
            lag_p99: Duration::ZERO,
        },
        seen: Vec::new(),
    }
}

fn setup() -> Setup {
    Setup {
        capacity_rps: 100.0,
        measured_rps: 100.0,
        capacity_cpus: 1.0,
        handler: Handler::Yielding,
        work_ms: 2.0,
        timeout_ms: 200.0,
        cgroup: "the server ran NOT in a CPU-limited cgroup (a test)".to_owned(),
        check: true,
    }
}

#[test]
fn the_check_holds_rampart_at_twice_capacity_to_goodput_latency_and_none() {
    let script = Script::check(1.0).expect("a valid length");
    let runs = [
        check_run("none", 3, 10, 150),
        check_run("rampart", 2, 180, 10),
    ];
    let live = report::build(setup(), 1, &script, &runs);
    let names: Vec<&str> = live.lab.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["live", "live-0.5×", "live-ramp 0.5→2×", "live-2×"]);
    let twice = &live.lab.scenarios[3];
    let rampart = twice.stack("rampart").expect("rampart's row");
    assert!((rampart.get("goodput") - 0.9).abs() < 1e-9);
    assert!((rampart.get("p99_vs_unloaded") - 5.0).abs() < 1e-9);
    assert!((rampart.get("goodput_vs_none") - 18.0).abs() < 1e-9);
    let checked: Vec<(&str, bool)> = twice
        .checks
        .iter()
        .map(|c| (c.figure.as_str(), c.passed))
        .collect();
    assert_eq!(
        checked,
        [
            ("goodput", true),
            ("p99_vs_unloaded", true),
            ("goodput_vs_none", true)
        ]
    );
    assert!(live.passed());
    // 150 of 200 requests a second is 75 % of capacity: short of 80 %.
    let runs = [
        check_run("none", 3, 10, 150),
        check_run("rampart", 2, 150, 10),
    ];
    let live = report::build(setup(), 1, &script, &runs);
    assert!(!live.passed());
    // A p99 eleven times the unloaded one misses too.
    let runs = [
        check_run("none", 3, 10, 150),
        check_run("rampart", 2, 180, 22),
    ];
    assert!(!report::build(setup(), 1, &script, &runs).passed());
}

#[test]
fn the_overview_charts_every_series_of_every_stack() {
    let script = Script::check(1.0).expect("a valid length");
    let runs = [
        check_run("none", 3, 10, 150),
        check_run("rampart", 2, 180, 10),
    ];
    let live = report::build(setup(), 1, &script, &runs);
    let overview = &live.lab.scenarios[0];
    assert_eq!(overview.duration_s, 4.0);
    for stack in &overview.stacks {
        for chart in &overview.charts {
            let series = &stack.series[&chart.series];
            assert_eq!(series.len(), 4, "{} {}", stack.name, chart.series);
        }
        assert_eq!(stack.get("sent"), 450.0);
    }
    let rows: Vec<(&str, &str)> = live
        .signals_by_phase
        .iter()
        .map(|row| (row.stack.as_str(), row.phase.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            ("none", "0.5×"),
            ("none", "ramp 0.5→2×"),
            ("none", "2×"),
            ("rampart", "0.5×"),
            ("rampart", "ramp 0.5→2×"),
            ("rampart", "2×")
        ]
    );
    assert!((live.signals_by_phase[2].p99_ms - 150.0).abs() < 1e-9);
    assert!((live.signals_by_phase[2].timeouts - 390.0 / 400.0).abs() < 1e-9);
    let printed = terminal::signals_by_phase(&live.signals_by_phase);
    assert!(printed.starts_with("signals by phase"), "{printed}");
    assert_eq!(printed.lines().count(), 1 + 2 + 6 + 1, "{printed}");
    assert!(terminal::signal_seconds(overview).contains("signals at none's stack"));
    let json = serde_json::to_value(&live).expect("serialises");
    assert_eq!(json["signals_by_phase"][5]["phase"], "2×");
    assert!(
        json["signals_by_phase"][5]["delay_mean_ms"].is_null(),
        "no reads: NaN as null"
    );
    assert_eq!(json["setup"]["capacity_rps"], 100.0);
    assert_eq!(json["phases"][2]["name"], "2×");
    assert_eq!(json["phases"][2]["start_s"], 2.0);
}

// The command line.

fn lab() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_rampart-lab"))
}

#[test]
fn live_refuses_bad_options_before_starting_anything() {
    for args in [
        &["live", "--seconds-per-phase", "0"][..],
        &["live", "--stacks", "none,tower-5"],
        &["live", "--check", "--stacks", "rampart"],
    ] {
        let output = lab().args(args).output().expect("runs");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            output.stdout.is_empty(),
            "{args:?} started: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_child_tells_its_port_and_stops_when_its_input_closes() {
    use std::io::BufRead as _;
    let mut child = lab()
        .args([
            "live-server",
            "--stack",
            "rampart-latency",
            "--work-us",
            "100",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("a line");
    let port: u16 = line.trim().parse().expect("a port number");
    let target = Target::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let sent = load::open_loop(&target, &[Duration::ZERO], Duration::from_secs(10), 1).await;
    assert_eq!(Tally::of(&sent.records).ok, 1);
    let stats = target.stats(Duration::from_secs(10)).await.expect("stats");
    assert_eq!(stats.handled, 1);
    assert!(stats.limiter.is_some(), "rampart's stack shows its limiter");
    drop(child.stdin.take());
    let ended = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("joined")
        .expect("waited");
    assert!(ended.success(), "{ended}");
}
