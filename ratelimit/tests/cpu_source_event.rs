//! Starting the default CPU source reports, once and at info, which source it chose.
//!
//! Alone in its test binary: tracing caches each callsite's interest process-wide, and a test
//! on another thread meeting the callsite with no subscriber could make this one miss its
//! event.
#![cfg(all(feature = "tracing", target_os = "linux"))]

use std::fmt::{self, Write as _};
use std::sync::Mutex;
use std::time::Duration;

use rampart_ratelimit::SystemCpu;
use rampart_ratelimit::cpu::LinuxCpu;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Every event: its level, target and fields as `name=value` text.
#[derive(Default)]
struct Collect(Mutex<Vec<(Level, String, String)>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl Subscriber for &'static Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let metadata = event.metadata();
        self.0.lock().expect("not poisoned").push((
            *metadata.level(),
            metadata.target().to_owned(),
            fields.0,
        ));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn starting_a_sampler_reports_its_source_once_at_info() {
    let events: &'static Collect = Box::leak(Box::default());
    // A setting of its own: this test starts a sampler rather than sharing one.
    let cpu = tracing::subscriber::with_default(events, || {
        SystemCpu::with_sampling(Duration::from_millis(997), 0.5)
    })
    .expect("linux");
    let events = events.0.lock().expect("not poisoned");
    assert_eq!(events.len(), 1, "{events:?}");
    let (level, target, fields) = &events[0];
    assert_eq!(
        (*level, target.as_str()),
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
