//! The scheduling-delay rule: requests queued in the runtime, in front of the limiter, where
//! its in-flight count cannot see them; and the heartbeat probe that measures that delay.

use std::time::Duration;

use rampart_core::{Clock, ManualClock};
use rampart_ratelimit::{BbrConfig, DelayProbe, ManualCpu, ManualDelay, SchedulingDelay};

const MS: Duration = Duration::from_millis(1);

#[test]
fn a_late_runtime_sheds_even_with_nothing_in_flight_and_a_cool_cpu() {
    // A handler that never yields runs each request to completion: the limiter sees at most
    // one in flight while the queue grows in the runtime; and one worker on a larger host
    // never makes the host's CPU hot.
    let delay = ManualDelay::new();
    let config = BbrConfig::default();
    let max_delay = config.max_delay.expect("on by default");
    let limiter = config
        .build_with(ManualClock::new(), ManualCpu::new(0.5))
        .expect("valid")
        .with_delay(delay.clone());
    delay.set(max_delay);
    assert!(
        limiter.acquire().map(drop).is_ok(),
        "at max_delay: admitted"
    );
    delay.set(max_delay + MS);
    assert!(
        limiter.acquire().is_err(),
        "over max_delay, nothing in flight: shed"
    );
    assert_eq!(limiter.snapshot().delay, max_delay + MS);
    assert!(
        limiter.snapshot().cooling_down,
        "a delay drop starts the cooldown"
    );
    delay.set(MS);
    assert!(limiter.acquire().map(drop).is_ok(), "caught up: admitted");
    assert_eq!(limiter.snapshot().inflight, 0);
}

#[test]
fn no_max_delay_never_reads_the_delay() {
    let delay = ManualDelay::new();
    let limiter = BbrConfig::default()
        .with_max_delay(None)
        .build_with(ManualClock::new(), ManualCpu::new(0.0))
        .expect("valid")
        .with_delay(delay.clone());
    delay.set(Duration::from_secs(5));
    assert!(limiter.acquire().map(drop).is_ok());
}

#[test]
fn without_a_source_the_delay_rule_is_off() {
    let limiter = BbrConfig::default()
        .build_with(ManualClock::new(), ManualCpu::new(0.0))
        .expect("valid");
    assert_eq!(limiter.snapshot().delay, Duration::ZERO);
    assert!(limiter.acquire().map(drop).is_ok());
}

#[test]
fn a_dry_run_counts_delay_drops_but_admits() {
    let delay = ManualDelay::new();
    let limiter = BbrConfig::default()
        .with_enforce(false)
        .build_with(ManualClock::new(), ManualCpu::new(1.0))
        .expect("valid")
        .with_delay(delay.clone());
    delay.set(Duration::from_secs(1));
    let permit = limiter.acquire().expect("a dry run admits");
    assert!(
        limiter.snapshot().cooling_down,
        "the would-be drop is remembered"
    );
    drop(permit);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_probe_reads_an_overdue_heartbeat_at_once_and_holds_what_it_measured() {
    // The probe's instants come from a manual clock, so the test decides how late the
    // runtime is: advancing it without yielding is a handler blocking the only worker.
    let clock = ManualClock::new();
    // A busy floor of 0: the test's idle runtime counts as busy enough.
    let probe = DelayProbe::spawn(clock.clone(), 5 * MS)
        .expect("inside a runtime")
        .with_busy_floor(0.0);
    assert_eq!(probe.delay(clock.now()), Duration::ZERO, "due in 5 ms");

    clock.advance(40 * MS); // the worker is busy for 40 ms: the heartbeat is 35 ms overdue
    assert_eq!(
        probe.delay(clock.now()),
        35 * MS,
        "read while overdue, before it runs"
    );

    tokio::time::sleep(6 * MS).await; // the heartbeat runs (at 5 ms), at 40 ms on the manual clock
    assert_eq!(probe.last_measured(), 35 * MS);
    assert_eq!(
        probe.delay(clock.now()),
        35 * MS,
        "what it measured holds until it is due again"
    );
    clock.advance(5 * MS);
    tokio::time::sleep(5 * MS).await; // on time
    assert_eq!(probe.last_measured(), Duration::ZERO);
    assert_eq!(probe.delay(clock.now()), Duration::ZERO);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn an_idle_runtime_s_late_heartbeat_reads_no_delay() {
    // The host preempted the process: the heartbeat is late, but the runtime had no work
    // queued (its worker was idle), so there is nothing to shed.
    let clock = ManualClock::new();
    let probe = DelayProbe::spawn(clock.clone(), 5 * MS).expect("inside a runtime");
    tokio::time::sleep(200 * MS).await; // two busy windows of an idle worker
    assert!(probe.busy() < 0.8, "{probe:?}");
    clock.advance(40 * MS);
    assert_eq!(probe.delay(clock.now()), Duration::ZERO);
    assert_eq!(
        probe.with_busy_floor(0.0).delay(clock.now()),
        35 * MS,
        "late all the same"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_heartbeat_stops_when_the_last_probe_is_dropped() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let probe = DelayProbe::spawn(ManualClock::new(), 5 * MS).expect("inside a runtime");
    let clone = probe.clone();
    tokio::time::sleep(20 * MS).await;
    assert_eq!(metrics.num_alive_tasks(), before + 1);
    drop((probe, clone));
    tokio::time::sleep(20 * MS).await;
    assert_eq!(metrics.num_alive_tasks(), before, "the heartbeat ended");
}

#[test]
fn the_probe_needs_a_runtime_and_a_sane_interval() {
    let err = DelayProbe::spawn(ManualClock::new(), 5 * MS).unwrap_err();
    assert_eq!(err.field(), "runtime");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    for bad in [Duration::ZERO, Duration::from_micros(999), Duration::MAX] {
        let err = DelayProbe::spawn_on(runtime.handle(), ManualClock::new(), bad).unwrap_err();
        assert_eq!(err.field(), "interval", "{bad:?}");
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn build_inside_a_runtime_reads_the_runtime_delay() {
    let limiter = BbrConfig::default()
        .with_gate(rampart_ratelimit::Gate::LATENCY)
        .build()
        .expect("valid");
    assert!(
        format!("{limiter:?}").contains("reads_delay: true"),
        "{limiter:?}"
    );
    let without = BbrConfig::default()
        .with_gate(rampart_ratelimit::Gate::LATENCY)
        .with_max_delay(None)
        .build()
        .expect("valid");
    assert!(
        format!("{without:?}").contains("reads_delay: false"),
        "{without:?}"
    );
}

#[test]
fn the_delay_gauge_follows_the_limiter_reading() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let delay = ManualDelay::new();
    let limiter = metrics::with_local_recorder(&recorder, || {
        BbrConfig::default()
            .build_with(ManualClock::new(), ManualCpu::new(0.0))
            .expect("valid")
            .with_delay(delay.clone())
    });
    delay.set(4 * MS);
    limiter.publish_gauges();
    let gauge = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(key, ..)| key.key().name() == "rampart_ratelimit_delay_seconds")
        .map(|(.., value)| value);
    assert_eq!(gauge, Some(DebugValue::Gauge(0.004.into())));
}
