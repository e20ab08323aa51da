//! `BreakerGroup` and `BreakerGroupLayer`: a breaker per key, created once, bounded.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use rampart_breaker::{BreakerConfig, BreakerGroup, BreakerGroupLayer, Rejected, SreBreaker};
use rampart_core::{ManualClock, Outcome};
use tower::{Layer, ServiceExt, service_fn};

fn group(max_keys: usize) -> (ManualClock, BreakerGroup<String, ManualClock>) {
    let clock = ManualClock::new();
    let group = BreakerGroup::new_with(BreakerConfig::default().with_seed(5), clock.clone())
        .and_then(|group| group.with_max_keys(max_keys))
        .expect("valid");
    (clock, group)
}

#[test]
fn each_key_has_its_own_breaker() {
    let (_, group) = group(64);
    for _ in 0..100 {
        group.get(&"/search".to_owned()).record(Outcome::Failure);
        group.get(&"/checkout".to_owned()).record(Outcome::Success);
    }
    assert!(group.get(&"/search".to_owned()).snapshot().drop_probability > 0.9);
    assert_eq!(
        group
            .get(&"/checkout".to_owned())
            .snapshot()
            .drop_probability,
        0.0
    );
    assert!(Arc::ptr_eq(
        &group.get(&"/search".to_owned()),
        &group.get(&"/search".to_owned())
    ));
    assert_eq!(group.len(), 2);
}

#[test]
fn a_key_asked_for_by_many_threads_at_once_gets_one_breaker() {
    for _ in 0..20 {
        let (_, group) = group(64);
        let group = Arc::new(group);
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (group, start) = (Arc::clone(&group), Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    group.get(&"contended".to_owned())
                })
            })
            .collect();
        let breakers: Vec<Arc<SreBreaker<ManualClock>>> = threads
            .into_iter()
            .map(|t| t.join().expect("no panic"))
            .collect();
        assert!(
            breakers.iter().all(|b| Arc::ptr_eq(b, &breakers[0])),
            "created more than once"
        );
        assert_eq!(group.len(), 1);
    }
}

#[test]
fn the_group_never_holds_more_than_max_keys() {
    let (_, group) = group(16);
    for key in 0..1_000 {
        group.get(&format!("/route/{key}"));
        assert!(group.len() <= 16, "{} keys", group.len());
    }
    assert_eq!(group.max_keys(), 16);
}

#[test]
fn a_full_group_evicts_the_least_recently_used_key() {
    let (clock, group) = group(1);
    let first = Arc::downgrade(&group.get(&"a".to_owned()));
    clock.advance(Duration::from_secs(5));
    group.get(&"b".to_owned());
    assert_eq!(group.len(), 1);
    assert!(first.upgrade().is_none(), "\"a\" was evicted");
}

#[test]
fn idle_keys_are_evicted_on_request_and_when_room_is_needed() {
    let (clock, fresh) = group(64);
    let group = fresh
        .with_idle_timeout(Duration::from_secs(60))
        .expect("valid");
    group.get(&"old".to_owned());
    clock.advance(Duration::from_secs(30));
    group.get(&"recent".to_owned());
    clock.advance(Duration::from_secs(31));
    assert_eq!(group.evict_idle(), 1, "only the key idle for 61 s");
    assert_eq!(group.len(), 1);
    clock.advance(Duration::from_secs(60));
    assert_eq!(group.evict_idle(), 1);
    assert!(group.is_empty());
}

#[test]
fn invalid_group_settings_are_config_errors() {
    let (_, first) = group(4);
    assert_eq!(first.with_max_keys(0).unwrap_err().field(), "max_keys");
    let (_, second) = group(4);
    assert_eq!(
        second
            .with_idle_timeout(Duration::ZERO)
            .unwrap_err()
            .field(),
        "idle_timeout"
    );
    let err = BreakerGroup::<String>::new(BreakerConfig::default().with_k(0.0)).unwrap_err();
    assert_eq!(err.field(), "k");
}

#[tokio::test]
async fn the_layer_throttles_each_request_by_its_own_key() {
    let group: BreakerGroup<String> =
        BreakerGroup::new(BreakerConfig::default().with_seed(1)).expect("valid");
    let layer = BreakerGroupLayer::new(group, |path: &String| path.clone());
    let backend = service_fn(|path: String| async move {
        if path == "/broken" {
            Err(std::io::Error::other("500"))
        } else {
            Ok(path.len())
        }
    });
    let service = layer.layer(backend);
    let mut rejected = 0;
    for _ in 0..500 {
        match service.clone().oneshot("/broken".to_owned()).await {
            Err(err) if err.is::<Rejected>() => rejected += 1,
            Err(err) => assert!(err.is::<std::io::Error>(), "{err}"),
            Ok(_) => unreachable!("the route always fails"),
        }
        assert_eq!(
            service
                .clone()
                .oneshot("/healthy".to_owned())
                .await
                .expect("never throttled"),
            8
        );
    }
    assert!(rejected > 400, "the broken route is throttled: {rejected}");
    assert_eq!(layer.group().len(), 2);
}
