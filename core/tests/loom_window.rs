//! loom models of the rolling window's rotation protocol.
//!
//! Run with `RUSTFLAGS="--cfg rampart_loom" cargo test -p rampart-core --test loom_window
//! --release` (CI does). loom explores every interleaving of the models' threads, including
//! the ones a stress test almost never hits: a record landing in a bucket while the rotation
//! into that bucket is still emptying it.
#![cfg(rampart_loom)]

use std::time::Duration;

use loom::sync::Arc;
use loom::thread;
use rampart_core::{BucketStats, ManualClock, RollingWindow, Stripes, View, WindowConfig};

const BUCKET: Duration = Duration::from_millis(1);

fn at(slot: u32) -> Duration {
    BUCKET * slot + BUCKET / 2
}

/// A window of `buckets` buckets of 1 ms, in two stripes: the model's threads are numbered
/// afresh in each execution, so its writers alternate between the stripes.
fn window(buckets: usize) -> Arc<RollingWindow<ManualClock>> {
    striped(buckets, 2)
}

fn striped(buckets: usize, stripes: usize) -> Arc<RollingWindow<ManualClock>> {
    let config = WindowConfig::new(buckets, BUCKET).with_stripes(Stripes::Exactly(stripes));
    Arc::new(
        config
            .build_with(ManualClock::new())
            .expect("a valid window"),
    )
}

fn stats(sum: u64, count: u64) -> BucketStats {
    BucketStats { sum, count }
}

#[test]
fn two_writers_racing_into_a_new_bucket_both_count() {
    for stripes in [1, 2] {
        two_writers_race_into_a_new_bucket(stripes);
    }
}

fn two_writers_race_into_a_new_bucket(stripes: usize) {
    loom::model(move || {
        let window = striped(2, stripes);
        window.record_at(at(0), 1);
        let writers: Vec<_> = [10, 100]
            .into_iter()
            .map(|value| {
                let window = Arc::clone(&window);
                thread::spawn(move || window.record_at(at(1), value))
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer panicked");
        }
        let buckets: Vec<_> = window
            .view_at(at(1), View::IncludingCurrent)
            .iter()
            .collect();
        assert_eq!(buckets, [stats(1, 1), stats(110, 2)]);
    });
}

#[test]
fn a_writer_in_the_old_bucket_racing_a_rotation_is_counted_once() {
    loom::model(|| {
        let window = window(2);
        let late = {
            let window = Arc::clone(&window);
            // Its instant is in slot 0; if the rotation has already happened it joins slot 1.
            thread::spawn(move || window.record_at(at(0), 1))
        };
        let rotating = {
            let window = Arc::clone(&window);
            thread::spawn(move || window.record_at(at(1), 10))
        };
        late.join().expect("writer panicked");
        rotating.join().expect("writer panicked");
        let buckets: Vec<_> = window
            .view_at(at(1), View::IncludingCurrent)
            .iter()
            .collect();
        assert!(
            buckets == [stats(1, 1), stats(10, 1)] || buckets == [stats(0, 0), stats(11, 2)],
            "{buckets:?}"
        );
    });
}

#[test]
fn a_reader_racing_a_rotation_never_sees_the_expired_bucket() {
    loom::model(|| {
        let window = window(2);
        // Records that expire when slot 2 begins, in both stripes (this thread records first,
        // so it takes stripe 0 and the next thread stripe 1): the rotation must empty both
        // copies of their bucket.
        window.record_at(at(0), 0);
        let early = Arc::clone(&window);
        thread::spawn(move || early.record_at(at(0), 1))
            .join()
            .expect("writer panicked");
        window.record_at(at(1), 2);
        let reader = {
            let window = Arc::clone(&window);
            thread::spawn(move || {
                window
                    .view_at(at(2), View::IncludingCurrent)
                    .iter()
                    .collect::<Vec<_>>()
            })
        };
        window.record_at(at(2), 4); // rotates slot 0's bucket into slot 2
        let seen = reader.join().expect("reader panicked");
        assert_eq!(seen[0], stats(2, 1), "slot 1, whatever the interleaving");
        // Slot 2: empty or the new record, never the expired 1. Sum and count are separate
        // counters, so a reader may see one of the writer's two adds without the other.
        assert!(
            [0, 4].contains(&seen[1].sum) && seen[1].count <= 1,
            "slot 2 showed {:?}",
            seen[1]
        );
    });
}

#[test]
fn a_reader_racing_a_cache_refresh_sees_one_bucket_or_the_other_never_a_mix() {
    use rampart_core::PerBucketCache;

    loom::model(|| {
        let cache = Arc::new(PerBucketCache::<2>::new());
        cache.get_or_refresh(1, || [1, 10]);
        let writer = {
            let cache = Arc::clone(&cache);
            thread::spawn(move || cache.get_or_refresh(2, || [2, 20]))
        };
        // Whatever the interleaving, bucket 2's values are its own: cached or computed here.
        let seen = cache.get_or_refresh(2, || [2, 20]);
        assert_eq!(seen, [2, 20]);
        // And bucket 1 is either still cached or recomputed, never torn.
        let old = cache.get_or_refresh(1, || [1, 10]);
        assert_eq!(old, [1, 10]);
        assert_eq!(writer.join().expect("writer panicked"), [2, 20]);
    });
}
