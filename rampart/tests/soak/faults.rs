//! The faults a soak goes through, one phase after another: a server failing half its
//! requests, a server slowed down, a server stopped (and back at the next phase), and calm;
//! each phase picks the next server in turn.

use std::time::Duration;

use rampart::ConfigError;
use rampart::fault::{Distribution, FaultConfig};

use super::server::Server;

/// What is wrong during one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The server fails half its requests.
    Errors(usize),
    /// The server answers 20 to 120 ms late.
    Latency(usize),
    /// The server is stopped.
    Stopped(usize),
    /// Nothing.
    Calm,
}

impl Phase {
    /// Phase number `n` of a run over `servers` servers: the kinds in turn, each on the next
    /// server.
    pub fn nth(n: usize, servers: usize) -> Self {
        let server = n % servers;
        match n % 4 {
            0 => Self::Errors(server),
            1 => Self::Latency(server),
            2 => Self::Stopped(server),
            _ => Self::Calm,
        }
    }

    /// Puts `servers` in this phase: every server back and healthy, then this phase's fault.
    ///
    /// # Errors
    ///
    /// If a fault configuration is invalid.
    pub fn apply(self, servers: &[Server]) -> Result<(), ConfigError> {
        for server in servers {
            server.set_stopped(false);
            server.faults.set(FaultConfig::default())?;
        }
        match self {
            Self::Errors(at) => servers[at]
                .faults
                .set(FaultConfig::default().with_error_rate(0.5)),
            Self::Latency(at) => {
                servers[at]
                    .faults
                    .set(FaultConfig::default().with_latency(Distribution::Uniform {
                        low: Duration::from_millis(20),
                        high: Duration::from_millis(120),
                    }))
            }
            Self::Stopped(at) => {
                servers[at].set_stopped(true);
                Ok(())
            }
            Self::Calm => Ok(()),
        }
    }
}
