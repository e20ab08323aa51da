//! The budgets on a manual clock: exact fractional accounting, the standing reserve, expiry,
//! gRPC A6's token arithmetic, and exactness under concurrency.

use std::sync::Arc;
use std::time::Duration;

use rampart_core::{Clock, ManualClock, Outcome};
use rampart_retry::{Budget, RatioBudget, RatioConfig, TokenConfig};

fn ratio_budget(ratio: f64, min_per_sec: u32) -> (ManualClock, RatioBudget<ManualClock>) {
    let clock = ManualClock::new();
    let config = RatioConfig {
        ratio,
        min_per_sec,
        ..RatioConfig::default()
    };
    (clock.clone(), config.build_with(clock).expect("valid"))
}

fn drain(budget: &impl Budget) -> usize {
    (0..100_000).take_while(|_| budget.withdraw()).count()
}

#[test]
fn each_ratio_allows_exactly_its_share_of_a_steady_deposit_stream() {
    // 1 000 deposits over 5 s (inside the 10 s ttl), then retries until refused.
    for (ratio, expected) in [
        (0.1, 100),
        (0.2, 200),
        (0.6, 600),
        (1.0, 1_000),
        (2.0, 2_000),
    ] {
        let (clock, budget) = ratio_budget(ratio, 0);
        for _ in 0..1_000 {
            budget.deposit();
            clock.advance(Duration::from_millis(5));
        }
        assert_eq!(drain(&budget), expected, "ratio {ratio}");
        assert_eq!(budget.counts_at(clock.now()), (1_000, expected as u64));
    }
}

#[test]
fn a_ratio_of_0_6_is_not_rounded_to_1_as_towers_is() {
    // tower's TpsBudget withdraws 1 / 0.6 = 1 (integer) unit per retry: 100 retries for 100
    // deposits (tower issue #857). 0.6 means 60.
    let (_, budget) = ratio_budget(0.6, 0);
    for _ in 0..100 {
        budget.deposit();
    }
    assert_eq!(drain(&budget), 60);
    let tower_budget = tower::retry::budget::TpsBudget::new(Duration::from_secs(10), 0, 0.6);
    for _ in 0..100 {
        tower::retry::budget::Budget::deposit(&tower_budget);
    }
    let tower_retries = (0..1_000)
        .take_while(|_| tower::retry::budget::Budget::withdraw(&tower_budget))
        .count();
    assert_eq!(tower_retries, 100, "the bug this budget fixes");
}

#[test]
fn with_no_traffic_the_reserve_allows_min_per_sec_times_ttl_per_ttl() {
    // min_per_sec 10, ttl 10 s: a standing reserve of 100 retries in any 10 s.
    let (clock, budget) = ratio_budget(0.2, 10);
    // Zero traffic for 1 s, retrying every 10 ms: the first 100 get through.
    let mut allowed = 0;
    for _ in 0..100 {
        allowed += (0..10).filter(|_| budget.withdraw()).count();
        clock.advance(Duration::from_millis(10));
    }
    assert_eq!(allowed, 100, "1 s");
    // Keep going to 30 s: each withdrawal expires after the ttl and frees its place.
    for _ in 100..3_000 {
        allowed += (0..10).filter(|_| budget.withdraw()).count();
        clock.advance(Duration::from_millis(10));
    }
    assert_eq!(allowed, 300, "30 s: min_per_sec × 30 s");
}

#[test]
fn deposits_expire_after_the_ttl() {
    let (clock, budget) = ratio_budget(0.5, 0);
    for _ in 0..100 {
        budget.deposit();
    }
    clock.advance(Duration::from_secs(10));
    assert!(!budget.withdraw(), "the deposits are 10 s old: gone");
    assert_eq!(budget.counts_at(clock.now()), (0, 0));
    budget.deposit();
    budget.deposit();
    assert!(
        budget.withdraw() && !budget.withdraw(),
        "two fresh deposits at 0.5: one retry"
    );
}

#[test]
fn concurrent_withdrawals_never_overdraw() {
    // 4 threads race to spend 2 000 × 0.2 = 400 retries: exactly 400 succeed.
    let (_, budget) = ratio_budget(0.2, 0);
    for _ in 0..2_000 {
        budget.deposit();
    }
    let budget = Arc::new(budget);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || (0..1_000).filter(|_| budget.withdraw()).count())
        })
        .collect();
    let spent: usize = threads
        .into_iter()
        .map(|t| t.join().expect("no panic"))
        .sum();
    assert_eq!(spent, 400);
}

#[test]
fn concurrent_deposits_and_withdrawals_stay_within_the_ratio() {
    let (_, budget) = ratio_budget(0.25, 0);
    let budget = Arc::new(budget);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let budget = Arc::clone(&budget);
            std::thread::spawn(move || {
                let mut spent = 0;
                for _ in 0..10_000 {
                    budget.deposit();
                    spent += usize::from(budget.withdraw());
                }
                spent
            })
        })
        .collect();
    let spent: usize = threads
        .into_iter()
        .map(|t| t.join().expect("no panic"))
        .sum();
    assert!(
        spent <= 10_000,
        "at most a quarter of 40 000 deposits: {spent}"
    );
    assert_eq!(
        spent + drain(&*budget),
        10_000,
        "and every earned retry can be spent"
    );
}

#[test]
fn the_grpc_a6_token_example() {
    // max_tokens 10, token_ratio 0.1: starts at 10; a failure costs 1; retries are allowed
    // while more than 5 tokens remain; successes earn 0.1 each.
    let budget = TokenConfig::default().build().expect("valid");
    assert_eq!(budget.tokens(), 10.0);
    for expected in [9.0, 8.0, 7.0, 6.0] {
        budget.record(Outcome::Failure);
        assert_eq!(budget.tokens(), expected);
        assert!(budget.withdraw(), "{expected} > 5: retries allowed");
    }
    budget.record(Outcome::Failure);
    assert_eq!(budget.tokens(), 5.0);
    assert!(!budget.withdraw(), "5 is not above 5: throttled");
    budget.record(Outcome::Success);
    assert!((budget.tokens() - 5.1).abs() < 1e-9);
    assert!(budget.withdraw(), "recovered by one success");
    for _ in 0..100 {
        budget.record(Outcome::Success);
    }
    assert_eq!(budget.tokens(), 10.0, "capped at max_tokens");
    for _ in 0..20 {
        budget.record(Outcome::Failure);
    }
    assert_eq!(budget.tokens(), 0.0, "never below zero");
    assert!(budget.snapshot().remaining < 0.0);
}

#[test]
fn both_budgets_plug_into_towers_budget_trait() {
    fn tower_budget(budget: &impl tower::retry::budget::Budget) -> bool {
        budget.deposit();
        budget.withdraw()
    }
    let (_, ratio) = ratio_budget(1.0, 0);
    assert!(tower_budget(&ratio));
    let tokens = TokenConfig::default().build().expect("valid");
    assert!(
        tower_budget(&tokens),
        "a success then a failure: 9.1 tokens"
    );
    assert!(
        (tokens.tokens() - 9.0).abs() < 1e-9,
        "capped at 10, then −1"
    );
}
