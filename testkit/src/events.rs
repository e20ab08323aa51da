//! A `tracing` subscriber that keeps every event, for tests of the events a layer reports.
//!
//! ```
//! use rampart_testkit::events::Capture;
//!
//! let capture = Capture::default();
//! tracing::subscriber::with_default(capture.clone(), || {
//!     tracing::info!(target: "rampart::example", name = "api", cores = 2, "started");
//! });
//! assert_eq!(capture.messages("rampart::example", "api"), ["started"]);
//! let events = capture.events();
//! assert_eq!(events[0].level, tracing::Level::INFO);
//! assert_eq!(events[0].field("cores"), "2");
//! assert!(events[0].text.contains("name=\"api\" "));
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One captured event.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Its level.
    pub level: Level,
    /// Its target.
    pub target: String,
    /// Its fields by name (the message under `message`): a string as it is, any other value
    /// in its `Debug` form.
    pub fields: BTreeMap<String, String>,
    /// Every field as `name=value ` in the order recorded, each value in its `Debug` form
    /// (a string quoted).
    pub text: String,
}

impl Captured {
    /// The field `name`, or `""` if the event has none.
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

/// A subscriber that keeps every event; clones share what they keep.
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    /// Every event captured so far.
    pub fn events(&self) -> Vec<Captured> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The messages of the events with `target` whose `name` field is `name`.
    pub fn messages(&self, target: &str, name: &str) -> Vec<String> {
        self.events()
            .iter()
            .filter(|event| event.target == target && event.field("name") == name)
            .map(|event| event.field("message").to_owned())
            .collect()
    }
}

/// Records an event's fields into a [`Captured`].
struct Fields<'a>(&'a mut Captured);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0.text, "{}={value:?} ", field.name());
        self.0
            .fields
            .insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0.text, "{}={value:?} ", field.name());
        self.0
            .fields
            .insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut captured = Captured {
            level: *metadata.level(),
            target: metadata.target().to_owned(),
            fields: BTreeMap::new(),
            text: String::new(),
        };
        event.record(&mut Fields(&mut captured));
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(captured);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
