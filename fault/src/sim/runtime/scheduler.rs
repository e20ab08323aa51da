//! The scheduler behind `SimRuntime`: workers, a FIFO run queue, a heartbeat, and the CPU
//! meter, advanced event by event on exact instants.
//!
//! Instants are durations since the runtime's origin, exact to the nanosecond (tokio's timer
//! rounds to milliseconds; the scheduler never waits on it). The scheduler owns no tokio type:
//! it says which task a worker polls next and when, and the caller polls it (with the lock
//! released) and reports how the poll ended.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::Waker;
use std::time::Duration;

use fastrand::Rng;

use super::signals::{Heartbeat, Meter};
use super::{RuntimeConfig, RuntimeStats};

/// A request's task: the stack's call and the response's delivery. Its output says whether a
/// client was still waiting for the response.
pub(super) type TaskFuture = Pin<Box<dyn Future<Output = bool> + Send>>;

pub(super) type TaskId = u64;

/// What the run queue holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Task(TaskId),
    /// The heartbeat task: it costs no CPU, and measures how late it runs.
    Heartbeat,
}

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Arrived or woken, not yet in the run queue (an event at a later instant).
    Arriving,
    /// In the run queue.
    Queued,
    /// On a worker: being polled, or burning CPU.
    Running,
    /// Waiting for its waker.
    Parked,
}

struct Task {
    /// `None` while a worker polls it.
    future: Option<TaskFuture>,
    waker: Waker,
    arrived: Duration,
    place: Place,
    /// Whether the stack called the handler.
    handled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Worker {
    Idle,
    /// Running `task` from `start` until `end` (equal while it is being polled).
    Busy {
        task: TaskId,
        start: Duration,
        end: Duration,
    },
}

/// A poll the caller must make: `future` of `task`, on `worker`, at `at`.
pub(super) struct Poll {
    pub(super) task: TaskId,
    pub(super) worker: usize,
    pub(super) at: Duration,
    pub(super) future: TaskFuture,
    pub(super) waker: Waker,
}

/// How a poll ended.
pub(super) enum Polled {
    /// The task finished; `true` if its client was still waiting.
    Ready(bool),
    /// The task panicked: it is dropped, unanswered.
    Panicked,
    /// The task is not finished; `woken` lists the tasks woken during the poll, with the
    /// instants they were woken at.
    Pending {
        future: TaskFuture,
        woken: Vec<(TaskId, Duration)>,
    },
}

/// The handler's view of the task a worker is polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Current {
    pub(super) task: TaskId,
    /// CPU the task asked to burn before its next poll.
    pub(super) burn: Option<Duration>,
}

pub(super) struct State {
    pub(super) config: RuntimeConfig,
    pub(super) rng: Rng,
    /// The instant the scheduler has reached.
    pub(super) now: Duration,
    workers: Vec<Worker>,
    run_queue: VecDeque<Entry>,
    /// Tasks arriving or woken from outside, in order of their instants.
    arriving: VecDeque<(Duration, TaskId)>,
    tasks: BTreeMap<TaskId, Task>,
    next_id: TaskId,
    pub(super) current: Option<Current>,
    heartbeat: Heartbeat,
    meter: Meter,
    stats: RuntimeStats,
}

/// The next thing to happen, in the order simultaneous events are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A worker's burn ends: its task is polled again, on the same worker.
    BurnEnds(usize),
    /// The heartbeat asks to run.
    Heartbeat,
    /// A task arrives (or is woken from outside) and joins the run queue.
    Arrival,
}

impl State {
    pub(super) fn new(config: RuntimeConfig, rng: Rng) -> Self {
        Self {
            workers: vec![Worker::Idle; config.workers],
            run_queue: VecDeque::new(),
            arriving: VecDeque::new(),
            tasks: BTreeMap::new(),
            next_id: 0,
            current: None,
            heartbeat: Heartbeat::new(config.heartbeat),
            meter: Meter::new(config.meter_cpus()),
            stats: RuntimeStats::default(),
            now: Duration::ZERO,
            rng,
            config,
        }
    }

    /// The id the next task will get (its waker needs it before it exists).
    pub(super) fn next_id(&self) -> TaskId {
        self.next_id
    }

    /// A request's task arrives at `at` (no earlier than the scheduler's instant).
    pub(super) fn arrive(&mut self, at: Duration, future: TaskFuture, waker: Waker) -> TaskId {
        let id = self.next_id;
        self.next_id += 1;
        let at = at.max(self.now);
        self.tasks.insert(
            id,
            Task {
                future: Some(future),
                waker,
                arrived: at,
                place: Place::Arriving,
                handled: false,
            },
        );
        self.schedule_arrival(at, id);
        self.stats.arrived += 1;
        id
    }

    fn schedule_arrival(&mut self, at: Duration, id: TaskId) {
        let index = self.arriving.partition_point(|&(when, _)| when <= at);
        self.arriving.insert(index, (at, id));
    }

    /// Tasks woken from outside a poll: parked ones join the run queue at the instant they were
    /// woken; a wake of a task that is not parked changes nothing.
    pub(super) fn wake(&mut self, woken: &[(TaskId, Duration)]) {
        for &(id, at) in woken {
            if let Some(task) = self.tasks.get_mut(&id)
                && task.place == Place::Parked
            {
                task.place = Place::Arriving;
                let at = at.max(self.now);
                self.schedule_arrival(at, id);
            }
        }
    }

    /// Advances to the next poll due no later than `target`, or to `target` if there is none
    /// (then returns `None`).
    pub(super) fn next_poll(&mut self, target: Duration) -> Option<Poll> {
        loop {
            if let Some(poll) = self.dispatch() {
                return Some(poll);
            }
            self.skip_idle_heartbeats(target);
            let Some((at, event)) = self.next_event().filter(|&(at, _)| at <= target) else {
                self.now = self.now.max(target);
                return None;
            };
            self.now = at;
            match event {
                Event::BurnEnds(worker) => return self.resume(worker),
                Event::Heartbeat => {
                    self.heartbeat.queue();
                    self.run_queue.push_back(Entry::Heartbeat);
                }
                Event::Arrival => {
                    if let Some((_, id)) = self.arriving.pop_front()
                        && let Some(task) = self.tasks.get_mut(&id)
                    {
                        task.place = Place::Queued;
                        self.run_queue.push_back(Entry::Task(id));
                    }
                }
            }
        }
    }

    /// Gives the head of the run queue to an idle worker, if there are both.
    fn dispatch(&mut self) -> Option<Poll> {
        loop {
            let worker = self.workers.iter().position(|w| *w == Worker::Idle)?;
            match self.run_queue.pop_front()? {
                Entry::Heartbeat => self.heartbeat.run(self.now),
                Entry::Task(id) => {
                    self.workers[worker] = Worker::Busy {
                        task: id,
                        start: self.now,
                        end: self.now,
                    };
                    return self.take_poll(id, worker);
                }
            }
        }
    }

    /// A worker's burn has ended: the task is polled again where it left off.
    fn resume(&mut self, worker: usize) -> Option<Poll> {
        let Worker::Busy { task, start, end } = self.workers[worker] else {
            return None;
        };
        self.meter.bank(start, end);
        self.stats.busy = self.stats.busy.saturating_add(end.saturating_sub(start));
        self.workers[worker] = Worker::Busy {
            task,
            start: end,
            end,
        };
        self.take_poll(task, worker)
    }

    fn take_poll(&mut self, id: TaskId, worker: usize) -> Option<Poll> {
        let now = self.now;
        let task = self.tasks.get_mut(&id)?;
        task.place = Place::Running;
        let future = task.future.take()?;
        self.current = Some(Current {
            task: id,
            burn: None,
        });
        Some(Poll {
            task: id,
            worker,
            at: now,
            future,
            waker: task.waker.clone(),
        })
    }

    /// While the runtime has nothing to do, the heartbeat runs on time: take its beats up to
    /// the next thing that happens (or `target`) in one step.
    fn skip_idle_heartbeats(&mut self, target: Duration) {
        let idle = self.run_queue.is_empty() && self.workers.iter().all(|w| *w == Worker::Idle);
        if idle {
            let until = self
                .arriving
                .front()
                .map_or(target, |&(at, _)| at.min(target));
            self.heartbeat.run_idle_until(until);
        }
    }

    fn next_event(&self) -> Option<(Duration, Event)> {
        let burns = self
            .workers
            .iter()
            .enumerate()
            .filter_map(|(n, w)| match *w {
                Worker::Busy { end, .. } => Some((end, Event::BurnEnds(n))),
                Worker::Idle => None,
            });
        let heartbeat = self.heartbeat.next_due().map(|due| (due, Event::Heartbeat));
        let arrival = self.arriving.front().map(|&(at, _)| (at, Event::Arrival));
        burns.chain(heartbeat).chain(arrival).min()
    }

    /// The earliest instant something a client can see may happen: a burn ends or a task
    /// arrives. The heartbeat is left out: it changes nothing until something else happens.
    pub(super) fn next_wake(&self) -> Option<Duration> {
        let burns = self.workers.iter().filter_map(|w| match *w {
            Worker::Busy { end, .. } => Some(end),
            Worker::Idle => None,
        });
        let arrival = self.arriving.front().map(|&(at, _)| at);
        burns.chain(arrival).min()
    }

    /// Records how the poll ended. (A finished task's future stays with the caller, who drops
    /// it once the lock is released: its drop may read the runtime.)
    pub(super) fn finish(&mut self, task: TaskId, worker: usize, at: Duration, polled: Polled) {
        self.workers[worker] = Worker::Idle;
        let burn = self.current.take().and_then(|current| current.burn);
        match polled {
            Polled::Ready(delivered) => {
                if let Some(done) = self.tasks.remove(&task) {
                    let stats = &mut self.stats;
                    match (done.handled, delivered) {
                        (true, true) => stats.served += 1,
                        (true, false) => stats.abandoned += 1,
                        (false, _) => stats.refused += 1,
                    }
                }
            }
            Polled::Panicked => {
                self.tasks.remove(&task);
                self.stats.panicked += 1;
            }
            Polled::Pending { future, woken } => {
                let yielded = woken.iter().any(|&(id, _)| id == task);
                if let Some(record) = self.tasks.get_mut(&task) {
                    record.future = Some(future);
                    if let Some(burn) = burn {
                        self.workers[worker] = Worker::Busy {
                            task,
                            start: at,
                            end: at.saturating_add(burn),
                        };
                    } else if yielded {
                        record.place = Place::Queued;
                        self.run_queue.push_back(Entry::Task(task));
                    } else {
                        record.place = Place::Parked;
                    }
                }
                let others: Vec<_> = woken.into_iter().filter(|&(id, _)| id != task).collect();
                self.wake(&others);
            }
        }
    }

    /// The task a worker is polling asks to burn `cpu` before its next poll; `false` when no
    /// task is being polled.
    pub(super) fn burn(&mut self, cpu: Duration) -> bool {
        match &mut self.current {
            Some(current) => {
                current.burn = Some(current.burn.unwrap_or_default().saturating_add(cpu));
                true
            }
            None => false,
        }
    }

    /// Marks the task being polled as having reached the handler; returns when it arrived.
    pub(super) fn handle(&mut self) -> Option<Duration> {
        let current = self.current?;
        let task = self.tasks.get_mut(&current.task)?;
        task.handled = true;
        Some(task.arrived)
    }

    /// Whether the task being polled reached the handler.
    pub(super) fn handled(&self) -> bool {
        self.current
            .and_then(|current| self.tasks.get(&current.task))
            .is_some_and(|task| task.handled)
    }

    /// The futures of every unfinished task, taken out (for a runtime shutting down).
    pub(super) fn take_futures(&mut self) -> Vec<TaskFuture> {
        self.tasks
            .values_mut()
            .filter_map(|task| task.future.take())
            .collect()
    }

    /// Busy worker time over `cpus ×` the time since the previous read.
    pub(super) fn utilization(&mut self) -> f64 {
        let busy_since = self.workers.iter().filter_map(|w| match *w {
            Worker::Busy { start, .. } => Some(start),
            Worker::Idle => None,
        });
        self.meter.read(self.now, busy_since)
    }

    /// The scheduling delay at `now`, as the heartbeat measures it.
    pub(super) fn delay_at(&self, now: Duration) -> Duration {
        self.heartbeat.delay_at(now)
    }

    pub(super) fn stats(&self) -> RuntimeStats {
        let queued = self
            .run_queue
            .iter()
            .filter(|entry| matches!(entry, Entry::Task(_)))
            .count() as u64;
        RuntimeStats {
            queued,
            unfinished: self.tasks.len() as u64,
            ..self.stats
        }
    }
}
