//! Reading what a layer reported into a `metrics-util` debugging recorder: a metric found by
//! its name and some of its labels.
//!
//! ```
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use rampart_testkit::recorded::{gauge, take, value};
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::counter!("requests_total", "name" => "api", "outcome" => "shed").increment(2);
//!     metrics::gauge!("inflight", "name" => "api").set(3.0);
//! });
//! let metrics = take(&snapshotter);
//! assert!(matches!(
//!     value(&metrics, "requests_total", &[("outcome", "shed")]),
//!     Some(DebugValue::Counter(2))
//! ));
//! assert_eq!(gauge(&metrics, "inflight", &[("name", "api")]), 3.0);
//! assert!(value(&metrics, "inflight", &[("name", "other")]).is_none());
//! ```

use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, Snapshotter};

/// A recorder's metrics at one reading, each by its key.
pub type Metrics = Vec<(CompositeKey, DebugValue)>;

/// Reads the recorder behind `snapshotter`. Reading resets its counters and gauges: a test
/// reads once for the values it checks.
pub fn take(snapshotter: &Snapshotter) -> Metrics {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| (key, value))
        .collect()
}

/// The value of the metric `name` whose labels include all of `labels`, if there is one.
pub fn value<'a>(
    metrics: &'a [(CompositeKey, DebugValue)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    metrics.iter().find_map(|(key, value)| {
        let key = key.key();
        let matches = key.name() == name
            && labels.iter().all(|(k, v)| {
                key.labels()
                    .any(|label| label.key() == *k && label.value() == *v)
            });
        matches.then_some(value)
    })
}

/// The gauge `name` whose labels include all of `labels`.
///
/// # Panics
///
/// If there is no such metric, or it is not a gauge.
pub fn gauge(metrics: &[(CompositeKey, DebugValue)], name: &str, labels: &[(&str, &str)]) -> f64 {
    match value(metrics, name, labels) {
        Some(DebugValue::Gauge(value)) => value.into_inner(),
        other => panic!("{name}{labels:?}: {other:?}"),
    }
}
