//! [`Store`]: the quota's side in Redis. Key names (namespaced, hashed), the lease script, and
//! the connection, made on first use and re-made by the client's connection manager when it
//! breaks.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::QuotaConfig;
use crate::lease::{Ask, Grant};

/// The atomic step: GCRA over one key, a lease of up to the tokens asked for, shrunk to an equal
/// share of what is left when the quota is short.
const LEASE_SCRIPT: &str = include_str!("lease.lua");

/// Why a Redis call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// No answer within `redis_timeout`.
    Timeout,
    /// Redis (or the connection to it) answered with an error.
    Error(redis::RedisError),
    /// No tokio runtime to ask on: nothing was sent.
    NoRuntime,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer in time"),
            Self::Error(err) => err.fmt(f),
            Self::NoRuntime => f.write_str("no tokio runtime to ask Redis on"),
        }
    }
}

/// The Redis side of one group.
pub(crate) struct Store {
    client: redis::Client,
    /// Made inside the runtime on the first ask (the manager spawns its tasks on it).
    manager: OnceLock<ConnectionManager>,
    manager_config: ConnectionManagerConfig,
    script: redis::Script,
    /// `prefix:{name:` of every key of the group.
    key_head: String,
    /// This process's (this group's) id among the processes that share the quota.
    process: String,
    /// The script's fixed arguments: the interval in microseconds, the burst, the presence.
    interval_us: f64,
    burst: u64,
    presence_us: u64,
    cadence_us: u64,
    timeout: Duration,
}

impl Store {
    pub(crate) fn new(config: &QuotaConfig, client: redis::Client) -> Self {
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_timeout))
            .set_response_timeout(Some(config.redis_timeout))
            .set_number_of_retries(1)
            .set_min_delay(config.min_backoff)
            .set_max_delay(config.max_backoff);
        Self {
            client,
            manager: OnceLock::new(),
            manager_config,
            script: redis::Script::new(LEASE_SCRIPT),
            key_head: format!("{}:{{{}:", config.prefix, config.name),
            process: process_id(),
            interval_us: 1e6 / config.rate,
            burst: config.burst,
            presence_us: config.presence.as_micros().min(u128::from(u64::MAX)) as u64,
            cadence_us: (config.lease_horizon / 2).as_micros().max(1) as u64,
            timeout: config.redis_timeout,
        }
    }

    /// The Redis key of a request's key: its text hashed (SHA-1, hex), so that a key of any
    /// length or content from a request becomes 40 harmless characters, inside the quota's
    /// namespace. The braces make the quota's two keys one Redis Cluster slot.
    pub(crate) fn redis_key(&self, key: &dyn fmt::Display) -> Box<str> {
        let digest = sha1_smol::Sha1::from(key.to_string()).digest();
        format!("{}{digest}}}", self.key_head).into_boxed_str()
    }

    /// Asks Redis for a lease of `ask.want` tokens (charging `ask.debt` first), waiting at most
    /// `redis_timeout`.
    pub(crate) async fn lease(&self, key: &str, ask: Ask) -> Result<Grant, Failure> {
        self.lease_at(key, ask, None).await
    }

    /// As [`lease`](Self::lease), at the instant `now_us` (microseconds) instead of Redis's
    /// clock.
    pub(crate) async fn lease_at(
        &self,
        key: &str,
        ask: Ask,
        now_us: Option<u64>,
    ) -> Result<Grant, Failure> {
        let call = async {
            let mut connection = self.connection()?;
            let mut invocation = self.script.key(key);
            invocation
                .key(format!("{key}:p"))
                .key(format!("{key}:w"))
                .arg(self.interval_us)
                .arg(self.burst)
                .arg(ask.want)
                .arg(ask.debt)
                .arg(self.process.as_str())
                .arg(self.presence_us)
                .arg(now_us.map_or_else(String::new, |now| now.to_string()))
                .arg(self.cadence_us);
            invocation
                .invoke_async::<(u64, u64, u64)>(&mut connection)
                .await
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((granted, next_token_us, processes))) => Ok(Grant {
                granted,
                next_token: Duration::from_micros(next_token_us),
                processes,
            }),
            Ok(Err(err)) => Err(Failure::Error(err)),
            Err(_) => Err(Failure::Timeout),
        }
    }

    fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let manager = ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            self.manager_config.clone(),
        )?;
        // Two first asks at once may both make one: the first stored is kept.
        Ok(self.manager.get_or_init(|| manager).clone())
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("key_head", &self.key_head)
            .field("process", &self.process)
            .finish_non_exhaustive()
    }
}

/// An id for this group among the processes that share a quota: the process id and a random
/// number (two groups of one process count as two).
fn process_id() -> String {
    use std::hash::BuildHasher;
    let random =
        std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    format!("{}-{random:016x}", std::process::id())
}

/// The tests' `redis-server`.
#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_redis;

#[cfg(test)]
mod tests {
    //! The script against a real `redis-server`, at instants the test gives it.

    use super::test_redis as support;
    use super::*;

    const MS: u64 = 1_000;
    const T0: u64 = 1_000_000_000_000;

    /// A store of 1 000 tokens a second and a burst of 100, whose cadence is `cadence`.
    fn store(redis: &support::RedisServer, cadence: Duration) -> Store {
        let config = QuotaConfig::per_second(1_000.0)
            .with_burst(100)
            .with_lease_horizon(cadence * 2)
            .with_lease_ttl(Duration::from_secs(10))
            .with_presence(Duration::from_millis(500));
        store_of(redis, config)
    }

    /// A store of `config` on `redis`. None of these tests is about the timeout: each call may
    /// take 5 s (the first connects and loads the script), so that a loaded machine fails none.
    fn store_of(redis: &support::RedisServer, config: QuotaConfig) -> Store {
        let config = config
            .with_redis_url(redis.url())
            .with_redis_timeout(Duration::from_secs(5));
        Store::new(&config, config.validated_client().expect("valid"))
    }

    async fn lease(store: &Store, want: u64, debt: u64, at: u64) -> Grant {
        store
            .lease_at("k", Ask { want, debt }, Some(at))
            .await
            .expect("an answer")
    }

    #[tokio::test]
    async fn the_burst_then_the_rate_exactly() {
        let redis = support::RedisServer::start();
        let store = store(&redis, Duration::from_millis(250));
        let first = lease(&store, 150, 0, T0).await;
        assert_eq!((first.granted, first.processes), (100, 1), "the burst");
        let none = lease(&store, 150, 0, T0).await;
        assert_eq!(none.granted, 0);
        assert_eq!(
            none.next_token,
            Duration::from_millis(1),
            "one token's interval"
        );
        assert_eq!(lease(&store, 150, 0, T0 + 50 * MS).await.granted, 50);
        assert_eq!(lease(&store, 10, 0, T0 + 1_000 * MS).await.granted, 10);
        // After a whole second more, the quota is full again, and no fuller.
        assert_eq!(lease(&store, 1_000, 0, T0 + 2_000 * MS).await.granted, 100);
    }

    #[tokio::test]
    async fn a_debt_is_charged_before_anything_is_granted() {
        let redis = support::RedisServer::start();
        let store = store(&redis, Duration::from_millis(250));
        assert_eq!(lease(&store, 100, 30, T0).await.granted, 70);
        // A debt past the burst is still charged: nothing until it is paid.
        let owed = lease(&store, 100, 50, T0).await;
        assert_eq!(owed.granted, 0);
        assert_eq!(owed.next_token, Duration::from_millis(51));
        assert_eq!(lease(&store, 100, 0, T0 + 50 * MS).await.granted, 0);
        assert_eq!(lease(&store, 100, 0, T0 + 60 * MS).await.granted, 10);
    }

    #[tokio::test]
    async fn a_short_quota_is_shared_max_min_among_the_wants_of_the_processes_present() {
        let redis = support::RedisServer::start();
        // A cadence of 1 ms earns one token: the pool is what is available.
        let mut stores: Vec<Store> = (0..3)
            .map(|_| store(&redis, Duration::from_millis(1)))
            .collect();
        // Three processes present, the quota spent (a debt of its whole burst): they want 200,
        // 200 and 10 tokens a lease (100, 100 and 5 a cadence).
        assert_eq!(lease(&stores[0], 200, 100, T0).await.granted, 0);
        assert_eq!(lease(&stores[1], 200, 0, T0).await.granted, 0);
        assert_eq!(lease(&stores[2], 10, 0, T0).await.granted, 0);
        // 100 ms later, 100 tokens: the light one's 5 fit, the level of the rest is 95 / 2.
        let grant = lease(&stores[0], 200, 0, T0 + 100 * MS).await;
        assert_eq!((grant.granted, grant.processes), (47, 3), "(100 - 5) / 2");
        // The light one gets all it wants, below the level (48 / 2 of the 53 left).
        assert_eq!(lease(&stores[2], 10, 0, T0 + 100 * MS).await.granted, 10);
        assert_eq!(
            lease(&stores[1], 200, 0, T0 + 100 * MS).await.granted,
            19,
            "(43 - 5) / 2"
        );
        // With a cadence of 250 ms, the pool is the 250 tokens it earns (more than the 100
        // available): 5 and this one's 50 fit, the level of the other two is 195 / 2.
        let wide = store(&redis, Duration::from_millis(250));
        let grant = lease(&wide, 100, 0, T0 + 300 * MS).await;
        assert_eq!((grant.granted, grant.processes), (97, 4));
        // The processes that stopped asking are forgotten after `presence`, with their wants.
        stores.truncate(1);
        let alone = lease(&stores[0], 1, 0, T0 + 650 * MS).await;
        assert_eq!(alone.processes, 2, "this one and the last to ask");
        let wants: u64 = redis::cmd("ZCARD")
            .arg("k:w")
            .query(&mut redis.connection())
            .expect("ZCARD");
        assert_eq!(wants, 2);
    }

    #[tokio::test]
    async fn every_key_expires() {
        let redis = support::RedisServer::start();
        // 1 000 tokens a second: a lease of 5 000 moves the TAT 5 s ahead; presence 10 s. Both
        // windows are seconds wide, in real time on Redis's clock.
        let store = store_of(
            &redis,
            QuotaConfig::per_second(1_000.0)
                .with_burst(10_000)
                .with_presence(Duration::from_secs(10)),
        );
        let key = store.redis_key(&"tenant");
        assert_eq!(
            &*key,
            "rampart:quota:{default:b32c3765e5dce97e32597c99fcaee9af2f24c79b}"
        );
        store
            .lease(
                &key,
                Ask {
                    want: 5_000,
                    debt: 0,
                },
            )
            .await
            .expect("an answer");
        let mut connection = redis.connection();
        let ttl = |key: String, connection: &mut redis::Connection| -> i64 {
            redis::cmd("PTTL").arg(key).query(connection).expect("PTTL")
        };
        let tat = ttl(key.to_string(), &mut connection);
        assert!(
            (3_000..=5_000).contains(&tat),
            "5 000 tokens: the TAT 5 s ahead ({tat})"
        );
        for set in ["p", "w"] {
            let present = ttl(format!("{key}:{set}"), &mut connection);
            assert!((8_000..=10_000).contains(&present), "{set}: {present}");
        }
    }

    /// Processes of the given demands (requests a second) on one quota of 1 000 a second (the
    /// default burst, horizon and presence), each a real [`Lease`](crate::lease::Lease) asking
    /// the script, at instants 1 ms apart, every answer arriving 1 ms after its ask. Returns
    /// what each admitted from 2 s to 12 s.
    async fn simulate(redis: &support::RedisServer, demands: &[f64]) -> Vec<u64> {
        use crate::lease::{Cold, Lease, Params, Redis, Take};
        let config = QuotaConfig::per_second(1_000.0);
        let params = Params::new(&config);
        let stores: Vec<Store> = demands
            .iter()
            .map(|_| store_of(redis, config.clone()))
            .collect();
        let leases: Vec<Lease> = demands
            .iter()
            .map(|_| Lease::new("k".into(), std::sync::Weak::new()))
            .collect();
        let cold = Cold::default();
        let up = Redis {
            down: false,
            processes: 1,
            retry_in: Duration::ZERO,
        };
        let mut rng = fastrand::Rng::with_seed(7);
        let mut answers: Vec<Option<(Ask, Grant)>> = vec![None; demands.len()];
        let mut sent = vec![0_u64; demands.len()];
        let mut admitted = vec![0_u64; demands.len()];
        for ms in 0..12_000_u64 {
            let now = ms * 1_000_000;
            for (i, lease) in leases.iter().enumerate() {
                if let Some((ask, grant)) = answers[i].take() {
                    let jitter = 0.75 + rng.f64() / 2.0;
                    lease.answered_at(now, &params, ask, grant, jitter);
                }
                let due = (demands[i] * ms as f64 / 1_000.0) as u64;
                while sent[i] < due {
                    sent[i] += 1;
                    let decision = lease.take_at(now, &params, up, &cold);
                    if ms >= 2_000 && matches!(decision.take, Take::Leased | Take::Local) {
                        admitted[i] += 1;
                    }
                    if decision.ask {
                        let ask = lease.ask_at(now, &params, 1);
                        let grant = stores[i]
                            .lease_at("k", ask, Some(T0 + ms * MS))
                            .await
                            .expect("an answer");
                        answers[i] = Some((ask, grant));
                    }
                }
            }
        }
        admitted
    }

    #[tokio::test]
    async fn busy_processes_among_light_ones_share_what_the_light_ones_leave() {
        // Max-min fair over 10 s of a quota of 1 000 a second: the light processes get their
        // whole demand (97 %), the busy ones share the rest equally, and the fleet admits the
        // quota (±3 %). (An equal share of the pool among all the processes present, light
        // ones included, gave the one busy process 4 773 and the fleet 6 873; the two busy
        // ones 1 972 and 1 992 and the fleet 4 864.)
        for (busy, light, light_demand) in [(1, 7, 30.0), (2, 18, 5.0)] {
            let redis = support::RedisServer::start();
            let mut demands = vec![2_000.0; busy];
            demands.extend(std::iter::repeat_n(light_demand, light));
            let admitted = simulate(&redis, &demands).await;
            let fleet: u64 = admitted.iter().sum();
            println!("{busy} busy, {light} light: over 10 s {admitted:?}, the fleet {fleet}");
            let light_whole = light_demand * 10.0;
            for got in &admitted[busy..] {
                assert!(*got as f64 >= light_whole * 0.97, "a light one got {got}");
            }
            let rest = (10_000.0 - light_whole * light as f64) / busy as f64;
            for got in &admitted[..busy] {
                assert!(*got as f64 >= rest * 0.95, "a busy one got {got} of {rest}");
            }
            assert!(
                (9_700..=10_300).contains(&fleet),
                "the fleet: {fleet} of 10 000"
            );
        }
    }
}
