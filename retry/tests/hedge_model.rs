//! Nothing lost: thousands of random requests through the hedge layer under paused time, at
//! once, with random answers (successes, failures, panics, none at all), some dropped by
//! their caller on a random timeout. Afterwards no call is under way, every request
//! deposited once, every hedge sent withdrew once, every copy called was either a first copy
//! or a hedge, and every request that returned recorded its outcome once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rampart_core::{Outcome, TokioClock};
use rampart_retry::{Budget, BudgetSnapshot, HedgeConfig, HedgeLayer};
use tower::{BoxError, Layer, Service, ServiceExt};

#[derive(Debug, Default)]
struct Log {
    calls: AtomicUsize,
    live: AtomicUsize,
}

struct Alive(Arc<Log>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Each call draws its answer: Ok after 1 to 30 ms (most), a stall of 500 ms, a failure, a
/// panic, or nothing.
#[derive(Clone)]
struct Random {
    rng: Arc<Mutex<fastrand::Rng>>,
    log: Arc<Log>,
}

impl Service<u32> for Random {
    type Response = u32;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<u32, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> Self::Future {
        let (draw, ms) = {
            let mut rng = self.rng.lock().expect("no poison");
            (rng.u32(0..100), rng.u64(1..=30))
        };
        self.log.calls.fetch_add(1, Ordering::SeqCst);
        self.log.live.fetch_add(1, Ordering::SeqCst);
        let alive = Alive(Arc::clone(&self.log));
        Box::pin(async move {
            let _alive = alive;
            match draw {
                0..80 => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(request)
                }
                80..88 => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Ok(request)
                }
                88..95 => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Err("reset".into())
                }
                95..97 => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    panic!("backend panicked")
                }
                _ => std::future::pending().await,
            }
        })
    }
}

/// Counts deposits, withdrawals (granting two in three) and records.
#[derive(Debug, Default)]
struct Counting {
    deposits: AtomicU64,
    asked: AtomicU64,
    withdrawals: AtomicU64,
    records: AtomicU64,
}

impl Budget for Counting {
    fn deposit(&self) {
        self.deposits.fetch_add(1, Ordering::SeqCst);
    }

    fn withdraw(&self) -> bool {
        let granted = !self.asked.fetch_add(1, Ordering::SeqCst).is_multiple_of(3);
        if granted {
            self.withdrawals.fetch_add(1, Ordering::SeqCst);
        }
        granted
    }

    fn record(&self, _: Outcome) {
        self.records.fetch_add(1, Ordering::SeqCst);
    }

    fn snapshot(&self) -> BudgetSnapshot {
        BudgetSnapshot { remaining: 1.0 }
    }
}

#[tokio::test(start_paused = true)]
async fn every_copy_is_accounted_for_whatever_happens_to_the_requests() {
    // The backend's panics are expected: keep them out of the output, and the rest in it.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"backend panicked") {
            report(info);
        }
    }));
    for (seed, max_hedges) in [(1, 1), (2, 2), (3, 3)] {
        let log = Arc::new(Log::default());
        let backend = Random {
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
            log: Arc::clone(&log),
        };
        let budget = Arc::new(Counting::default());
        let config = HedgeConfig::default()
            .with_min_samples(20)
            .with_quantile(0.8)
            .with_max_hedges(max_hedges)
            .with_window(Duration::from_secs(1), 10);
        let layer =
            HedgeLayer::new_with(config, Arc::clone(&budget), TokioClock::new()).expect("valid");
        let client = layer.layer(backend);
        let mut rng = fastrand::Rng::with_seed(seed + 100);
        let mut requests = tokio::task::JoinSet::new();
        let mut returned = Arc::new(AtomicU64::new(0));
        let sent = 3_000;
        for n in 0..sent {
            // 30 requests every 10 ms; a fifth are dropped after 0 to 60 ms, the others after
            // 2 s (a request no copy answers).
            if n % 30 == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let request = client.clone().oneshot(n);
            let returned = Arc::clone(&returned);
            let cut = if rng.u32(0..5) == 0 {
                Duration::from_millis(rng.u64(0..=60))
            } else {
                Duration::from_secs(2)
            };
            requests.spawn(async move {
                if tokio::time::timeout(cut, request).await.is_ok() {
                    returned.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let mut panicked = 0;
        while let Some(joined) = requests.join_next().await {
            if joined.is_err_and(|error| error.is_panic()) {
                panicked += 1;
            }
        }
        let returned = Arc::get_mut(&mut returned).expect("tasks done").get_mut();
        let stats = layer.stats();
        let hedges =
            u64::try_from(log.calls.load(Ordering::SeqCst)).expect("fits") - u64::from(sent);

        assert_eq!(
            log.live.load(Ordering::SeqCst),
            0,
            "seed {seed}: a copy left under way"
        );
        assert_eq!(budget.deposits.load(Ordering::SeqCst), u64::from(sent));
        assert_eq!(
            hedges, stats.sent,
            "seed {seed}: calls beyond the first copies"
        );
        assert_eq!(budget.withdrawals.load(Ordering::SeqCst), stats.sent);
        assert_eq!(
            budget.asked.load(Ordering::SeqCst),
            stats.sent + stats.refused_budget
        );
        assert_eq!(budget.records.load(Ordering::SeqCst), *returned);
        assert!(
            stats.sent > 100 && stats.won > 10,
            "seed {seed}: hedges ran: {stats:?}"
        );
        assert!(stats.refused_budget > 50, "seed {seed}: {stats:?}");
        assert!(panicked > 0, "seed {seed}: panics exercised");
    }
}
