//! What the driver watches once a second while it loads a server: the server's `/stats` (what
//! its limiter sees) and the CPU time the server process has used, from `/proc`.

use std::time::Duration;

use tokio::time::Instant;

use super::load::Target;
use super::stats::Stats;

/// One look at the server.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// When, since the start of the run.
    pub at: Duration,
    /// Its `/stats` answer, if it gave one in time.
    pub stats: Option<Stats>,
    /// CPU seconds the server process has used, where `/proc` tells.
    pub cpu_seconds: Option<f64>,
}

/// Looks at `target` (process `pid`) every `every` from now, `count` times, the first at once.
pub async fn watch(
    target: &Target,
    pid: Option<u32>,
    every: Duration,
    count: u32,
) -> Vec<Observation> {
    let start = Instant::now();
    let mut seen = Vec::with_capacity(count as usize);
    for n in 0..count {
        tokio::time::sleep_until(start + every * n).await;
        let at = start.elapsed();
        let cpu_seconds = pid.and_then(process_cpu_seconds);
        let stats = target.stats(every.mul_f64(0.9)).await;
        seen.push(Observation {
            at,
            stats,
            cpu_seconds,
        });
    }
    seen
}

/// CPU seconds (user and system) process `pid` has used, from `/proc/PID/stat`.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Clock ticks per second in `/proc`'s figures (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// The user and system CPU seconds in the text of a `/proc/PID/stat` file.
///
/// The command name (second field, in parentheses) may hold spaces and parentheses, so the
/// fields are counted from the last `)`: `utime` and `stime` are the 14th and 15th fields.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user.saturating_add(system) as f64 / TICKS_PER_SECOND)
}
