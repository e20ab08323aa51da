//! How the handles of a shared balancer learn that something changed without a task of their
//! own: [`Signals`], two flags and the wakers of the handles waiting for an endpoint.
//!
//! A handle polls the discovery stream and the endpoints' clones with one of two wakers of the
//! balancer's own (not its task's, which may have moved on by the time they fire). When the
//! discovery waker fires, `discovery_due` is set; when an endpoint's, `probes_due`; either way
//! every waiting handle's task is woken. The next `poll_ready` of any handle sees the flag,
//! drains the discovery stream or polls the endpoints that are not ready, and clears it. So a
//! change reaches the handles whichever task was polling when it was registered, and a handle
//! with requests to send pays one relaxed load per flag while nothing changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake, Waker};

use parking_lot::Mutex;

/// The flags and the waiting handles' wakers.
#[derive(Debug)]
pub(crate) struct Signals {
    /// The discovery stream has (or may have) changes to apply.
    pub(crate) discovery_due: AtomicBool,
    /// An endpoint that was not ready may be now.
    pub(crate) probes_due: AtomicBool,
    /// Tasks of handles that found no endpoint ready.
    waiting: Mutex<Vec<Waker>>,
}

impl Signals {
    /// Both flags up: the first `poll_ready` drains discovery and polls every new endpoint.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            discovery_due: AtomicBool::new(true),
            probes_due: AtomicBool::new(true),
            waiting: Mutex::new(Vec::new()),
        })
    }

    /// The wakers to poll the discovery stream and the endpoints with.
    pub(crate) fn wakers(self: &Arc<Self>) -> (Waker, Waker) {
        let waker = |flag| {
            Waker::from(Arc::new(Flag {
                signals: Arc::clone(self),
                flag,
            }))
        };
        (waker(Which::Discovery), waker(Which::Probes))
    }

    /// Takes the flag down if it is up; whether it was.
    #[inline]
    pub(crate) fn take(flag: &AtomicBool) -> bool {
        flag.load(Ordering::Relaxed) && flag.swap(false, Ordering::AcqRel)
    }

    /// Puts `flag` up and wakes the waiting handles.
    pub(crate) fn raise(&self, flag: &AtomicBool) {
        flag.store(true, Ordering::Release);
        self.wake_waiting();
    }

    /// Adds `waker` to the waiting handles (once per task).
    pub(crate) fn wait(&self, waker: &Waker) {
        let mut waiting = self.waiting.lock();
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
    }

    /// Wakes every waiting handle's task.
    pub(crate) fn wake_waiting(&self) {
        let woken = std::mem::take(&mut *self.waiting.lock());
        for waker in woken {
            waker.wake();
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Discovery,
    Probes,
}

/// The waker of one flag.
struct Flag {
    signals: Arc<Signals>,
    flag: Which,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let flag = match self.flag {
            Which::Discovery => &self.signals.discovery_due,
            Which::Probes => &self.signals.probes_due,
        };
        self.signals.raise(flag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_flag_waker_raises_its_flag_and_wakes_every_waiting_task_once() {
        let signals = Signals::new();
        assert!(Signals::take(&signals.discovery_due) && Signals::take(&signals.probes_due));
        let (a, b) = (
            Arc::new(Count(AtomicUsize::new(0))),
            Arc::new(Count(AtomicUsize::new(0))),
        );
        let (wa, wb) = (Waker::from(Arc::clone(&a)), Waker::from(Arc::clone(&b)));
        signals.wait(&wa);
        signals.wait(&wa);
        signals.wait(&wb);
        let (discovery, probes) = signals.wakers();
        probes.wake_by_ref();
        assert!(!signals.discovery_due.load(Ordering::Relaxed));
        assert!(Signals::take(&signals.probes_due));
        assert!(!Signals::take(&signals.probes_due), "taken once");
        let woken = |count: &Count| count.0.load(Ordering::Relaxed);
        assert_eq!((woken(&a), woken(&b)), (1, 1), "each waiting task once");
        discovery.wake();
        assert!(signals.discovery_due.load(Ordering::Relaxed));
        assert_eq!((woken(&a), woken(&b)), (1, 1), "no longer waiting");
    }
}
