//! The APIM v2 preflight: every requirement of "Integrate an Azure API Management instance with
//! a private virtual network for outbound connections" (spec §3.2, R1–R8) and of v2 injection,
//! checked at once and reported as findings. The dependency check (`DEPENDENCY_BLOCKED`) is
//! decided by the NSG engine itself, not by pattern-matching rules.

use crate::finding::{Finding, FindingCode};
use crate::fixture::{NetworkMode, Sku};
use crate::flow::{Flow, VerdictCode};
use crate::source::Location;
use crate::topology::Topology;

/// Smallest subnet accepted for v2 integration or injection: /27 (32 addresses).
/// Source: Learn, "Integrate an Azure API Management instance with a private virtual network for
/// outbound connections" (ms.date 12/04/2025): "Minimum: /27 (32 addresses)".
pub const MIN_PREFIX_LEN: u8 = 27;
/// Recommended subnet size: /24 ("to accommodate scaling of API Management instance").
pub const RECOMMENDED_PREFIX_LEN: u8 = 24;
/// Delegation required for v2 outbound integration.
pub const INTEGRATION_DELEGATION: &str = "Microsoft.Web/serverFarms";
/// Delegation required for Premium v2 injection (Learn, "Inject an Azure API Management instance
/// in a private virtual network - Premium v2 tier").
pub const INJECTION_DELEGATION: &str = "Microsoft.Web/hostingEnvironments";
/// The resource provider that must be registered to delegate the subnet.
pub const REQUIRED_PROVIDER: &str = "Microsoft.Web";
/// Actions the enabling principal needs on the subnet or above (spec §3.2 R8).
pub const REQUIRED_ACTIONS: [&str; 3] = [
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Network/virtualNetworks/subnets/read",
    "Microsoft.Network/virtualNetworks/subnets/join/action",
];
/// Service tags of the dependencies that must be reachable on TCP 443 (APIM NSG include, 12/01/2025).
pub const DEPENDENCY_TAGS: [&str; 2] = ["Storage", "AzureKeyVault"];
/// Addresses per scale unit in a Premium v2 injection subnet, plus the fixed overhead (5
/// Azure-reserved + 1 internal load balancer). Source: "Inject ... Premium v2 tier", IP table.
pub const INJECTION_IPS_PER_UNIT: u128 = 2;
/// Fixed addresses of an injection subnet besides the units.
pub const INJECTION_FIXED_IPS: u128 = 6;

/// Most scale units of a tier, where documented (v2 tiers: Learn, API Management v2 limits).
pub fn max_units(sku: Sku) -> Option<u32> {
    match sku {
        Sku::BasicV2 | Sku::StandardV2 => Some(10),
        Sku::PremiumV2 => Some(30),
        _ => None,
    }
}

fn norm_region(r: &str) -> String {
    r.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Case-insensitive glob with `*` wildcards, as RBAC actions use them.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let p = pattern.trim().to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == a;
    }
    let mut rest = a.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Runs the preflight over a built topology.
pub(crate) fn preflight(t: &Topology) -> Vec<Finding> {
    let mut f = Vec::new();
    let Some(a) = t.apim() else { return f };
    let apim_at = t.locate("/apim");
    let push = |f: &mut Vec<Finding>, code, subject: &str, at: &Option<Location>, msg: String| {
        f.push(Finding::new(code, subject, msg).at(at.clone()))
    };

    if let Some(max) = max_units(a.sku) {
        if a.capacity > max {
            push(
                &mut f,
                FindingCode::CapacityExceedsTier,
                "apim",
                &apim_at,
                format!(
                    "capacity {} exceeds the {} maximum of {max} units",
                    a.capacity, a.sku
                ),
            );
        }
    }
    if let Some(prev) = a.previous_mode {
        let switch = matches!(
            (prev, a.mode),
            (NetworkMode::Injection, NetworkMode::Integration)
                | (NetworkMode::Integration, NetworkMode::Injection)
                | (NetworkMode::None, NetworkMode::Injection)
        );
        if switch {
            push(&mut f, FindingCode::ModeSwitchNotSupported, "apim", &apim_at, format!(
                "changing virtual_network from {prev} to {} is not supported: you can't switch between injection and integration, and injection can be chosen only when the instance is created",
                a.mode
            ));
        }
    }
    let (needed_delegation, mode_name) = match a.mode {
        NetworkMode::None => return f,
        // Classic VNet injection (Developer and Premium): not the v2 preflight.
        NetworkMode::Classic => {
            if !matches!(a.sku, Sku::Developer | Sku::Premium) {
                push(&mut f, FindingCode::SkuNotSupported, "apim", &apim_at, format!(
                    "classic VNet injection is available only in the Developer and Premium tiers, not {}",
                    a.sku
                ));
            }
            return f;
        }
        NetworkMode::Integration => {
            if !matches!(a.sku, Sku::StandardV2 | Sku::PremiumV2) {
                push(&mut f, FindingCode::SkuNotSupported, "apim", &apim_at, format!(
                    "outbound VNet integration is available only in the Standard v2 and Premium v2 tiers, not {}{}",
                    a.sku,
                    if matches!(a.sku, Sku::Developer | Sku::Premium) { " (classic tiers use classic VNet injection)" } else { "" }
                ));
            }
            (INTEGRATION_DELEGATION, "integration")
        }
        NetworkMode::Injection => {
            if a.sku != Sku::PremiumV2 {
                push(
                    &mut f,
                    FindingCode::SkuNotSupported,
                    "apim",
                    &apim_at,
                    format!(
                        "v2 VNet injection is available only in the Premium v2 tier, not {}",
                        a.sku
                    ),
                );
            }
            (INJECTION_DELEGATION, "injection")
        }
    };
    if !t
        .registered_providers
        .iter()
        .any(|p| p.trim().eq_ignore_ascii_case(REQUIRED_PROVIDER))
    {
        push(&mut f, FindingCode::ProviderNotRegistered, "apim", &apim_at, format!(
            "the {REQUIRED_PROVIDER} resource provider must be registered in subscription `{}` to delegate the subnet",
            t.subscription_id()
        ));
    }
    for action in REQUIRED_ACTIONS {
        if !t
            .principal_actions
            .iter()
            .any(|p| action_matches(p, action))
        {
            push(
                &mut f,
                FindingCode::PermissionMissing,
                "apim",
                &apim_at,
                format!("the principal lacks `{action}` on the subnet or a parent scope"),
            );
        }
    }
    let Some((vi, si)) = a.subnet else { return f };
    let vnet = &t.vnets()[vi];
    let subnet = &vnet.subnets[si];
    let spath = t.subnet_path(vi, si);
    let subnet_at = t.locate(&format!("/vnets/{vi}/subnets/{}", subnet.index));
    if norm_region(&vnet.region) != norm_region(&a.region) {
        push(
            &mut f,
            FindingCode::RegionMismatch,
            &spath,
            &subnet_at,
            format!(
                "VNet `{}` is in {} but the instance is in {}; the VNet must be in the same region",
                vnet.name, vnet.region, a.region
            ),
        );
    }
    if vnet.subscription != a.subscription {
        push(
            &mut f,
            FindingCode::SubscriptionMismatch,
            &spath,
            &subnet_at,
            format!(
                "VNet `{}` is in subscription `{}` but the instance is in `{}`; they must match",
                vnet.name, vnet.subscription, a.subscription
            ),
        );
    }
    let mut others: Vec<String> = t
        .hosts()
        .iter()
        .filter(|h| h.placement == Some((vi, si)))
        .map(|h| format!("hosts/{}", h.name))
        .collect();
    others.extend(subnet.resources.iter().cloned());
    if !others.is_empty() {
        push(&mut f, FindingCode::SubnetNotDedicated, &spath, &subnet_at, format!(
            "the {mode_name} subnet can be used only by a single API Management instance, but it also holds: {}",
            others.join(", ")
        ));
    }
    if let Some(p) = subnet.prefixes.iter().find(|p| p.is_ipv4()) {
        if p.prefix_len() > MIN_PREFIX_LEN {
            push(
                &mut f,
                FindingCode::SubnetTooSmall,
                &spath,
                &subnet_at,
                format!("{p} is smaller than the minimum /27 (32 addresses)"),
            );
        } else if p.prefix_len() > RECOMMENDED_PREFIX_LEN {
            push(&mut f, FindingCode::SubnetBelowRecommended, &spath, &subnet_at, format!("{p} is smaller than the recommended /24 (256 addresses) to accommodate scaling"));
        }
        if a.mode == NetworkMode::Injection {
            let needed = INJECTION_FIXED_IPS + INJECTION_IPS_PER_UNIT * u128::from(a.capacity);
            if needed > p.size() {
                push(&mut f, FindingCode::SubnetCapacityInsufficient, &spath, &subnet_at, format!(
                    "{} units need {needed} addresses (2 per unit + 5 reserved + 1 load balancer) but {p} has {}",
                    a.capacity,
                    p.size()
                ));
            }
        }
    }
    if subnet.nsg.is_none() {
        push(
            &mut f,
            FindingCode::SubnetNsgMissing,
            &spath,
            &subnet_at,
            format!("you must associate a network security group with the {mode_name} subnet"),
        );
    }
    if !subnet.delegated_to(needed_delegation) {
        push(
            &mut f,
            FindingCode::SubnetDelegationMissing,
            &spath,
            &subnet_at,
            format!(
                "the subnet needs to be delegated to {needed_delegation} (delegations: {})",
                if subnet.delegations.is_empty() {
                    "none".to_string()
                } else {
                    subnet.delegations.join(", ")
                }
            ),
        );
    }
    if let Some(src) = t.apim_source() {
        dependency_check(t, src, &a.region, (&spath, &subnet_at), &mut f);
    }
    f.extend(crate::ask::unresolvable_backends(t));
    f
}

fn dependency_check(
    t: &Topology,
    src: std::net::IpAddr,
    region: &str,
    (subject, at): (&str, &Option<Location>),
    f: &mut Vec<Finding>,
) {
    let tags = t.service_tags();
    for base in DEPENDENCY_TAGS {
        let tag = tags
            .regional(base, &norm_region(region))
            .or_else(|| tags.get(base));
        let Some(tag) = tag else { continue };
        let denied = tag
            .prefixes
            .iter()
            .filter(|p| p.is_ipv4() == src.is_ipv4())
            .find_map(|p| {
                [p.first(), p.last()].into_iter().find_map(|dst| {
                    let d = t.decide(&Flow::tcp(src, 60000, dst, 443));
                    (d.code == VerdictCode::NsgDenied).then_some((dst, d))
                })
            });
        if let Some((dst, d)) = denied {
            let rule = d.decided_by.map(|r| t.rule_info(r));
            let by = rule.map_or_else(String::new, |r| {
                format!(" by {} / {} (priority {})", r.nsg, r.rule, r.priority)
            });
            f.push(Finding::new(
                FindingCode::DependencyBlocked,
                subject,
                format!(
                    "outbound TCP 443 from the instance ({src}) to {} ({dst}) is denied{by}; API Management depends on Azure Storage and Azure Key Vault",
                    tag.name
                ),
            )
            .at(at.clone()));
        }
    }
    // Azure DNS at 168.63.129.16 is exempt from NSG rules, so a deny-all outbound NSG does not
    // block it; only a Deny naming AzurePlatformDNS does (NSG overview, "Azure platform
    // considerations"), and the instance then resolves no backend name through Azure DNS.
    if src.is_ipv4() {
        let dns = Flow {
            protocol: crate::proto::Protocol::Udp,
            source: src,
            source_port: Some(60000),
            destination: crate::platform::HOST_VIP,
            destination_port: Some(crate::platform::DNS_PORT),
        };
        let d = t.decide(&dns);
        if d.code == VerdictCode::NsgDenied {
            let by = d.decided_by.map_or_else(String::new, |r| {
                let r = t.rule_info(r);
                format!(" by {} / {} (priority {})", r.nsg, r.rule, r.priority)
            });
            f.push(
                Finding::new(
                    FindingCode::DependencyBlocked,
                    subject,
                    format!("outbound DNS (UDP 53) from the instance ({src}) to Azure DNS at 168.63.129.16 is denied{by}: a Deny rule naming AzurePlatformDNS takes away the platform exemption, and the instance resolves names through Azure DNS"),
                )
                .at(at.clone()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_globs() {
        assert!(action_matches(
            "*",
            "Microsoft.Network/virtualNetworks/read"
        ));
        assert!(action_matches(
            "Microsoft.Network/*",
            "microsoft.network/virtualNetworks/subnets/join/action"
        ));
        assert!(action_matches(
            "Microsoft.Network/virtualNetworks/*/read",
            "Microsoft.Network/virtualNetworks/subnets/read"
        ));
        assert!(!action_matches(
            "Microsoft.Web/*",
            "Microsoft.Network/virtualNetworks/read"
        ));
        assert!(!action_matches(
            "Microsoft.Network/virtualNetworks/read",
            "Microsoft.Network/virtualNetworks/subnets/read"
        ));
    }
}
