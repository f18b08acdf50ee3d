//! The gateway's APIs as data: path prefixes, backend service URLs, and the routing rule
//! (longest prefix on whole path segments, case-insensitive). The gateway moves the bytes; this
//! module only decides which API a path belongs to and checks the fixture's `[[apis]]`.

use std::net::IpAddr;

use crate::dns_name::{normalize_dns, valid_dns_name};

/// A parsed backend service URL (`https://orders.internal.contoso.com/v1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendUrl {
    /// `https` (true) or `http`.
    pub https: bool,
    /// Host name (lower-cased) or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port (explicit or the scheme's default).
    pub port: u16,
    /// Path without a trailing `/` (empty for the root).
    pub path: String,
    /// The authority as it goes into `Host` and SNI: `host` or `host:port` when not the default.
    pub authority: String,
}

/// Why a backend URL did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend `{url}`: {reason} (expected http(s)://host[:port][/path])")]
pub struct UrlError {
    /// The URL.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

// === impl BackendUrl ===

impl BackendUrl {
    /// Parses `http(s)://host[:port][/path]`; queries and fragments are refused.
    ///
    /// # Errors
    /// [`UrlError`] naming the problem.
    ///
    /// ```
    /// let u = sim::BackendUrl::parse("https://Orders.internal.contoso.com/v1/").unwrap();
    /// assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("orders.internal.contoso.com", 443, "/v1"));
    /// let u = sim::BackendUrl::parse("http://[fd00::4]:8080").unwrap();
    /// assert_eq!((u.host.as_str(), u.authority.as_str()), ("fd00::4", "[fd00::4]:8080"));
    /// ```
    pub fn parse(url: &str) -> Result<BackendUrl, UrlError> {
        let err = |reason: &str| UrlError {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let t = url.trim();
        let (https, rest) = if let Some(r) = strip_prefix_ci(t, "https://") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(t, "http://") {
            (false, r)
        } else {
            return Err(err("the scheme must be http or https"));
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(err("a service URL has no query or fragment"));
        }
        let (auth, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if auth.contains('@') {
            return Err(err("user info is not allowed"));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(after) = auth.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Err(err("unclosed `[` in an IPv6 host"));
            };
            let h = &after[..end];
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(err("bracketed host is not an IPv6 address"));
            }
            let port = match &after[end + 1..] {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| err("bad port"))?,
            };
            (h.to_string(), port)
        } else {
            let (h, port) = match auth.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().map_err(|_| err("bad port"))?),
                None => (auth, default_port),
            };
            let h = normalize_dns(h);
            if h.parse::<IpAddr>().is_err() && !valid_dns_name(&h) {
                return Err(err("the host is not a DNS name or IP address"));
            }
            (h, port)
        };
        if port == 0 {
            return Err(err("port 0"));
        }
        let host_part = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let authority = if port == default_port {
            host_part
        } else {
            format!("{host_part}:{port}")
        };
        Ok(BackendUrl {
            https,
            host,
            port,
            path: path.trim_end_matches('/').to_string(),
            authority,
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // `get`, not indexing: the prefix length may fall inside a multi-byte character
    // (`http:/ü`), which is simply not a match.
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// One API: a path prefix on the gateway and its backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Api {
    /// Name.
    pub name: String,
    /// Path prefix as written (`/orders`), without a trailing `/` (the root is `/`).
    pub path: String,
    /// The backend service URL.
    pub backend: BackendUrl,
    /// The host playing the backend (by DNS name or address), when known.
    pub host: Option<usize>,
    /// Position in the fixture's `apis` (invalid APIs are left out of the model).
    pub index: usize,
}

/// Longest path prefix on whole segments, case-insensitively: `/orders` matches `/orders` and
/// `/orders/1`, not `/ordersX`. Returns the API index and the rest of the path (`""` or `/...`).
pub fn route<'p>(apis: &[Api], path: &'p str) -> Option<(usize, &'p str)> {
    let mut best: Option<(usize, usize)> = None;
    for (i, a) in apis.iter().enumerate() {
        let n = if a.path == "/" { 0 } else { a.path.len() };
        if path.len() < n || !path.as_bytes()[..n].eq_ignore_ascii_case(&a.path.as_bytes()[..n]) {
            continue;
        }
        if n > 0 && path.len() > n && path.as_bytes()[n] != b'/' {
            continue;
        }
        if best.is_none_or(|(_, bn)| n > bn) {
            best = Some((i, n));
        }
    }
    best.map(|(i, n)| (i, &path[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(name: &str, path: &str) -> Api {
        Api {
            name: name.into(),
            path: path.into(),
            backend: BackendUrl::parse("http://x").unwrap(),
            host: None,
            index: 0,
        }
    }

    #[test]
    fn routing_is_segment_wise_longest_prefix() {
        let apis = vec![
            api("root", "/"),
            api("orders", "/orders"),
            api("v2", "/orders/v2"),
        ];
        assert_eq!(route(&apis, "/orders"), Some((1, "")));
        assert_eq!(route(&apis, "/ORDERS/1"), Some((1, "/1")));
        assert_eq!(route(&apis, "/orders/v2/x"), Some((2, "/x")));
        assert_eq!(route(&apis, "/ordersX"), Some((0, "/ordersX")));
        let no_root = vec![api("orders", "/orders")];
        assert_eq!(route(&no_root, "/ordersX"), None);
    }

    #[test]
    fn urls() {
        assert!(BackendUrl::parse("ftp://x").is_err());
        assert!(BackendUrl::parse("https://x/?q").is_err());
        assert!(BackendUrl::parse("https://x:99999").is_err());
        // A multi-byte character across the scheme's length is a bad scheme, not a panic.
        assert!(BackendUrl::parse("http:/ü").is_err());
        assert!(BackendUrl::parse("https:/é/").is_err());
        let u = BackendUrl::parse("http://api.payments.example:8080/").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.authority.as_str()),
            (8080, "", "api.payments.example:8080")
        );
    }
}
