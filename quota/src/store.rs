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
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("no answer in time"),
            Self::Error(err) => err.fmt(f),
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
