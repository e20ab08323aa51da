//! The state every handle of one `SimRuntime` shares, and the loop that runs its tasks.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use rampart_core::saturating_nanos;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::RuntimeConfig;
use super::scheduler::{Polled, State, TaskFuture, TaskId};

pub(super) struct Shared {
    pub(super) config: RuntimeConfig,
    /// Tokio's instant at the runtime's origin.
    origin: Instant,
    pub(super) state: Mutex<State>,
    /// The instant of the work being run (nanoseconds since the origin): what the runtime's
    /// clock reads. Shared with clocks, which outlive the runtime.
    pub(super) now: Arc<AtomicU64>,
    /// Set while tasks are being run: a read from inside a task must not run tasks itself.
    running: AtomicBool,
    /// Tasks woken, with the instants they were woken at, not yet seen by the scheduler.
    woken: Mutex<Vec<(TaskId, Duration)>>,
    /// Wakes the driver: a task arrived or was woken.
    notify: Notify,
    driver_started: AtomicBool,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimRuntime")
            .field("config", &self.config)
            .field("now", &self.instant())
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(super) fn new(config: RuntimeConfig, state: State) -> Self {
        Self {
            config,
            origin: Instant::now(),
            state: Mutex::new(state),
            now: Arc::new(AtomicU64::new(0)),
            running: AtomicBool::new(false),
            woken: Mutex::new(Vec::new()),
            notify: Notify::new(),
            driver_started: AtomicBool::new(false),
        }
    }

    /// Tokio's clock, as an instant of the runtime.
    fn tokio_now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// The instant of the work being run, or the last instant the runtime caught up to.
    pub(super) fn instant(&self) -> Duration {
        Duration::from_nanos(self.now.load(Ordering::Relaxed))
    }

    /// Runs everything due by tokio's current instant, unless tasks are being run already
    /// (a read from inside a task sees the instant of that task's work).
    ///
    /// A read from a thread outside any tokio runtime (a metrics refresher's, say) runs
    /// nothing: there tokio's clock is the real one, not the runtime's paused clock, and
    /// running the work due by it would make a simulation depend on how fast the machine runs
    /// it.
    pub(super) fn catch_up(&self) {
        if !self.running.load(Ordering::Relaxed) && tokio::runtime::Handle::try_current().is_ok() {
            self.run_until(self.tokio_now());
        }
    }

    /// The instant a request arriving now, or a task woken now, is stamped with.
    fn arrival_instant(&self) -> Duration {
        if self.running.load(Ordering::Relaxed) {
            self.instant()
        } else {
            self.tokio_now().max(self.instant())
        }
    }

    /// Runs every poll due by `target`, in order, with the state unlocked while a task is
    /// polled (a task reads the runtime: the clock, the delay, the handler's state).
    fn run_until(&self, target: Duration) {
        if self.running.swap(true, Ordering::Acquire) {
            return;
        }
        let _running = Running(&self.running);
        loop {
            let next = {
                let mut state = self.state.lock();
                let woken = std::mem::take(&mut *self.woken.lock());
                state.wake(&woken);
                state.next_poll(target)
            };
            let Some(mut poll) = next else { break };
            self.now.store(saturating_nanos(poll.at), Ordering::Relaxed);
            let mut cx = Context::from_waker(&poll.waker);
            let polled = match catch_unwind(AssertUnwindSafe(|| poll.future.as_mut().poll(&mut cx)))
            {
                Ok(std::task::Poll::Ready(delivered)) => Polled::Ready(delivered),
                Ok(std::task::Poll::Pending) => Polled::Pending {
                    future: poll.future,
                    woken: std::mem::take(&mut *self.woken.lock()),
                },
                Err(_) => Polled::Panicked,
            };
            self.state
                .lock()
                .finish(poll.task, poll.worker, poll.at, polled);
            // A finished task's future is dropped here, once the lock is released.
        }
        let now = self.state.lock().now;
        self.now.store(saturating_nanos(now), Ordering::Relaxed);
    }

    /// Adds a request's task, arriving now, and makes sure the driver runs it.
    pub(super) fn spawn(self: &Arc<Self>, future: TaskFuture) {
        self.start_driver();
        self.catch_up();
        let at = self.arrival_instant();
        {
            let mut state = self.state.lock();
            let waker = Waker::from(Arc::new(TaskWaker {
                task: state.next_id(),
                shared: Arc::downgrade(self),
            }));
            state.arrive(at, future, waker);
        }
        self.notify.notify_one();
    }

    fn start_driver(self: &Arc<Self>) {
        if !self.driver_started.swap(true, Ordering::Relaxed) {
            tokio::spawn(drive(Arc::clone(self)));
        }
    }
}

/// Clears the running flag however the run ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Runs the runtime's tasks as tokio's clock reaches their instants. It lives as long as the
/// tokio runtime it was spawned on; when that shuts down, the tasks left unfinished are
/// dropped with it (a stack they hold may hold the runtime: dropping them breaks the cycle).
async fn drive(shared: Arc<Shared>) {
    let _shutdown = Shutdown(Arc::clone(&shared));
    loop {
        shared.catch_up();
        let next = shared.state.lock().next_wake();
        let notified = shared.notify.notified();
        match next {
            Some(at) => {
                let _ = tokio::time::timeout_at(shared.origin + at, notified).await;
            }
            None => notified.await,
        }
    }
}

/// Drops the unfinished tasks when the driver is dropped.
struct Shutdown(Arc<Shared>);

impl Drop for Shutdown {
    fn drop(&mut self) {
        let unfinished = self.0.state.lock().take_futures();
        // Dropped once the lock is released: their drops may read the runtime.
        drop(unfinished);
    }
}

/// Wakes a task: it joins the run queue at the instant it is woken.
struct TaskWaker {
    task: TaskId,
    shared: Weak<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            let at = shared.arrival_instant();
            shared.woken.lock().push((self.task, at));
            shared.notify.notify_one();
        }
    }
}
