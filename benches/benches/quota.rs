//! The quota's request path served from a lease, against a bare service and tower's
//! `ConcurrencyLimit`, in one group.
//!
//! Every layer row drives one request through `poll_ready`, `call` and one poll of the
//! response (`call_ready`), over a `service_fn` that answers at once. `rampart/quota_layer` is
//! `QuotaLayer` with one key whose lease is always in hand: a quota far above the request
//! rate, leased from a real `redis-server` (started on a free loopback port for the run, and
//! stopped after) by background asks on a tokio runtime, so the row is the request path alone
//! (the group's lookup, a clock read, a token from the lease, the demand count). The issue's
//! target: at most 2× `tower/concurrency_limit`.

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use rampart_benches::{backend, call_ready, layer_floors};
use rampart_quota::{QuotaConfig, QuotaGroup, QuotaLayer};
use tower::Layer;

/// A `redis-server` on a free loopback port, saving nothing, killed on drop.
struct Redis(Child, u16);

impl Redis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        Self(child, port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn quota(c: &mut Criterion) {
    let redis = Redis::start();
    // Asks are spawned on the runtime this thread enters, and run on a thread of their own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let handle = runtime.handle().clone();
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    let _entered = handle.enter();
    let config = QuotaConfig::per_second(1e9)
        .with_burst(1_000_000_000)
        .with_max_lease(100_000_000)
        .with_redis_url(format!("redis://127.0.0.1:{}", redis.1))
        .with_name("bench");
    let group: QuotaGroup<u32> = QuotaGroup::new(config).expect("valid");
    let layer = QuotaLayer::new(group, |request: &u32| *request);
    let leases = std::sync::Arc::clone(layer.group());
    let mut limited = layer.layer(backend());
    // The first request asks; wait for the lease.
    assert!(call_ready(&mut limited, 7));
    let deadline = Instant::now() + Duration::from_secs(5);
    while leases.tokens(&7) == 0 {
        assert!(Instant::now() < deadline, "no lease from Redis");
        std::thread::sleep(Duration::from_millis(1));
    }

    let mut group = c.benchmark_group("quota");
    layer_floors(&mut group);
    group.bench_function("rampart/quota_layer", |b| {
        b.iter(|| call_ready(&mut limited, black_box(7)));
    });
    group.finish();
    assert!(
        !leases.fallback_active(),
        "every row was served from leases"
    );
}

criterion_group!(benches, quota);
criterion_main!(benches);
