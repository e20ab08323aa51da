//! A request's criticality and deadline between services: read from headers on the way in
//! ([`ServerContextLayer`](server::ServerContextLayer), as [`ServerContextConfig`](config::ServerContextConfig)
//! says), written on the way out ([`ClientContextLayer`](client::ClientContextLayer)), and
//! current for the whole handling of a request as its
//! [`RequestContext`](rampart_core::RequestContext) scope. The public docs are
//! `rampart::http`'s "Criticality between services" and "Deadlines between services".

pub(super) mod client;
pub(super) mod config;
pub(super) mod future;
mod metrics;
pub(super) mod server;
pub(super) mod trust;

use http::{HeaderName, HeaderValue};
use rampart_core::{Criticality, CriticalityClass};

/// The header a criticality travels in unless configured otherwise: `rampart-criticality`.
///
/// gRPC metadata is sent as HTTP/2 headers, so the same header carries it between gRPC
/// services (tonic's `MetadataMap` shows it under the same name).
pub const CRITICALITY_HEADER: HeaderName = HeaderName::from_static("rampart-criticality");

/// The header a deadline travels in unless configured otherwise: `grpc-timeout`, the time the
/// caller still waits in gRPC's form (at most eight digits and a unit: `250m`, `1500u`, `2S`;
/// see [`grpc_timeout`](rampart_core::grpc_timeout)), for HTTP as for gRPC.
pub const DEADLINE_HEADER: HeaderName = HeaderName::from_static("grpc-timeout");

/// The header an attempt's number travels in: `grpc-previous-rpc-attempts`, how many attempts
/// of the same call were made before this one (gRPC's name, for HTTP as for gRPC). A
/// [`ClientContextLayer`](crate::http::ClientContextLayer) placed inside a retry layer writes
/// it from the current context's [`attempt`](rampart_core::RequestContext::attempt), which the
/// retry layer sets for each attempt; the first attempt carries none.
pub const ATTEMPTS_HEADER: HeaderName = HeaderName::from_static("grpc-previous-rpc-attempts");

/// `criticality` in its wire form (`critical`, `sheddable-plus/42`), as a header value.
pub(super) fn header_value(criticality: Criticality) -> HeaderValue {
    // The four classes at level 0, the usual case, are constants: no allocation.
    let class = match criticality.class() {
        CriticalityClass::Sheddable => const { class_value(CriticalityClass::Sheddable) },
        CriticalityClass::SheddablePlus => const { class_value(CriticalityClass::SheddablePlus) },
        CriticalityClass::Critical => const { class_value(CriticalityClass::Critical) },
        CriticalityClass::CriticalPlus => const { class_value(CriticalityClass::CriticalPlus) },
    };
    if criticality.level() == 0 {
        return class;
    }
    // The wire form is always visible ASCII; the class alone stands in should it ever not be.
    HeaderValue::try_from(criticality.to_string()).unwrap_or(class)
}

/// A class's name as a header value, made at compile time.
const fn class_value(class: CriticalityClass) -> HeaderValue {
    HeaderValue::from_static(class.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_the_wire_form_and_read_back_as_the_same_criticality() {
        for class in CriticalityClass::ALL {
            for level in [0, 1, 42, Criticality::MAX_LEVEL] {
                let criticality = Criticality::with_level(class, level);
                let value = header_value(criticality);
                assert_eq!(value.to_str().ok(), Some(&*criticality.to_string()));
                assert_eq!(value.to_str().ok().map(str::parse), Some(Ok(criticality)));
            }
        }
    }
}
