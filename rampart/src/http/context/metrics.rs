//! The server-side layer's metrics, registered once when it is built: what became of each
//! inbound request's criticality header.

use metrics::Counter;

/// What the server-side layer made of an inbound request's criticality header: one per
/// request, the `outcome` label of `rampart_criticality_inbound_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Inbound {
    /// A trusted caller's value, within the cap: the request runs at it.
    Honoured,
    /// A trusted caller's value above the cap: the request runs at the cap.
    Capped,
    /// No header: the request runs at the default.
    Absent,
    /// A header from a caller not trusted to set one: ignored, the request runs at the default.
    Untrusted,
    /// A trusted caller's header that is not one criticality (unreadable, not UTF-8, several
    /// values): ignored, the request runs at the default.
    Malformed,
}

/// `rampart_criticality_inbound_total{name, outcome}`.
#[derive(Debug, Clone)]
pub(super) struct InboundMetrics {
    honoured: Counter,
    capped: Counter,
    absent: Counter,
    untrusted: Counter,
    malformed: Counter,
}

impl InboundMetrics {
    /// Registers the metrics of the layer `name`.
    pub(super) fn new(name: &str) -> Self {
        let inbound = |outcome: &'static str| {
            metrics::counter!(
                "rampart_criticality_inbound_total",
                "name" => name.to_owned(),
                "outcome" => outcome,
            )
        };
        Self {
            honoured: inbound("honoured"),
            capped: inbound("capped"),
            absent: inbound("absent"),
            untrusted: inbound("untrusted"),
            malformed: inbound("malformed"),
        }
    }

    #[inline]
    pub(super) fn count(&self, inbound: Inbound) {
        let counter = match inbound {
            Inbound::Honoured => &self.honoured,
            Inbound::Capped => &self.capped,
            Inbound::Absent => &self.absent,
            Inbound::Untrusted => &self.untrusted,
            Inbound::Malformed => &self.malformed,
        };
        counter.increment(1);
    }
}
