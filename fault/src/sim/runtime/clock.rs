//! [`RuntimeClock`]: the instants a `SimRuntime` runs its work at.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rampart_core::Clock;

use super::shared::Shared;

/// The clock of a [`SimRuntime`](crate::SimRuntime): the exact instant of the work a worker is
/// running (a stack measuring a response time reads when the handler's last piece of work
/// ended, not when tokio's millisecond timer fired), and between runs tokio's current instant.
/// Its origin is the runtime's construction.
///
/// Reading it from outside the runtime's tasks first runs what is due by tokio's instant, so
/// its readings never go back. Clones share the runtime; the clock keeps reading the last
/// instant once the runtime is gone.
#[derive(Debug, Clone)]
pub struct RuntimeClock {
    shared: Weak<Shared>,
    now: Arc<AtomicU64>,
}

impl RuntimeClock {
    pub(super) fn new(shared: &Arc<Shared>) -> Self {
        Self {
            shared: Arc::downgrade(shared),
            now: Arc::clone(&shared.now),
        }
    }
}

impl Clock for RuntimeClock {
    fn now(&self) -> Duration {
        if let Some(shared) = self.shared.upgrade() {
            shared.catch_up();
        }
        Duration::from_nanos(self.now.load(Ordering::Relaxed))
    }
}
