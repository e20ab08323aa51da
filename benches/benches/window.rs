//! Rolling-window benchmarks: recording on one thread and on two contending threads, and
//! reading sums over 10 and 100 buckets, each beside its floors.
//!
//! Rows named `floor/...` are the baselines: the targets are a single-thread record at
//! most 2× `floor/mutex_add`, a two-thread contended record at most 4× the single-thread one,
//! a 10-bucket sum within 25 ns and a 100-bucket sum within 150 ns, and `system_clock` at most
//! half of `std_instant_now`.
//!
//! The `clock` group also measures the cheaper readings beside `Instant::now()` and the
//! time-stamp counter: `SystemClock::recent` (the kernel's coarse monotonic clock,
//! `CLOCK_MONOTONIC_COARSE`, through rustix's vDSO call: what the layers that place events in
//! buckets read), quanta's raw counter read, and quanta's "recent" time with and without its
//! upkeep thread. A read alone is not a read inside a layer: the breaker benchmark's
//! `breaker_layer/*` rows measure each clock there.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_benches::{clocks, contended, floors};
use rampart_core::{
    BucketClock, Clock, CoarseClock, ManualClock, RollingWindow, Stripes, SystemClock, View,
    WindowConfig,
};

fn window_with<C: Clock>(buckets: usize, clock: C) -> RollingWindow<C> {
    striped_window(buckets, Stripes::Auto, clock)
}

fn striped_window<C: Clock>(buckets: usize, stripes: Stripes, clock: C) -> RollingWindow<C> {
    WindowConfig::new(buckets, Duration::from_millis(100))
        .with_stripes(stripes)
        .build_with(clock)
        .expect("a valid window")
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Elements(1));
    floors(&mut group);

    let window = window_with(10, ManualClock::new());
    let now = Duration::from_millis(50);
    group.bench_function("record_at/given_instant", |b| {
        b.iter(|| window.record_at(black_box(now), black_box(1)));
    });
    let single = striped_window(10, Stripes::Exactly(1), ManualClock::new());
    group.bench_function("record_at/given_instant/1_stripe", |b| {
        b.iter(|| single.record_at(black_box(now), black_box(1)));
    });

    let system = window_with(10, SystemClock::new());
    group.bench_function("record/system_clock", |b| {
        b.iter(|| system.record(black_box(1)));
    });
    let coarse = window_with(10, CoarseClock::new());
    group.bench_function("record/coarse_clock", |b| {
        b.iter(|| coarse.record(black_box(1)));
    });
    // The system clock's recent time, as a breaker's window reads it (buckets of 100 ms).
    let bucket = window_with(
        10,
        BucketClock::new(SystemClock::new(), Duration::from_millis(100)),
    );
    group.bench_function("record/bucket_clock", |b| {
        b.iter(|| bucket.record(black_box(1)));
    });
    group.finish();
}

fn record_contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_contended_2_threads");
    group.throughput(Throughput::Elements(1));

    let counter = Arc::new(AtomicU64::new(0));
    group.bench_function("floor/atomic_fetch_add", |b| {
        b.iter_custom(|iters| {
            let counter = Arc::clone(&counter);
            contended(iters, move || {
                counter.fetch_add(black_box(1), Ordering::Relaxed);
            })
        });
    });
    let locked = Arc::new(parking_lot::Mutex::new(0_u64));
    group.bench_function("floor/mutex_add", |b| {
        b.iter_custom(|iters| {
            let locked = Arc::clone(&locked);
            contended(iters, move || *locked.lock() += black_box(1))
        });
    });
    let now = Duration::from_millis(50);
    for (name, stripes) in [
        ("given_instant", Stripes::Auto),
        ("given_instant/1_stripe", Stripes::Exactly(1)),
    ] {
        let window = Arc::new(striped_window(10, stripes, ManualClock::new()));
        group.bench_function(format!("record_at/{name}"), |b| {
            b.iter_custom(|iters| {
                let window = Arc::clone(&window);
                contended(iters, move || {
                    window.record_at(black_box(now), black_box(1));
                })
            });
        });
    }
    group.finish();
}

fn sum(c: &mut Criterion) {
    let mut group = c.benchmark_group("sum");
    group.throughput(Throughput::Elements(1));
    floors(&mut group);
    for (buckets, stripes, label) in [
        (10_usize, Stripes::Auto, ""),
        (100, Stripes::Auto, ""),
        (10, Stripes::Exactly(1), "/1_stripe"),
        (100, Stripes::Exactly(1), "/1_stripe"),
    ] {
        let clock = ManualClock::new();
        let window = striped_window(buckets, stripes, clock.clone());
        // Fill every bucket, then read half-way through the newest one.
        for _ in 0..buckets {
            for value in 0..10 {
                window.record(value);
            }
            clock.advance(Duration::from_millis(100));
        }
        let now = clock.now().checked_sub(Duration::from_millis(50)).unwrap();
        group.bench_function(format!("sum_at/{buckets}_buckets{label}"), |b| {
            b.iter(|| window.view_at(black_box(now), View::IncludingCurrent).sum());
        });
        group.bench_function(format!("totals_at/{buckets}_buckets{label}"), |b| {
            b.iter(|| window.view_at(black_box(now), View::Completed).totals());
        });
    }
    group.finish();
}

fn clock(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock");
    clocks(&mut group, "now");

    // The time-stamp counter alone, unscaled: what every precise read pays.
    let tsc = quanta::Clock::new();
    group.bench_function("now/quanta_raw", |b| b.iter(|| tsc.raw()));
    // quanta's "recent" time: without its upkeep thread `Instant::recent()` falls back to a
    // full read (behind a thread-local check; `Clock::recent()` would read a constant zero).
    group.bench_function("now/quanta_instant_recent/no_upkeep", |b| {
        b.iter(quanta::Instant::recent);
    });
    // With the upkeep thread (waking every millisecond, as `CoarseClock`'s does), a load.
    match quanta::Upkeep::new(Duration::from_millis(1)).start() {
        Ok(upkeep) => {
            group.bench_function("now/quanta_recent/upkeep_1ms", |b| {
                b.iter(|| tsc.recent());
            });
            drop(upkeep);
        }
        Err(error) => eprintln!("quanta's upkeep thread did not start: {error}"),
    }
    group.finish();
}

criterion_group!(benches, record, record_contended, sum, clock);
criterion_main!(benches);
