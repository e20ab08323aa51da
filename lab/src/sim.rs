//! The simulation machinery every scenario shares: arrivals, a paused runtime, the open-loop
//! driver, and the records it keeps.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rampart_fault::poisson_gap;
use tokio::time::Instant;

/// A request's fate, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Answered successfully within the deadline.
    Served,
    /// Answered with an error.
    Failed,
    /// Refused by a local protection (shed, rejected, no endpoint) without reaching a backend.
    Refused,
    /// No answer within the deadline: the client stopped waiting, so a late success is a
    /// failure (while the server may still spend the work on it).
    TimedOut,
}

/// One request.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    /// When it was sent, since the start of the run.
    pub at: Duration,
    /// How long its client waited for the answer (the deadline when it timed out).
    pub latency: Duration,
    /// What became of it.
    pub fate: Fate,
}

impl Record {
    /// Whether it counts as goodput: a success within the deadline.
    pub fn is_good(&self) -> bool {
        self.fate == Fate::Served
    }
}

/// A request on its way: whatever a stack returns, the driver awaits it as this.
pub struct Call(Pin<Box<dyn Future<Output = Outcome> + Send>>);

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Call")
    }
}

impl Call {
    /// Wraps the future of a request's outcome.
    pub fn new(outcome: impl Future<Output = Outcome> + Send + 'static) -> Self {
        Self(Box::pin(outcome))
    }
}

/// How a call ended, before the deadline is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A successful response.
    Ok,
    /// An error from a backend (or a retry that gave up).
    Err,
    /// A local refusal.
    Refused,
}

/// Poisson arrival times for an offered rate that changes with time.
///
/// `rate(t)` is the offered load, in requests per second, at `t`; the same seed gives the
/// same arrivals, which every stack of a scenario then receives.
pub fn arrivals(seed: u64, duration: Duration, rate: impl Fn(Duration) -> f64) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut at = Duration::ZERO;
    let mut times = Vec::new();
    while at < duration {
        times.push(at);
        at = at.saturating_add(poisson_gap(&mut rng, rate(at).max(1e-3)));
    }
    times
}

/// Runs `simulation` on a fresh single-threaded runtime whose clock is paused: simulated time
/// jumps straight to the next timer, so a minute takes milliseconds, deterministically.
///
/// # Panics
///
/// If the runtime cannot be built (it always can: it needs no I/O driver).
pub fn simulate<F: Future>(simulation: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime with time enabled always builds");
    runtime.block_on(simulation)
}

/// Sends a request at every arrival, open loop (a slow answer never delays the next
/// request), through `send`, which returns the call for the `n`th request (after
/// waiting for a balancer's readiness, if it has one); `tick` is called before each request (to
/// change a backend mid-run, or to sample it). Each call is awaited in its own task, up to
/// `deadline`.
///
/// Must run inside [`simulate`].
pub async fn drive(
    arrivals: &[Duration],
    deadline: Duration,
    send: impl AsyncFnMut(usize) -> Call,
    tick: impl FnMut(Duration),
) -> Vec<Record> {
    drive_each(arrivals, |_| deadline, send, tick).await
}

/// [`drive`], the `n`th request's client waiting up to `deadline(n)` for its answer.
///
/// Must run inside [`simulate`].
pub async fn drive_each(
    arrivals: &[Duration],
    deadline: impl Fn(usize) -> Duration,
    mut send: impl AsyncFnMut(usize) -> Call,
    mut tick: impl FnMut(Duration),
) -> Vec<Record> {
    let start = Instant::now();
    let records = Arc::new(Mutex::new(Vec::with_capacity(arrivals.len())));
    let mut tasks = Vec::with_capacity(arrivals.len());
    for (n, &at) in arrivals.iter().enumerate() {
        tokio::time::sleep_until(start + at).await;
        tick(at);
        let call = send(n).await;
        let deadline = deadline(n);
        let records = Arc::clone(&records);
        tasks.push(tokio::spawn(async move {
            let (fate, latency) = match tokio::time::timeout(deadline, call.0).await {
                Ok(outcome) => {
                    let latency = start.elapsed().saturating_sub(at);
                    let fate = match outcome {
                        Outcome::Ok => Fate::Served,
                        Outcome::Err => Fate::Failed,
                        Outcome::Refused => Fate::Refused,
                    };
                    (fate, latency)
                }
                Err(_) => (Fate::TimedOut, deadline),
            };
            records.lock().push(Record { at, latency, fate });
        }));
    }
    for task in tasks {
        // A panicking call loses its record; the scenarios' stacks do not panic.
        let _ = task.await;
    }
    let mut records = std::mem::take(&mut *records.lock());
    records.sort_by_key(|record| record.at);
    records
}

/// Requests sent in `[from, to)`.
pub fn between(records: &[Record], from: Duration, to: Duration) -> impl Iterator<Item = &Record> {
    records
        .iter()
        .filter(move |record| record.at >= from && record.at < to)
}

/// The `q`-quantile of `values`, in milliseconds; NaN when there are none (the p99 of no
/// successes is not zero).
pub fn quantile_ms(mut values: Vec<Duration>, q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort();
    let at = ((values.len() as f64 * q) as usize).min(values.len() - 1);
    values[at].as_secs_f64() * 1e3
}

/// The latencies of the successes among `records`.
pub fn success_latencies<'a>(records: impl Iterator<Item = &'a Record>) -> Vec<Duration> {
    records
        .filter(|record| record.fate == Fate::Served)
        .map(|record| record.latency)
        .collect()
}

/// The quantile `q` of the latencies of the successes among `records`, in milliseconds; NaN
/// when there are none.
pub fn success_quantile_ms(records: &[&Record], q: f64) -> f64 {
    quantile_ms(success_latencies(records.iter().copied()), q)
}

/// The share of `records` that are `counted`; 0 when there are none (an empty bin admitted,
/// shed or failed nothing).
pub fn share(records: &[&Record], counted: impl Fn(&Record) -> bool) -> f64 {
    let hits = records.iter().filter(|record| counted(record)).count();
    hits as f64 / (records.len() as f64).max(1.0)
}

/// A per-bin series: `value(span, records sent in span)` for each `bin` of the run, in order.
/// A bin's span is `[n · bin, (n + 1) · bin)`, the last one cut at `duration`.
pub fn series(
    records: &[Record],
    duration: Duration,
    bin: Duration,
    value: impl Fn(Range<Duration>, &[&Record]) -> f64,
) -> Vec<f64> {
    let bins = (duration.as_secs_f64() / bin.as_secs_f64()).ceil() as usize;
    let mut grouped: Vec<Vec<&Record>> = vec![Vec::new(); bins];
    for record in records {
        let index =
            ((record.at.as_secs_f64() / bin.as_secs_f64()) as usize).min(bins.saturating_sub(1));
        grouped[index].push(record);
    }
    (0_u32..)
        .zip(&grouped)
        .map(|(n, records)| {
            let start = bin * n;
            value(start..(start + bin).min(duration), records)
        })
        .collect()
}

/// The per-bin p99 of the successes, in milliseconds (NaN in a bin without one): the series
/// `p99_ms` that `Chart::p99` draws.
pub fn p99_series(records: &[Record], duration: Duration, bin: Duration) -> Vec<f64> {
    series(records, duration, bin, |_, bin| {
        success_quantile_ms(bin, 0.99)
    })
}

/// A backend's request count sampled at the start of every bin (to turn into per-bin traffic).
#[derive(Debug, Clone, Default)]
pub struct Samples(Arc<Mutex<Vec<Sample>>>);

/// Counts, and when they were taken.
type Sample = (Duration, Vec<u64>);

impl Samples {
    /// Records the counts at `at`.
    pub fn take(&self, at: Duration, counts: Vec<u64>) {
        self.0.lock().push((at, counts));
    }

    /// The counts last taken at or before `at`.
    pub fn at(&self, at: Duration) -> Vec<u64> {
        let samples = self.0.lock();
        samples
            .iter()
            .rev()
            .find(|(when, _)| *when <= at)
            .map(|(_, counts)| counts.clone())
            .unwrap_or_default()
    }

    /// How much count `n` rose over `span`: its value last taken at or before the end less
    /// that at or before the start (0 for a count never taken).
    pub fn rise(&self, n: usize, span: Range<Duration>) -> u64 {
        let count = |at| self.at(at).get(n).copied().unwrap_or(0);
        count(span.end).saturating_sub(count(span.start))
    }
}

/// Takes counts into [`Samples`] at chosen instants as a run passes them: call
/// [`tick`](Self::tick) from [`drive`]'s `tick`.
#[derive(Debug)]
pub struct Sampler {
    samples: Samples,
    /// The instants to sample at, in order.
    times: Vec<Duration>,
    /// The first instant not yet sampled.
    next: usize,
}

impl Sampler {
    /// Samples into `samples` at each of `times`.
    pub fn new(samples: Samples, mut times: Vec<Duration>) -> Self {
        times.sort();
        times.dedup();
        Self {
            samples,
            times,
            next: 0,
        }
    }

    /// Takes `count()` (read once) for every instant up to `at` not yet sampled.
    pub fn tick(&mut self, at: Duration, count: impl FnOnce() -> Vec<u64>) {
        if self.times.get(self.next).is_none_or(|&time| time > at) {
            return;
        }
        let counts = count();
        while let Some(&time) = self.times.get(self.next)
            && time <= at
        {
            self.samples.take(time, counts.clone());
            self.next += 1;
        }
    }
}

/// The start of every `bin` of a run of `duration`.
pub fn bin_starts(duration: Duration, bin: Duration) -> Vec<Duration> {
    let bins = u32::try_from(duration.as_nanos() / bin.as_nanos().max(1)).unwrap_or(u32::MAX);
    (0..=bins).map(|n| bin * n).collect()
}

/// Maps a stack's result to an [`Outcome`]: errors [`is_refusal`] recognises are local
/// refusals, other errors failures.
pub fn outcome<T>(result: &Result<T, tower::BoxError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(error) if is_refusal(error) => Outcome::Refused,
        Err(_) => Outcome::Err,
    }
}

/// Whether `error` is one of rampart's or tower's local refusals.
pub fn is_refusal(error: &tower::BoxError) -> bool {
    error.is::<rampart_core::Rejected>()
        || error.is::<rampart_ratelimit::Overloaded>()
        || error.is::<rampart_balancer::NoEndpoints>()
        || error.is::<tower::load_shed::error::Overloaded>()
}

/// Sends one request through a clone of `service` (which waits for its readiness), as a
/// [`Call`].
pub fn call<S, Res>(service: &S) -> Call
where
    S: tower::Service<(), Response = Res, Error = tower::BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    use tower::ServiceExt as _;
    let call = service.clone().oneshot(());
    Call::new(async move { outcome(&call.await) })
}

/// [`call`] through `service`, boxed: for scenarios that choose each stack at run time.
pub fn caller<S, Res>(service: S) -> Box<dyn Fn() -> Call>
where
    S: tower::Service<(), Response = Res, Error = tower::BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    Box::new(move || call(&service))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn arrivals_follow_the_rate_and_the_seed() {
        let steady = arrivals(9, Duration::from_secs(10), |_| 1_000.0);
        assert!(
            (9_700..10_300).contains(&steady.len()),
            "{} arrivals",
            steady.len()
        );
        assert!(steady.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(steady, arrivals(9, Duration::from_secs(10), |_| 1_000.0));
        assert_ne!(steady, arrivals(10, Duration::from_secs(10), |_| 1_000.0));
        let stepped = arrivals(9, Duration::from_secs(10), |at| {
            if at < Duration::from_secs(5) {
                100.0
            } else {
                1_000.0
            }
        });
        let early = stepped
            .iter()
            .filter(|&&at| at < Duration::from_secs(5))
            .count();
        assert!((400..600).contains(&early), "{early} in the slow half");
        assert!((4_700..5_300).contains(&(stepped.len() - early)));
    }

    #[test]
    fn quantiles_of_nothing_are_not_zero() {
        assert!(quantile_ms(Vec::new(), 0.99).is_nan());
        let values: Vec<Duration> = (1..=100).map(|n| MS * n).collect();
        assert!((quantile_ms(values.clone(), 0.99) - 100.0).abs() < 1e-9);
        assert!((quantile_ms(values, 0.5) - 51.0).abs() < 1e-9);
    }

    #[test]
    fn series_bins_records_by_when_they_were_sent() {
        let record = |ms: u64| Record {
            at: MS * ms as u32,
            latency: MS,
            fate: Fate::Served,
        };
        let records = [record(0), record(999), record(1_000), record(2_500)];
        let counts = series(
            &records,
            Duration::from_millis(2_600),
            Duration::from_secs(1),
            |_, bin| bin.len() as f64,
        );
        assert_eq!(counts, [2.0, 1.0, 1.0]);
    }

    #[test]
    fn series_tells_each_bin_its_span_the_last_cut_at_the_end() {
        let spans = std::cell::RefCell::new(Vec::new());
        let ends = series(
            &[],
            Duration::from_millis(2_600),
            Duration::from_secs(1),
            |span, bin| {
                assert!(bin.is_empty());
                spans.borrow_mut().push(span.clone());
                span.end.as_secs_f64()
            },
        );
        assert_eq!(ends, [1.0, 2.0, 2.6]);
        assert_eq!(
            spans.into_inner(),
            [
                Duration::ZERO..1_000 * MS,
                1_000 * MS..2_000 * MS,
                2_000 * MS..2_600 * MS
            ]
        );
    }

    #[test]
    fn shares_and_quantiles_of_a_bin() {
        let record = |ms: u32, fate| Record {
            at: Duration::ZERO,
            latency: MS * ms,
            fate,
        };
        let records = [
            record(10, Fate::Served),
            record(30, Fate::Served),
            record(1, Fate::Refused),
            record(200, Fate::TimedOut),
        ];
        let bin: Vec<&Record> = records.iter().collect();
        assert_eq!(share(&bin, Record::is_good), 0.5);
        assert_eq!(share(&bin, |r| r.fate == Fate::Refused), 0.25);
        // An empty bin has a share of nothing, not NaN; its quantiles are NaN.
        assert_eq!(share(&[], Record::is_good), 0.0);
        assert!(success_quantile_ms(&[], 0.99).is_nan());
        // Only successes count: the refusal's 1 ms and the timeout's 200 ms do not.
        assert!((success_quantile_ms(&bin, 0.99) - 30.0).abs() < 1e-9);
        assert!((success_quantile_ms(&bin, 0.0) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn drive_tells_served_failed_refused_and_timed_out_apart() {
        let deadline = 50 * MS;
        let sent = [Duration::ZERO, 10 * MS, 20 * MS, 30 * MS, 40 * MS];
        let mut ticks = Vec::new();
        let records = simulate(drive(
            &sent,
            deadline,
            async |n| -> Call {
                // 0: a quick success; 1: an error; 2: a refusal; 3: a success after the
                // deadline (the client has stopped waiting: timed out); 4: no answer ever.
                match n {
                    0 => Call::new(async {
                        tokio::time::sleep(5 * MS).await;
                        Outcome::Ok
                    }),
                    1 => Call::new(async { Outcome::Err }),
                    2 => Call::new(async { Outcome::Refused }),
                    3 => Call::new(async {
                        tokio::time::sleep(80 * MS).await;
                        Outcome::Ok
                    }),
                    _ => Call::new(std::future::pending()),
                }
            },
            |at| ticks.push(at),
        ));
        assert_eq!(ticks, sent);
        let fates: Vec<Fate> = records.iter().map(|r| r.fate).collect();
        assert_eq!(
            fates,
            [
                Fate::Served,
                Fate::Failed,
                Fate::Refused,
                Fate::TimedOut,
                Fate::TimedOut
            ]
        );
        assert_eq!(records[0].latency, 5 * MS);
        assert_eq!(records[4].latency, deadline);
        assert!(records[0].is_good() && !records[1].is_good());
    }

    #[test]
    fn samples_answer_with_the_last_count_taken() {
        let samples = Samples::default();
        assert!(samples.at(Duration::ZERO).is_empty());
        samples.take(Duration::ZERO, vec![1]);
        samples.take(Duration::from_secs(1), vec![5]);
        assert_eq!(samples.at(Duration::from_millis(999)), [1]);
        assert_eq!(samples.at(Duration::from_secs(3)), [5]);
    }

    #[test]
    fn a_rise_is_the_difference_of_the_counts_at_the_span_edges() {
        let samples = Samples::default();
        samples.take(Duration::ZERO, vec![1, 10]);
        samples.take(Duration::from_secs(1), vec![5, 30]);
        samples.take(Duration::from_secs(2), vec![6, 30]);
        let s = Duration::from_secs;
        assert_eq!(samples.rise(0, s(0)..s(1)), 4);
        assert_eq!(samples.rise(1, s(0)..s(3)), 20);
        assert_eq!(samples.rise(1, s(1)..s(2)), 0);
        // A count never taken rose by nothing.
        assert_eq!(samples.rise(2, s(0)..s(2)), 0);
    }

    #[test]
    fn refusals_are_told_from_failures() {
        let refused: tower::BoxError = rampart_core::Rejected::new().into();
        let shed: tower::BoxError = tower::load_shed::error::Overloaded::new().into();
        let failed: tower::BoxError = "boom".into();
        assert!(is_refusal(&refused) && is_refusal(&shed) && !is_refusal(&failed));
        assert_eq!(outcome::<()>(&Err(refused)), Outcome::Refused);
        assert_eq!(outcome::<()>(&Err(failed)), Outcome::Err);
        assert_eq!(outcome(&Ok(())), Outcome::Ok);
    }

    #[test]
    fn a_sampler_takes_every_instant_a_tick_passes_once() {
        let samples = Samples::default();
        let mut times = bin_starts(Duration::from_secs(3), Duration::from_secs(1));
        times.push(Duration::from_millis(1_500));
        let mut counter = Sampler::new(samples.clone(), times);
        let mut reads = 0;
        for (at, count) in [(0, 10), (400, 11), (2_100, 20), (2_900, 21), (3_000, 30)] {
            counter.tick(Duration::from_millis(at), || {
                reads += 1;
                vec![count]
            });
        }
        // 0 s at the first tick; 1 s, 1.5 s and 2 s at the tick of 2.1 s; 3 s at the last.
        assert_eq!(reads, 3);
        let at = |ms| samples.at(Duration::from_millis(ms));
        assert_eq!(at(999), vec![10]);
        assert_eq!(at(1_500), vec![20]);
        assert_eq!(at(2_999), vec![20]);
        assert_eq!(at(3_000), vec![30]);
    }
}
