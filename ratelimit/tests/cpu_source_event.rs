//! Starting the default CPU source reports, once and at info, which source it chose.
//!
//! Alone in its test binary: tracing caches each callsite's interest process-wide, and a test
//! on another thread meeting the callsite with no subscriber could make this one miss its
//! event.
#![cfg(all(feature = "tracing", target_os = "linux"))]

use std::time::Duration;

use rampart_ratelimit::SystemCpu;
use rampart_ratelimit::cpu::LinuxCpu;
use rampart_testkit::events::Capture;
use tracing::Level;

#[test]
fn starting_a_sampler_reports_its_source_once_at_info() {
    let capture = Capture::default();
    // A setting of its own: this test starts a sampler rather than sharing one.
    let cpu = tracing::subscriber::with_default(capture.clone(), || {
        SystemCpu::with_sampling(Duration::from_millis(997), 0.5)
    })
    .expect("linux");
    let events = capture.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let (level, target, fields) = (events[0].level, &events[0].target, &events[0].text);
    assert_eq!(
        (level, target.as_str()),
        (Level::INFO, "rampart::ratelimit")
    );
    let detected = LinuxCpu::detect().expect("linux");
    for part in [
        format!("source=\"{}\"", detected.version().as_str()),
        format!("limit=\"{}\"", detected.limited_by().as_str()),
        format!("cores={:?}", detected.cores()),
        cpu.source().to_owned(),
    ] {
        assert!(fields.contains(&part), "{part} in {fields}");
    }
}
