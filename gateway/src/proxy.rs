//! One proxied request, from the parsed head to the response head.
//!
//! Safe by default: `CONNECT` (405) and absolute-form targets (400) are refused — this is a
//! reverse proxy, not a forward proxy — and the `Host` header never selects an upstream: only
//! the path does (longest API prefix on whole segments, via `sim`), once its dot-segments are
//! removed ([`crate::path`]). The edge checks of HTTP itself come first: `TRACE` (405), a
//! missing, repeated or invalid `Host` (400, RFC 9112 §3.2), a transfer coding other than
//! `chunked` (501, RFC 9112 §6.1: the gateway decodes no codings, and forwarding the decoded
//! chunks without the coding would silently change the body). The request is then
//! rewritten **in place**: the rest of the path is joined to the backend URL's path, the query
//! passes verbatim, hop-by-hop headers and `Expect` go (one scan of the names; this hop
//! answered `100 Continue` itself when it read the body), `Host` becomes the backend's
//! authority, and `x-forwarded-for` and `forwarded` (for, proto, host) are appended. The
//! backend's response is passed back the same way, its hop-by-hop headers stripped.
//!
//! A request-level fault ([`crate::fault`]) is decided here once the route is known: a
//! `latency` delays the upstream send, a `status` answers in the backend's place once the flow
//! is admitted, `slow_body`, `bandwidth` and `close_mid_body` shape the backend's body. Every
//! request leaves one journal record ([`crate::journal`]), pushed when its body ends.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, EXPECT, HOST,
    PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use sim::FaultAction;
use tracing::field::Empty;

use crate::body::{GatewayBody, ReqBody, Shape};
use crate::error::ProxyError;
use crate::fault::Picked;
use crate::io::ConnState;
use crate::journal::Record;
use crate::policy::PolicyState;
use crate::state::Shared;
use crate::upstream::{self, Leg};

/// What the proxy knows about one client connection.
pub(crate) struct ConnInfo {
    /// The client's socket address.
    pub(crate) peer: SocketAddr,
    /// Requests in flight (the slow-client clock).
    pub(crate) state: Arc<ConnState>,
    /// The client address as an `x-forwarded-for` value.
    xff: HeaderValue,
    /// `for=...;proto=...` (the `forwarded` element without `host`).
    forwarded_prefix: String,
    /// The last `forwarded` value built on this connection and the host it names (clients
    /// send the same `Host` on every request of a connection).
    forwarded_last: Mutex<Option<(String, HeaderValue)>>,
    /// New flows of this connection ask the NSGs (see `BenchKnobs::unchecked_listen`).
    pub(crate) check: bool,
}

impl ConnInfo {
    /// `check`: new flows of this connection ask the NSGs (`false` only on the bench's
    /// unchecked front door).
    pub(crate) fn new(peer: SocketAddr, tls: bool, state: Arc<ConnState>, check: bool) -> ConnInfo {
        let proto = if tls { "https" } else { "http" };
        let ip = peer.ip();
        let for_value = if ip.is_ipv6() {
            format!("\"[{ip}]\"")
        } else {
            ip.to_string()
        };
        ConnInfo {
            peer,
            state,
            xff: HeaderValue::from_str(&ip.to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            forwarded_prefix: format!("for={for_value};proto={proto}"),
            forwarded_last: Mutex::new(None),
            check,
        }
    }
}

/// The hyper service: answers every request (failures are problem documents).
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<GatewayBody>, Infallible> {
    let guard = conn.state.begin();
    let start = Instant::now();
    let at = SystemTime::now();
    let mut leg = Leg::default();
    let state = shared.snapshot();
    let span = tracing::debug_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        api = Empty,
        backend = Empty,
        flow = Empty,
        verdict = Empty,
        rule = Empty,
        upstream_ms = Empty,
        status = Empty,
    );
    let client_version = req.version();
    let mut refusal = None;
    let (mut resp, route) = match proxy(&shared, &state, &conn, req, start, &span, &mut leg).await {
        Ok((resp, route)) => (resp, Some(route)),
        Err((e, route)) => {
            refusal = Some((e.code(), e.policy().map(|o| (o.verdict, o.rule.clone()))));
            if let Some(o) = e.policy() {
                span.record("verdict", o.verdict);
                if let Some(r) = &o.rule {
                    span.record("rule", r.as_str());
                }
            }
            tracing::debug!(parent: &span, code = e.code().as_str(), cause = %e, "request refused");
            if e.code().is_client_fault() {
                shared.res.metrics.client_fault(e.code());
            }
            (e.to_response::<GatewayBody>(), route)
        }
    };
    let status = resp.status().as_u16();
    span.record("status", status);
    let metrics = route
        .and_then(|i| state.routes.get(i))
        .map_or(&state.no_api, |r| &r.metrics);
    metrics.record(status, start.elapsed());
    *resp.version_mut() = client_version;
    resp.body_mut().set_guard(guard);
    let cap = state.limits.journal_size;
    if cap > 0 {
        let route = route.and_then(|i| state.routes.get(i));
        let (code, policy) = refusal.map_or((None, None), |(c, p)| (Some(c), p));
        let verdict = match (&policy, leg.new_flow) {
            (Some((v, _)), _) => Some(*v),
            (None, Some(true)) => Some("Allow"),
            (None, Some(false)) => Some("Established"),
            (None, None) => None,
        };
        let record = Record {
            at,
            api: route.map(|r| r.api.clone()),
            backend: route.map(|r| r.authority.clone()),
            status,
            verdict,
            code,
            rule: policy.and_then(|(_, r)| r),
            hops: leg.hops,
            fault: leg.fault,
            bytes: 0,
            duration: Duration::ZERO,
        };
        resp.body_mut()
            .set_journal(shared.res.journal.clone(), record, start, cap);
    }
    Ok(resp)
}

type Failed = (ProxyError, Option<usize>);

async fn proxy(
    shared: &Shared,
    state: &PolicyState,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    start: Instant,
    span: &tracing::Span,
    leg: &mut Leg,
) -> Result<(Response<GatewayBody>, usize), Failed> {
    let limits = &state.limits;
    if req.method() == Method::CONNECT {
        let target = req
            .uri()
            .authority()
            .map_or_else(|| req.uri().to_string(), |a| a.to_string());
        return Err((ProxyError::Connect { target }, None));
    }
    if req.method() == Method::TRACE {
        return Err((ProxyError::Trace, None));
    }
    // HTTP/2 always carries :scheme and :authority; only HTTP/1 can send an absolute form.
    if req.version() < Version::HTTP_2
        && (req.uri().scheme().is_some() || req.uri().authority().is_some())
    {
        let target = req.uri().to_string();
        return Err((ProxyError::AbsoluteForm { target }, None));
    }
    check_host(&req).map_err(|e| (e, None))?;
    check_transfer_coding(req.headers()).map_err(|e| (e, None))?;
    if let Some(up) = req.headers().get(UPGRADE) {
        // `Upgrade: h2c` may be ignored (RFC 9113 §3.1 removed it; we answer in HTTP/1.1).
        if !up.as_bytes().eq_ignore_ascii_case(b"h2c") {
            let protocol = String::from_utf8_lossy(up.as_bytes()).into_owned();
            return Err((ProxyError::Upgrade { protocol }, None));
        }
    }
    let size = head_size(&req);
    if size > limits.max_header_bytes {
        return Err((
            ProxyError::HeadersTooLarge {
                size,
                limit: limits.max_header_bytes,
            },
            None,
        ));
    }
    if content_length(req.headers()).is_some_and(|n| n > limits.max_body_bytes) {
        return Err((
            ProxyError::BodyTooLarge {
                limit: limits.max_body_bytes,
            },
            None,
        ));
    }
    let raw_path = req.uri().path();
    let normalised = if raw_path.starts_with('/') {
        match crate::path::remove_dot_segments(raw_path) {
            Ok(p) => Some(p),
            Err(crate::path::AboveRoot) => {
                let path = raw_path.to_string();
                return Err((ProxyError::PathTraversal { path }, None));
            }
        }
    } else {
        None
    };
    let path = normalised.as_deref().unwrap_or(raw_path);
    let routed = normalised.as_deref().and_then(|p| state.topology.route(p));
    let Some((index, rest)) = routed else {
        return Err((
            ProxyError::NoApi {
                path: path.to_string(),
            },
            None,
        ));
    };
    let Some(route) = state.routes.get(index) else {
        return Err((
            ProxyError::NoApi {
                path: path.to_string(),
            },
            None,
        ));
    };
    span.record("api", route.name.as_str());
    span.record("backend", route.backend.authority.as_str());

    // Rewrite the target: backend path + rest of the path + verbatim query.
    let b = &route.backend;
    let query = req.uri().query();
    let mut pq =
        String::with_capacity(b.path.len() + rest.len() + query.map_or(0, |q| q.len() + 1) + 1);
    pq.push_str(&b.path);
    pq.push_str(rest);
    if pq.is_empty() {
        pq.push('/');
    }
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    match PathAndQuery::from_maybe_shared(Bytes::from(pq)) {
        Ok(pq) => *req.uri_mut() = Uri::from(pq),
        Err(_) => {
            let path = req.uri().path().to_string();
            return Err((ProxyError::NoApi { path }, Some(index)));
        }
    }

    // Headers, in place.
    let client_host = req.headers().get(HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let headers = req.headers_mut();
    strip_hop_by_hop(headers);
    headers.insert(HOST, route.host_header.clone());
    append_xff(headers, &conn.xff);
    if let Some(v) = forwarded(conn, client_host.as_ref(), state) {
        headers.append(http::header::FORWARDED, v);
    }
    *req.version_mut() = Version::HTTP_11;
    let since = tokio::time::Instant::from_std(start);
    let req =
        req.map(|body| ReqBody::new(body, limits.max_body_bytes, since, limits.body_read_timeout));

    // One relaxed load when no fault is in force.
    let fault = match &route.target {
        Ok((_, host)) => shared.res.faults.pick(host, route.backend.port, false),
        Err(_) => None,
    };
    let mut delay = None;
    if let Some(f) = &fault {
        leg.fault = Some(f.name.clone());
        match f.action {
            FaultAction::Status {
                status,
                retry_after_s,
            } => {
                let new_flow = upstream::open(&shared.res, state, route, conn.check, leg)
                    .await
                    .map_err(|e| (e, Some(index)))?;
                span.record("verdict", if new_flow { "Allow" } else { "Established" });
                return Ok((status_response(f, status, retry_after_s), index));
            }
            FaultAction::Latency { .. } => delay = Some(f.delay),
            _ => {}
        }
    }
    // Read the clock for the span only when the span is recorded (debug logging).
    let sent_at = (!span.is_disabled()).then(Instant::now);
    match upstream::send(&shared.res, state, route, req, conn.check, delay, leg).await {
        Ok((resp, checkout, new_flow)) => {
            if let Some(t) = sent_at {
                span.record("upstream_ms", t.elapsed().as_secs_f64() * 1e3);
            }
            span.record("verdict", if new_flow { "Allow" } else { "Established" });
            span.record("flow", checkout.flow_id());
            let mut resp = resp.map(|body| GatewayBody::upstream(body, checkout));
            if let Some((f, shape)) = fault.as_ref().and_then(|f| body_shape(f).map(|s| (f, s))) {
                resp.body_mut().shape(shape, f.name.clone());
            }
            strip_hop_by_hop(resp.headers_mut());
            Ok((resp, index))
        }
        Err(e) => Err((e, Some(index))),
    }
}

/// The shaping a body fault asks for.
fn body_shape(f: &Picked) -> Option<Shape> {
    match f.action {
        FaultAction::SlowBody { pause, chunk } => Some(Shape::Pace {
            piece: usize::try_from(chunk).unwrap_or(usize::MAX),
            pause,
        }),
        FaultAction::Bandwidth { bytes_per_s } => {
            // About 20 pieces a second, each after the time its size takes at the rate.
            let piece = (bytes_per_s / 20).clamp(1, 16 * 1024);
            #[allow(clippy::cast_precision_loss)] // both far below 2^53
            let pause = Duration::from_secs_f64(piece as f64 / bytes_per_s as f64);
            Some(Shape::Pace {
                piece: usize::try_from(piece).unwrap_or(1),
                pause,
            })
        }
        FaultAction::CloseMidBody { after_bytes } => Some(Shape::Cut { after: after_bytes }),
        _ => None,
    }
}

/// The backend's answer under a `status` fault: that status, `Retry-After` when given, and a
/// short text body naming the fault.
fn status_response(f: &Picked, status: u16, retry_after_s: Option<u64>) -> Response<GatewayBody> {
    let code = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
    let body = format!(
        "{} {} (vnetsim fault `{}`)\n",
        code.as_u16(),
        code.canonical_reason().unwrap_or(""),
        f.name
    );
    let mut resp = Response::new(GatewayBody::from(Bytes::from(body)));
    *resp.status_mut() = code;
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(s) = retry_after_s {
        h.insert(http::header::RETRY_AFTER, HeaderValue::from(s));
    }
    h.insert(
        HeaderName::from_static("x-vnetsim-fault"),
        HeaderValue::from_str(&f.name).unwrap_or_else(|_| HeaderValue::from_static("fault")),
    );
    resp
}

/// Appends the client address to `x-forwarded-for`, as one comma-separated list.
fn append_xff(headers: &mut HeaderMap, client: &HeaderValue) {
    if !headers.contains_key(&X_FORWARDED_FOR) {
        headers.insert(X_FORWARDED_FOR, client.clone());
        return;
    }
    let mut joined: Vec<u8> = Vec::with_capacity(64);
    for v in headers.get_all(&X_FORWARDED_FOR) {
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    joined.extend_from_slice(b", ");
    joined.extend_from_slice(client.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(X_FORWARDED_FOR, v);
    }
}

/// `x-forwarded-for`.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The `forwarded` element this hop adds: `for=...;proto=...;host=...` (RFC 7239).
fn forwarded(
    conn: &ConnInfo,
    client_host: Option<&HeaderValue>,
    state: &PolicyState,
) -> Option<HeaderValue> {
    let host = client_host
        .and_then(|h| h.to_str().ok())
        .unwrap_or(state.topology.gateway().hostname.as_str());
    let mut last = crate::lock(&conn.forwarded_last);
    if let Some((h, v)) = &*last {
        if h == host {
            return Some(v.clone());
        }
    }
    let mut v = String::with_capacity(conn.forwarded_prefix.len() + host.len() + 8);
    v.push_str(&conn.forwarded_prefix);
    v.push_str(";host=");
    push_token_or_quoted(&mut v, host);
    let v = HeaderValue::from_str(&v).ok()?;
    *last = Some((host.to_string(), v.clone()));
    Some(v)
}

/// Appends `s` as an RFC 7230 token, or as a quoted string when it is not one.
fn push_token_or_quoted(out: &mut String, s: &str) {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !s.is_empty() && s.chars().all(is_tchar) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// RFC 9112 §3.2: exactly one `Host` in an HTTP/1.1 request, never two in any, and a valid
/// `host[:port]` (empty is allowed: a client sends it when the target has no authority).
fn check_host<B>(req: &Request<B>) -> Result<(), ProxyError> {
    let mut hosts = req.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProxyError::BadHost {
            reason: "the request has more than one Host header",
        }),
        (None, _) if req.version() == Version::HTTP_11 => Err(ProxyError::BadHost {
            reason: "an HTTP/1.1 request must have a Host header",
        }),
        (Some(v), None) if !v.as_bytes().iter().copied().all(is_authority_byte) => {
            Err(ProxyError::BadHost {
                reason: "the Host header is not a valid host[:port]",
            })
        }
        _ => Ok(()),
    }
}

/// A byte of an RFC 3986 authority without userinfo: unreserved, sub-delims, `%`, `:` and the
/// IP-literal brackets.
fn is_authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b)
}

/// RFC 9112 §6.1: `chunked` is the only transfer coding the gateway implements; any other
/// (`gzip, chunked`, `chunked, chunked`, ...) is answered 501 rather than forwarded without it.
fn check_transfer_coding(h: &HeaderMap) -> Result<(), ProxyError> {
    let mut values = h.get_all(TRANSFER_ENCODING).iter();
    let Some(first) = values.next() else {
        return Ok(());
    };
    let only_chunked = first
        .as_bytes()
        .trim_ascii()
        .eq_ignore_ascii_case(b"chunked");
    if only_chunked && values.next().is_none() {
        return Ok(());
    }
    let coding = h
        .get_all(TRANSFER_ENCODING)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    Err(ProxyError::TransferCoding { coding })
}

/// Size of the request head as it would be on the wire in HTTP/1.1.
fn head_size<B>(req: &Request<B>) -> usize {
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let mut n = req.method().as_str().len() + 1 + target + 11;
    for (k, v) in req.headers() {
        n += k.as_str().len() + 2 + v.len() + 2;
    }
    n + 2
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse().ok())
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    // `Expect` is not hop-by-hop in RFC 9110, but this hop consumes it: hyper answers
    // `100 Continue` when the body is read, so the backend must not be asked again.
    name == CONNECTION
        || name == EXPECT
        || name == TE
        || name == TRAILER
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name == PROXY_AUTHORIZATION
        || name == PROXY_AUTHENTICATE
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those named in `Connection`, and
/// `Expect` (see [`is_hop_by_hop`]). The common case — none present — is one scan of the names.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    if !h.keys().any(is_hop_by_hop) {
        return;
    }
    let mut listed: Vec<HeaderName> = Vec::new();
    for v in h.get_all(CONNECTION) {
        if let Ok(s) = v.to_str() {
            for token in s.split(',') {
                if let Ok(n) = HeaderName::from_bytes(token.trim().as_bytes()) {
                    if n != HOST {
                        listed.push(n);
                    }
                }
            }
        }
    }
    for n in [
        CONNECTION,
        EXPECT,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        PROXY_AUTHORIZATION,
        PROXY_AUTHENTICATE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        h.remove(n);
    }
    for n in listed {
        h.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_connection_tokens_go() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert(HOST, HeaderValue::from_static("a"));
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["host", "x-kept"]);
    }

    #[test]
    fn no_hop_headers_is_a_no_op() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn forwarded_values_are_tokens_or_quoted() {
        let mut s = String::new();
        push_token_or_quoted(&mut s, "apim.azure-api.net");
        assert_eq!(s, "apim.azure-api.net");
        let mut s = String::new();
        push_token_or_quoted(&mut s, "localhost:8080");
        assert_eq!(s, "\"localhost:8080\"");
        let c = ConnInfo::new("[::1]:5".parse().unwrap(), true, Arc::default(), true);
        assert_eq!(c.forwarded_prefix, "for=\"[::1]\";proto=https");
    }

    #[test]
    fn head_size_counts_the_wire_form() {
        let req = Request::builder()
            .uri("/a?b")
            .header("x", "yy")
            .body(())
            .unwrap();
        // "GET /a?b HTTP/1.1\r\n" (19) + "x: yy\r\n" (7) + "\r\n" (2)
        assert_eq!(head_size(&req), 28);
    }
}
