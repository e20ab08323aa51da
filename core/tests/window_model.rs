//! Property test: random interleavings of clock moves, records and reads against a brute-force
//! model that keeps every timestamped record.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rampart_core::{BucketStats, Clock, ManualClock, Stripes, View, WindowConfig};

#[derive(Debug, Clone)]
enum Step {
    /// Move the clock forward.
    Advance(Duration),
    /// Move the clock backwards (saturating at zero).
    Rewind(Duration),
    /// Record a value at the clock's time.
    Record(u64),
    /// Compare both views with the model.
    Read,
    /// Move the ring to the clock's time and read the current bucket in one call.
    AdvanceAndRead,
}

fn step(bucket: Duration) -> impl Strategy<Value = Step> {
    let bucket_us = bucket.as_micros() as u64;
    prop_oneof![
        // Small moves inside a bucket, moves of a few buckets, and jumps past the window.
        3 => (0..bucket_us).prop_map(|us| Step::Advance(Duration::from_micros(us))),
        2 => (1..4 * bucket_us).prop_map(|us| Step::Advance(Duration::from_micros(us))),
        1 => (1..20_u64).prop_map(move |n| Step::Advance(bucket * n as u32)),
        1 => (1..3 * bucket_us).prop_map(|us| Step::Rewind(Duration::from_micros(us))),
        6 => (0..1_000_u64).prop_map(Step::Record),
        3 => Just(Step::Read),
        2 => Just(Step::AdvanceAndRead),
    ]
}

/// Every record the window has accepted, with the bucket slot it belongs to.
struct Model {
    origin: Duration,
    bucket: Duration,
    buckets: i64,
    /// The newest slot written: a record at an older instant joins it.
    newest: i64,
    records: Vec<(i64, u64)>,
}

impl Model {
    fn slot(&self, now: Duration) -> i64 {
        (now.saturating_sub(self.origin).as_nanos() / self.bucket.as_nanos()) as i64
    }

    fn record(&mut self, now: Duration, value: u64) {
        self.newest = self.newest.max(self.slot(now));
        self.records.push((self.newest, value));
    }

    /// Moves the newest slot to `now`'s, as a record would; returns the newest slot and
    /// what it holds.
    fn advance_and_read(&mut self, now: Duration) -> (u64, BucketStats) {
        self.newest = self.newest.max(self.slot(now));
        let values = self
            .records
            .iter()
            .filter(|(s, _)| *s == self.newest)
            .map(|(_, v)| *v);
        let stats = BucketStats {
            sum: values.clone().sum(),
            count: values.count() as u64,
        };
        (self.newest as u64, stats)
    }

    fn view(&self, now: Duration, view: View) -> Vec<BucketStats> {
        let now_slot = self.slot(now).max(self.newest);
        let (last, len) = match view {
            View::IncludingCurrent => (now_slot, self.buckets),
            View::Completed => (now_slot - 1, self.buckets - 1),
        };
        (last - len + 1..=last)
            .map(|slot| {
                let values = self
                    .records
                    .iter()
                    .filter(|(s, _)| *s == slot)
                    .map(|(_, v)| *v);
                BucketStats {
                    sum: values.clone().sum(),
                    count: values.count() as u64,
                }
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn matches_a_model_that_keeps_every_record(
        buckets in 1..=6_usize,
        bucket_us in prop::sample::select(vec![1_u64, 7, 1_000, 100_000]),
        origin_ms in 0..5_000_u64,
        stripes in prop::sample::select(vec![1_usize, 2, 8]),
        steps in prop::collection::vec(step(Duration::from_millis(1)), 1..200),
    ) {
        let bucket = Duration::from_micros(bucket_us);
        // Rescale the generated moves (drawn for a 1 ms bucket) to this bucket width.
        let scale = |d: Duration| d.mul_f64(bucket_us as f64 / 1_000.0);
        let origin = Duration::from_millis(origin_ms);
        let clock = ManualClock::starting_at(origin);
        let window = WindowConfig::new(buckets, bucket)
            .with_stripes(Stripes::Exactly(stripes))
            .build_with(clock.clone())
            .unwrap();
        let mut model = Model { origin, bucket, buckets: buckets as i64, newest: 0, records: vec![] };

        for step in steps {
            match step {
                Step::Advance(by) => clock.advance(scale(by)),
                Step::Rewind(by) => clock.set(clock.now().saturating_sub(scale(by))),
                Step::Record(value) => {
                    window.record(value);
                    model.record(clock.now(), value);
                }
                Step::Read => {}
                Step::AdvanceAndRead => {
                    let now = clock.now();
                    prop_assert_eq!(
                        window.advance_and_read(now),
                        model.advance_and_read(now),
                        "advance and read at {:?}", now
                    );
                }
            }
            for view in [View::IncludingCurrent, View::Completed] {
                let now = clock.now();
                let expected = model.view(now, view);
                let actual = window.view(view);
                let buckets: Vec<BucketStats> = actual.iter().collect();
                prop_assert_eq!(&buckets, &expected, "{:?} at {:?}", view, now);
                let total = expected.iter().fold(BucketStats::default(), |a, b| a + *b);
                prop_assert_eq!(actual.totals(), total);
                prop_assert_eq!((actual.sum(), actual.count()), (total.sum, total.count));
                prop_assert_eq!(actual.len(), expected.len());
            }
        }
    }
}
