//! The figures every hedging scenario reports: latency quantiles, the extra load the copies
//! make, and where the copies went.

use std::ops::Range;
use std::time::Duration;

use super::replicas::{Request, Sent};
use crate::report::StackReport;
use crate::sim::{self, Record};

/// The series' bins.
pub(super) const BIN: Duration = Duration::from_secs(1);

/// One stack's run: by request number, its record and where its copies went; and when each
/// copy after a request's first was sent.
#[derive(Debug)]
pub(super) struct Run<'a> {
    pub(super) records: &'a [Record],
    pub(super) sent: &'a [Sent],
    pub(super) requests: &'a [Request],
    /// In order.
    pub(super) hedged_at: &'a [Duration],
}

impl Run<'_> {
    /// The request numbers sent in `span`.
    pub(super) fn sent_in(&self, span: Range<Duration>) -> Range<usize> {
        let start = self
            .records
            .partition_point(|record| record.at < span.start);
        let end = self.records.partition_point(|record| record.at < span.end);
        start..end
    }

    /// The `q`-quantile of the latencies of the successes among requests `ids` for which
    /// `counted` holds, in milliseconds (NaN without one).
    pub(super) fn quantile_ms(
        &self,
        ids: Range<usize>,
        q: f64,
        counted: impl Fn(&Request) -> bool,
    ) -> f64 {
        let records = ids
            .filter(|&n| counted(&self.requests[n]))
            .map(|n| &self.records[n]);
        sim::quantile_ms(sim::success_latencies(records), q)
    }

    /// Copies beyond the first, per request, among requests `ids` for which `counted` holds.
    pub(super) fn extra_load(&self, ids: Range<usize>, counted: impl Fn(&Request) -> bool) -> f64 {
        let (mut requests, mut hedges) = (0_u64, 0_u64);
        for n in ids.filter(|&n| counted(&self.requests[n])) {
            requests += 1;
            hedges += u64::from(self.sent[n].copies.saturating_sub(1));
        }
        hedges as f64 / (requests as f64).max(1.0)
    }

    /// The extra load the servers saw in `span`: copies after a request's first sent in it, per
    /// request sent in it.
    pub(super) fn extra_load_sent(&self, span: Range<Duration>) -> f64 {
        let hedges = self.hedged_at.partition_point(|&at| at < span.end)
            - self.hedged_at.partition_point(|&at| at < span.start);
        hedges as f64 / (self.sent_in(span).len() as f64).max(1.0)
    }

    /// [`extra_load_sent`](Self::extra_load_sent) in each [`BIN`] of a run of `duration`.
    pub(super) fn extra_load_series(&self, duration: Duration) -> Vec<f64> {
        sim::bin_starts(duration, BIN)
            .into_iter()
            .filter(|&start| start < duration)
            .map(|start| self.extra_load_sent(start..(start + BIN).min(duration)))
            .collect()
    }

    /// The share of the copies beyond the first that went to another replica than the first
    /// copy's (NaN when there was none).
    pub(super) fn elsewhere(&self) -> f64 {
        let (mut hedges, mut elsewhere) = (0_u64, 0_u64);
        for sent in self.sent {
            hedges += u64::from(sent.copies.saturating_sub(1));
            elsewhere += u64::from(sent.elsewhere);
        }
        if hedges == 0 {
            f64::NAN
        } else {
            elsewhere as f64 / hedges as f64
        }
    }

    /// The share of requests `ids` with a copy whose response a paused replica held back.
    pub(super) fn stalled(&self, ids: Range<usize>) -> f64 {
        let total = ids.len();
        let stalled = self.sent[ids].iter().filter(|s| s.stalled > 0).count();
        stalled as f64 / (total as f64).max(1.0)
    }

    /// The share of requests `ids` answered successfully within their deadline.
    pub(super) fn served(&self, ids: Range<usize>) -> f64 {
        let total = ids.len();
        let good = self.records[ids].iter().filter(|r| r.is_good()).count();
        good as f64 / (total as f64).max(1.0)
    }

    /// `value(request numbers sent in the bin)` for each [`BIN`] of a run of `duration`.
    pub(super) fn per_bin(
        &self,
        duration: Duration,
        value: impl Fn(Range<usize>) -> f64,
    ) -> Vec<f64> {
        sim::bin_starts(duration, BIN)
            .into_iter()
            .filter(|&start| start < duration)
            .map(|start| value(self.sent_in(start..(start + BIN).min(duration))))
            .collect()
    }

    /// The figures and series every scenario reports, over requests `ids`: p50, p99 and p99.9
    /// of successes, the extra load, the share of copies sent elsewhere, the share of requests
    /// stalled in a copy, and the share served;
    /// per second, the p99 and the p99.9 (of the requests sent in it) and the extra load (the
    /// copies sent in it).
    pub(super) fn summary(&self, name: &str, ids: Range<usize>, duration: Duration) -> StackReport {
        let all = |_: &Request| true;
        StackReport::new(name)
            .figure("p50_ms", self.quantile_ms(ids.clone(), 0.5, all))
            .figure("p99_ms", self.quantile_ms(ids.clone(), 0.99, all))
            .figure("p999_ms", self.quantile_ms(ids.clone(), 0.999, all))
            .figure("extra_load", self.extra_load(ids.clone(), all))
            .figure("hedges_elsewhere", self.elsewhere())
            .figure("stalled", self.stalled(ids.clone()))
            .figure("served", self.served(ids))
            .series(
                "p99_ms",
                self.per_bin(duration, |bin| self.quantile_ms(bin, 0.99, all)),
            )
            .series(
                "p999_ms",
                self.per_bin(duration, |bin| self.quantile_ms(bin, 0.999, all)),
            )
            .series("extra_load", self.extra_load_series(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Fate;

    const MS: Duration = Duration::from_millis(1);

    fn record(at_ms: u32, latency_ms: u32, fate: Fate) -> Record {
        Record {
            at: MS * at_ms,
            latency: MS * latency_ms,
            fate,
        }
    }

    #[test]
    fn extra_load_and_elsewhere_count_the_copies_beyond_the_first() {
        let records = [
            record(0, 5, Fate::Served),
            record(400, 20, Fate::Served),
            record(1_200, 7, Fate::TimedOut),
        ];
        let sent = [
            Sent::test(1, 0, 0),
            Sent::test(2, 1, 1),
            Sent::test(3, 1, 0),
        ];
        let requests: Vec<Request> = (0..3).map(|id| Request { id, heavy: id == 1 }).collect();
        let hedged_at = [
            Duration::from_millis(30),
            Duration::from_millis(1_210),
            Duration::from_millis(1_250),
        ];
        let run = Run {
            records: &records,
            sent: &sent,
            requests: &requests,
            hedged_at: &hedged_at,
        };
        assert_eq!(run.extra_load(0..3, |_| true), 1.0);
        // By when the copies were sent: one for the two requests of the first second, two for
        // the one of the next half.
        assert_eq!(
            run.extra_load_series(Duration::from_millis(1_500)),
            [0.5, 2.0]
        );
        assert_eq!(run.extra_load(0..3, |r| !r.heavy), 1.0);
        assert_eq!(run.extra_load(0..2, |r| r.heavy), 1.0);
        assert_eq!(run.extra_load(0..1, |_| true), 0.0);
        assert!((run.elsewhere() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(run.sent_in(Duration::ZERO..Duration::from_secs(1)), 0..2);
        assert!((run.served(0..3) - 2.0 / 3.0).abs() < 1e-12);
        assert!((run.stalled(0..3) - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(run.stalled(0..1), 0.0);
        assert_eq!(run.quantile_ms(0..3, 0.999, |_| true), 20.0);
        assert_eq!(run.quantile_ms(0..3, 0.999, |r| !r.heavy), 5.0);
        assert_eq!(
            run.per_bin(Duration::from_millis(1_500), |bin| bin.len() as f64),
            [2.0, 1.0]
        );
    }
}
