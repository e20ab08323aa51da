//! Power-of-two-choices load balancing for tower.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod config;
mod endpoint;
mod error;
mod future;
mod metrics;
mod p2c;
mod score;

pub use crate::config::{P2cConfig, WhenEmpty};
pub use crate::error::NoEndpoints;
pub use crate::future::ResponseFuture;
pub use crate::p2c::{EndpointSnapshot, P2c};
pub use crate::score::{Kratos, Load, PeakEwma, PeakSuccess, Score};
