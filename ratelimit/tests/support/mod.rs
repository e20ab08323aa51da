//! The model tests' own parts beside testkit's harness: the limiter's steps, its reference model
//! and how the harness counts in it.

// The single-limiter test makes no groups; the group test uses everything.
#![allow(dead_code, reason = "each test binary uses its part of the harness")]

pub(crate) mod harness;
pub(crate) mod model;
pub(crate) mod ops;
