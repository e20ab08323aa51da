//! BBR-style adaptive concurrency limiting for tower servers.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod bbr;
mod config;
pub mod cpu;
mod error;
mod future;
mod group;
mod layer;
mod metrics;
mod service;

pub use crate::bbr::{BbrLimiter, BbrSnapshot, OwnedPermit, Permit};
pub use crate::config::{BbrConfig, Gate};
#[cfg(feature = "tokio")]
pub use crate::cpu::spawn_sampler;
pub use crate::cpu::{
    CpuError, CpuSampler, CpuSource, CpuUsage, ManualCpu, SmoothedCpu, SystemCpu, SystemCpuError,
};
pub use crate::error::Overloaded;
pub use crate::future::ResponseFuture;
pub use crate::group::{KeyedRateLimit, LimiterGroup, LimiterGroupLayer};
pub use crate::layer::RateLimitLayer;
pub use crate::service::RateLimit;
