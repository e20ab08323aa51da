//! A fleet of 1 000 clients, each with its own `RatioBudget`, facing a dead backend, on one
//! `ManualClock`: per-client floors add up to a retry storm, a fleet floor does not.

use std::time::Duration;

use rampart_core::ManualClock;
use rampart_retry::{Budget, RatioBudget, RatioConfig};

const CLIENTS: u32 = 1_000;
/// Requests per client and second.
const RATE: u32 = 5;
const SECONDS: u64 = 60;
/// Attempts per request, the first included.
const ATTEMPTS: u32 = 3;

/// Per simulated second: `(first attempts, retries granted)` of the whole fleet, every request
/// failing and asking for retries until `ATTEMPTS` or a refusal.
fn storm(budget: impl Fn(ManualClock) -> RatioBudget<ManualClock>) -> Vec<(u64, u64)> {
    let clock = ManualClock::new();
    let fleet: Vec<_> = (0..CLIENTS).map(|_| budget(clock.clone())).collect();
    let period = Duration::from_secs(1) / RATE;
    let stagger = period / CLIENTS;
    let mut seconds = vec![(0, 0); SECONDS as usize];
    for tick in 0..SECONDS * u64::from(RATE) {
        let second = &mut seconds[(tick / u64::from(RATE)) as usize];
        for (i, client) in (0_u32..).zip(&fleet) {
            clock.set(period * tick as u32 + stagger * i);
            client.deposit();
            second.0 += 1;
            for _ in 1..ATTEMPTS {
                if !client.withdraw() {
                    break;
                }
                second.1 += 1;
            }
        }
    }
    seconds
}

/// Backend calls per first attempt over `seconds`.
fn amplification(seconds: &[(u64, u64)]) -> f64 {
    let (first, retries) = seconds
        .iter()
        .fold((0, 0), |(f, r), &(first, retries)| (f + first, r + retries));
    (first + retries) as f64 / first as f64
}

#[test]
fn per_client_floors_add_up_to_a_storm_and_a_fleet_floor_does_not() {
    // Today's default: 0.2 per request and 10/s per client.
    let per_client = storm(|clock| RatioConfig::default().build_with(clock).expect("valid"));
    // The same ratio, and 10/s for the whole fleet.
    let fleet_floor = storm(|clock| {
        RatioConfig::default()
            .build_with(clock)
            .and_then(|budget| budget.with_fleet_floor(10, CLIENTS))
            .expect("valid")
    });
    let first_per_sec = u64::from(CLIENTS * RATE);
    assert!(per_client.iter().all(|&(first, _)| first == first_per_sec));

    // Each client's floor of 10/s covers its 10 retries a second: every retry is granted, the
    // dead backend takes 3 calls per request for the whole minute (15 000/s).
    assert_eq!(amplification(&per_client), 3.0);
    assert!(
        per_client
            .iter()
            .all(|&(_, retries)| retries == 2 * first_per_sec)
    );

    // A fleet floor: the ratio's 0.2 per request and 10/s for all, whatever the fleet's size.
    let whole = amplification(&fleet_floor);
    // Measured: 1.200 over the minute, 1 000 retries in every second.
    assert!(whole <= 1.2 + 10.0 / 5_000.0, "amplification {whole}");
    for (second, &(first, retries)) in fleet_floor.iter().enumerate() {
        assert!(
            retries <= first / 5 + 10,
            "second {second}: {retries} retries for {first} requests"
        );
    }
    let steady = amplification(&fleet_floor[10..]);
    assert!(
        (1.19..=1.21).contains(&steady),
        "steady amplification {steady}"
    );
    println!(
        "per-client floor: {:.3}; fleet floor: {whole:.3} (steady {steady:.3}), max {} retries in a second",
        amplification(&per_client),
        fleet_floor.iter().map(|s| s.1).max().unwrap_or(0)
    );
}

#[test]
fn a_fleet_floor_is_the_fleets_share_and_its_config_is_checked() {
    let budget = RatioConfig {
        ratio: 0.0,
        ..RatioConfig::default()
    }
    .build_with(ManualClock::new())
    .expect("valid");
    assert_eq!(budget.floor_per_sec(), 10.0, "min_per_sec until replaced");
    assert_eq!(budget.fleet_floor(), None);
    // 10/s over 4 clients, 10 s ttl: 25 retries each, no traffic needed.
    let budget = budget.with_fleet_floor(10, 4).expect("valid");
    assert_eq!(budget.floor_per_sec(), 2.5);
    assert_eq!(budget.fleet_floor(), Some((10, 4)));
    assert_eq!((0..100).take_while(|_| budget.withdraw()).count(), 25);
    let build = || {
        RatioConfig::default()
            .build_with(ManualClock::new())
            .expect("valid")
    };
    let field = |result: Result<_, rampart_core::ConfigError>| result.err().map(|e| e.field());
    assert_eq!(
        field(build().with_fleet_floor(10, 0)),
        Some("fleet_clients")
    );
    assert_eq!(
        field(build().with_fleet_floor(10, 10_000_001)),
        Some("fleet_clients")
    );
    assert_eq!(
        field(build().with_fleet_floor(1_000_001, 1)),
        Some("fleet_floor_per_sec")
    );
    assert_eq!(
        field(build().with_fleet_floor(0, 1)),
        None,
        "no floor at all"
    );
}
