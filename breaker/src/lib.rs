//! Client-side adaptive throttling for tower: the breaker from Google's SRE book.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

mod config;
mod draw;
mod error;
mod future;
mod group;
mod group_layer;
mod layer;
mod metrics;
mod service;
mod sre;

pub use crate::config::{BreakerConfig, Rejections};
pub use crate::error::Rejected;
pub use crate::future::ResponseFuture;
pub use crate::group::BreakerGroup;
pub use crate::group_layer::{BreakerGroupLayer, KeyedBreaker};
pub use crate::layer::BreakerLayer;
pub use crate::service::Breaker;
pub use crate::sre::{BreakerSnapshot, BreakerState, SreBreaker};
