//! Gauges that stay current on an idle process: one shared background refresher.
//!
//! A layer sets most of its gauges from its own traffic, where the values are at hand (a
//! breaker's drop probability on each decision, a limiter's statistics once per bucket). When
//! traffic stops nothing sets them, and a scrape of an idle process would show its last busy
//! second. So each layer that reports metrics registers itself here with [`keep_current`], and
//! one background thread, `rampart-gauges`, started by the first registration, calls
//! [`PublishGauges::publish_gauges`] on every registered value once per [`REFRESH_PERIOD`]:
//! each reads its state at the current instant and sets its gauges. Request paths do no work
//! for it.
//!
//! The refresher holds weak references only: a value dropped (a layer gone, a keyed group's
//! member evicted) is not kept alive and is forgotten at the next pass, and the thread exits
//! once nothing is registered (a later registration starts it again).
//!
//! [`publish_all`] runs a pass at once on the calling thread: tests driving a `ManualClock`
//! call it instead of waiting for the thread.
//!
//! Each value reads its own clock on the refresher's thread. `TokioClock` under tokio's paused
//! time is the exception: the paused clock belongs to its runtime, and another thread reads
//! real time from it. A simulation that reads gauges under paused time publishes them from
//! inside its runtime (`publish_gauges` on the layer's breaker or limiter, or
//! [`publish_all`]) right before reading.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use rampart_core::gauges::{self, PublishGauges};
//!
//! /// Counts its publications (a real value would set its gauges from its state).
//! #[derive(Default)]
//! struct Queue {
//!     published: AtomicU64,
//! }
//!
//! impl PublishGauges for Queue {
//!     fn publish_gauges(&self) {
//!         self.published.fetch_add(1, Ordering::Relaxed);
//!     }
//! }
//!
//! let queue = Arc::new(Queue::default());
//! gauges::keep_current(&queue); // from now on, published about once a second
//! gauges::publish_all(); // and at once
//! assert!(queue.published.load(Ordering::Relaxed) >= 1);
//! ```

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, const_mutex};

/// How often the background refresher publishes every registered value's gauges.
pub const REFRESH_PERIOD: Duration = Duration::from_secs(1);

/// A value whose gauges the background refresher keeps current (see the [module](self) docs).
pub trait PublishGauges: Send + Sync + 'static {
    /// Sets this value's gauges to their values at the current instant.
    ///
    /// It runs on the refresher's thread (or on the caller of [`publish_all`]), while other
    /// threads use the value: it must only read the value's state. It must not call
    /// [`publish_all`] (passes do not nest). A panic is caught and skips this value for this
    /// pass only.
    fn publish_gauges(&self);
}

/// Registers `target`: the background refresher publishes its gauges once per
/// [`REFRESH_PERIOD`] for as long as it lives (it holds a weak reference only).
///
/// Register each value once: every registration is published on each pass. If the
/// refresher's thread cannot be started, registration still succeeds, and the next one tries
/// again.
pub fn keep_current<T: PublishGauges>(target: &Arc<T>) {
    let target: Weak<dyn PublishGauges> = Arc::downgrade(target) as Weak<dyn PublishGauges>;
    if REGISTRY.register(target) {
        start_refresher();
    }
}

/// Publishes the gauges of every registered value now, on the calling thread, and forgets the
/// values that have been dropped.
///
/// Passes, this one and the refresher's, run one at a time: once this returns, every gauge
/// holds a value read after it was called.
pub fn publish_all() {
    REGISTRY.pass(false);
}

/// The registry the layers register with.
static REGISTRY: Registry = Registry::new();

/// Registered values, and whether a refresher thread runs for them.
struct Registry {
    targets: Mutex<Targets>,
    /// Serialises passes, so that a pass never overwrites the values of one that finished
    /// before it started with older ones.
    passes: Mutex<()>,
}

struct Targets {
    list: Vec<Weak<dyn PublishGauges>>,
    /// Whether a refresher thread runs (or is being started).
    refresher_running: bool,
    /// The list's length after dead entries were last removed: registrations remove them again
    /// when it has doubled, so that the list stays bounded even with no pass running.
    pruned_len: usize,
}

impl Registry {
    const fn new() -> Self {
        Self {
            targets: const_mutex(Targets {
                list: Vec::new(),
                refresher_running: false,
                pruned_len: 0,
            }),
            passes: const_mutex(()),
        }
    }

    /// Adds `target`; returns whether a refresher must be started for it.
    fn register(&self, target: Weak<dyn PublishGauges>) -> bool {
        let mut targets = self.targets.lock();
        if targets.list.len() >= 2 * targets.pruned_len.max(8) {
            targets.list.retain(|target| target.strong_count() > 0);
            targets.pruned_len = targets.list.len();
        }
        targets.list.push(target);
        !std::mem::replace(&mut targets.refresher_running, true)
    }

    /// Publishes every live target and forgets the dead ones. For the refresher
    /// (`refresher = true`), finding none left stops it: returns false, and the next
    /// registration starts a new one.
    fn pass(&self, refresher: bool) -> bool {
        let _one_pass_at_a_time = self.passes.lock();
        let live: Vec<Arc<dyn PublishGauges>> = {
            let mut targets = self.targets.lock();
            let mut live = Vec::with_capacity(targets.list.len());
            targets.list.retain(|target| match target.upgrade() {
                Some(target) => {
                    live.push(target);
                    true
                }
                None => false,
            });
            targets.pruned_len = targets.list.len();
            if refresher && live.is_empty() {
                targets.refresher_running = false;
                return false;
            }
            live
        };
        for target in &live {
            // A panicking value must not stop the refresher for every other one.
            let _ = catch_unwind(AssertUnwindSafe(|| target.publish_gauges()));
        }
        true
    }

    /// Notes that no refresher runs (its thread could not be started).
    fn refresher_stopped(&self) {
        self.targets.lock().refresher_running = false;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.targets.lock().list.len()
    }
}

/// Starts the refresher thread: a pass every [`REFRESH_PERIOD`] until nothing is registered.
fn start_refresher() {
    let started = std::thread::Builder::new()
        .name("rampart-gauges".into())
        .spawn(|| {
            loop {
                std::thread::sleep(REFRESH_PERIOD);
                if !REGISTRY.pass(true) {
                    break;
                }
            }
        });
    if started.is_err() {
        REGISTRY.refresher_stopped();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[derive(Default)]
    struct Counted(AtomicU64);

    impl PublishGauges for Counted {
        fn publish_gauges(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Counted {
        fn count(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    fn weak(target: &Arc<Counted>) -> Weak<dyn PublishGauges> {
        Arc::downgrade(target) as Weak<dyn PublishGauges>
    }

    #[test]
    fn a_pass_publishes_every_live_target_once() {
        let registry = Registry::new();
        let (a, b) = (Arc::new(Counted::default()), Arc::new(Counted::default()));
        registry.register(weak(&a));
        registry.register(weak(&b));
        assert!(registry.pass(false));
        assert_eq!((a.count(), b.count()), (1, 1));
    }

    #[test]
    fn a_dropped_target_is_not_kept_alive_and_is_forgotten_at_the_next_pass() {
        let registry = Registry::new();
        let (kept, dropped) = (Arc::new(Counted::default()), Arc::new(Counted::default()));
        registry.register(weak(&kept));
        registry.register(weak(&dropped));
        let gone = Arc::downgrade(&dropped);
        drop(dropped);
        assert!(
            gone.upgrade().is_none(),
            "the registry holds no strong reference"
        );
        registry.pass(false);
        assert_eq!(registry.len(), 1);
        assert_eq!(kept.count(), 1);
    }

    #[test]
    fn the_refresher_stops_when_nothing_is_left_and_the_next_registration_restarts_it() {
        let registry = Registry::new();
        let target = Arc::new(Counted::default());
        assert!(registry.register(weak(&target)), "the first starts it");
        assert!(!registry.register(weak(&target)), "it runs already");
        assert!(registry.pass(true), "something to publish: keep running");
        drop(target);
        assert!(!registry.pass(true), "nothing left: stop");
        let target = Arc::new(Counted::default());
        assert!(registry.register(weak(&target)), "started again");
        assert!(registry.pass(false));
        assert_eq!(target.count(), 1);
    }

    #[test]
    fn a_pass_on_demand_never_stops_the_refresher() {
        let registry = Registry::new();
        let target = Arc::new(Counted::default());
        assert!(registry.register(weak(&target)));
        drop(target);
        assert!(registry.pass(false));
        assert!(!registry.register(weak(&Arc::new(Counted::default()))));
    }

    #[test]
    fn registrations_of_short_lived_targets_keep_the_list_bounded() {
        let registry = Registry::new();
        let kept = Arc::new(Counted::default());
        registry.register(weak(&kept));
        for _ in 0..10_000 {
            registry.register(weak(&Arc::new(Counted::default())));
        }
        assert!(registry.len() <= 16, "{} entries", registry.len());
    }

    #[test]
    fn a_panicking_target_does_not_stop_the_others() {
        struct Panics;
        impl PublishGauges for Panics {
            fn publish_gauges(&self) {
                panic!("a broken gauge");
            }
        }
        let registry = Registry::new();
        let panics = Arc::new(Panics);
        let counted = Arc::new(Counted::default());
        registry.register(Arc::downgrade(&panics) as Weak<dyn PublishGauges>);
        registry.register(weak(&counted));
        assert!(registry.pass(true));
        assert_eq!(counted.count(), 1);
    }

    #[test]
    fn keep_current_registers_with_the_shared_refresher() {
        let target = Arc::new(Counted::default());
        keep_current(&target);
        publish_all();
        assert!(
            target.count() >= 1,
            "published by this pass, or the refresher's"
        );
    }
}
