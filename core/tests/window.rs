//! Rolling-window semantics, step by step on a manual clock.

use std::time::Duration;

use rampart_core::{BucketStats, Clock, ManualClock, RollingWindow, View, WindowConfig};

const MS: Duration = Duration::from_millis(1);
const SECOND: Duration = Duration::from_secs(1);

fn window(buckets: usize, bucket: Duration) -> (ManualClock, RollingWindow<ManualClock>) {
    let clock = ManualClock::new();
    let window = WindowConfig::new(buckets, bucket)
        .build_with(clock.clone())
        .expect("a valid window");
    (clock, window)
}

/// The sums of the covered buckets, oldest first, as of the clock's current time.
fn sums(window: &RollingWindow<ManualClock>, view: View) -> Vec<u64> {
    window.view(view).iter().map(|bucket| bucket.sum).collect()
}

fn counts(window: &RollingWindow<ManualClock>, view: View) -> Vec<u64> {
    window
        .view(view)
        .iter()
        .map(|bucket| bucket.count)
        .collect()
}

#[test]
fn reproduces_the_aegis_rolling_counter_reference_vector() {
    // aegis TestRollingCounterAdd: 3 buckets × 1 s, buckets listed oldest first.
    let (clock, window) = window(3, SECOND);
    let now = |clock: &ManualClock| format!("at {:?}", clock.now());

    window.record(1);
    assert_eq!(
        sums(&window, View::IncludingCurrent),
        [0, 0, 1],
        "{}",
        now(&clock)
    );

    clock.advance(SECOND);
    window.record(2);
    window.record(3);
    assert_eq!(
        sums(&window, View::IncludingCurrent),
        [0, 1, 5],
        "{}",
        now(&clock)
    );

    clock.advance(SECOND);
    for value in [4, 5, 6] {
        window.record(value);
    }
    assert_eq!(
        sums(&window, View::IncludingCurrent),
        [1, 5, 15],
        "{}",
        now(&clock)
    );
    assert_eq!(
        counts(&window, View::IncludingCurrent),
        [1, 2, 3],
        "{}",
        now(&clock)
    );

    clock.advance(SECOND);
    window.record(7);
    assert_eq!(
        sums(&window, View::IncludingCurrent),
        [5, 15, 7],
        "{}",
        now(&clock)
    );
    assert_eq!((window.sum(), window.count()), (27, 6));

    clock.advance(3 * SECOND);
    assert_eq!(
        sums(&window, View::IncludingCurrent),
        [0, 0, 0],
        "{}",
        now(&clock)
    );
    assert_eq!((window.sum(), window.count()), (0, 0));
}

#[test]
fn after_an_idle_gap_nothing_is_visible_and_the_next_write_is_bucketed_from_creation() {
    let (clock, window) = window(3, SECOND);
    window.record(5);
    clock.advance(SECOND);
    window.record(6);

    // More than a full window without a write: reads alone never show the old data.
    clock.set(Duration::from_millis(4_900));
    assert_eq!(window.count(), 0);
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 0, 0]);

    // 5.5 s falls in bucket [5 s, 6 s), counted from creation, not from the last write...
    clock.set(Duration::from_millis(5_500));
    window.record(1);
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 0, 1]);
    // ...so 6.1 s opens a new bucket although only 0.6 s passed since that write (the bug
    // aegis fixed in its PR #24: advancing by the clamped gap left the ring misaligned).
    clock.set(Duration::from_millis(6_100));
    window.record(2);
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 1, 2]);
    assert_eq!(sums(&window, View::Completed), [0, 1]);
}

#[test]
fn a_jump_longer_than_the_window_empties_every_bucket() {
    let (clock, window) = window(3, SECOND);
    for value in [1, 2, 3] {
        window.record(value);
        clock.advance(SECOND);
    }
    clock.set(Duration::from_millis(10_200));
    window.record(9);
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 0, 9]);
    assert_eq!((window.sum(), window.count()), (9, 1));
    // The ring is still aligned: 11.0 s is the next bucket.
    clock.set(Duration::from_secs(11));
    window.record(4);
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 9, 4]);
}

#[test]
fn a_jump_of_exactly_one_window_empties_every_bucket() {
    let (clock, window) = window(3, SECOND);
    for value in [1, 2, 3] {
        clock.advance(SECOND / 2);
        window.record(value);
        clock.advance(SECOND / 2);
    }
    // Newest write at 2.5 s (bucket 2); 5.5 s is bucket 5, exactly three buckets later.
    clock.set(Duration::from_millis(5_500));
    assert_eq!(
        window.count(),
        0,
        "a read a full window later shows nothing"
    );
    window.record(4);
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 0, 4]);
    assert_eq!((window.sum(), window.count()), (4, 1));
}

#[test]
fn a_jump_of_one_bucket_less_than_the_window_keeps_the_newest_bucket() {
    let (clock, window) = window(3, SECOND);
    for value in [1, 2, 3] {
        window.record(value);
        clock.advance(SECOND);
    }
    // Newest write in bucket 2; bucket 4 is two buckets later: bucket 2 is still covered.
    clock.set(Duration::from_millis(4_000));
    window.record(4);
    assert_eq!(sums(&window, View::IncludingCurrent), [3, 0, 4]);
}

#[test]
fn a_clock_stepping_backwards_reads_as_zero_elapsed_time() {
    let (clock, window) = window(3, SECOND);
    clock.set(Duration::from_millis(500));
    window.record(1);
    clock.set(Duration::from_millis(2_500));
    window.record(3);

    // Back to 0.5 s: neither a panic nor a reset; the record joins the newest bucket.
    clock.set(Duration::from_millis(500));
    window.record(7);
    assert_eq!(sums(&window, View::IncludingCurrent), [1, 0, 10]);
    assert_eq!(window.count(), 3);

    // Time resumes from where the window was, not from where the clock went.
    clock.set(Duration::from_millis(3_200));
    window.record(2);
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 10, 2]);
}

#[test]
fn both_views_on_a_half_elapsed_bucket() {
    let (clock, window) = window(4, 100 * MS);
    clock.advance(50 * MS);
    for value in [1, 2, 3, 4] {
        window.record(value);
        clock.advance(100 * MS);
    }
    // At 350 ms bucket 3 is half elapsed and holds 4.
    clock.set(350 * MS);
    let including = window.view(View::IncludingCurrent);
    let completed = window.view(View::Completed);
    assert_eq!((including.len(), completed.len()), (4, 3));
    assert_eq!(sums(&window, View::IncludingCurrent), [1, 2, 3, 4]);
    assert_eq!(sums(&window, View::Completed), [1, 2, 3]);
    assert_eq!((including.sum(), including.count()), (10, 4));
    assert_eq!((completed.sum(), completed.count()), (6, 3));

    // At 450 ms bucket 4 is half elapsed, nothing written to it yet: bucket 0 has expired
    // from both views although no write has rotated the ring.
    clock.set(450 * MS);
    assert_eq!(sums(&window, View::IncludingCurrent), [2, 3, 4, 0]);
    assert_eq!(sums(&window, View::Completed), [2, 3, 4]);
    assert_eq!(
        window.view(View::Completed).totals(),
        BucketStats { sum: 9, count: 3 }
    );
}

#[test]
fn a_one_bucket_window_has_no_completed_buckets() {
    let (clock, window) = window(1, SECOND);
    window.record(3);
    assert_eq!(sums(&window, View::IncludingCurrent), [3]);
    let completed = window.view(View::Completed);
    assert!(completed.is_empty());
    assert_eq!(
        (completed.sum(), completed.count(), completed.iter().count()),
        (0, 0, 0)
    );
    clock.advance(SECOND);
    assert_eq!(window.count(), 0);
}

#[test]
fn instants_passed_in_give_the_same_answers_as_the_clock() {
    let (clock, window) = window(5, 10 * MS);
    let other = ManualClock::new(); // the instants, not the window's clock, decide
    for step in 0..40_u64 {
        let now = Duration::from_millis(step * 7);
        window.record_at(now, step);
        other.set(now);
    }
    assert_eq!(
        clock.now(),
        Duration::ZERO,
        "the window never read its clock"
    );
    let at = |now| {
        window
            .view_at(now, View::IncludingCurrent)
            .iter()
            .collect::<Vec<_>>()
    };
    clock.set(other.now());
    assert_eq!(
        at(other.now()),
        window
            .view(View::IncludingCurrent)
            .iter()
            .collect::<Vec<_>>()
    );
    // Step s records s at 7·s ms; 273 ms is in bucket 27, so buckets 23..=27 are covered:
    // 231 and 238 ms (steps 33, 34), 245 (35), 252 and 259 (36, 37), 266 (38), 273 (39).
    let sums: Vec<u64> = at(other.now()).iter().map(|b| b.sum).collect();
    assert_eq!(sums, [33 + 34, 35, 36 + 37, 38, 39]);
}

#[test]
fn buckets_are_aligned_to_the_clock_reading_at_creation() {
    let clock = ManualClock::starting_at(Duration::from_millis(1_250));
    let window = WindowConfig::new(2, SECOND)
        .build_with(clock.clone())
        .expect("valid");
    window.record(1);
    clock.set(Duration::from_millis(2_200)); // 0.95 s after creation: same bucket
    window.record(2);
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 3]);
    clock.set(Duration::from_millis(2_250)); // exactly one bucket after creation
    window.record(4);
    assert_eq!(sums(&window, View::IncludingCurrent), [3, 4]);
    // An instant before the window existed reads as its first bucket: no panic, no reset.
    window.record_at(Duration::ZERO, 8);
    assert_eq!(sums(&window, View::IncludingCurrent), [3, 12]);
}

#[test]
fn records_far_beyond_any_realistic_uptime_do_not_panic() {
    let (clock, window) = window(3, Duration::from_micros(1));
    window.record(1);
    clock.set(Duration::from_secs(20 * 365 * 24 * 3600)); // beyond 2^48 one-microsecond buckets
    window.record(2);
    window.record(3);
    assert_eq!((window.sum(), window.count()), (5, 2));
    clock.set(Duration::MAX);
    window.record(4);
    assert_eq!(
        window.view_at(Duration::MAX, View::IncludingCurrent).sum(),
        9
    );
}

#[test]
fn sums_wrap_instead_of_panicking() {
    let (_clock, window) = window(2, SECOND);
    window.record(u64::MAX);
    window.record(2);
    assert_eq!((window.sum(), window.count()), (1, 2));
}

#[test]
fn reports_its_shape() {
    let (_clock, window) = window(10, 300 * MS);
    assert_eq!(window.buckets(), 10);
    assert_eq!(window.bucket_duration(), 300 * MS);
    assert_eq!(window.window(), 3 * SECOND);
    let stripes = rampart_core::Stripes::Exactly(window.stripes());
    assert_eq!(
        window.config(),
        WindowConfig::new(10, 300 * MS).with_stripes(stripes)
    );
    let debug = format!("{window:?}");
    assert!(debug.contains("buckets: 10"), "{debug}");
}

#[test]
fn invalid_shapes_are_config_errors_not_panics() {
    let clock = ManualClock::new();
    let cases = [
        (WindowConfig::new(0, SECOND), "buckets"),
        (WindowConfig::new(10, Duration::ZERO), "bucket_duration"),
        (
            WindowConfig::new(10, Duration::from_secs(u64::MAX / 4)),
            "bucket_duration",
        ),
        (WindowConfig::new(usize::MAX, SECOND), "buckets"),
    ];
    for (config, field) in cases {
        let err = RollingWindow::new_with(config, clock.clone()).unwrap_err();
        assert_eq!(err.field(), field, "{config:?}: {err}");
    }
    assert_eq!(
        RollingWindow::new(0, SECOND).unwrap_err().field(),
        "buckets"
    );
}

#[test]
fn windows_and_views_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<RollingWindow>();
    shareable::<RollingWindow<ManualClock>>();
    shareable::<rampart_core::WindowView<'static>>();
}

#[test]
fn the_current_bucket_and_its_number_follow_the_clock_not_the_writes() {
    let (clock, window) = window(3, SECOND);
    assert_eq!(window.current_at(clock.now()), (0, BucketStats::default()));
    window.record(4);
    window.record(5);
    assert_eq!(
        window.current_at(clock.now()),
        (0, BucketStats { sum: 9, count: 2 })
    );
    clock.set(Duration::from_millis(2_500));
    // No write yet in bucket 2: it is current, and empty.
    assert_eq!(window.bucket_at(clock.now()), 2);
    assert_eq!(window.current_at(clock.now()), (2, BucketStats::default()));
    window.record(1);
    assert_eq!(
        window.current_at(clock.now()),
        (2, BucketStats { sum: 1, count: 1 })
    );
    // An instant older than the newest bucket reads as the newest bucket.
    assert_eq!(
        window.current_at(Duration::ZERO),
        (2, BucketStats { sum: 1, count: 1 })
    );
}

#[test]
fn cached_completed_totals_plus_the_current_bucket_equal_the_full_view() {
    use rampart_core::PerBucketCache;

    let (clock, window) = window(4, 100 * MS);
    let cache = PerBucketCache::<2>::new();
    for step in 0..50_u64 {
        window.record(step);
        clock.advance(Duration::from_millis(step % 7 * 20));
        let now = clock.now();
        let [sum, count] = cache.get_or_refresh(window.bucket_at(now), || {
            let completed = window.view_at(now, View::Completed).totals();
            [completed.sum, completed.count]
        });
        let (_, current) = window.current_at(now);
        let full = window.view_at(now, View::IncludingCurrent).totals();
        assert_eq!(
            (sum + current.sum, count + current.count),
            (full.sum, full.count),
            "step {step}"
        );
    }
}

#[test]
fn advancing_without_a_record_moves_late_records_into_the_newest_bucket() {
    let (clock, window) = window(3, SECOND);
    let admitted_at = clock.now();
    clock.set(Duration::from_millis(5_500));
    // Without an advance, a record at the old instant would land in bucket 0, long expired.
    window.advance_to(clock.now());
    assert_eq!(window.count(), 0, "advancing records nothing");
    window.record_at(admitted_at, 7);
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 0, 7]);
    // Advancing to an older instant changes nothing.
    window.advance_to(Duration::ZERO);
    assert_eq!(
        window.current_at(clock.now()),
        (5, BucketStats { sum: 7, count: 1 })
    );
}

#[test]
fn advancing_and_reading_in_one_call_moves_the_ring_and_reads_the_bucket_of_now() {
    let (clock, window) = window(3, SECOND);
    window.record(4);
    assert_eq!(
        window.advance_and_read(clock.now()),
        (0, BucketStats { sum: 4, count: 1 })
    );
    let admitted_at = clock.now();
    clock.set(Duration::from_millis(5_500));
    assert_eq!(
        window.advance_and_read(clock.now()),
        (5, BucketStats::default()),
        "bucket 5, empty: bucket 0 has expired"
    );
    // The ring moved: a late record at the old instant lands in the bucket just read.
    window.record_at(admitted_at, 7);
    assert_eq!(
        window.advance_and_read(clock.now()),
        (5, BucketStats { sum: 7, count: 1 })
    );
    // An older instant reads the newest bucket and moves nothing.
    assert_eq!(
        window.advance_and_read(Duration::ZERO),
        (5, BucketStats { sum: 7, count: 1 })
    );
    assert_eq!(sums(&window, View::IncludingCurrent), [0, 0, 7]);
}
