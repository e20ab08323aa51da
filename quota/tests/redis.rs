//! The quota's behaviour against a real `redis-server` on 127.0.0.1: the layer through tower,
//! what it writes in Redis for hostile keys, its bounds, and a Redis that stops answering.

mod support;

use std::time::{Duration, Instant};

use rampart_quota::{Fallback, QuotaConfig, QuotaExceeded, QuotaGroup, QuotaLayer};
use support::RedisServer;
use tower::{ServiceBuilder, ServiceExt};

/// Waits (real time, bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_serves_from_a_lease_and_refuses_past_the_quota() {
    let redis = RedisServer::start();
    // 10 a second, a burst of 10, and one lease at most 10: the whole quota of a second.
    let config = QuotaConfig::per_second(10.0)
        .with_redis_url(redis.url())
        .with_name("layer");
    let group: QuotaGroup<String> = QuotaGroup::new(config).expect("valid");
    let layer = QuotaLayer::new(group, |(tenant, _): &(String, u32)| tenant.clone());
    let group = std::sync::Arc::clone(layer.group());
    let service = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|(_, n): (String, u32)| async move { Ok::<_, tower::BoxError>(n) });
    // The first request is served from the local share and asks for a lease.
    assert_eq!(
        service.clone().oneshot(("a".to_owned(), 1)).await.unwrap(),
        1
    );
    until("a lease", || group.tokens(&"a".to_owned()) > 0).await;
    // One request a millisecond for 300 ms: the burst of 10 (the first request's token
    // included, charged to the quota by the first ask) and the 3 tokens earned meanwhile.
    let mut admitted = 1;
    let mut refused = None;
    let start = Instant::now();
    for n in 0.. {
        if start.elapsed() >= Duration::from_millis(300) {
            break;
        }
        match service.clone().oneshot(("a".to_owned(), n)).await {
            Ok(_) => admitted += 1,
            Err(err) => refused = Some(*err.downcast::<QuotaExceeded>().expect("a refusal")),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!((10..=13).contains(&admitted), "{admitted}");
    let refused = refused.expect("refusals past the quota");
    // Until the next ask: the cadence (250 ms), jittered by up to a quarter.
    assert!(refused.retry_after() <= Duration::from_millis(313));
    // Another key has its own quota.
    assert!(service.oneshot(("b".to_owned(), 0)).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_keys_are_hashed_namespaced_and_expire_and_the_process_holds_a_bounded_number() {
    let redis = RedisServer::start();
    let config = QuotaConfig::per_second(100.0)
        .with_redis_url(redis.url())
        .with_prefix("app:quota")
        .with_name("hostile")
        .with_presence(Duration::from_millis(500));
    let group: QuotaGroup<String> = QuotaGroup::new(config)
        .expect("valid")
        .with_max_keys(16)
        .expect("valid");
    let hostile = [
        "*".to_owned(),
        "a:b}{c".to_owned(),
        "\r\nFLUSHALL\r\n".to_owned(),
        "x".repeat(100_000),
    ];
    // The hostile keys first, until Redis holds the three entries of each (seen at some instant:
    // a TAT may expire again before the last one arrives), so that a flood cannot evict
    // their leases before their asks run.
    for key in &hostile {
        let _ = group.check(key);
    }
    let mut seen = std::collections::BTreeSet::new();
    until("the hostile keys' asks", || {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query(&mut redis.connection())
            .expect("KEYS");
        seen.extend(keys);
        seen.len() >= 3 * hostile.len()
    })
    .await;
    // Then a flood of new keys: the process holds at most its bound (give or take a lease an
    // ask was reading or filling at the instant a key came to its full shard).
    for n in 0..1_000 {
        let _ = group.check(&format!("user-{n}"));
    }
    assert!(group.len() <= 16 + 2, "{} leases held", group.len());
    let mut connection = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut connection)
        .expect("KEYS");
    for key in seen.iter().chain(&keys) {
        // `app:quota:{hostile:<40 hex>}`, its process set `...:p` and their wants `...:w`.
        let hash = key
            .strip_prefix("app:quota:{hostile:")
            .and_then(|rest| {
                ["}", "}:p", "}:w"]
                    .iter()
                    .find_map(|suffix| rest.strip_suffix(suffix))
            })
            .unwrap_or_else(|| panic!("{key:?} outside the namespace"));
        assert!(
            hash.len() == 40 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key:?}"
        );
    }
    for key in &keys {
        // -1: no expiry. (-2: gone since KEYS listed it, expired.)
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query(&mut connection)
            .expect("PTTL");
        assert!(ttl != -1, "{key:?} never expires");
    }
    // Everything expires: the quotas are full again within their burst's second, the process
    // sets after `presence`.
    until("the keys to expire", || {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query(&mut redis.connection())
            .expect("KEYS");
        keys.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_is_a_fallback_no_request_waits_on_it_and_a_probe_ends_it() {
    let redis = RedisServer::start();
    let config = QuotaConfig::per_second(1_000.0)
        .with_redis_url(redis.url())
        .with_name("paused")
        .with_redis_timeout(Duration::from_millis(200))
        .with_fallback(Fallback::FailOpen);
    let group: QuotaGroup<String> = QuotaGroup::new(config).expect("valid");
    let key = "k".to_owned();
    group.check(&key).expect("the local share");
    // (Requests meanwhile, in case a first ask on a busy machine took longer than the bound.)
    until("a lease", || {
        let _ = group.check(&key);
        group.tokens(&key) > 0 && !group.fallback_active()
    })
    .await;
    redis.pause(true);
    // Every check timed while Redis holds the ask unanswered: none waits on it (a request
    // that did would take the whole `redis_timeout`, 200 ms).
    let mut longest = Duration::ZERO;
    let mut timed = |group: &QuotaGroup<String>| {
        let start = Instant::now();
        let admitted = group.check(&key).is_ok();
        longest = longest.max(start.elapsed());
        admitted
    };
    // Spend the lease: the ask at its low-water mark gets no answer, the fallback starts.
    let start = Instant::now();
    let mut admitted = 0;
    while !group.fallback_active() {
        admitted += u32::from(timed(&group));
        assert!(start.elapsed() < Duration::from_secs(5), "no fallback");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    // Fail open: every request admitted, the lease spent or not.
    assert!((0..10_000).all(|_| timed(&group)));
    assert!(admitted > 0);
    println!("the longest check while Redis was paused: {longest:?}");
    assert!(
        longest < Duration::from_millis(50),
        "a check took {longest:?}, against a redis_timeout of 200 ms"
    );
    redis.pause(false);
    until("the fallback to end", || {
        let _ = group.check(&key);
        !group.fallback_active()
    })
    .await;
}

/// Key `K`'s admissions while 32 new keys come between each two of its requests, in a group
/// that holds 8 leases: `K`'s lease is evicted after each request, and comes back new.
fn churn<C: rampart_core::Clock>(group: &QuotaGroup<String, C>, round: u64) -> bool {
    let admitted = group.check(&"K".to_owned()).is_ok();
    for n in 0..32 {
        let _ = group.check(&format!("other-{round}-{n}"));
    }
    admitted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_churn_does_not_bypass_the_quota_while_redis_answers() {
    let redis = RedisServer::start();
    // 10 a second, a burst of 10.
    let config = QuotaConfig::per_second(10.0)
        .with_redis_url(redis.url())
        .with_name("churn");
    let group: QuotaGroup<String> = QuotaGroup::new(config)
        .expect("valid")
        .with_max_keys(8)
        .expect("valid");
    // K at 1 000 requests a second for 2 s.
    let start = Instant::now();
    let mut admitted = 0_u32;
    let mut round = 0;
    while start.elapsed() < Duration::from_secs(2) {
        admitted += u32::from(churn(&group, round));
        round += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The quota's most over the run: its burst, and its rate over the time that passed.
    let quota = 10.0 + 10.0 * start.elapsed().as_secs_f64();
    println!("K admitted {admitted} in {round} rounds (its quota: {quota:.0})");
    assert!(
        f64::from(admitted) <= quota,
        "{admitted} admitted, quota {quota:.1}"
    );
}

#[test]
fn key_churn_does_not_bypass_the_local_share_while_redis_is_away() {
    // Nothing listens on port 1, and no runtime to ask on: the fallback serves every key.
    let clock = rampart_core::ManualClock::new();
    let config = QuotaConfig::per_second(10.0)
        .with_redis_url("redis://127.0.0.1:1")
        .with_name("churn");
    let group: QuotaGroup<String, _> = QuotaGroup::new_with(config, clock.clone())
        .expect("valid")
        .with_max_keys(8)
        .expect("valid");
    let mut admitted = 0_u32;
    for round in 0..2_000 {
        admitted += u32::from(churn(&group, round));
        clock.advance(Duration::from_millis(1));
    }
    assert!(group.fallback_active());
    // Its local share (this process alone: the whole quota) over 2 s: a burst of 10 and 20.
    assert!(admitted <= 30, "{admitted} admitted");
}
