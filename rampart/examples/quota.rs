//! Two processes sharing one fleet-wide quota on Redis.
//!
//! ```text
//! cargo run -p rampart --example quota                  # starts a redis-server of its own
//! cargo run -p rampart --example quota -- redis://host:6379
//! ```
//!
//! The example starts `redis-server` on a free loopback port (unless given a Redis URL), then
//! runs itself twice as worker processes. Each worker serves one tenant's requests through a
//! `QuotaLayer` with a quota of 300 requests a second for the tenant, across both: the busy
//! worker is offered 400 a second, the quiet one 100. For 4 s each counts what it admitted; the
//! parent prints both and checks the fleet against the quota: the quiet worker keeps its whole
//! demand (below an equal share), the busy one gets the rest.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rampart::quota::{QuotaConfig, QuotaExceeded, QuotaGroup, QuotaLayer};
use tower::{ServiceBuilder, ServiceExt};

/// The tenant's quota, across every process.
const RATE: f64 = 300.0;
const SECONDS: u64 = 4;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, url, demand] = args.as_slice()
        && flag == "--worker"
    {
        let demand: f64 = demand.parse().expect("a demand");
        return worker(url, demand);
    }
    let (url, _server) = if let Some(url) = args.first() {
        (url.clone(), None)
    } else {
        let server = RedisServer::start();
        (server.url(), Some(server))
    };
    println!("one quota of {RATE} requests/s for tenant \"acme\", shared on {url}");
    let me = std::env::current_exe().expect("this example's path");
    let workers: Vec<(f64, Child)> = [400.0, 100.0]
        .into_iter()
        .map(|demand| {
            let child = Command::new(&me)
                .args(["--worker", &url, &demand.to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("a worker process");
            (demand, child)
        })
        .collect();
    let mut total = 0;
    let mut admitted_by = Vec::new();
    for (demand, child) in workers {
        let output = child.wait_with_output().expect("the worker's answer");
        assert!(output.status.success(), "a worker failed");
        let admitted: u64 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("a count");
        println!(
            "  process {}: offered {demand}/s, admitted {:.0}/s",
            admitted_by.len() + 1,
            admitted as f64 / SECONDS as f64
        );
        total += admitted;
        admitted_by.push((demand, admitted));
    }
    let rate = total as f64 / SECONDS as f64;
    println!(
        "  the fleet: {rate:.0}/s, within the quota: {RATE}/s and one burst of {RATE:.0} \
         (at most {:.0}/s over {SECONDS} s)",
        RATE * (SECONDS + 1) as f64 / SECONDS as f64
    );
    // GCRA admits at most rate × time + burst; the offered 500/s keeps the quota full.
    assert!(
        total as f64 <= RATE * (SECONDS + 1) as f64 * 1.02,
        "the fleet overran the quota"
    );
    assert!(
        total as f64 >= RATE * SECONDS as f64 * 0.95,
        "the fleet fell short"
    );
    let (quiet_demand, quiet) = admitted_by[1];
    assert!(
        quiet as f64 >= quiet_demand * SECONDS as f64 * 0.95,
        "the quiet process lost part of its demand"
    );
}

/// One process: `demand` requests a second of tenant "acme" through the quota layer for the
/// run; prints how many it admitted.
fn worker(url: &str, demand: f64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let admitted = runtime.block_on(async {
        let config = QuotaConfig::per_second(RATE)
            .with_redis_url(url)
            .with_name("example");
        let group: QuotaGroup<&'static str> = QuotaGroup::new(config).expect("valid");
        let service = ServiceBuilder::new()
            .layer(QuotaLayer::new(group, |tenant: &&'static str| *tenant))
            .service_fn(|_tenant: &'static str| async { Ok::<_, tower::BoxError>(()) });
        let start = Instant::now();
        let (mut sent, mut admitted) = (0_u64, 0_u64);
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while start.elapsed() < Duration::from_secs(SECONDS) {
            tick.tick().await;
            let due = (demand * start.elapsed().as_secs_f64()) as u64;
            while sent < due {
                sent += 1;
                match service.clone().oneshot("acme").await {
                    Ok(()) => admitted += 1,
                    Err(err) => assert!(err.is::<QuotaExceeded>(), "{err}"),
                }
            }
        }
        admitted
    });
    println!("{admitted}");
}

/// A `redis-server` on a free loopback port, saving nothing, killed on drop.
struct RedisServer(Child, u16);

impl RedisServer {
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
            .expect("redis-server is installed, or pass a Redis URL");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        Self(child, port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.1)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
