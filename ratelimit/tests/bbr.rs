//! The BBR algorithm on a manual clock and CPU: Kratos's reference numbers (in µs), the drop
//! rule, the cooldown, and exact accounting of permits.

use std::time::Duration;

use rampart_core::{Clock, ManualClock};
use rampart_ratelimit::{BbrConfig, BbrLimiter, Gate, ManualCpu, Overloaded, Permit};

const MS: Duration = Duration::from_millis(1);
const BUCKET: Duration = Duration::from_millis(100);

/// A limiter with Kratos's test settings: 1 s in 10 buckets of 100 ms, threshold 0.8, and
/// Kratos's limit (no headroom).
fn limiter() -> (ManualClock, ManualCpu, BbrLimiter<ManualClock, ManualCpu>) {
    limiter_with(BbrConfig::default().with_headroom(0.0))
}

/// A limiter of `config` with Kratos's window: 1 s in 10 buckets of 100 ms.
fn limiter_with(config: BbrConfig) -> (ManualClock, ManualCpu, BbrLimiter<ManualClock, ManualCpu>) {
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(0.0));
    let config = config.with_window(Duration::from_secs(1), 10);
    let limiter = config
        .build_with(clock.clone(), cpu.clone())
        .expect("valid");
    (clock, cpu, limiter)
}

/// Completes `passes(i)` requests in bucket i (i = 0..10), whose response times cycle through
/// 10i+1 ..= 10i+10 ms (bucket mean 10i + 5.5 ms), leaving the clock in bucket 9.
fn fill(
    clock: &ManualClock,
    limiter: &BbrLimiter<ManualClock, ManualCpu>,
    passes: impl Fn(u32) -> u32,
) {
    for bucket in 0..10_u32 {
        let end = BUCKET * bucket + BUCKET / 2;
        for j in 0..passes(bucket) {
            let rt = MS * (10 * bucket + 1 + j % 10);
            let permit = limiter
                .acquire_at(end.saturating_sub(rt))
                .expect("cool: admitted");
            permit.complete_at(end);
        }
    }
    clock.set(BUCKET * 9 + BUCKET / 2);
}

#[test]
fn max_pass_is_the_best_completed_bucket() {
    // Kratos TestBBRMaxPass: i × 100 passes in bucket i (i = 1..=10), then one bucket later.
    let (clock, _, limiter) = limiter();
    assert_eq!(
        limiter.snapshot().max_pass,
        1,
        "a fresh limiter: at least 1"
    );
    for i in 1..=10_u32 {
        clock.set(BUCKET * (i - 1) + BUCKET / 2);
        for _ in 0..i * 100 {
            limiter
                .acquire()
                .expect("admitted")
                .complete_at(clock.now());
        }
    }
    assert_eq!(
        limiter.snapshot().max_pass,
        900,
        "the 1000-pass bucket is still current"
    );
    clock.advance(BUCKET);
    assert_eq!(limiter.snapshot().max_pass, 1_000);
}

#[test]
fn min_rt_is_the_lowest_bucket_mean_in_microseconds() {
    // Kratos TestBBRMinRt: Kratos rounds 5.5 ms up to 6; we keep microseconds.
    let (clock, _, limiter) = limiter();
    assert_eq!(
        limiter.snapshot().min_rt,
        Duration::from_micros(1),
        "no data: 1 µs"
    );
    fill(&clock, &limiter, |_| 10);
    assert_eq!(limiter.snapshot().min_rt, Duration::from_micros(5_500));
}

#[test]
fn max_inflight_is_littles_law_on_the_best_bucket() {
    // passes (i+1) × 100: the 1000-pass bucket 9 is current, so max_pass = 900:
    // 900 × 5.5 ms × 10 buckets per second = 49.5 → 49 (Kratos: 54, from min_rt 6 ms).
    let (clock, _, limiter) = limiter();
    fill(&clock, &limiter, |i| (i + 1) * 100);
    let snapshot = limiter.snapshot();
    assert_eq!(
        (snapshot.max_pass, snapshot.min_rt),
        (900, Duration::from_micros(5_500))
    );
    assert_eq!(snapshot.max_inflight, 49);
}

#[test]
fn the_default_limit_adds_one_square_root_of_the_proven_concurrency() {
    // The same buckets: L = 49.5, and √49.5 = 7.04 more: 56.5 → 56.
    let (clock, _, limiter) = limiter_with(BbrConfig::default());
    fill(&clock, &limiter, |i| (i + 1) * 100);
    assert_eq!(limiter.snapshot().max_inflight, 56);
    // Twice the headroom: 49.5 + 14.07 = 63.57 → 63.
    let (clock, _, limiter) = limiter_with(BbrConfig::default().with_headroom(2.0));
    fill(&clock, &limiter, |i| (i + 1) * 100);
    assert_eq!(limiter.snapshot().max_inflight, 63);
}

#[test]
fn a_one_worker_service_gets_a_limit_of_two_where_kratos_gives_it_one() {
    // 50 completions of 2.2 ms per 100 ms bucket: L = 50 × 2.2 ms × 10 = 1.1; Kratos's limit
    // admits two requests (more than one in flight, and more than 1), the default three
    // (1.1 + 1.05 = 2.15 → 2).
    let one_worker = |i: u32| if i < 9 { 50 } else { 0 };
    for (headroom, limit) in [(0.0, 1), (1.0, 2)] {
        let (clock, cpu, limiter) = limiter_with(BbrConfig::default().with_headroom(headroom));
        for bucket in 0..10_u32 {
            let end = BUCKET * bucket + BUCKET / 2;
            for _ in 0..one_worker(bucket) {
                let rt = Duration::from_micros(2_200);
                limiter
                    .acquire_at(end.saturating_sub(rt))
                    .expect("cool: admitted")
                    .complete_at(end);
            }
        }
        clock.set(BUCKET * 9 + BUCKET / 2);
        assert_eq!(
            limiter.snapshot().max_inflight,
            limit,
            "headroom {headroom}"
        );
        cpu.set(1.0);
        let admitted: Vec<_> = std::iter::from_fn(|| limiter.acquire().ok())
            .take(10)
            .collect();
        assert_eq!(admitted.len() as u64, limit + 1, "headroom {headroom}");
    }
}

/// Holds `n` requests in flight (admitted while the CPU is cool).
fn hold<'a>(
    limiter: &'a BbrLimiter<ManualClock, ManualCpu>,
    cpu: &ManualCpu,
    n: usize,
) -> Vec<Permit<&'a BbrLimiter<ManualClock, ManualCpu>>> {
    let before = cpu_usage(cpu);
    cpu.set(0.0);
    let permits = (0..n)
        .map(|_| limiter.acquire().expect("cool: admitted"))
        .collect();
    cpu.set(before);
    permits
}

fn cpu_usage(cpu: &ManualCpu) -> f64 {
    rampart_ratelimit::CpuUsage::usage(cpu)
}

#[test]
fn the_drop_rule_needs_a_hot_cpu_and_more_in_flight_than_proven() {
    // passes (i+2) × 100: max_pass 1000 (bucket 8), min_rt 5.5 ms → max_inflight 55.
    let (clock, cpu, limiter) = limiter();
    fill(&clock, &limiter, |i| (i + 2) * 100);
    assert_eq!(limiter.snapshot().max_inflight, 55);

    cpu.set(0.8);
    let fifty = hold(&limiter, &cpu, 50);
    assert!(
        limiter.acquire().is_ok(),
        "cpu 0.8, inflight 50 ≤ 55: admitted"
    );
    let eighty = hold(&limiter, &cpu, 30);
    assert_eq!(
        limiter.acquire().unwrap_err(),
        Overloaded::new(),
        "cpu 0.8, inflight 80 > 55: shed"
    );

    // Within the cooldown a cooler CPU does not release the flood (Kratos: cpu 0.7 → drop).
    cpu.set(0.7);
    assert!(
        limiter.acquire().is_err(),
        "cpu 0.7, just after the drop: still shedding"
    );
    // Two seconds later the cooldown is over and the cool CPU admits again.
    clock.advance(2 * Duration::from_secs(1));
    assert!(limiter.snapshot().inflight >= 80);
    assert!(
        limiter.acquire().is_ok(),
        "cpu 0.7, cooldown over: admitted"
    );
    drop((fifty, eighty));
}

#[test]
fn the_cooldown_runs_from_the_most_recent_drop_of_an_overloaded_service() {
    // A fresh limiter proves no capacity (max_inflight 0), so with two requests held every
    // check is a drop while the gate or the cooldown is on.
    let (clock, cpu, limiter) = limiter();
    let held = hold(&limiter, &cpu, 2);
    cpu.set(0.9);
    assert!(limiter.acquire().is_err(), "hot: shed (drop at 0 s)");
    clock.advance(500 * MS);
    assert!(
        limiter.acquire().is_err(),
        "0.5 s later, still hot: shed (a new drop)"
    );
    cpu.set(0.1);
    clock.advance(900 * MS);
    assert!(
        limiter.acquire().is_err(),
        "1.4 s after the first drop, 0.9 s after the last: shed"
    );
    clock.advance(200 * MS);
    assert!(
        limiter.acquire().is_ok(),
        "1.1 s after the last drop of a hot service: admitted"
    );
    drop(held);
}

#[test]
fn drops_made_only_because_of_the_cooldown_do_not_prolong_it() {
    // Regression: with the cooldown restarted by every drop, a service whose learned limit
    // is below its ordinary concurrency (here 0, with two requests in flight) kept shedding
    // for ever once a single hot moment had started it: a live one-worker server shed a
    // quarter of its requests at half its capacity.
    let (clock, cpu, limiter) = limiter();
    let held = hold(&limiter, &cpu, 2);
    cpu.set(0.9);
    assert!(limiter.acquire().is_err(), "hot: shed (drop at 0 s)");
    cpu.set(0.1);
    for _ in 0..9 {
        clock.advance(100 * MS);
        assert!(limiter.acquire().is_err(), "within the cooldown: shed");
    }
    clock.advance(100 * MS);
    assert!(
        limiter.acquire().is_ok(),
        "1 s after the last hot drop: admitted, whatever was shed since"
    );
    drop(held);
}

#[test]
fn never_sheds_with_one_request_or_fewer_in_flight() {
    // A fresh limiter at full CPU: max_inflight = floor(1 × 1 µs × 10 / 1 s) = 0.
    let (_, cpu, limiter) = limiter();
    cpu.set(1.0);
    let first = limiter.acquire().expect("inflight 0: admitted");
    let second = limiter.acquire().expect("inflight 1: admitted");
    assert!(limiter.acquire().is_err(), "inflight 2 > 0: shed");
    drop((first, second));
    assert_eq!(limiter.snapshot().inflight, 0);
}

#[test]
fn the_latency_gate_sheds_when_the_last_bucket_is_slower_than_inflation_times_the_best() {
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(0.0));
    let config = BbrConfig::default()
        .with_window(Duration::from_secs(1), 10)
        .with_gate(Gate::LATENCY)
        .with_headroom(0.0);
    let limiter = config.build_with(clock.clone(), cpu).expect("valid");
    // Eight buckets at 10 ms, then one at 25 ms: 25 > 2 × 10.
    for bucket in 0..9_u32 {
        let end = BUCKET * bucket + BUCKET / 2;
        let rt = if bucket == 8 { 25 * MS } else { 10 * MS };
        for _ in 0..100 {
            limiter
                .acquire_at(end.saturating_sub(rt))
                .expect("admitted")
                .complete_at(end);
        }
    }
    clock.set(BUCKET * 9 + BUCKET / 2);
    let snapshot = limiter.snapshot();
    assert!(snapshot.overloaded, "{snapshot:?}");
    // max_inflight = 100 × 10 ms × 10 = 10.
    assert_eq!(snapshot.max_inflight, 10);
    let held: Vec<_> = (0..11).map(|_| limiter.acquire()).collect();
    assert_eq!(
        held.iter().filter(|p| p.is_err()).count(),
        0,
        "up to inflight 10 admitted, 11th sees 10"
    );
    assert!(limiter.acquire().is_err(), "inflight 11 > 10: shed");
    // One bucket later the newest completed bucket (9) is empty: nothing says overloaded.
    clock.advance(BUCKET);
    let later = limiter.snapshot();
    assert!(
        !later.overloaded && later.last_rt == Duration::ZERO,
        "{later:?}"
    );
    drop(held);
}

#[test]
fn a_dry_run_reports_but_never_sheds() {
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(1.0));
    let config = BbrConfig::default().with_enforce(false);
    let limiter = config.build_with(clock, cpu).expect("valid");
    let permits: Vec<_> = (0..100)
        .map(|_| limiter.acquire().expect("a dry run admits"))
        .collect();
    assert_eq!(limiter.snapshot().inflight, 100);
    assert!(
        limiter.snapshot().cooling_down,
        "the would-be drops are remembered"
    );
    drop(permits);
}

#[test]
fn a_completed_permit_records_once_and_a_dropped_one_only_leaves_flight() {
    let (clock, _, limiter) = limiter();
    let completed = limiter.acquire().expect("admitted");
    let dropped = limiter.acquire().expect("admitted");
    assert_eq!(limiter.snapshot().inflight, 2);
    clock.advance(30 * MS);
    completed.complete_at(clock.now());
    drop(dropped); // cancelled: out of flight, no pass, no response time
    assert_eq!(limiter.snapshot().inflight, 0);
    clock.advance(BUCKET * 2);
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.max_pass, 1, "one pass: the completed request");
    assert_eq!(snapshot.min_rt, 30 * MS);
}

#[test]
fn cancelled_requests_do_not_count_as_throughput() {
    // Clients that time out drop their requests: a limiter that counted them as passes
    // learned a max_pass several times the real one while overloaded.
    let (clock, _, limiter) = limiter();
    for _ in 0..50 {
        let served = limiter.acquire().expect("admitted");
        let cancelled: Vec<_> = (0..4)
            .map(|_| limiter.acquire().expect("admitted"))
            .collect();
        clock.advance(MS);
        served.complete_at(clock.now());
        drop(cancelled);
    }
    clock.advance(BUCKET);
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.inflight, 0);
    assert_eq!(
        snapshot.max_pass, 50,
        "50 served in one bucket; 200 cancelled uncounted"
    );
}

#[test]
fn min_rt_cannot_drift_up_while_shedding() {
    // The service answers in 2 ms; overloaded, requests queue behind the limit and take 8 ms.
    // Once the 2 ms buckets have left the window, a limit learned from 8 ms would justify the
    // queue that made it: while shedding, the minimum holds. (A dry run, so that the 8 ms
    // requests are admitted while every decision is still computed and remembered.)
    let (clock, cpu) = (ManualClock::new(), ManualCpu::new(0.0));
    let limiter = BbrConfig::default()
        .with_window(Duration::from_secs(1), 10)
        .with_enforce(false)
        .build_with(clock.clone(), cpu.clone())
        .expect("valid");
    let complete_in_bucket = |rt: Duration, n: u32| {
        let end = clock.now() + BUCKET / 2;
        for _ in 0..n {
            limiter
                .acquire_at(end.saturating_sub(rt))
                .expect("a dry run admits")
                .complete_at(end);
        }
        clock.advance(BUCKET);
    };
    for _ in 0..3 {
        complete_in_bucket(2 * MS, 40);
    }
    assert_eq!(limiter.snapshot().min_rt, 2 * MS);
    // Overload: a hot CPU and more in flight than proven.
    cpu.set(1.0);
    let held: Vec<_> = (0..10)
        .map(|_| limiter.acquire().expect("admitted"))
        .collect();
    // Twelve buckets (more than the 1 s window) of 8 ms completions, shedding all along.
    for _ in 0..12 {
        drop(limiter.acquire());
        assert!(limiter.snapshot().cooling_down, "shedding");
        complete_in_bucket(8 * MS, 40);
    }
    assert_eq!(
        limiter.snapshot().min_rt,
        2 * MS,
        "held while shedding, though no 2 ms bucket is left in the window"
    );
    // Cool down: shedding stops, and the minimum follows the window again.
    cpu.set(0.0);
    drop(held);
    clock.advance(Duration::from_secs(2));
    complete_in_bucket(8 * MS, 40);
    complete_in_bucket(8 * MS, 40);
    assert!(!limiter.snapshot().cooling_down);
    assert_eq!(
        limiter.snapshot().min_rt,
        8 * MS,
        "re-learned once shedding stopped"
    );
}

#[test]
fn concurrent_permits_leave_nothing_in_flight() {
    let (_, _, limiter) = limiter();
    let limiter = std::sync::Arc::new(limiter);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let limiter = std::sync::Arc::clone(&limiter);
            std::thread::spawn(move || {
                for _ in 0..25_000 {
                    drop(limiter.acquire().expect("cool: admitted"));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no panic");
    }
    assert_eq!(limiter.snapshot().inflight, 0);
}

#[test]
fn invalid_configs_are_errors_not_panics() {
    let err = BbrConfig::default()
        .with_cpu_threshold(2.0)
        .build_with(ManualClock::new(), ManualCpu::new(0.0))
        .unwrap_err();
    assert_eq!(err.field(), "cpu_threshold");
}
