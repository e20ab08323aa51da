//! The queueing model behind `SimBackend`: FIFO arrivals booked onto the earliest free worker,
//! or, under another discipline, requests held until a worker frees up.
//!
//! Booking at arrival is exact for a FIFO queue whose service times are drawn at arrival: a
//! request starts when the earliest worker frees up (or at once), and keeps its booking
//! whatever its caller does afterwards. Start times never decrease, so the requests still
//! waiting are a prefix-ordered queue of start times.
//!
//! Any other discipline chooses among the requests waiting when a worker frees up, so a
//! request's start is not known at its arrival: it waits in `held`, and [`Queue::catch_up`]
//! replays every release of a worker up to the present in order, choosing (or dropping) a
//! request at each and sending the chosen one its booking. Every arrival catches up first, so a
//! release sees exactly the requests that had arrived by its instant; between arrivals, the
//! backend's dispatcher catches up at each release (see `Queue::next_release`). Service times
//! are drawn at arrival under every discipline.
//!
//! Workers are created as requests need them, so a backend of any size costs memory only for
//! the workers its traffic has used. Every instant and duration saturates: a service time near
//! `Duration::MAX` is shortened to tokio's longest wait (about 30 years), never an overflow.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use fastrand::Rng;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::discipline::{CoDelState, QueueDiscipline, QueueOrder};
use super::{SimStats, SimWork};
use crate::Distribution;

/// The longest service time: about 30 years, the longest tokio's timers wait (`tokio::time::sleep`
/// shortens longer durations to it), so that a response future can always wait for its end.
const LONGEST_SERVICE: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// One accepted request's booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Booking {
    pub(crate) start: Instant,
    pub(crate) finish: Instant,
}

/// Why a held request was dropped instead of served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Its deadline had passed.
    Expired,
    /// It had waited this long, longer than `CoDel`'s timeout.
    TimedOut(Duration),
}

/// What became of a request at its arrival.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Booked onto a worker.
    Booked(Booking),
    /// Held until a worker takes it: the booking, or the drop, comes on this channel.
    Held(oneshot::Receiver<Result<Booking, Dropped>>),
    /// Refused: the queue was full.
    Rejected,
    /// Dropped at once (its deadline had passed when a free worker would have taken it).
    Dropped(Dropped),
}

/// A request held for a worker.
#[derive(Debug)]
struct Held {
    arrival: Instant,
    service: Duration,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Booking, Dropped>>,
}

#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) rng: Rng,
    pub(crate) service_time: Distribution,
    workers: usize,
    capacity: usize,
    discipline: QueueDiscipline,
    codel: Option<CoDelState>,
    /// Requests waiting for a worker under a discipline other than FIFO, oldest first.
    held: VecDeque<Held>,
    /// When each worker that has served a request is next free; the others (`workers` minus
    /// its length) have been free since construction, earlier than any of these.
    free_at: BinaryHeap<Reverse<Instant>>,
    /// Start times of accepted requests that have not started yet, earliest first.
    waiting: VecDeque<Instant>,
    /// `(finish, start, deadline)` of requests that have not finished, earliest finish first.
    unfinished: BinaryHeap<Reverse<(Instant, Instant, Option<Instant>)>>,
    work: SimWork,
    /// Worker time between `last_read` and now spent by requests already finished.
    busy_since_read: Duration,
    last_read: Instant,
    last_utilization: f64,
    accepted: u64,
    rejected: u64,
}

impl Queue {
    pub(crate) fn new(
        workers: usize,
        capacity: usize,
        service_time: Distribution,
        discipline: QueueDiscipline,
        rng: Rng,
        now: Instant,
    ) -> Self {
        Self {
            rng,
            service_time,
            workers,
            capacity,
            discipline,
            codel: discipline.codel.map(CoDelState::new),
            held: VecDeque::new(),
            free_at: BinaryHeap::new(),
            waiting: VecDeque::new(),
            unfinished: BinaryHeap::new(),
            work: SimWork::default(),
            busy_since_read: Duration::ZERO,
            last_read: now,
            last_utilization: 0.0,
            accepted: 0,
            rejected: 0,
        }
    }

    /// Replays every release of a worker up to `now` (handing held requests to workers), then
    /// forgets what has started and what has finished by `now`, banking the worker time of
    /// finished requests for the next utilisation read and in the work done.
    pub(crate) fn catch_up(&mut self, now: Instant) {
        while let Some(release) = self.next_release()
            && release <= now
        {
            self.release(release);
        }
        while self.waiting.front().is_some_and(|start| *start <= now) {
            self.waiting.pop_front();
        }
        while let Some(Reverse((finish, start, deadline))) = self.unfinished.peek().copied() {
            if finish > now {
                break;
            }
            self.unfinished.pop();
            let busy = finish.saturating_duration_since(start.max(self.last_read));
            self.busy_since_read = self.busy_since_read.saturating_add(busy);
            let service = finish.saturating_duration_since(start);
            self.work.busy = self.work.busy.saturating_add(service);
            match deadline {
                Some(deadline) if finish > deadline => {
                    self.work.late += 1;
                    self.work.late_busy = self.work.late_busy.saturating_add(service);
                }
                Some(_) => self.work.in_time += 1,
                None => {}
            }
        }
    }

    /// When the next worker frees up while requests are held (`None` when none is).
    pub(crate) fn next_release(&self) -> Option<Instant> {
        if self.held.is_empty() {
            return None;
        }
        // A request is held only while every worker is busy, and a worker's release hands it
        // the next one: every worker has been used.
        self.free_at.peek().map(|Reverse(free)| *free)
    }

    /// The worker freeing up at `at` takes the next held request the discipline chooses,
    /// dropping those it must drop on the way.
    fn release(&mut self, at: Instant) {
        while let Some(held) = self.take_held(at) {
            let waited = at.saturating_duration_since(held.arrival);
            if let Some(dropped) = self.drops(at, waited, held.deadline) {
                // The caller may have gone: a drop nobody hears changes nothing.
                let _ = held.reply.send(Err(dropped));
                continue;
            }
            let finish = later(at, held.service);
            if let Some(mut worker) = self.free_at.peek_mut() {
                worker.0 = finish;
            }
            self.unfinished.push(Reverse((finish, at, held.deadline)));
            let _ = held.reply.send(Ok(Booking { start: at, finish }));
            return;
        }
    }

    /// The held request the discipline's order takes at `at`.
    fn take_held(&mut self, at: Instant) -> Option<Held> {
        match self.discipline.order {
            QueueOrder::AdaptiveLifo { backed_up }
                if self.held.front().is_some_and(|oldest| {
                    at.saturating_duration_since(oldest.arrival) > backed_up
                }) =>
            {
                self.held.pop_back()
            }
            _ => self.held.pop_front(),
        }
    }

    /// Whether a request taken at `at` after waiting `waited` is dropped, and why (`CoDel` hears
    /// of every request taken).
    fn drops(
        &mut self,
        at: Instant,
        waited: Duration,
        deadline: Option<Instant>,
    ) -> Option<Dropped> {
        let timed_out = self
            .codel
            .as_mut()
            .is_some_and(|codel| codel.take(at, waited));
        if self.discipline.drop_expired && deadline.is_some_and(|deadline| deadline <= at) {
            self.work.dropped_expired += 1;
            Some(Dropped::Expired)
        } else if timed_out {
            self.work.dropped_timeout += 1;
            Some(Dropped::TimedOut(waited))
        } else {
            None
        }
    }

    /// Accepts a request arriving at `now` (whose caller gives up at `deadline`, if known) and
    /// books it, holds it for a worker under a discipline other than FIFO, or rejects it when
    /// the queue is full.
    pub(crate) fn admit(&mut self, now: Instant, deadline: Option<Instant>) -> Admission {
        if self.discipline.is_fifo() {
            return match self.book(now, deadline) {
                Some(booking) => Admission::Booked(booking),
                None => Admission::Rejected,
            };
        }
        self.catch_up(now);
        if self.all_busy(now) {
            if self.held.len() >= self.capacity {
                self.rejected += 1;
                return Admission::Rejected;
            }
            let service = self.service_time.sample(&mut self.rng).min(LONGEST_SERVICE);
            let (reply, booking) = oneshot::channel();
            self.held.push_back(Held {
                arrival: now,
                service,
                deadline,
                reply,
            });
            self.accepted += 1;
            return Admission::Held(booking);
        }
        if let Some(dropped) = self.drops(now, Duration::ZERO, deadline) {
            // Taken at once by a free worker, and dropped: accepted, but costing no work.
            self.accepted += 1;
            return Admission::Dropped(dropped);
        }
        match self.book(now, deadline) {
            Some(booking) => Admission::Booked(booking),
            None => Admission::Rejected,
        }
    }

    /// Accepts a request arriving at `now` and books it, or rejects it when the queue is full.
    fn book(&mut self, now: Instant, deadline: Option<Instant>) -> Option<Booking> {
        self.catch_up(now);
        if self.waiting.len() >= self.capacity && self.all_busy(now) {
            self.rejected += 1;
            return None;
        }
        let service = self.service_time.sample(&mut self.rng).min(LONGEST_SERVICE);
        // The earliest-free worker takes the request: one never used yet if any (free since
        // construction), else the used one that frees up first; it is then busy until `finish`.
        let start = if self.free_at.len() < self.workers {
            self.free_at.push(Reverse(later(now, service)));
            now
        } else {
            let Some(mut worker) = self.free_at.peek_mut() else {
                // Unreachable: a validated backend has at least one worker.
                self.rejected += 1;
                return None;
            };
            let start = worker.0.max(now);
            worker.0 = later(start, service);
            start
        };
        let finish = later(start, service);
        if start > now {
            self.waiting.push_back(start);
        }
        self.unfinished.push(Reverse((finish, start, deadline)));
        self.accepted += 1;
        Some(Booking { start, finish })
    }

    /// Whether no worker is free at `now`.
    fn all_busy(&self, now: Instant) -> bool {
        self.free_at.len() >= self.workers
            && self.free_at.peek().is_some_and(|Reverse(free)| *free > now)
    }

    /// Busy worker time over `workers ×` the time since the previous read.
    pub(crate) fn utilization(&mut self, now: Instant) -> f64 {
        self.catch_up(now);
        let elapsed = now.saturating_duration_since(self.last_read);
        if elapsed.is_zero() {
            return self.last_utilization;
        }
        let busy = self
            .unfinished
            .iter()
            .map(|Reverse((_, start, _))| {
                now.saturating_duration_since((*start).max(self.last_read))
            })
            .fold(self.busy_since_read, Duration::saturating_add);
        // Whole nanoseconds, so that simple fractions (a half, a quarter) come out exact.
        let available = elapsed.as_nanos().saturating_mul(self.workers as u128);
        let utilization = busy.as_nanos() as f64 / available as f64;
        self.busy_since_read = Duration::ZERO;
        self.last_read = now;
        self.last_utilization = utilization.min(1.0);
        self.last_utilization
    }

    pub(crate) fn stats(&mut self, now: Instant) -> SimStats {
        self.catch_up(now);
        let waiting = self.waiting.len() as u64;
        SimStats {
            accepted: self.accepted,
            rejected: self.rejected,
            queued: waiting + self.held.len() as u64,
            in_service: self.unfinished.len() as u64 - waiting,
        }
    }

    pub(crate) fn work(&mut self, now: Instant) -> SimWork {
        self.catch_up(now);
        self.work
    }
}

/// `instant + duration`, or `instant` itself in the (for a monotonic clock, unreachable) case
/// that the sum overflows.
fn later(instant: Instant, duration: Duration) -> Instant {
    instant.checked_add(duration).unwrap_or(instant)
}
