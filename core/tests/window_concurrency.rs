//! Exactness under concurrency: many threads recording while the ring rotates.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use rampart_core::{ManualClock, RollingWindow, Stripes, View, WindowConfig};

const THREADS: u64 = 4;
const RECORDS_PER_THREAD: u64 = 100_000;

fn window(buckets: usize, bucket: Duration, stripes: usize) -> Arc<RollingWindow<ManualClock>> {
    Arc::new(
        WindowConfig::new(buckets, bucket)
            .with_stripes(Stripes::Exactly(stripes))
            .build_with(ManualClock::new())
            .expect("a valid window"),
    )
}

#[test]
fn threads_recording_across_hundreds_of_rotations_lose_nothing() {
    // One stripe: every thread adds to the same counters. Four: each thread has its own.
    for stripes in [1, 4] {
        record_across_rotations(stripes);
    }
}

fn record_across_rotations(stripes: usize) {
    // 1 000 buckets of 1 µs; every thread walks through 400 of them at its own pace, so
    // rotations (once per slot, by whichever thread gets there first) race with records
    // landing in the freshly emptied bucket. Nothing expires, so every record must be there.
    let window = window(1_000, Duration::from_micros(1), stripes);
    let start = Arc::new(Barrier::new(THREADS as usize));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (window, start) = (Arc::clone(&window), Arc::clone(&start));
            thread::spawn(move || {
                start.wait();
                for i in 0..RECORDS_PER_THREAD {
                    // Each thread sweeps slots 0..400 with its own phase.
                    let nanos = (i * 4 + thread * 250) % 400_000;
                    window.record_at(Duration::from_nanos(nanos), thread + 1);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a recording thread panicked");
    }
    let totals = window
        .view_at(Duration::from_micros(400), View::IncludingCurrent)
        .totals();
    assert_eq!(
        totals.count,
        THREADS * RECORDS_PER_THREAD,
        "{stripes} stripes"
    );
    assert_eq!(
        totals.sum,
        (1..=THREADS).sum::<u64>() * RECORDS_PER_THREAD,
        "{stripes} stripes"
    );
}

#[test]
fn every_bucket_holds_exactly_its_phase_while_the_ring_wraps() {
    // 8 buckets, 100 phases: the ring wraps twelve times. In each phase all threads record
    // into the same new slot, racing to rotate into it; between phases the test checks that
    // the new bucket holds exactly that phase's records and the old ones are intact.
    const PHASES: u64 = 100;
    const PER_PHASE: u64 = 2_000;
    let bucket = Duration::from_millis(1);
    let window = window(8, bucket, 2);
    let phase_start = Arc::new(Barrier::new(THREADS as usize + 1));
    let phase_end = Arc::new(Barrier::new(THREADS as usize + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let window = Arc::clone(&window);
            let (phase_start, phase_end) = (Arc::clone(&phase_start), Arc::clone(&phase_end));
            thread::spawn(move || {
                for phase in 0..PHASES {
                    phase_start.wait();
                    let now = bucket * phase as u32 + bucket / 2;
                    for _ in 0..PER_PHASE {
                        window.record_at(now, phase);
                    }
                    phase_end.wait();
                }
            })
        })
        .collect();
    for phase in 0..PHASES {
        phase_start.wait();
        phase_end.wait();
        let now = bucket * phase as u32 + bucket / 2;
        let counts: Vec<u64> = window
            .view_at(now, View::IncludingCurrent)
            .iter()
            .map(|b| b.count)
            .collect();
        let expected: Vec<u64> = (phase as i64 - 7..=phase as i64)
            .map(|p| if p >= 0 { THREADS * PER_PHASE } else { 0 })
            .collect();
        assert_eq!(counts, expected, "phase {phase}");
        let sums: Vec<u64> = window
            .view_at(now, View::IncludingCurrent)
            .iter()
            .map(|b| b.sum)
            .collect();
        assert_eq!(
            sums.last(),
            Some(&(phase * THREADS * PER_PHASE)),
            "phase {phase}"
        );
    }
    for worker in workers {
        worker.join().expect("a recording thread panicked");
    }
}

#[test]
fn readers_racing_rotations_see_at_most_one_slot_per_bucket() {
    // One writer walks 1 000 slots of a 4-bucket ring, 100 records per slot, while a reader
    // keeps viewing the newest buckets. A rotation empties a bucket before it is reused, so
    // no bucket a reader visits can hold more than one slot's records, and no view more
    // than four slots'.
    const PER_SLOT: u64 = 100;
    const SLOTS: u64 = 1_000;
    let bucket = Duration::from_micros(10);
    let window = window(4, bucket, 2);
    let writer = {
        let window = Arc::clone(&window);
        thread::spawn(move || {
            for i in 0..SLOTS * PER_SLOT {
                window.record_at(bucket * (i / PER_SLOT) as u32, 1);
            }
        })
    };
    let mut reads = 0_u64;
    while !writer.is_finished() {
        let view = window.view_at(Duration::ZERO, View::IncludingCurrent);
        for stats in &view {
            assert!(
                stats.count <= PER_SLOT,
                "a bucket holds {} records",
                stats.count
            );
        }
        assert!(
            view.count() <= 4 * PER_SLOT,
            "a view holds {} records",
            view.count()
        );
        reads += 1;
    }
    writer.join().expect("the recording thread panicked");
    assert!(reads > 0);
    // At slot 1 000 nothing is written yet: slots 997..=999 hold 100 records each.
    let end = window.view_at(bucket * SLOTS as u32, View::IncludingCurrent);
    assert_eq!(
        end.iter().map(|b| b.count).collect::<Vec<_>>(),
        [100, 100, 100, 0]
    );
}
