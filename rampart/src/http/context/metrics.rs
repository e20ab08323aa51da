//! The server-side layer's metrics, registered once when it is built: what became of each
//! inbound request's criticality and deadline headers.

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

/// What the server-side layer made of an inbound request's deadline header: one per request,
/// the `outcome` label of `rampart_deadline_inbound_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InboundDeadline {
    /// A timeout within the cap: the request's deadline is that long after its arrival.
    Honoured,
    /// A timeout above the cap: the request's deadline is the cap after its arrival.
    Capped,
    /// No header: the request gets the default timeout, or no deadline.
    Absent,
    /// A header that is not one `grpc-timeout` value (empty, overlong, no unit, zero, signed,
    /// not ASCII, several values): ignored, the request gets the default timeout, or none.
    Malformed,
}

/// `rampart_deadline_inbound_total{name, outcome}`.
#[derive(Debug, Clone)]
pub(super) struct DeadlineMetrics {
    honoured: Counter,
    capped: Counter,
    absent: Counter,
    malformed: Counter,
}

impl DeadlineMetrics {
    /// Registers the metrics of the layer `name`.
    pub(super) fn new(name: &str) -> Self {
        let inbound = |outcome: &'static str| {
            metrics::counter!(
                "rampart_deadline_inbound_total",
                "name" => name.to_owned(),
                "outcome" => outcome,
            )
        };
        Self {
            honoured: inbound("honoured"),
            capped: inbound("capped"),
            absent: inbound("absent"),
            malformed: inbound("malformed"),
        }
    }

    #[inline]
    pub(super) fn count(&self, inbound: InboundDeadline) {
        let counter = match inbound {
            InboundDeadline::Honoured => &self.honoured,
            InboundDeadline::Capped => &self.capped,
            InboundDeadline::Absent => &self.absent,
            InboundDeadline::Malformed => &self.malformed,
        };
        counter.increment(1);
    }
}
