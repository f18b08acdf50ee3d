//! Azure platform addresses: the host node's virtual IP `168.63.129.16`, the instance metadata
//! service `169.254.169.254`, Windows activation (KMS), and the three service tags that name
//! them in NSG rules (`AzurePlatformDNS`, `AzurePlatformIMDS`, `AzurePlatformLKM`).
//!
//! What Azure documents, and what this module turns into data:
//! - NSG overview, "Azure platform considerations"
//!   (<https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#azure-platform-considerations>):
//!   "Basic infrastructure services like DHCP, DNS, IMDS, and health monitoring are provided
//!   through the virtualized host IP addresses 168.63.129.16 and 169.254.169.254 … By default,
//!   these services aren't subject to the configured network security groups unless targeted by
//!   service tags specific to each service. To override this basic infrastructure communication,
//!   you can create a security rule to deny traffic by using the following service tags on your
//!   Network Security Group rules: AzurePlatformDNS, AzurePlatformIMDS, AzurePlatformLKM." and
//!   "Licensing (Key Management Service): … The request is made outbound through port 1688."
//! - "What is IP address 168.63.129.16?"
//!   (<https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16>):
//!   "The VM Agent requires outbound communication over ports 80/tcp and 32526/tcp with
//!   WireServer (168.63.129.16) … The communication on these ports with 168.63.129.16 isn't
//!   subject to the configured network security groups."; "By default DNS communication isn't
//!   subject to the configured network security groups unless targeted using the
//!   AzurePlatformDNS service tag. To block DNS traffic to Azure DNS through NSG, create an
//!   outbound rule to deny traffic to AzurePlatformDNS"; health probes originate from it and
//!   "The default network security group configuration has a rule that allows this
//!   communication. This rule uses the AzureLoadBalancer service tag."
//! - Service tags overview (<https://learn.microsoft.com/azure/virtual-network/service-tags-overview>):
//!   AzurePlatformDNS "The basic infrastructure (default) DNS service", AzurePlatformIMDS "Azure
//!   Instance Metadata Service (IMDS)", AzurePlatformLKM "Windows licensing or key management
//!   service" — Outbound, not regional. The downloadable `ServiceTags_Public` file does not list
//!   them, so their addresses and ports are named assumptions here.
//!
//! The walk (`flow/walk/platform.rs`) asks [`Exemption::of`] which exemption a flow would get
//! and whether a Deny rule naming the exemption's tag takes it away.

use std::net::{IpAddr, Ipv4Addr};

use crate::cidr::Cidr;
use crate::flow::Flow;
use crate::proto::Protocol;

/// The host node's virtual IP (WireServer, Azure DNS, DHCP, health probes).
pub const HOST_VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16));
/// The instance metadata service.
pub const IMDS: IpAddr = IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254));
/// Azure's KMS hosts for Windows activation, `azkms.core.windows.net` (20.118.99.224,
/// 40.83.235.53) and `kms.core.windows.net` (23.102.135.246), as listed by "Windows activation
/// fails in forced tunneling scenario"
/// (<https://learn.microsoft.com/troubleshoot/azure/virtual-machines/windows/custom-routes-enable-kms-activation>).
/// The addresses of `AzurePlatformLKM` (`ASSUMPTION_PLATFORM_LKM_TAG`).
pub const KMS_HOSTS: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(20, 118, 99, 224)),
    IpAddr::V4(Ipv4Addr::new(40, 83, 235, 53)),
    IpAddr::V4(Ipv4Addr::new(23, 102, 135, 246)),
];
/// Azure DNS at the host VIP: TCP and UDP 53.
pub const DNS_PORT: u16 = 53;
/// IMDS answers HTTP on TCP 80 (`ASSUMPTION_PLATFORM_IMDS_TAG`).
pub const IMDS_PORT: u16 = 80;
/// KMS activation: TCP 1688 (NSG overview, "Licensing (Key Management Service)").
pub const KMS_PORT: u16 = 1688;
/// WireServer ports the VM agent uses ("What is IP address 168.63.129.16?").
pub const WIRESERVER_PORTS: [u16; 2] = [80, 32526];

/// A platform service tag: valid in NSG rules although `ServiceTags_Public` does not list it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlatformTag {
    /// `AzurePlatformDNS`: 168.63.129.16/32 (`ASSUMPTION_PLATFORM_DNS_TAG`).
    Dns,
    /// `AzurePlatformIMDS`: 169.254.169.254/32 (`ASSUMPTION_PLATFORM_IMDS_TAG`).
    Imds,
    /// `AzurePlatformLKM`: the KMS hosts (`ASSUMPTION_PLATFORM_LKM_TAG`).
    Lkm,
}

impl PlatformTag {
    /// Every platform tag.
    pub const ALL: [PlatformTag; 3] = [PlatformTag::Dns, PlatformTag::Imds, PlatformTag::Lkm];

    /// Recognises a platform tag (case-insensitive, like every tag).
    pub fn parse(s: &str) -> Option<PlatformTag> {
        let t = s.trim();
        PlatformTag::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(t))
    }

    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PlatformTag::Dns => "AzurePlatformDNS",
            PlatformTag::Imds => "AzurePlatformIMDS",
            PlatformTag::Lkm => "AzurePlatformLKM",
        }
    }

    /// The addresses the tag stands for in a rule.
    pub fn addresses(self) -> &'static [IpAddr] {
        match self {
            PlatformTag::Dns => std::slice::from_ref(&HOST_VIP),
            PlatformTag::Imds => std::slice::from_ref(&IMDS),
            PlatformTag::Lkm => &KMS_HOSTS,
        }
    }

    /// The addresses as host prefixes.
    pub fn prefixes(self) -> impl Iterator<Item = Cidr> {
        self.addresses().iter().map(|a| Cidr::host(*a))
    }
}

/// Which platform exemption a flow from a VM gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exemption {
    /// Azure DNS: TCP/UDP 53 to 168.63.129.16. Removed by a Deny on `AzurePlatformDNS`.
    Dns,
    /// IMDS: TCP 80 to 169.254.169.254. Removed by a Deny on `AzurePlatformIMDS`.
    Imds,
    /// Windows activation: TCP 1688 to a KMS host. Removed by a Deny on `AzurePlatformLKM`.
    Lkm,
    /// DHCP (UDP 68 → 67) to the host node (unicast to 168.63.129.16 or broadcast): no tag,
    /// always exempt.
    Dhcp,
    /// The VM agent to WireServer (TCP 80, 32526 at 168.63.129.16): no tag, always exempt.
    WireServer,
}

impl Exemption {
    /// The exemption a flow's 5-tuple would get (where it comes from is the walk's business).
    pub fn of(flow: &Flow) -> Option<Exemption> {
        let dst = flow.destination;
        let dport = flow.destination_port;
        match flow.protocol {
            Protocol::Udp | Protocol::Tcp if dst == HOST_VIP && dport == Some(DNS_PORT) => {
                Some(Exemption::Dns)
            }
            Protocol::Udp
                if flow.source_port == Some(68)
                    && dport == Some(67)
                    && (dst == HOST_VIP || dst == IpAddr::V4(Ipv4Addr::BROADCAST)) =>
            {
                Some(Exemption::Dhcp)
            }
            Protocol::Tcp
                if dst == HOST_VIP && dport.is_some_and(|p| WIRESERVER_PORTS.contains(&p)) =>
            {
                Some(Exemption::WireServer)
            }
            Protocol::Tcp if dst == IMDS && dport == Some(IMDS_PORT) => Some(Exemption::Imds),
            Protocol::Tcp if KMS_HOSTS.contains(&dst) && dport == Some(KMS_PORT) => {
                Some(Exemption::Lkm)
            }
            _ => None,
        }
    }

    /// The tag whose Deny rule removes the exemption; `None` when nothing can.
    pub fn tag(self) -> Option<PlatformTag> {
        match self {
            Exemption::Dns => Some(PlatformTag::Dns),
            Exemption::Imds => Some(PlatformTag::Imds),
            Exemption::Lkm => Some(PlatformTag::Lkm),
            Exemption::Dhcp | Exemption::WireServer => None,
        }
    }

    /// Why the flow is exempt, for `check`'s explanation.
    pub fn text(self) -> &'static str {
        match self {
            Exemption::Dns => "DNS to Azure DNS at 168.63.129.16 (TCP/UDP 53) is not subject to NSG rules unless a Deny rule names the AzurePlatformDNS service tag (NSG overview, \"Azure platform considerations\"; \"What is IP address 168.63.129.16?\")",
            Exemption::Imds => "the instance metadata service at 169.254.169.254 is not subject to NSG rules unless a Deny rule names the AzurePlatformIMDS service tag (NSG overview, \"Azure platform considerations\")",
            Exemption::Lkm => "Windows activation (KMS, TCP 1688) is a platform rule, not subject to NSG rules unless a Deny rule names the AzurePlatformLKM service tag (NSG overview, \"Azure platform considerations\")",
            Exemption::Dhcp => "DHCP (UDP 68 to 67) is answered by the host node and is never subject to NSG rules; no service tag can block it (NSG overview, \"Azure platform considerations\")",
            Exemption::WireServer => "the VM agent's traffic to WireServer (168.63.129.16, TCP 80 and 32526) is not subject to NSG rules (\"What is IP address 168.63.129.16?\")",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(protocol: Protocol, sport: u16, dst: IpAddr, dport: u16) -> Flow {
        Flow {
            protocol,
            source: "10.0.1.4".parse().unwrap(),
            source_port: Some(sport),
            destination: dst,
            destination_port: Some(dport),
        }
    }

    #[test]
    fn tags_parse_case_insensitively() {
        assert_eq!(
            PlatformTag::parse("azureplatformdns"),
            Some(PlatformTag::Dns)
        );
        assert_eq!(
            PlatformTag::parse(" AzurePlatformLKM "),
            Some(PlatformTag::Lkm)
        );
        assert_eq!(PlatformTag::parse("AzurePlatform"), None);
        // LKM is not the host VIP.
        assert!(!PlatformTag::Lkm.addresses().contains(&HOST_VIP));
    }

    #[test]
    fn exemptions_by_five_tuple() {
        use Protocol::{Tcp, Udp};
        assert_eq!(
            Exemption::of(&f(Udp, 5000, HOST_VIP, 53)),
            Some(Exemption::Dns)
        );
        assert_eq!(
            Exemption::of(&f(Tcp, 5000, HOST_VIP, 53)),
            Some(Exemption::Dns)
        );
        assert_eq!(Exemption::of(&f(Tcp, 5000, HOST_VIP, 443)), None);
        assert_eq!(
            Exemption::of(&f(Udp, 68, HOST_VIP, 67)),
            Some(Exemption::Dhcp)
        );
        assert_eq!(
            Exemption::of(&f(Udp, 68, "255.255.255.255".parse().unwrap(), 67)),
            Some(Exemption::Dhcp)
        );
        assert_eq!(
            Exemption::of(&f(Udp, 68, "10.0.2.4".parse().unwrap(), 67)),
            None
        );
        assert_eq!(
            Exemption::of(&f(Tcp, 5000, HOST_VIP, 32526)),
            Some(Exemption::WireServer)
        );
        assert_eq!(
            Exemption::of(&f(Tcp, 5000, IMDS, 80)),
            Some(Exemption::Imds)
        );
        assert_eq!(Exemption::of(&f(Udp, 5000, IMDS, 80)), None);
        assert_eq!(
            Exemption::of(&f(Tcp, 5000, KMS_HOSTS[0], 1688)),
            Some(Exemption::Lkm)
        );
        // KMS is not at the host VIP.
        assert_eq!(Exemption::of(&f(Tcp, 5000, HOST_VIP, 1688)), None);
        assert_eq!(Exemption::Dhcp.tag(), None);
        assert_eq!(Exemption::Dns.tag(), Some(PlatformTag::Dns));
    }
}
