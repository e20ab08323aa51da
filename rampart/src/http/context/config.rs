//! [`ServerContextConfig`]: how a server reads what an inbound request carries (its
//! criticality, its deadline), and how it counts what it read.

use std::borrow::Cow;
use std::time::Duration;

use http::HeaderName;
use http::request::Parts;
use rampart_core::{Clock, ConfigError, Criticality, SystemClock, grpc_timeout};

use super::metrics::{Inbound, InboundDeadline};
use super::server::ServerContextLayer;
use super::trust::Trust;
use super::{CRITICALITY_HEADER, DEADLINE_HEADER};

/// The longest a caller may ask a server to work on its request unless configured otherwise.
const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// How a [`ServerContextLayer`] reads an inbound request's criticality and deadline.
///
/// | setting | default |
/// | --- | --- |
/// | [`with_header`](Self::with_header) | [`CRITICALITY_HEADER`] (`rampart-criticality`) |
/// | [`with_trust`](Self::with_trust) | [`Trust::None`]: no caller's criticality is honoured |
/// | [`with_max`](Self::with_max) | none: an honoured criticality is taken as it is |
/// | [`with_default`](Self::with_default) | none: the layers inside use theirs ([`Criticality::CRITICAL`]) |
/// | [`with_deadline_header`](Self::with_deadline_header) | [`DEADLINE_HEADER`] (`grpc-timeout`) |
/// | [`with_max_timeout`](Self::with_max_timeout) | 60 s |
/// | [`with_default_timeout`](Self::with_default_timeout) | none: a request that brings no deadline has none |
/// | [`with_name`](Self::with_name) | `"default"` |
///
/// # Deadlines
///
/// A caller says how long it still waits in the deadline header, in gRPC's `grpc-timeout`
/// form (at most eight digits and a unit: `250m`, `1500u`, `2S`; see
/// [`grpc_timeout`](rampart_core::grpc_timeout)), for HTTP services as for gRPC ones unless
/// [`with_deadline_header`](Self::with_deadline_header) names another header. The layer adds
/// it to its clock's current instant to make the request's [`Deadline`](rampart_core::Deadline).
///
/// [`Trust`] does not apply to deadlines: a caller may always say it waits less than the
/// server would work, which costs nobody but itself, and what it may ask for at most is
/// bounded by the cap, [`with_max_timeout`](Self::with_max_timeout). An inbound timeout is
/// the caller's wish, not a right: one above the cap is lowered to it. The default cap, 60 s,
/// is far above any interactive call's budget (milliseconds to a few seconds), so it changes
/// nothing for callers that mean what they send, while a caller that sends `99999999H` (eleven
/// thousand years) gets a request the server abandons after a minute like any other; a
/// service whose calls legitimately run longer (reports, uploads) raises it, or removes it
/// with [`without_max_timeout`](Self::without_max_timeout). A request that brings no deadline
/// has none unless [`with_default_timeout`](Self::with_default_timeout) gives it one: the cap
/// bounds what callers ask, it does not invent a deadline for those who ask nothing.
///
/// A malformed value (empty, more than eight digits, no unit or an unknown one, zero, a
/// sign or any other character that is not an ASCII digit, not ASCII at all, several values)
/// never fails a request: it is counted and the request gets the default timeout, if any.
///
/// [`CRITICALITY_HEADER`]: crate::http::CRITICALITY_HEADER
/// [`DEADLINE_HEADER`]: crate::http::DEADLINE_HEADER
#[derive(Debug, Clone)]
pub struct ServerContextConfig {
    header: HeaderName,
    trust: Trust,
    max: Option<Criticality>,
    default: Option<Criticality>,
    deadline_header: HeaderName,
    max_timeout: Option<Duration>,
    default_timeout: Option<Duration>,
    name: Cow<'static, str>,
}

impl Default for ServerContextConfig {
    fn default() -> Self {
        Self {
            header: CRITICALITY_HEADER,
            trust: Trust::None,
            max: None,
            default: None,
            deadline_header: DEADLINE_HEADER,
            max_timeout: Some(DEFAULT_MAX_TIMEOUT),
            default_timeout: None,
            name: Cow::Borrowed("default"),
        }
    }
}

impl ServerContextConfig {
    /// Reads the criticality from `header` (gRPC metadata travels as headers, so this names a
    /// metadata key too).
    #[must_use]
    pub fn with_header(self, header: HeaderName) -> Self {
        Self { header, ..self }
    }

    /// Honours the criticality header of the requests `trust` accepts; the others get the
    /// default.
    #[must_use]
    pub fn with_trust(self, trust: Trust) -> Self {
        Self { trust, ..self }
    }

    /// Lowers an honoured value above `max` to `max`: callers may lower their requests'
    /// importance freely, but raise it only so far. The default is not capped: it is the
    /// service's own choice.
    #[must_use]
    pub fn with_max(self, max: Criticality) -> Self {
        Self {
            max: Some(max),
            ..self
        }
    }

    /// The criticality of a request whose header is absent, untrusted or malformed. Without
    /// one, such a request carries none, and each layer inside uses its own default
    /// ([`Criticality::CRITICAL`]).
    #[must_use]
    pub fn with_default(self, default: Criticality) -> Self {
        Self {
            default: Some(default),
            ..self
        }
    }

    /// Reads the deadline from `header`, in `grpc-timeout`'s form, instead of
    /// [`DEADLINE_HEADER`](crate::http::DEADLINE_HEADER) (`grpc-timeout` itself, which gRPC
    /// services must keep: it is the header gRPC clients send).
    #[must_use]
    pub fn with_deadline_header(self, header: HeaderName) -> Self {
        Self {
            deadline_header: header,
            ..self
        }
    }

    /// Lowers an inbound timeout longer than `max` to `max` (60 s unless configured): the
    /// longest the server works on a caller's request because the caller asked. The default
    /// timeout is not capped: it is the service's own choice. Must be positive
    /// ([`validate`](Self::validate)).
    #[must_use]
    pub fn with_max_timeout(self, max: Duration) -> Self {
        Self {
            max_timeout: Some(max),
            ..self
        }
    }

    /// Takes inbound timeouts as they are, however long.
    #[must_use]
    pub fn without_max_timeout(self) -> Self {
        Self {
            max_timeout: None,
            ..self
        }
    }

    /// The timeout of a request whose deadline header is absent or malformed, counted from
    /// its arrival. Without one (the default), such a request has no deadline, and the layers
    /// inside behave as they do without deadlines. Must be positive
    /// ([`validate`](Self::validate)).
    #[must_use]
    pub fn with_default_timeout(self, timeout: Duration) -> Self {
        Self {
            default_timeout: Some(timeout),
            ..self
        }
    }

    /// The `name` label of the layer's metrics.
    #[must_use]
    pub fn with_name(self, name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            ..self
        }
    }

    /// The header the criticality is read from.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Which callers' criticality is honoured.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The highest criticality a caller can set, if capped.
    pub fn max(&self) -> Option<Criticality> {
        self.max
    }

    /// The criticality of a request that sets none the layer honours, if configured.
    pub fn default_criticality(&self) -> Option<Criticality> {
        self.default
    }

    /// The header the deadline is read from.
    pub fn deadline_header(&self) -> &HeaderName {
        &self.deadline_header
    }

    /// The longest timeout a caller can set, if capped.
    pub fn max_timeout(&self) -> Option<Duration> {
        self.max_timeout
    }

    /// The timeout of a request that brings no readable one, if configured.
    pub fn default_timeout(&self) -> Option<Duration> {
        self.default_timeout
    }

    /// The `name` label of the layer's metrics.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the configuration: the cap and the default timeout, when set, are positive (a
    /// zero one would expire every request on arrival).
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `max_timeout` or `default_timeout`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, timeout) in [
            ("max_timeout", self.max_timeout),
            ("default_timeout", self.default_timeout),
        ] {
            if timeout.is_some_and(|timeout| timeout.is_zero()) {
                return Err(ConfigError::new(field, "must be positive").with_value(timeout));
            }
        }
        Ok(())
    }

    /// The layer of this configuration, its deadlines on the [`SystemClock`], once checked.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] from [`validate`](Self::validate).
    pub fn build(self) -> Result<ServerContextLayer, ConfigError> {
        self.build_with(SystemClock::new())
    }

    /// The layer of this configuration, its deadlines on `clock`, once checked. Every layer
    /// that reads the deadlines (a client-side layer, the limiter, the enforcing layer) must
    /// read a clock of the same origin.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] from [`validate`](Self::validate).
    pub fn build_with<C: Clock>(self, clock: C) -> Result<ServerContextLayer<C>, ConfigError> {
        self.validate()?;
        Ok(ServerContextLayer::new_with(self, clock))
    }

    /// What the head of an inbound request says of its criticality, as this configuration
    /// reads it: how it counts, and the value it sets, if any (before the default).
    pub(super) fn read(&self, request: &Parts) -> (Inbound, Option<Criticality>) {
        let mut values = request.headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return (Inbound::Absent, None);
        };
        if !self.trust.trusts(request) {
            return (Inbound::Untrusted, None);
        }
        if values.next().is_some() {
            return (Inbound::Malformed, None);
        }
        let Some(criticality) = value.to_str().ok().and_then(|text| text.parse().ok()) else {
            return (Inbound::Malformed, None);
        };
        match self.max {
            Some(max) if criticality > max => (Inbound::Capped, Some(max)),
            _ => (Inbound::Honoured, Some(criticality)),
        }
    }

    /// What the head of an inbound request says of the time its caller still waits: how it
    /// counts, and the timeout it sets, if any (capped, before the default).
    pub(super) fn read_timeout(&self, request: &Parts) -> (InboundDeadline, Option<Duration>) {
        let mut values = request.headers.get_all(&self.deadline_header).iter();
        let Some(value) = values.next() else {
            return (InboundDeadline::Absent, None);
        };
        if values.next().is_some() {
            return (InboundDeadline::Malformed, None);
        }
        let Some(timeout) = value
            .to_str()
            .ok()
            .and_then(|text| grpc_timeout::parse(text).ok())
        else {
            return (InboundDeadline::Malformed, None);
        };
        match self.max_timeout {
            Some(max) if timeout > max => (InboundDeadline::Capped, Some(max)),
            _ => (InboundDeadline::Honoured, Some(timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timeouts_are_refused_naming_their_field() {
        let config = ServerContextConfig::default();
        assert_eq!(config.validate(), Ok(()));
        let zero = |config: ServerContextConfig| config.validate().map_err(|error| error.field());
        assert_eq!(
            zero(config.clone().with_max_timeout(Duration::ZERO)),
            Err("max_timeout")
        );
        assert_eq!(
            zero(config.clone().with_default_timeout(Duration::ZERO)),
            Err("default_timeout")
        );
        assert_eq!(
            zero(
                config
                    .without_max_timeout()
                    .with_default_timeout(Duration::from_nanos(1))
            ),
            Ok(())
        );
    }
}
