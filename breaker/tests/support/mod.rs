//! The model tests' shared parts: a hand-driven backend, the operations, the reference models
//! and the harness that applies one to the other.

// The single-breaker test makes no groups; the group test uses everything.
#![allow(dead_code, reason = "each test binary uses its part of the harness")]

pub(crate) use rampart_testkit::{backend, driver};
pub(crate) mod config;
pub(crate) mod harness;
pub(crate) mod model;
pub(crate) mod ops;
