//! The offered load over a live run: phases at multiples of the server's capacity, held or
//! ramped, and the Poisson arrivals they give.

use std::time::Duration;

use rampart_core::ConfigError;

use crate::sim;

/// A stretch of the run at one load, or ramping between two.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// Its name in the report (`2×`, `ramp 0.5→3×`).
    pub name: String,
    /// How long it lasts.
    pub duration: Duration,
    /// The offered load at its start, as a multiple of capacity.
    pub from: f64,
    /// The offered load at its end (the same as `from` for a held load).
    pub to: f64,
}

impl Phase {
    /// `factor` × capacity for `duration`.
    pub fn held(factor: f64, duration: Duration) -> Self {
        Self {
            name: format!("{}×", multiple(factor)),
            duration,
            from: factor,
            to: factor,
        }
    }

    /// From `from` to `to` × capacity, linearly, over `duration`.
    pub fn ramp(from: f64, to: f64, duration: Duration) -> Self {
        Self {
            name: format!("ramp {}→{}×", multiple(from), multiple(to)),
            duration,
            from,
            to,
        }
    }
}

/// `0.5`, `2`: a factor as the report names it.
fn multiple(factor: f64) -> String {
    format!("{factor}")
}

/// The phases of a run, back to back.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    phases: Vec<Phase>,
}

impl Script {
    /// The default run: 0.5×, 1×, 2× and 3× capacity held for `per_phase` each, then a ramp
    /// from 0.5× to 3× over twice that.
    ///
    /// # Errors
    ///
    /// `seconds_per_phase` when `per_phase` is not a positive finite number of seconds.
    pub fn levels(per_phase: f64) -> Result<Self, ConfigError> {
        let phase = phase_length(per_phase)?;
        let mut phases: Vec<Phase> = [0.5, 1.0, 2.0, 3.0]
            .into_iter()
            .map(|factor| Phase::held(factor, phase))
            .collect();
        phases.push(Phase::ramp(0.5, 3.0, 2 * phase));
        Ok(Self { phases })
    }

    /// The CI check: 0.5× for `per_phase` (the unloaded latency), a ramp to 2× over
    /// `per_phase`, and 2× held for twice that.
    ///
    /// # Errors
    ///
    /// As [`levels`](Self::levels).
    pub fn check(per_phase: f64) -> Result<Self, ConfigError> {
        let phase = phase_length(per_phase)?;
        Ok(Self {
            phases: vec![
                Phase::held(0.5, phase),
                Phase::ramp(0.5, 2.0, phase),
                Phase::held(2.0, 2 * phase),
            ],
        })
    }

    /// The phases, in order.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Each phase with its start and end since the start of the run.
    pub fn spans(&self) -> Vec<(&Phase, Duration, Duration)> {
        let mut start = Duration::ZERO;
        self.phases
            .iter()
            .map(|phase| {
                let span = (phase, start, start + phase.duration);
                start += phase.duration;
                span
            })
            .collect()
    }

    /// How long the whole run lasts.
    pub fn duration(&self) -> Duration {
        self.phases.iter().map(|phase| phase.duration).sum()
    }

    /// The offered load at `at`, as a multiple of capacity (0 after the end).
    pub fn factor(&self, at: Duration) -> f64 {
        for (phase, start, end) in self.spans() {
            if at < end {
                let through = at.saturating_sub(start).as_secs_f64() / phase.duration.as_secs_f64();
                return phase.from + (phase.to - phase.from) * through;
            }
        }
        0.0
    }

    /// Poisson arrivals at `capacity` (requests per second) × the script's load, drawn from
    /// `seed`: the lab's own generator, so the same seed gives every stack the same arrivals.
    pub fn arrivals(&self, seed: u64, capacity: f64) -> Vec<Duration> {
        sim::arrivals(seed, self.duration(), |at| capacity * self.factor(at))
    }
}

fn phase_length(seconds: f64) -> Result<Duration, ConfigError> {
    if seconds.is_finite() && (0.1..=600.0).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(ConfigError::new(
            "seconds_per_phase",
            format!("must be from 0.1 to 600 seconds, got {seconds}"),
        ))
    }
}
