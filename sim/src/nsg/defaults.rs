//! The six default rules Azure appends to every NSG (priorities 65000–65500), with the exact
//! names and descriptions the ARM API returns.

use super::{AddressSpec, SecurityRule, UnknownFields};
use crate::proto::{Access, Direction, PortSet, RuleProtocol};
use crate::tags::VirtualTag;

/// The six default rules, with the exact names the ARM API returns.
pub fn default_rules() -> Vec<SecurityRule> {
    let d = |name: &str,
             priority,
             direction,
             access,
             src: AddressSpec,
             dst: AddressSpec,
             desc: &str| SecurityRule {
        name: name.to_string(),
        priority,
        direction,
        access,
        protocol: RuleProtocol::Any,
        source: src,
        source_ports: PortSet::any(),
        destination: dst,
        destination_ports: PortSet::any(),
        is_default: true,
        description: Some(desc.to_string()),
        unknown: UnknownFields::default(),
        index: None,
    };
    use Access::{Allow, Deny};
    use Direction::{Inbound, Outbound};
    use VirtualTag::{AzureLoadBalancer, Internet, VirtualNetwork};
    vec![
        d(
            "AllowVnetInBound",
            65000,
            Inbound,
            Allow,
            AddressSpec::tag(VirtualNetwork),
            AddressSpec::tag(VirtualNetwork),
            "Allow inbound traffic from all VMs in VNET",
        ),
        d(
            "AllowAzureLoadBalancerInBound",
            65001,
            Inbound,
            Allow,
            AddressSpec::tag(AzureLoadBalancer),
            AddressSpec::any(),
            "Allow inbound traffic from azure load balancer",
        ),
        d(
            "DenyAllInBound",
            65500,
            Inbound,
            Deny,
            AddressSpec::any(),
            AddressSpec::any(),
            "Deny all inbound traffic",
        ),
        d(
            "AllowVnetOutBound",
            65000,
            Outbound,
            Allow,
            AddressSpec::tag(VirtualNetwork),
            AddressSpec::tag(VirtualNetwork),
            "Allow outbound traffic from all VMs to all VMs in VNET",
        ),
        d(
            "AllowInternetOutBound",
            65001,
            Outbound,
            Allow,
            AddressSpec::any(),
            AddressSpec::tag(Internet),
            "Allow outbound traffic from all VMs to Internet",
        ),
        d(
            "DenyAllOutBound",
            65500,
            Outbound,
            Deny,
            AddressSpec::any(),
            AddressSpec::any(),
            "Deny all outbound traffic",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_exact() {
        let names: Vec<String> = default_rules()
            .iter()
            .map(SecurityRule::qualified_name)
            .collect();
        assert_eq!(
            names,
            [
                "defaultSecurityRules/AllowVnetInBound",
                "defaultSecurityRules/AllowAzureLoadBalancerInBound",
                "defaultSecurityRules/DenyAllInBound",
                "defaultSecurityRules/AllowVnetOutBound",
                "defaultSecurityRules/AllowInternetOutBound",
                "defaultSecurityRules/DenyAllOutBound"
            ]
        );
    }
}
