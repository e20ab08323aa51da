//! Budgeted retries for tower: retries that cannot become a retry storm.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod backoff;
pub mod budget;
mod config;
mod error;
mod future;
mod layer;
mod metrics;
mod policy;
mod service;

pub use crate::backoff::Backoff;
pub use crate::budget::{
    Budget, BudgetSnapshot, RatioBudget, RatioConfig, TokenBudget, TokenConfig,
};
pub use crate::config::RetryConfig;
pub use crate::error::AttemptTimedOut;
pub use crate::future::ResponseFuture;
pub use crate::layer::RetryLayer;
pub use crate::policy::{ByClone, CloneRequest, Decision, Policy, RetryPolicy};
pub use crate::service::Retry;
