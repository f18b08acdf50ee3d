//! The stable codes and the one table that maps each to its HTTP status and title.

use std::fmt;

use http::StatusCode;

/// The gateway's code for a `sim` verdict code: the same name (a refused flow is answered
/// with the code `check` prints). `ALLOWED` and `PLATFORM_EXEMPT` (the gateway dials no platform
/// address) never reach a refusal; they map to `NSG_DENIED` only so the mapping is total.
impl From<sim::VerdictCode> for ErrorCode {
    fn from(code: sim::VerdictCode) -> ErrorCode {
        use sim::VerdictCode as V;
        match code {
            V::NsgDenied | V::Allowed | V::PlatformExempt => ErrorCode::NsgDenied,
            V::NotIntegrated => ErrorCode::NotIntegrated,
            V::NoRoute => ErrorCode::NoRoute,
            V::NoPublicEndpoint => ErrorCode::NoPublicEndpoint,
            V::UnknownValue => ErrorCode::UnknownValue,
            V::DnsFailure => ErrorCode::DnsFailure,
            V::ReservedAddress => ErrorCode::ReservedAddress,
            V::PlatformBlocked => ErrorCode::PlatformBlocked,
            V::RouteNone => ErrorCode::RouteNone,
            V::FirewallDenied => ErrorCode::FirewallDenied,
            V::AsymmetricRoute => ErrorCode::AsymmetricRoute,
            V::NextHopUnreachable => ErrorCode::NextHopUnreachable,
            V::RoutingLoop => ErrorCode::RoutingLoop,
            V::LeavesModel => ErrorCode::LeavesModel,
            V::PublicAccessDisabled => ErrorCode::PublicAccessDisabled,
        }
    }
}

/// The stable code of a failure. Tests and clients match on these, never on text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// An NSG rule denied the new backend flow.
    NsgDenied,
    /// The backend address is private and the instance is not integrated with a VNet.
    NotIntegrated,
    /// No route from the instance to the backend address.
    NoRoute,
    /// The backend has no public endpoint the instance could reach.
    NoPublicEndpoint,
    /// The verdict depends on a value only known at deployment time (an imported template's
    /// unknown): the gateway never dials on a guess.
    UnknownValue,
    /// The backend host name did not resolve from the instance.
    DnsFailure,
    /// The backend address is one of the five Azure reserves in its subnet.
    ReservedAddress,
    /// The platform blocks the flow inside the VNet (broadcast, multicast, unicast DHCP,
    /// UDP source port 65330).
    PlatformBlocked,
    /// No API matches the request path.
    NoApi,
    /// Nothing accepted the backend connection (or nothing plays that host:port).
    BackendRefused,
    /// The backend connection was reset or closed (including a flow cut by `flush_connection`).
    BackendReset,
    /// The backend did not accept the connection or answer in time.
    BackendTimeout,
    /// The TLS handshake with the backend failed (untrusted certificate, wrong name, ...).
    BackendTls,
    /// The backend answered something that is not HTTP/1.1.
    BackendProtocol,
    /// The socket mapped to the backend is not a loopback address and that is not allowed.
    UpstreamNotLoopback,
    /// The request head is larger than `max_header_bytes`.
    HeadersTooLarge,
    /// The request body is larger than `max_body_bytes`.
    BodyTooLarge,
    /// The client did not send its request head within `header_read_timeout_ms`, or its body
    /// within `body_read_timeout_ms`.
    ClientTimeout,
    /// The request body is malformed (bad chunk size, chunk data longer than declared, bare
    /// LF in the chunk framing) or ended before its declared end: the client's fault, never
    /// the backend's.
    BadRequestBody,
    /// A `..` segment of the path climbs above the root (after removing dot-segments,
    /// `%2e` counting as `.`).
    PathTraversal,
    /// An HTTP/1.1 request without `Host`, or any request with more than one `Host` or one that
    /// is not a valid authority (RFC 9112 §3.2).
    BadHostHeader,
    /// A `TRACE` request: it would reflect the request (cookies, credentials) back.
    TraceRefused,
    /// A `Transfer-Encoding` with a coding other than `chunked` (RFC 9112 §6.1): the
    /// gateway does not decode codings, and forwarding the body without one would change it.
    TransferCodingUnsupported,
    /// An absolute-form request target (`GET http://host/ HTTP/1.1`): forward-proxy use.
    AbsoluteFormRefused,
    /// A `CONNECT` request: tunnelling is refused.
    ConnectRefused,
    /// A protocol upgrade (WebSocket, h2c upgrade) was requested; the gateway does not tunnel.
    UpgradeRefused,
    /// A route with next hop `None` drops the backend flow.
    RouteNone,
    /// An Azure Firewall on the path denies the backend flow.
    FirewallDenied,
    /// A stateful firewall would see only one direction of the backend flow.
    AsymmetricRoute,
    /// A route's `VirtualAppliance` next hop is not a device that forwards.
    NextHopUnreachable,
    /// The routes loop between devices.
    RoutingLoop,
    /// The route leaves for a virtual network gateway (on-premises is not modelled).
    LeavesModel,
    /// The backend is a service's public address and its public network access is Disabled:
    /// the service answers 403, as Key Vault and Storage do.
    PublicAccessDisabled,
}

// === impl ErrorCode ===

impl ErrorCode {
    /// Every code, in declaration order (for tables and per-code counters).
    pub const ALL: [ErrorCode; 33] = [
        ErrorCode::NsgDenied,
        ErrorCode::NotIntegrated,
        ErrorCode::NoRoute,
        ErrorCode::NoPublicEndpoint,
        ErrorCode::UnknownValue,
        ErrorCode::DnsFailure,
        ErrorCode::ReservedAddress,
        ErrorCode::PlatformBlocked,
        ErrorCode::NoApi,
        ErrorCode::BackendRefused,
        ErrorCode::BackendReset,
        ErrorCode::BackendTimeout,
        ErrorCode::BackendTls,
        ErrorCode::BackendProtocol,
        ErrorCode::UpstreamNotLoopback,
        ErrorCode::HeadersTooLarge,
        ErrorCode::BodyTooLarge,
        ErrorCode::ClientTimeout,
        ErrorCode::BadRequestBody,
        ErrorCode::PathTraversal,
        ErrorCode::BadHostHeader,
        ErrorCode::TraceRefused,
        ErrorCode::TransferCodingUnsupported,
        ErrorCode::AbsoluteFormRefused,
        ErrorCode::ConnectRefused,
        ErrorCode::UpgradeRefused,
        ErrorCode::RouteNone,
        ErrorCode::FirewallDenied,
        ErrorCode::AsymmetricRoute,
        ErrorCode::NextHopUnreachable,
        ErrorCode::RoutingLoop,
        ErrorCode::LeavesModel,
        ErrorCode::PublicAccessDisabled,
    ];

    /// The code as it appears in bodies and headers (`NSG_DENIED`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NsgDenied => "NSG_DENIED",
            ErrorCode::NotIntegrated => "NOT_INTEGRATED",
            ErrorCode::NoRoute => "NO_ROUTE",
            ErrorCode::NoPublicEndpoint => "NO_PUBLIC_ENDPOINT",
            ErrorCode::UnknownValue => "UNKNOWN_VALUE",
            ErrorCode::DnsFailure => "DNS_FAILURE",
            ErrorCode::ReservedAddress => "RESERVED_ADDRESS",
            ErrorCode::PlatformBlocked => "PLATFORM_BLOCKED",
            ErrorCode::NoApi => "NO_API",
            ErrorCode::BackendRefused => "BACKEND_REFUSED",
            ErrorCode::BackendReset => "BACKEND_RESET",
            ErrorCode::BackendTimeout => "BACKEND_TIMEOUT",
            ErrorCode::BackendTls => "BACKEND_TLS",
            ErrorCode::BackendProtocol => "BACKEND_PROTOCOL",
            ErrorCode::UpstreamNotLoopback => "UPSTREAM_NOT_LOOPBACK",
            ErrorCode::HeadersTooLarge => "HEADERS_TOO_LARGE",
            ErrorCode::BodyTooLarge => "BODY_TOO_LARGE",
            ErrorCode::ClientTimeout => "CLIENT_TIMEOUT",
            ErrorCode::BadRequestBody => "BAD_REQUEST_BODY",
            ErrorCode::PathTraversal => "PATH_TRAVERSAL",
            ErrorCode::BadHostHeader => "BAD_HOST_HEADER",
            ErrorCode::TraceRefused => "TRACE_REFUSED",
            ErrorCode::TransferCodingUnsupported => "TRANSFER_CODING_UNSUPPORTED",
            ErrorCode::AbsoluteFormRefused => "ABSOLUTE_FORM_REFUSED",
            ErrorCode::ConnectRefused => "CONNECT_REFUSED",
            ErrorCode::UpgradeRefused => "UPGRADE_REFUSED",
            ErrorCode::RouteNone => "ROUTE_NONE",
            ErrorCode::FirewallDenied => "FIREWALL_DENIED",
            ErrorCode::AsymmetricRoute => "ASYMMETRIC_ROUTE",
            ErrorCode::NextHopUnreachable => "NEXT_HOP_UNREACHABLE",
            ErrorCode::RoutingLoop => "ROUTING_LOOP",
            ErrorCode::LeavesModel => "LEAVES_MODEL",
            ErrorCode::PublicAccessDisabled => "PUBLIC_ACCESS_DISABLED",
        }
    }

    /// A short, fixed title for the code (RFC 9457 `title`).
    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::NsgDenied => "The backend flow was denied by a network security group",
            ErrorCode::NotIntegrated => {
                "The backend is private and the API Management instance is not integrated with its virtual network"
            }
            ErrorCode::NoRoute => "There is no route from the API Management instance to the backend",
            ErrorCode::NoPublicEndpoint => "The backend has no public endpoint",
            ErrorCode::UnknownValue => "The backend flow depends on a value only known at deployment time",
            ErrorCode::DnsFailure => "The backend host name did not resolve",
            ErrorCode::ReservedAddress => "The backend address is reserved by Azure in its subnet",
            ErrorCode::PlatformBlocked => "The platform blocks this traffic within the virtual network",
            ErrorCode::NoApi => "No API matches the request path",
            ErrorCode::BackendRefused => "The backend refused the connection",
            ErrorCode::BackendReset => "The backend connection was reset",
            ErrorCode::BackendTimeout => "The backend did not answer in time",
            ErrorCode::BackendTls => "The TLS handshake with the backend failed",
            ErrorCode::BackendProtocol => "The backend did not answer with valid HTTP",
            ErrorCode::UpstreamNotLoopback => "The backend socket is not on loopback",
            ErrorCode::HeadersTooLarge => "The request head is too large",
            ErrorCode::BodyTooLarge => "The request body is too large",
            ErrorCode::ClientTimeout => "The request was not received in time",
            ErrorCode::BadRequestBody => "The request body is malformed or incomplete",
            ErrorCode::PathTraversal => "The request path climbs above the root",
            ErrorCode::BadHostHeader => "The request needs exactly one valid Host header",
            ErrorCode::TraceRefused => "TRACE is refused: it would reflect the request back",
            ErrorCode::TransferCodingUnsupported => {
                "Only the chunked transfer coding is supported"
            }
            ErrorCode::AbsoluteFormRefused => {
                "Absolute-form request targets are refused: this is a reverse proxy, not a forward proxy"
            }
            ErrorCode::ConnectRefused => "CONNECT is refused: this is a reverse proxy, not a tunnel",
            ErrorCode::UpgradeRefused => "Protocol upgrades are not supported",
            ErrorCode::RouteNone => "A route with next hop None drops the backend flow",
            ErrorCode::FirewallDenied => "An Azure Firewall denies the backend flow",
            ErrorCode::AsymmetricRoute => {
                "A stateful firewall would see only one direction of the backend flow"
            }
            ErrorCode::NextHopUnreachable => "The route's next hop does not forward traffic",
            ErrorCode::RoutingLoop => "The routes to the backend loop",
            ErrorCode::LeavesModel => {
                "The route leaves for a virtual network gateway (on-premises is not modelled)"
            }
            ErrorCode::PublicAccessDisabled => {
                "The backend service's public network access is disabled"
            }
        }
    }

    /// Whether the answer closes the client connection: after it the request's framing cannot
    /// be trusted, or a body may still be arriving that nobody will read.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            ErrorCode::ClientTimeout
                | ErrorCode::HeadersTooLarge
                | ErrorCode::BadRequestBody
                | ErrorCode::BadHostHeader
                | ErrorCode::TransferCodingUnsupported
        )
    }

    /// Whether the failure is the client's (a 4xx answer): counted in
    /// `vnetsim_gateway_client_faults_total`, never as a backend failure.
    pub fn is_client_fault(self) -> bool {
        // A 403 from a service that refuses public access is the backend's answer.
        self.status().is_client_error() && self != ErrorCode::PublicAccessDisabled
    }

    /// The HTTP status of the code: the one code → status table (the gateway issue's
    /// contract, extended by the hardening issue; [`ProxyError::status`] reads it).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::NsgDenied
            | ErrorCode::NotIntegrated
            | ErrorCode::NoRoute
            | ErrorCode::NoPublicEndpoint
            | ErrorCode::UnknownValue
            | ErrorCode::DnsFailure
            | ErrorCode::ReservedAddress
            | ErrorCode::PlatformBlocked
            | ErrorCode::RouteNone
            | ErrorCode::FirewallDenied
            | ErrorCode::AsymmetricRoute
            | ErrorCode::NextHopUnreachable
            | ErrorCode::RoutingLoop
            | ErrorCode::LeavesModel
            | ErrorCode::BackendRefused
            | ErrorCode::BackendReset
            | ErrorCode::BackendTls
            | ErrorCode::BackendProtocol
            | ErrorCode::UpstreamNotLoopback => StatusCode::BAD_GATEWAY,
            ErrorCode::BackendTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::NoApi => StatusCode::NOT_FOUND,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::AbsoluteFormRefused
            | ErrorCode::BadRequestBody
            | ErrorCode::PathTraversal
            | ErrorCode::BadHostHeader => StatusCode::BAD_REQUEST,
            ErrorCode::ConnectRefused | ErrorCode::TraceRefused => StatusCode::METHOD_NOT_ALLOWED,
            // The service itself refuses the request (Key Vault: 403 "Public network access is
            // disabled and request is not from a trusted service nor via an approved private
            // link"; Storage: 403 AuthorizationFailure); APIM passes the backend's answer on.
            ErrorCode::PublicAccessDisabled => StatusCode::FORBIDDEN,
            ErrorCode::UpgradeRefused | ErrorCode::TransferCodingUnsupported => {
                StatusCode::NOT_IMPLEMENTED
            }
        }
    }

    /// `type` URI of the problem document.
    pub fn type_uri(self) -> String {
        format!(
            "urn:vnetsim:problem:{}",
            self.as_str().to_ascii_lowercase().replace('_', "-")
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
