//! Build stage: the gateway's APIs checked against the hosts (backends named by DNS name or
//! address, a service on the backend port, a matching scheme, unique and well-formed paths).

use std::net::IpAddr;

use crate::api::{Api, BackendUrl};
use crate::finding::{Finding, FindingCode};
use crate::fixture::{ApiFile, HostFile};
use crate::source::Location;
use crate::topology::Host;

/// Validates `[[apis]]` against the hosts; `locate` places a finding about the API at `index`.
/// A backend addressed to an Azure Firewall's public address (`published`) names no host: the
/// firewall's DNAT rules decide where its flows go (the walk), so it is not an unknown host.
pub(crate) fn build_apis(
    files: &[ApiFile],
    hosts: &[Host],
    left_out: &[&HostFile],
    published: &[IpAddr],
    locate: impl Fn(usize) -> Option<Location>,
) -> (Vec<Api>, Vec<Finding>) {
    let mut apis: Vec<Api> = Vec::new();
    let mut f = Vec::new();
    for (index, a) in files.iter().enumerate() {
        let start = f.len();
        if let Some(api) = build_api(a, index, &apis, hosts, left_out, published, &mut f) {
            apis.push(api);
        }
        let at = locate(index);
        for x in &mut f[start..] {
            x.location = at.clone();
        }
    }
    (apis, f)
}

/// One API checked against the APIs before it and the hosts; `None` when it is left out.
fn build_api(
    a: &ApiFile,
    index: usize,
    apis: &[Api],
    hosts: &[Host],
    left_out: &[&HostFile],
    published: &[IpAddr],
    f: &mut Vec<Finding>,
) -> Option<Api> {
    let subject = format!("apis/{}", a.name);
    let path = a.path.trim();
    if !path.starts_with('/') || path.contains('?') || path.contains('#') || path.contains("//") {
        f.push(Finding::new(
            FindingCode::ApiPathInvalid,
            &subject,
            format!("path `{path}` must start with `/` and hold only path segments"),
        ));
        return None;
    }
    let norm = if path == "/" {
        "/".to_string()
    } else {
        path.trim_end_matches('/').to_string()
    };
    if let Some(other) = apis.iter().find(|o| o.path.eq_ignore_ascii_case(&norm)) {
        f.push(Finding::new(
            FindingCode::ApiPathDuplicate,
            &subject,
            format!("path `{norm}` is already used by API `{}`", other.name),
        ));
        return None;
    }
    let backend = match BackendUrl::parse(&a.backend) {
        Ok(b) => b,
        Err(e) => {
            f.push(Finding::new(
                FindingCode::ApiBackendInvalid,
                &subject,
                e.to_string(),
            ));
            return None;
        }
    };
    let host = match backend.host.parse::<IpAddr>() {
        Ok(ip) => hosts
            .iter()
            .position(|h| h.address == ip || h.public_address == Some(ip)),
        // A private endpoint serves its target's public name too (`private_link_fqdn`).
        Err(_) => hosts.iter().position(|h| {
            h.dns.contains(&backend.host)
                || h.private_link_fqdn.as_deref() == Some(backend.host.as_str())
        }),
    };
    let claimed_by_left_out = || {
        left_out
            .iter()
            .any(|h| match backend.host.parse::<IpAddr>() {
                Ok(ip) => h.address.trim().parse() == Ok(ip),
                Err(_) => h
                    .dns
                    .iter()
                    .any(|d| crate::topology::normalize_dns(d) == backend.host),
            })
    };
    let to_firewall = || {
        backend
            .host
            .parse::<IpAddr>()
            .is_ok_and(|ip| published.contains(&ip))
    };
    match host {
        // The host is declared but left out for its own (reported) error: not a second finding.
        None if claimed_by_left_out() => {}
        // A firewall's public address: its DNAT rules translate the flow (or drop it).
        None if to_firewall() => {}
        None => f.push(Finding::new(
            FindingCode::ApiBackendUnknownHost,
            &subject,
            format!(
                "backend host `{}` is neither a DNS name nor an address of any [[hosts]] entry{}",
                backend.host,
                super::did_you_mean(
                    &backend.host,
                    hosts.iter().flat_map(|h| h.dns.iter().map(String::as_str))
                )
            ),
        )),
        Some(h) => match hosts[h].services.iter().find(|s| s.port == backend.port) {
            None => f.push(Finding::new(
                FindingCode::ApiBackendNoService,
                &subject,
                format!(
                    "host `{}` has no [[hosts.services]] on port {}",
                    hosts[h].name, backend.port
                ),
            )),
            Some(s) if s.tls != backend.https => f.push(Finding::new(
                FindingCode::ApiBackendSchemeMismatch,
                &subject,
                format!(
                    "backend scheme is {} but the service on {}:{} has tls = {}",
                    if backend.https { "https" } else { "http" },
                    hosts[h].name,
                    s.port,
                    s.tls
                ),
            )),
            Some(_) => {}
        },
    }
    Some(Api {
        name: a.name.clone(),
        path: norm,
        backend,
        host,
        index,
    })
}
