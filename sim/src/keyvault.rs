//! Key Vault dependency flows of the preflight (`KEYVAULT_UNREACHABLE`). A named value (or
//! certificate) whose secret lives in Key Vault is read by the gateway itself; since instances
//! created on or after 1 December 2025 (all instances from 15 March 2026) the gateway cannot use
//! Key Vault's "trusted services" exception (Learn, "Trusted service connectivity retirement
//! (March 2026)"), so it needs network line of sight: the vault's name must resolve from the
//! instance, the address it resolves to must accept it (a public address is refused when the
//! vault's public network access is Disabled), and the NSG path on TCP 443 must allow it — to
//! the vault and to Microsoft Entra ID (`AzureActiveDirectory`), which the managed identity
//! needs (Learn, "Use named values in Azure API Management policies", Key Vault network
//! requirements: allow outbound to the AzureKeyVault and AzureActiveDirectory service tags).
//!
//! The question goes through the one front door, [`Topology::ask`]: the name resolved as the
//! gateway resolves it, the flow walked as `check` walks it.

use std::net::IpAddr;

use crate::ask::{Destination, Question};
use crate::finding::{Finding, FindingCode};
use crate::flow::VerdictCode;
use crate::proto::Protocol;
use crate::topology::{normalize_dns, Topology};

/// The port the gateway reads secrets on.
const HTTPS: u16 = 443;
/// The service tag Microsoft Entra ID's endpoints are in.
const ENTRA_TAG: &str = "AzureActiveDirectory";

/// The vault host name of a secret identifier `https://kv1.vault.azure.net/secrets/x[/v]`.
pub(crate) fn vault_host(secret: &str) -> Option<String> {
    let rest = secret.trim().strip_prefix("https://")?;
    let host = rest.split(['/', '?', '#']).next()?;
    let host = host.split(':').next()?;
    (!host.is_empty()).then(|| normalize_dns(host))
}

/// Every `KEYVAULT_UNREACHABLE` finding of the topology.
pub(crate) fn check(t: &Topology) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(a) = t.apim() else { return out };
    if a.named_values.is_empty() {
        return out;
    }
    let Some(source) = t.apim_source() else {
        return out;
    };
    let at = t.locate("/apim");
    for (name, secret) in &a.named_values {
        let subject = format!("apim/named_values/{name}");
        let Some(host) = vault_host(secret) else {
            out.push(
                Finding::new(
                    FindingCode::KeyvaultUnreachable,
                    &subject,
                    format!("named value `{name}`: `{secret}` is not a Key Vault secret identifier (https://VAULT.vault.azure.net/secrets/NAME); blocking step: dns"),
                )
                .at(at.clone()),
            );
            continue;
        };
        if let Some(step) = blocking_step(t, source, &host) {
            out.push(
                Finding::new(
                    FindingCode::KeyvaultUnreachable,
                    &subject,
                    format!("named value `{name}` reads its secret from Key Vault `{host}`, which the instance cannot reach; blocking step: {step}"),
                )
                .at(at.clone()),
            );
        }
    }
    if let Some(step) = entra_blocked(t, source) {
        let names: Vec<&str> = a.named_values.iter().map(|(n, _)| n.as_str()).collect();
        out.push(
            Finding::new(
                FindingCode::KeyvaultUnreachable,
                "apim",
                format!("named value(s) {} need Microsoft Entra ID (the managed identity's token) to read Key Vault; blocking step: {step}", names.join(", ")),
            )
            .at(at),
        );
    }
    out
}

/// Why the vault `host` is unreachable from `source` on 443, or `None` when it is reachable.
fn blocking_step(t: &Topology, source: IpAddr, host: &str) -> Option<String> {
    let v = t.ask(&Question {
        protocol: Protocol::Tcp,
        source,
        source_port: Some(60000),
        destination: Destination::Name {
            name: host.to_string(),
            host_names: false,
        },
        destination_port: Some(HTTPS),
    });
    if v.code == VerdictCode::DnsFailure {
        return Some(format!("dns ({})", v.detail));
    }
    if v.code == VerdictCode::PublicAccessDisabled {
        // The walk's answer (flow/walk.rs): the vault refuses its public address.
        let addr = v
            .resolved
            .as_ref()
            .and_then(|r| r.address)
            .map_or_else(String::new, |a| format!(" ({a})"));
        return Some(format!(
            "public_access_disabled (`{host}` resolves to its public address{addr} from the instance, and the vault's public network access is Disabled; link its privatelink zone to the instance's VNet)"
        ));
    }
    match v.code {
        VerdictCode::NsgDenied => {
            let rule = v.decided_by.as_ref().map_or_else(String::new, |d| {
                format!(" by {} / {} (priority {})", d.nsg, d.rule, d.priority)
            });
            Some(format!("nsg (outbound TCP 443 is denied{rule})"))
        }
        VerdictCode::Allowed => None,
        other => Some(format!("{other} ({})", v.detail)),
    }
}

/// Whether TCP 443 to `AzureActiveDirectory` (first and last address of each prefix, as the
/// dependency check samples them) is denied: the step naming the rule.
fn entra_blocked(t: &Topology, source: IpAddr) -> Option<String> {
    let tag = t.service_tags().get(ENTRA_TAG)?;
    tag.prefixes
        .iter()
        .filter(|p| p.is_ipv4() == source.is_ipv4())
        .find_map(|p| {
            [p.first(), p.last()].into_iter().find_map(|dst| {
                let d = t.decide(&crate::flow::Flow::tcp(source, 60000, dst, HTTPS));
                (d.code == VerdictCode::NsgDenied).then(|| {
                    let rule = d.decided_by.map_or_else(String::new, |r| {
                        let i = t.rule_info(r);
                        format!(" by {} / {} (priority {})", i.nsg, i.rule, i.priority)
                    });
                    format!("nsg (outbound TCP 443 to {ENTRA_TAG} {dst} is denied{rule})")
                })
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_hosts() {
        assert_eq!(
            vault_host("https://kv1.vault.azure.net/secrets/x").as_deref(),
            Some("kv1.vault.azure.net")
        );
        assert_eq!(
            vault_host("https://KV1.vault.azure.net:443/secrets/x/abc").as_deref(),
            Some("kv1.vault.azure.net")
        );
        assert_eq!(vault_host("kv1.vault.azure.net/secrets/x"), None);
    }
}
