//! The queueing model behind `SimBackend`: FIFO arrivals booked onto the earliest free worker.
//!
//! Booking at arrival is exact for a FIFO queue whose service times are drawn at arrival: a
//! request starts when the earliest worker frees up (or at once), and keeps its booking
//! whatever its caller does afterwards. Start times never decrease, so the requests still
//! waiting are a prefix-ordered queue of start times.
//!
//! Workers are created as requests need them, so a backend of any size costs memory only for
//! the workers its traffic has used. Every instant and duration saturates: a service time near
//! `Duration::MAX` is shortened to tokio's longest wait (about 30 years), never an overflow.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

use fastrand::Rng;
use tokio::time::Instant;

use super::SimStats;
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

#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) rng: Rng,
    pub(crate) service_time: Distribution,
    workers: usize,
    capacity: usize,
    /// When each worker that has served a request is next free; the others (`workers` minus
    /// its length) have been free since construction, earlier than any of these.
    free_at: BinaryHeap<Reverse<Instant>>,
    /// Start times of accepted requests that have not started yet, earliest first.
    waiting: VecDeque<Instant>,
    /// `(finish, start)` of requests that have not finished, earliest finish first.
    unfinished: BinaryHeap<Reverse<(Instant, Instant)>>,
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
        rng: Rng,
        now: Instant,
    ) -> Self {
        Self {
            rng,
            service_time,
            workers,
            capacity,
            free_at: BinaryHeap::new(),
            waiting: VecDeque::new(),
            unfinished: BinaryHeap::new(),
            busy_since_read: Duration::ZERO,
            last_read: now,
            last_utilization: 0.0,
            accepted: 0,
            rejected: 0,
        }
    }

    /// Forgets what has started and what has finished by `now`, banking the worker time of
    /// finished requests for the next utilisation read.
    fn catch_up(&mut self, now: Instant) {
        while self.waiting.front().is_some_and(|start| *start <= now) {
            self.waiting.pop_front();
        }
        while let Some(Reverse((finish, start))) = self.unfinished.peek().copied() {
            if finish > now {
                break;
            }
            self.unfinished.pop();
            let busy = finish.saturating_duration_since(start.max(self.last_read));
            self.busy_since_read = self.busy_since_read.saturating_add(busy);
        }
    }

    /// Accepts a request arriving at `now` and books it, or rejects it when the queue is full.
    pub(crate) fn book(&mut self, now: Instant) -> Option<Booking> {
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
        self.unfinished.push(Reverse((finish, start)));
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
            .map(|Reverse((_, start))| now.saturating_duration_since((*start).max(self.last_read)))
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
        let queued = self.waiting.len() as u64;
        SimStats {
            accepted: self.accepted,
            rejected: self.rejected,
            queued,
            in_service: self.unfinished.len() as u64 - queued,
        }
    }
}

/// `instant + duration`, or `instant` itself in the (for a monotonic clock, unreachable) case
/// that the sum overflows.
fn later(instant: Instant, duration: Duration) -> Instant {
    instant.checked_add(duration).unwrap_or(instant)
}
