//! The gateway's limits, resolved once per policy snapshot from the fixture's `[gateway]`
//! settings ([`sim::GatewaySettings`], parsed once by `sim`) and the caller's overrides
//! (overrides win). Every limit has a documented default here, the same one the fixture
//! reference documents.

use std::time::Duration;

use sim::{DenyMode, GatewayLimits, GatewaySettings};

/// Largest request head (request line and header fields), in bytes: 16 KiB, nginx's
/// `large_client_header_buffers` order of magnitude. Larger → 431 `HEADERS_TOO_LARGE`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest request body: 10 MiB. Larger → 413 `BODY_TOO_LARGE`.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Most concurrent client connections: 4096; further clients wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Time a client has to send a request head: 10 s (then 408 `CLIENT_TIMEOUT` and close). It
/// is also the keep-alive idle limit between requests.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send its whole request body, counted from the moment its head was
/// handed to the proxy: 20 s (then 408 `CLIENT_TIMEOUT` and close). A deadline for the whole
/// body, not between reads, so a body trickled a byte at a time cannot hold a backend
/// connection open indefinitely. Shorter than [`DEFAULT_RESPONSE_TIMEOUT`], whose clock starts
/// a little later (once the backend connection is ready), so a stalled upload is blamed on the
/// client before it could look like a slow backend.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Most header fields in an HTTP/1 request head: 100, hyper's parser limit (its
/// `DEFAULT_MAX_HEADERS`, kept so the parser's field array stays on the stack). More →
/// 431 `HEADERS_TOO_LARGE`.
pub const MAX_HEADER_FIELDS: usize = 100;
/// Backend connect (TCP and TLS handshake) timeout: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Backend response-head timeout: 30 s (then 504 `BACKEND_TIMEOUT`).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Grace period for in-flight requests at shutdown: 10 s.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Idle pooled connections older than this are closed instead of reused: 4 minutes, Azure's
/// default TCP idle timeout for outbound flows (Learn, "Azure Load Balancer TCP reset and idle
/// timeout": default 4 minutes).
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(240);
/// Most idle connections kept per backend; more are closed when they return.
pub const MAX_IDLE_PER_BACKEND: usize = 256;

/// Limits that override the topology's `[gateway]` values (each `None` keeps the topology's):
/// the same shape as the topology's own [`sim::GatewayLimits`].
pub type LimitOverrides = GatewayLimits;

/// The limits in force for one policy snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// See [`DEFAULT_MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// See [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: u64,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_BODY_READ_TIMEOUT`].
    pub body_read_timeout: Duration,
    /// See [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// See [`DEFAULT_RESPONSE_TIMEOUT`].
    pub response_timeout: Duration,
    /// See [`DEFAULT_SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
    /// Answer denied flows at once or wait like a dropped SYN.
    pub deny_mode: DenyMode,
    /// Entries the request journal keeps (`[gateway] journal_size`; 0: off).
    pub journal_size: usize,
    /// Whether `upstream` sockets may be non-loopback.
    pub allow_non_loopback_upstreams: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::resolve(&GatewaySettings::default(), &LimitOverrides::default())
    }
}

// === impl Limits ===

impl Limits {
    /// The fixture's values, overridden by `o`, defaults elsewhere. Zero sizes and durations
    /// are raised to the smallest usable value (1 byte / 1 ms / 1 connection).
    ///
    /// ```
    /// use gateway::config::{Limits, LimitOverrides};
    /// let mut g = sim::GatewaySettings::default();
    /// g.limits.connect_timeout = Some(std::time::Duration::from_millis(250));
    /// let l = Limits::resolve(&g, &LimitOverrides::default());
    /// assert_eq!(l.connect_timeout.as_millis(), 250);
    /// assert_eq!(l.max_header_bytes, gateway::config::DEFAULT_MAX_HEADER_BYTES);
    /// ```
    pub fn resolve(g: &GatewaySettings, o: &LimitOverrides) -> Limits {
        let t = &g.limits;
        let ms = |d: Option<Duration>| d.map(|d| d.max(Duration::from_millis(1)));
        let time = |over: Option<Duration>, topo: Option<Duration>, default: Duration| {
            over.or(ms(topo)).unwrap_or(default)
        };
        let one_ms = Duration::from_millis(1);
        Limits {
            max_header_bytes: o
                .max_header_bytes
                .or(t.max_header_bytes)
                .unwrap_or(DEFAULT_MAX_HEADER_BYTES)
                .max(1),
            max_body_bytes: o
                .max_body_bytes
                .or(t.max_body_bytes)
                .unwrap_or(DEFAULT_MAX_BODY_BYTES),
            max_connections: o
                .max_connections
                .or(t.max_connections)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS)
                .max(1),
            header_read_timeout: time(
                o.header_read_timeout,
                t.header_read_timeout,
                DEFAULT_HEADER_READ_TIMEOUT,
            )
            .max(one_ms),
            body_read_timeout: time(
                o.body_read_timeout,
                t.body_read_timeout,
                DEFAULT_BODY_READ_TIMEOUT,
            )
            .max(one_ms),
            connect_timeout: time(
                o.connect_timeout,
                t.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
            )
            .max(one_ms),
            response_timeout: time(
                o.response_timeout,
                t.response_timeout,
                DEFAULT_RESPONSE_TIMEOUT,
            )
            .max(one_ms),
            shutdown_grace: time(o.shutdown_grace, t.shutdown_grace, DEFAULT_SHUTDOWN_GRACE),
            deny_mode: o.deny_mode.or(t.deny_mode).unwrap_or_default(),
            journal_size: o
                .journal_size
                .or(t.journal_size)
                .unwrap_or(crate::journal::DEFAULT_JOURNAL_SIZE),
            allow_non_loopback_upstreams: g.allow_non_loopback_upstreams,
        }
    }

    /// hyper's HTTP/1 read buffer: room for the largest accepted head plus slack, so heads a
    /// little over the limit still parse and get a 431 problem document from the gateway
    /// (hyper itself answers a bare 431 beyond this).
    pub(crate) fn h1_max_buf(&self) -> usize {
        self.max_header_bytes
            .saturating_mul(2)
            .saturating_add(16 * 1024)
            .max(8 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_the_fixture() {
        let g = GatewaySettings {
            limits: GatewayLimits {
                header_read_timeout: Some(Duration::from_millis(500)),
                body_read_timeout: Some(Duration::from_millis(700)),
                max_body_bytes: Some(10),
                ..GatewayLimits::default()
            },
            ..GatewaySettings::default()
        };
        let o = LimitOverrides {
            header_read_timeout: Some(Duration::from_millis(20)),
            ..LimitOverrides::default()
        };
        let l = Limits::resolve(&g, &o);
        assert_eq!(l.header_read_timeout, Duration::from_millis(20));
        // The fixture's body timeout stands where no override is given.
        assert_eq!(l.body_read_timeout, Duration::from_millis(700));
        let o = LimitOverrides {
            body_read_timeout: Some(Duration::from_millis(30)),
            ..LimitOverrides::default()
        };
        assert_eq!(
            Limits::resolve(&g, &o).body_read_timeout,
            Duration::from_millis(30)
        );
        assert_eq!(
            Limits::default().body_read_timeout,
            DEFAULT_BODY_READ_TIMEOUT
        );
        assert_eq!(l.max_body_bytes, 10);
        assert_eq!(l.response_timeout, DEFAULT_RESPONSE_TIMEOUT);
        assert_eq!(l.deny_mode, DenyMode::Answer);
    }

    #[test]
    fn zero_values_are_raised() {
        let g = GatewaySettings {
            limits: GatewayLimits {
                connect_timeout: Some(Duration::ZERO),
                max_connections: Some(0),
                ..GatewayLimits::default()
            },
            ..GatewaySettings::default()
        };
        let l = Limits::resolve(&g, &LimitOverrides::default());
        assert_eq!(l.connect_timeout, Duration::from_millis(1));
        assert_eq!(l.max_connections, 1);
    }
}
