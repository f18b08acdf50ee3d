//! Failures are answers: [`ProxyError`] is every way a proxied request can fail, each with a
//! stable [`ErrorCode`]. [`ProxyError::status`] is the one place that maps a code to an HTTP
//! status (the contract table of the gateway issue); [`ProxyError::to_response`] renders the
//! `application/problem+json` body and, on policy outcomes, the `x-vnetsim-verdict` header.
//!
//! This module knows nothing about sockets, and of `sim` only the verdict code it maps (a typed
//! `From<sim::VerdictCode>`): callers build the error with the facts they
//! have (the verdict, the backend, the cause) and this module only formats them.

use std::fmt;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Response, StatusCode};

/// Media type of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Header naming the verdict on policy outcomes: `Deny; code=NSG_DENIED; rule=securityRules/x`.
pub const VERDICT_HEADER: &str = "x-vnetsim-verdict";

mod code;
mod problem;

pub use code::ErrorCode;
pub use problem::{PolicyFields, Problem};

/// The `sim` verdict behind a policy outcome, in the words of the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyOutcome {
    /// `Deny` or `Unreachable` (the verdict kind).
    pub verdict: &'static str,
    /// The verdict's code.
    pub code: ErrorCode,
    /// The NSG whose rule decided, when one did.
    pub nsg: Option<String>,
    /// The deciding rule, `securityRules/<name>` or `defaultSecurityRules/<name>`.
    pub rule: Option<String>,
    /// The deciding rule's priority.
    pub priority: Option<u32>,
    /// The Azure Firewall that decided, when one did (`rule` is then
    /// `group/collection/rule`, or `default` for its default deny).
    pub firewall: Option<String>,
    /// The flow in question, e.g. `Tcp 10.0.1.4:50000 -> 10.0.2.4:443`.
    pub flow: String,
    /// `sim`'s explanation.
    pub reason: String,
}

impl PolicyOutcome {
    /// The `x-vnetsim-verdict` header value.
    pub fn header_value(&self) -> String {
        let firewall = self
            .firewall
            .as_ref()
            .map_or(String::new(), |f| format!("; firewall={f}"));
        match &self.rule {
            Some(rule) => format!(
                "{}; code={}{firewall}; rule={rule}",
                self.verdict, self.code
            ),
            None => format!("{}; code={}{firewall}", self.verdict, self.code),
        }
    }
}

impl fmt::Display for PolicyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.verdict, self.flow, self.reason)?;
        if let (Some(nsg), Some(rule)) = (&self.nsg, &self.rule) {
            write!(f, " (nsgs/{nsg}/{rule}")?;
            if let Some(p) = self.priority {
                write!(f, ", priority {p}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Every way a proxied request fails. Each layer adds its context once (the backend, the
/// target socket); [`ProxyError::code`] gives the stable code and [`ProxyError::status`] the
/// HTTP status.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProxyError {
    /// `sim` did not allow the new backend flow.
    #[error("backend `{backend}`: {outcome}")]
    Policy {
        /// The backend authority.
        backend: String,
        /// The verdict (boxed: the error stays small on the happy path's `Result`).
        outcome: Box<PolicyOutcome>,
    },
    /// `sim` denied the flow and `deny_mode = "drop"`: the SYN went unanswered.
    #[error(
        "backend `{backend}`: no answer within {waited_ms} ms (the SYN was dropped: {outcome})"
    )]
    Dropped {
        /// The backend authority.
        backend: String,
        /// How long the gateway waited (the connect timeout).
        waited_ms: u64,
        /// The verdict that dropped it.
        outcome: Box<PolicyOutcome>,
    },
    /// The backend host name did not resolve from the instance.
    #[error("backend `{backend}`: {reason}")]
    Dns {
        /// The backend authority.
        backend: String,
        /// `sim`'s reason.
        reason: String,
    },
    /// No API matches the path.
    #[error("no API matches the path `{path}`")]
    NoApi {
        /// The request path.
        path: String,
    },
    /// Nothing listens where the backend is played (or nothing plays it).
    #[error("backend `{backend}`: {reason}")]
    Refused {
        /// The backend authority.
        backend: String,
        /// What was refused, e.g. `connect to 127.0.0.1:9 refused`.
        reason: String,
    },
    /// The backend connection was reset or closed.
    #[error("backend `{backend}`: {reason}")]
    Reset {
        /// The backend authority.
        backend: String,
        /// Why, e.g. the flow was cut by `flush_connection`.
        reason: String,
    },
    /// The backend did not accept or answer in time.
    #[error("backend `{backend}`: {what} did not complete within {waited_ms} ms")]
    Timeout {
        /// The backend authority.
        backend: String,
        /// `connect`, `TLS handshake` or `response`.
        what: &'static str,
        /// The limit that was hit.
        waited_ms: u64,
    },
    /// TLS with the backend failed.
    #[error("backend `{backend}`: TLS handshake failed: {reason}")]
    Tls {
        /// The backend authority.
        backend: String,
        /// rustls' reason.
        reason: String,
    },
    /// The backend's answer was not valid HTTP/1.1.
    #[error("backend `{backend}`: {reason}")]
    Protocol {
        /// The backend authority.
        backend: String,
        /// hyper's reason.
        reason: String,
    },
    /// The socket playing the backend is not loopback and that is not allowed.
    #[error("backend `{backend}`: refusing to dial {target}: not a loopback address (set `allow_non_loopback_upstreams` to allow it)")]
    NotLoopback {
        /// The backend authority.
        backend: String,
        /// The socket it maps to.
        target: std::net::SocketAddr,
    },
    /// The request head is too large.
    #[error("the request head is {size} bytes; the limit is {limit}")]
    HeadersTooLarge {
        /// Size of the head (request line and fields).
        size: usize,
        /// `max_header_bytes`.
        limit: usize,
    },
    /// The request body is too large.
    #[error("the request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// `max_body_bytes`.
        limit: u64,
    },
    /// The request head did not arrive in time.
    #[error("the request head was not received within {limit_ms} ms")]
    ClientTimeout {
        /// `header_read_timeout_ms`.
        limit_ms: u64,
    },
    /// The request body did not arrive in time.
    #[error("the request body was not received within {limit_ms} ms")]
    BodyTimeout {
        /// `body_read_timeout_ms`.
        limit_ms: u64,
    },
    /// The request head was refused by the HTTP/1 parser itself: more header fields or
    /// bytes than it accepts.
    #[error(
        "the request head has more than {max_fields} header fields or is larger than {limit} bytes"
    )]
    HeadRefused {
        /// `max_header_bytes`.
        limit: usize,
        /// [`crate::config::MAX_HEADER_FIELDS`].
        max_fields: usize,
    },
    /// The request body could not be read: malformed framing or cut short.
    #[error("the request body is malformed or incomplete: {reason}")]
    BadBody {
        /// The parser's reason.
        reason: String,
    },
    /// A `..` segment climbs above the root.
    #[error("the path `{path}` climbs above the root with `..` segments")]
    PathTraversal {
        /// The path as received.
        path: String,
    },
    /// Missing, repeated or invalid `Host`.
    #[error("{reason}")]
    BadHost {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// TRACE.
    #[error("TRACE is refused")]
    Trace,
    /// A transfer coding other than `chunked`.
    #[error("the transfer coding `{coding}` is not supported; only `chunked` is")]
    TransferCoding {
        /// The `Transfer-Encoding` value.
        coding: String,
    },
    /// Absolute-form request target.
    #[error(
        "the request target `{target}` is in absolute form; send origin-form paths (`/api/...`)"
    )]
    AbsoluteForm {
        /// The target as received.
        target: String,
    },
    /// CONNECT.
    #[error("CONNECT {target} refused")]
    Connect {
        /// The authority the client asked to tunnel to.
        target: String,
    },
    /// An upgrade request.
    #[error("upgrade to `{protocol}` refused")]
    Upgrade {
        /// The `Upgrade` header value.
        protocol: String,
    },
}

// === impl ProxyError ===

impl ProxyError {
    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProxyError::Policy { outcome, .. } => outcome.code,
            ProxyError::Dropped { .. } => ErrorCode::BackendTimeout,
            ProxyError::Dns { .. } => ErrorCode::DnsFailure,
            ProxyError::NoApi { .. } => ErrorCode::NoApi,
            ProxyError::Refused { .. } => ErrorCode::BackendRefused,
            ProxyError::Reset { .. } => ErrorCode::BackendReset,
            ProxyError::Timeout { .. } => ErrorCode::BackendTimeout,
            ProxyError::Tls { .. } => ErrorCode::BackendTls,
            ProxyError::Protocol { .. } => ErrorCode::BackendProtocol,
            ProxyError::NotLoopback { .. } => ErrorCode::UpstreamNotLoopback,
            ProxyError::HeadersTooLarge { .. } => ErrorCode::HeadersTooLarge,
            ProxyError::BodyTooLarge { .. } => ErrorCode::BodyTooLarge,
            ProxyError::ClientTimeout { .. } | ProxyError::BodyTimeout { .. } => {
                ErrorCode::ClientTimeout
            }
            ProxyError::HeadRefused { .. } => ErrorCode::HeadersTooLarge,
            ProxyError::BadBody { .. } => ErrorCode::BadRequestBody,
            ProxyError::PathTraversal { .. } => ErrorCode::PathTraversal,
            ProxyError::BadHost { .. } => ErrorCode::BadHostHeader,
            ProxyError::Trace => ErrorCode::TraceRefused,
            ProxyError::TransferCoding { .. } => ErrorCode::TransferCodingUnsupported,
            ProxyError::AbsoluteForm { .. } => ErrorCode::AbsoluteFormRefused,
            ProxyError::Connect { .. } => ErrorCode::ConnectRefused,
            ProxyError::Upgrade { .. } => ErrorCode::UpgradeRefused,
        }
    }

    /// The HTTP status, from [`ErrorCode::status`] (the one code → status table).
    ///
    /// ```
    /// use gateway::error::ProxyError;
    /// assert_eq!(ProxyError::NoApi { path: "/x".into() }.status(), 404);
    /// assert_eq!(ProxyError::BodyTooLarge { limit: 1 }.status(), 413);
    /// ```
    pub fn status(&self) -> StatusCode {
        self.code().status()
    }

    /// The verdict, on policy outcomes (also on a dropped SYN, which explains the timeout).
    pub fn policy(&self) -> Option<&PolicyOutcome> {
        match self {
            ProxyError::Policy { outcome, .. } | ProxyError::Dropped { outcome, .. } => {
                Some(outcome)
            }
            _ => None,
        }
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        let code = self.code();
        let mut p = Problem::new(code.as_str(), self.status(), code.title(), self.to_string());
        p.type_uri = code.type_uri();
        if let Some(o) = self.policy() {
            p.policy = Some(PolicyFields {
                nsg: o.nsg.clone(),
                rule: o.rule.clone(),
                priority: o.priority,
            });
        }
        p
    }

    /// The whole answer: status, `application/problem+json` body, `x-vnetsim-verdict` on
    /// policy outcomes. `Allow` lists the methods for `CONNECT_REFUSED` and `TRACE_REFUSED`;
    /// refusals after which the connection's framing cannot be trusted (or the client is still
    /// sending a body nobody reads) also close the connection.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut resp = self.problem().to_response::<B>();
        if let Some(o) = self.policy() {
            if let Ok(v) = HeaderValue::from_str(&o.header_value()) {
                resp.headers_mut().insert(VERDICT_HEADER, v);
            }
        }
        if matches!(
            self.code(),
            ErrorCode::ConnectRefused | ErrorCode::TraceRefused
        ) {
            resp.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
        }
        if self.code().closes_connection() {
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_TYPE;

    fn outcome(rule: Option<&str>) -> PolicyOutcome {
        PolicyOutcome {
            verdict: "Deny",
            code: ErrorCode::NsgDenied,
            nsg: rule.map(|_| "nsg-apim".to_string()),
            rule: rule.map(str::to_string),
            priority: rule.map(|_| 100),
            firewall: None,
            flow: "Tcp 10.0.1.4:50000 -> 10.0.2.4:443".into(),
            reason: "denied".into(),
        }
    }

    #[test]
    fn contract_statuses() {
        // The table of the gateway issue, code by code.
        let table = [
            (ErrorCode::NsgDenied, 502),
            (ErrorCode::NotIntegrated, 502),
            (ErrorCode::NoRoute, 502),
            (ErrorCode::NoPublicEndpoint, 502),
            (ErrorCode::UnknownValue, 502),
            (ErrorCode::DnsFailure, 502),
            (ErrorCode::BackendRefused, 502),
            (ErrorCode::BackendReset, 502),
            (ErrorCode::BackendTls, 502),
        ];
        for (code, status) in table {
            let mut o = outcome(None);
            o.code = code;
            let e = ProxyError::Policy {
                backend: "b".into(),
                outcome: Box::new(o),
            };
            assert_eq!(e.status().as_u16(), status, "{code}");
        }
        let cases: Vec<(ProxyError, &str, u16)> = vec![
            (ProxyError::NoApi { path: "/".into() }, "NO_API", 404),
            (
                ProxyError::Timeout {
                    backend: "b".into(),
                    what: "response",
                    waited_ms: 1,
                },
                "BACKEND_TIMEOUT",
                504,
            ),
            (
                ProxyError::HeadersTooLarge { size: 2, limit: 1 },
                "HEADERS_TOO_LARGE",
                431,
            ),
            (ProxyError::BodyTooLarge { limit: 1 }, "BODY_TOO_LARGE", 413),
            (
                ProxyError::ClientTimeout { limit_ms: 1 },
                "CLIENT_TIMEOUT",
                408,
            ),
            (
                ProxyError::AbsoluteForm {
                    target: "http://x/".into(),
                },
                "ABSOLUTE_FORM_REFUSED",
                400,
            ),
            (
                ProxyError::Connect {
                    target: "x:443".into(),
                },
                "CONNECT_REFUSED",
                405,
            ),
            (
                ProxyError::BodyTimeout { limit_ms: 1 },
                "CLIENT_TIMEOUT",
                408,
            ),
            (
                ProxyError::HeadRefused {
                    limit: 1,
                    max_fields: 100,
                },
                "HEADERS_TOO_LARGE",
                431,
            ),
            (
                ProxyError::BadBody {
                    reason: "Invalid chunk size line".into(),
                },
                "BAD_REQUEST_BODY",
                400,
            ),
            (
                ProxyError::PathTraversal {
                    path: "/../x".into(),
                },
                "PATH_TRAVERSAL",
                400,
            ),
            (
                ProxyError::BadHost { reason: "no Host" },
                "BAD_HOST_HEADER",
                400,
            ),
            (ProxyError::Trace, "TRACE_REFUSED", 405),
            (
                ProxyError::TransferCoding {
                    coding: "gzip, chunked".into(),
                },
                "TRANSFER_CODING_UNSUPPORTED",
                501,
            ),
            (
                ProxyError::Dns {
                    backend: "b".into(),
                    reason: "NXDOMAIN".into(),
                },
                "DNS_FAILURE",
                502,
            ),
            (
                ProxyError::Dropped {
                    backend: "b".into(),
                    waited_ms: 1,
                    outcome: Box::new(outcome(Some("securityRules/x"))),
                },
                "BACKEND_TIMEOUT",
                504,
            ),
        ];
        for (e, code, status) in cases {
            assert_eq!(e.code().as_str(), code);
            assert_eq!(e.status().as_u16(), status, "{code}");
        }
    }

    #[test]
    fn every_code_has_a_distinct_name_and_a_title() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "codes are unique");
        for c in ErrorCode::ALL {
            assert!(!c.title().is_empty(), "{c}");
            // Client faults are the 4xx codes, except the 403 a service answers when it
            // refuses its public address: that one is the backend's.
            let backend_4xx = c == ErrorCode::PublicAccessDisabled;
            assert_eq!(
                c.is_client_fault(),
                c.status().is_client_error() && !backend_4xx,
                "{c}"
            );
        }
        assert_eq!(ErrorCode::PublicAccessDisabled.status().as_u16(), 403);
        assert!(!ErrorCode::PublicAccessDisabled.is_client_fault());
        assert!(ErrorCode::BadRequestBody.is_client_fault());
        assert!(ErrorCode::ClientTimeout.is_client_fault());
        assert!(!ErrorCode::BackendReset.is_client_fault());
    }

    #[test]
    fn refusals_that_break_framing_close_the_connection() {
        for e in [
            ProxyError::BadBody { reason: "x".into() },
            ProxyError::BodyTimeout { limit_ms: 1 },
            ProxyError::TransferCoding {
                coding: "gzip".into(),
            },
        ] {
            let resp: Response<Bytes> = e.to_response();
            assert_eq!(resp.headers()[http::header::CONNECTION], "close", "{e}");
        }
        let resp: Response<Bytes> = ProxyError::Trace.to_response();
        assert_eq!(resp.status(), 405);
        assert!(resp.headers()[http::header::ALLOW]
            .to_str()
            .unwrap()
            .contains("GET"));
        // Routing refusals keep the connection.
        let resp: Response<Bytes> = ProxyError::PathTraversal { path: "/..".into() }.to_response();
        assert!(resp.headers().get(http::header::CONNECTION).is_none());
    }

    #[test]
    fn policy_outcomes_carry_header_and_fields() {
        let e = ProxyError::Policy {
            backend: "orders.internal.contoso.com".into(),
            outcome: Box::new(outcome(Some("securityRules/deny-orders"))),
        };
        let resp: Response<Bytes> = e.to_response();
        assert_eq!(
            resp.headers()[VERDICT_HEADER],
            "Deny; code=NSG_DENIED; rule=securityRules/deny-orders"
        );
        assert_eq!(resp.headers()[CONTENT_TYPE], PROBLEM_JSON);
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert_eq!(v["code"], "NSG_DENIED");
        assert_eq!(v["status"], 502);
        assert_eq!(v["nsg"], "nsg-apim");
        assert_eq!(v["rule"], "securityRules/deny-orders");
        assert_eq!(v["priority"], 100);
        assert!(v["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:vnetsim:problem:"));
    }

    #[test]
    fn non_policy_outcomes_have_no_policy_fields() {
        let resp: Response<Bytes> = ProxyError::NoApi { path: "/x".into() }.to_response();
        assert!(resp.headers().get(VERDICT_HEADER).is_none());
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
        assert!(v.get("nsg").is_none());
        assert_eq!(v["detail"], "no API matches the path `/x`");
    }
}
