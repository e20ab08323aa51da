//! The model tests' own parts beside testkit's harness: the breaker's steps, the configurations
//! they draw, its reference model and how the harness counts in it.

// The single-breaker test makes no groups; the group test uses everything.
#![allow(dead_code, reason = "each test binary uses its part of the harness")]

pub(crate) mod config;
pub(crate) mod harness;
pub(crate) mod model;
pub(crate) mod ops;
