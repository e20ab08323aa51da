use std::borrow::Cow;
use std::time::Duration;

use rampart_core::{Clock, ConfigError, Timing, check};

/// What the balancer does when no endpoint is ready (none discovered yet, or all busy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenEmpty {
    /// `poll_ready` stays pending until an endpoint is ready: tower's `Balance` semantics.
    Wait,
    /// Wait up to `after` (or not at all), then fail the next request with
    /// [`NoEndpoints`](crate::NoEndpoints); the balancer itself stays usable.
    FailFast {
        /// How long to wait for an endpoint first.
        after: Option<Duration>,
    },
}

impl Default for WhenEmpty {
    /// Wait up to a second for an endpoint, then fail the request.
    fn default() -> Self {
        Self::FailFast {
            after: Some(Duration::from_secs(1)),
        }
    }
}

/// The configuration of a [`P2c`](crate::P2c) balancer.
///
/// | field | default | rule |
/// | --- | --- | --- |
/// | `tau` | 600 ms | above zero: the EWMAs' time constant |
/// | `force_pick_after` | 3 s | above zero: an endpoint unpicked this long is picked once |
/// | `when_empty` | fail after 1 s | |
/// | `seed` | none (entropy) | |
/// | `name` | `"default"` | not empty |
#[derive(Debug, Clone, PartialEq)]
pub struct P2cConfig {
    /// The time constant of the latency and success EWMAs: a sample Δt after the previous
    /// one keeps `e^(−Δt/τ)` of the old estimate (the completions of one instant, a tick of
    /// the clock's recent time where requests are placed on it, make one sample of success).
    pub tau: Duration,
    /// An endpoint that loses every draw for this long is picked once anyway, so that its
    /// statistics cannot go stale.
    pub force_pick_after: Duration,
    /// What to do when no endpoint is ready.
    pub when_empty: WhenEmpty,
    /// Seed of the candidate draws (and of the draws of the requests timed, on a clock with a
    /// recent time), for reproducible tests. A [`SharedP2c`](crate::SharedP2c)
    /// with a seed also keeps one set of statistics per endpoint for all threads (see its
    /// "Sharing"), so that its picks do not depend on the CPUs its threads run on: leave it
    /// unset in production.
    pub seed: Option<u64>,
    /// The `name` label of the balancer's metrics.
    pub name: Cow<'static, str>,
}

impl Default for P2cConfig {
    fn default() -> Self {
        Self {
            tau: Duration::from_millis(600),
            force_pick_after: Duration::from_secs(3),
            when_empty: WhenEmpty::default(),
            seed: None,
            name: Cow::Borrowed("default"),
        }
    }
}

impl P2cConfig {
    /// This configuration with the given empty-set behaviour.
    #[must_use]
    pub fn with_when_empty(self, when_empty: WhenEmpty) -> Self {
        Self { when_empty, ..self }
    }

    /// This configuration with a fixed seed.
    #[must_use]
    pub fn with_seed(self, seed: u64) -> Self {
        Self {
            seed: Some(seed),
            ..self
        }
    }

    /// This configuration with the given metrics name.
    #[must_use]
    pub fn with_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    ///
    /// A zero `tau` or `force_pick_after`, an empty `name`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::positive("tau", self.tau)?;
        check::positive("force_pick_after", self.force_pick_after)?;
        check::not_empty("name", &self.name)?;
        Ok(())
    }

    /// How a balancer of this configuration reads the time of its requests on `clock`: its
    /// averages and force-pick clock need no finer instants than a tenth of the shorter of
    /// `tau` and `force_pick_after` (see [`Timing`]). With a seed, the requests it times are
    /// drawn from it too.
    pub(crate) fn timing<C: Clock>(&self, clock: &C) -> Timing {
        let timing = Timing::new(clock, self.tau.min(self.force_pick_after));
        match self.seed {
            Some(seed) => timing.with_seed(seed),
            None => timing,
        }
    }
}
