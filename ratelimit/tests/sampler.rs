//! `spawn_sampler` with intervals at the edges of `Duration`, on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use rampart_ratelimit::{CpuUsage, spawn_sampler};

const HOUR: Duration = Duration::from_secs(3_600);
const DAY: Duration = Duration::from_secs(86_400);

/// Spawns a sampler of a constant full load every `interval`; the returned token's strong
/// count is 2 while the sampler task still holds its source, 1 once the task has ended.
fn full_load_sampler(interval: Duration) -> (rampart_ratelimit::SmoothedCpu, Arc<()>) {
    let token = Arc::new(());
    let held = Arc::clone(&token);
    let source = move || {
        let _ = &held;
        1.0
    };
    let cpu = spawn_sampler(source, interval, 0.5).expect("a positive interval is valid");
    (cpu, token)
}

#[tokio::test(start_paused = true)]
async fn spawn_sampler_with_an_interval_near_duration_max_no_longer_dies_in_its_task() {
    for interval in [
        Duration::MAX,
        Duration::new(u64::MAX, 999_999_998),
        Duration::from_secs(u64::MAX / 2),
        Duration::from_secs(1_000 * 365 * 86_400),
    ] {
        let (cpu, token) = full_load_sampler(interval);
        // Let the task start: it used to panic at once, adding the interval to an instant.
        tokio::task::yield_now().await;
        tokio::time::advance(HOUR).await;
        tokio::task::yield_now().await;
        assert_eq!(
            Arc::strong_count(&token),
            2,
            "{interval:?}: the sampler task has ended"
        );
        assert_eq!(cpu.usage(), 0.0, "{interval:?}: no sample is due yet");
    }
}

#[tokio::test(start_paused = true)]
async fn a_day_long_interval_samples_once_a_day() {
    let (cpu, _token) = full_load_sampler(DAY);
    tokio::task::yield_now().await;
    tokio::time::advance(DAY.saturating_sub(Duration::from_millis(1))).await;
    tokio::task::yield_now().await;
    assert_eq!(cpu.usage(), 0.0, "before the first day");
    tokio::time::advance(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert_eq!(cpu.usage(), 0.5, "one sample with decay 0.5");
    tokio::time::advance(DAY).await;
    tokio::task::yield_now().await;
    assert_eq!(cpu.usage(), 0.75, "two samples");
}

#[tokio::test(start_paused = true)]
async fn the_sampler_task_ends_at_its_next_sample_once_nobody_reads_it() {
    let (cpu, token) = full_load_sampler(Duration::from_millis(250));
    tokio::time::advance(Duration::from_millis(250)).await;
    tokio::task::yield_now().await;
    assert_eq!(Arc::strong_count(&token), 2, "still read: still sampling");
    drop(cpu);
    tokio::time::advance(Duration::from_millis(250)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        Arc::strong_count(&token),
        1,
        "the task has dropped its source"
    );
}
