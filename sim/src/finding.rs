//! Findings (what `validate` reports) and assumptions (behaviour the Azure docs do not settle).
//!
//! Every finding has a stable [`FindingCode`] (`SCREAMING_SNAKE_CASE` in output), a severity, the
//! resource path it is about, a message naming the Azure requirement, and the Learn URL of that
//! requirement. Tests and scripts match on the code, never on the message. The build stage also
//! records where the subject is written ([`Finding::location`], see [`crate::source`]).

use std::fmt;

use serde::Serialize;

use crate::source::Location;

/// How bad a finding is: errors make a fixture invalid, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The configuration would be refused by Azure, or cannot be simulated.
    Error,
    /// Allowed, but probably not what the user wants.
    Warning,
}

const NSG_OV: &str =
    "https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview";
const VNET_FAQ: &str = "https://learn.microsoft.com/azure/virtual-network/virtual-networks-faq";
const LIMITS: &str = "https://learn.microsoft.com/azure/azure-resource-manager/management/azure-subscription-service-limits#azure-resource-manager-virtual-networking-limits";
const PEERING: &str =
    "https://learn.microsoft.com/azure/virtual-network/virtual-network-peering-overview";
const APIM_INTEG: &str = "https://learn.microsoft.com/azure/api-management/integrate-vnet-outbound";
const APIM_INJECT: &str = "https://learn.microsoft.com/azure/api-management/inject-vnet-v2";
const APIM_V2: &str = "https://learn.microsoft.com/azure/api-management/v2-service-tiers-overview";
const ASG: &str = "https://learn.microsoft.com/azure/virtual-network/application-security-groups";
const TAGS: &str = "https://learn.microsoft.com/azure/virtual-network/service-tags-overview";
const PE_POLICIES: &str =
    "https://learn.microsoft.com/azure/private-link/disable-private-endpoint-network-policy";
const PRIVATE_DNS: &str = "https://learn.microsoft.com/azure/dns/private-dns-virtual-network-links";
const DNS_FALLBACK: &str = "https://learn.microsoft.com/azure/dns/private-dns-fallback";
const SET_BACKEND: &str =
    "https://learn.microsoft.com/azure/api-management/set-backend-service-policy";
const APIM_BACKENDS: &str = "https://learn.microsoft.com/azure/api-management/backends";
const UDR: &str = "https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview";
const SERVICE_ENDPOINTS: &str =
    "https://learn.microsoft.com/azure/virtual-network/virtual-network-service-endpoints-overview";
const FIREWALL_FAQ: &str = "https://learn.microsoft.com/azure/firewall/firewall-faq";
const FIREWALL_RULES: &str = "https://learn.microsoft.com/azure/firewall/rule-processing";
/// "Trusted service connectivity retirement (March 2026)": gateways of instances created on or
/// after 1 December 2025 (all from 15 March 2026) reach Key Vault only with network line of sight.
const APIM_TRUSTED_RETIREMENT: &str = "https://learn.microsoft.com/azure/api-management/breaking-changes/trusted-service-connectivity-retirement-march-2026";
const APIM_CLASSIC: &str =
    "https://learn.microsoft.com/azure/api-management/virtual-network-reference";

macro_rules! finding_codes {
    // A row's optional last column: `preflight` marks the APIM preflight's codes.
    (@preflight) => { false };
    (@preflight preflight) => { true };
    ($( $(#[$m:meta])* $variant:ident => $code:literal, $sev:ident, $url:expr $(, $stage:ident)?; )+) => {
        /// A stable, machine-readable finding code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum FindingCode { $( $(#[$m])* $variant ),+ }

        impl FindingCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [FindingCode] = &[$(FindingCode::$variant),+];
            /// The code as it appears in output, e.g. `SUBNET_TOO_SMALL`.
            pub fn as_str(self) -> &'static str {
                match self { $(FindingCode::$variant => $code),+ }
            }
            /// The severity this code always carries.
            pub fn severity(self) -> Severity {
                match self { $(FindingCode::$variant => Severity::$sev),+ }
            }
            /// The Learn page that states the requirement.
            pub fn reference(self) -> &'static str {
                match self { $(FindingCode::$variant => $url),+ }
            }
            /// Whether the code belongs to the APIM preflight: such findings never block flow
            /// evaluation (a failing preflight is what `check` and the gateway demonstrate).
            pub const fn is_preflight(self) -> bool {
                match self { $(FindingCode::$variant => finding_codes!(@preflight $($stage)?)),+ }
            }
        }
    };
}

finding_codes! {
    // --- addresses and VNets ---
    /// A VNet or subnet prefix does not parse or has host bits set.
    AddressPrefixInvalid => "ADDRESS_PREFIX_INVALID", Error, VNET_FAQ;
    /// A subnet prefix lies outside its VNet's address space.
    SubnetOutsideAddressSpace => "SUBNET_OUTSIDE_ADDRESS_SPACE", Error, VNET_FAQ;
    /// Two subnets of a VNet overlap.
    SubnetOverlap => "SUBNET_OVERLAP", Error, VNET_FAQ;
    /// Two prefixes of one VNet's address space overlap.
    AddressSpaceOverlap => "ADDRESS_SPACE_OVERLAP", Error, VNET_FAQ;
    /// An address space uses a range Azure forbids (multicast, broadcast, loopback, link-local, 168.63.129.16).
    AddressSpaceForbidden => "ADDRESS_SPACE_FORBIDDEN", Error, VNET_FAQ;
    /// A subnet is smaller than /29 or larger than /2 (IPv4), or not /64 (IPv6).
    SubnetSizeInvalid => "SUBNET_SIZE_INVALID", Error, VNET_FAQ;
    /// Two VNets with overlapping address spaces are peered, even from one side only (ARM:
    /// VnetAddressSpacesOverlap refuses the first link).
    PeeringAddressOverlap => "PEERING_ADDRESS_OVERLAP", Error, PEERING;
    /// A peering is listed by one side only: it stays Initiated and carries no traffic.
    PeeringNotConnected => "PEERING_NOT_CONNECTED", Warning, PEERING;
    /// A VNet peers with two VNets whose address spaces overlap each other (ARM:
    /// VnetAddressSpaceOverlapsWithAlreadyPeeredVnet).
    PeeringOverlapsPeeredVnet => "PEERING_OVERLAPS_PEERED_VNET", Error, PEERING;
    /// A host address lies in a VNet's address space but in none of its subnets.
    HostNotInSubnet => "HOST_NOT_IN_SUBNET", Error, VNET_FAQ;
    /// A host uses one of the five addresses Azure reserves in every subnet.
    HostAddressReserved => "HOST_ADDRESS_RESERVED", Error, VNET_FAQ;
    /// Two hosts (or a host and the APIM instance) share an address.
    HostAddressDuplicate => "HOST_ADDRESS_DUPLICATE", Error, VNET_FAQ;
    /// A host address or public address does not parse.
    HostAddressInvalid => "HOST_ADDRESS_INVALID", Error, VNET_FAQ;
    /// A host's address lies in several subnets (of unpeered, overlapping VNets) and no
    /// `subnet` says which.
    HostPlacementAmbiguous => "HOST_PLACEMENT_AMBIGUOUS", Error, VNET_FAQ;
    // --- NSG rules ---
    /// The network interfaces of one application security group are in several VNets.
    AsgMembersInSeveralVnets => "ASG_MEMBERS_IN_SEVERAL_VNETS", Error, ASG;
    /// A rule's source and destination application security groups are in different VNets.
    RuleAsgsInDifferentVnets => "RULE_ASGS_IN_DIFFERENT_VNETS", Error, ASG;
    /// Two prefixes of one rule's address list overlap (ARM:
    /// OverlappingSubnetsNotPermittedInSecurityRule).
    RulePrefixOverlap => "RULE_PREFIX_OVERLAP", Error, NSG_OV;
    /// A custom rule priority outside 100–4096.
    RulePriorityOutOfRange => "RULE_PRIORITY_OUT_OF_RANGE", Error, NSG_OV;
    /// Two rules of one NSG share a priority in the same direction.
    RulePriorityDuplicate => "RULE_PRIORITY_DUPLICATE", Error, NSG_OV;
    /// Two rules of one NSG share a name.
    RuleNameDuplicate => "RULE_NAME_DUPLICATE", Error, NSG_OV;
    /// A rule name breaks Azure's naming rule (1–80 chars, word characters, `.`, `-`, `_`).
    RuleNameInvalid => "RULE_NAME_INVALID", Error, NSG_OV;
    /// A port field is not `N`, `N-M` or `*` within 0–65535.
    RulePortInvalid => "RULE_PORT_INVALID", Error, NSG_OV;
    /// An address prefix in a rule does not parse (and is not a service tag).
    RulePrefixInvalid => "RULE_PREFIX_INVALID", Error, NSG_OV;
    /// A rule names a service tag that is not in the table in use.
    RuleUnknownServiceTag => "RULE_UNKNOWN_SERVICE_TAG", Error, TAGS;
    /// More than 1,000 rules in an NSG, 4,000 prefixes on one side, or 10 ASGs in a rule.
    RuleLimitExceeded => "RULE_LIMIT_EXCEEDED", Error, LIMITS;
    /// A rule mixes IPv4 and IPv6 prefixes (ARM: ResourceCannotContainAddressPrefixesFromDifferentAddressFamilies).
    RuleMixedAddressFamilies => "RULE_MIXED_ADDRESS_FAMILIES", Error, NSG_OV;
    /// A rule names more than one service tag on one side (augmented rules allow one).
    RuleMultipleServiceTags => "RULE_MULTIPLE_SERVICE_TAGS", Error, NSG_OV;
    /// A rule description longer than 140 characters.
    RuleDescriptionTooLong => "RULE_DESCRIPTION_TOO_LONG", Error, NSG_OV;
    /// A name refers to a VNet, subnet, NSG, ASG or host that does not exist.
    ReferenceUnknown => "REFERENCE_UNKNOWN", Error, NSG_OV;
    /// Two resources of one kind share a name.
    NameDuplicate => "NAME_DUPLICATE", Error, NSG_OV;
    /// A private endpoint host in a subnet whose network policies make its NSG rules inert (informational).
    PrivateEndpointNsgInert => "PRIVATE_ENDPOINT_NSG_INERT", Warning, PE_POLICIES;
    /// An exported NSG's `defaultSecurityRules` differ from the six default rules vnetsim applies.
    DefaultRulesMismatch => "DEFAULT_RULES_MISMATCH", Warning, NSG_OV;
    /// An imported API policy (`…/apis/policies`) is not well-formed XML, or its
    /// `set-backend-service backend-id` names no `…/service/backends` among the inputs.
    ApiPolicyInvalid => "API_POLICY_INVALID", Error, SET_BACKEND;
    /// A rule field is only known at deployment time (`<unknown:POINTER>`): flows that reach the rule are Indeterminate.
    UnknownValue => "UNKNOWN_VALUE", Warning, NSG_OV;
    /// A VNet, subnet, host or instance address is only known at deployment time: the topology cannot be evaluated.
    UnknownAddress => "UNKNOWN_ADDRESS", Error, VNET_FAQ;
    // --- APIM v2 integration (spec §3.1, §3.2 R1–R8) ---
    /// The tier does not support the requested network mode.
    SkuNotSupported => "SKU_NOT_SUPPORTED", Error, APIM_INTEG, preflight;
    /// VNet and APIM instance are in different regions.
    RegionMismatch => "REGION_MISMATCH", Error, APIM_INTEG, preflight;
    /// VNet and APIM instance are in different subscriptions.
    SubscriptionMismatch => "SUBSCRIPTION_MISMATCH", Error, APIM_INTEG, preflight;
    /// The integration subnet holds other resources or is used by another APIM instance.
    SubnetNotDedicated => "SUBNET_NOT_DEDICATED", Error, APIM_INTEG, preflight;
    /// The integration subnet is smaller than /27.
    SubnetTooSmall => "SUBNET_TOO_SMALL", Error, APIM_INTEG, preflight;
    /// The integration subnet is smaller than the recommended /24.
    SubnetBelowRecommended => "SUBNET_BELOW_RECOMMENDED", Warning, APIM_INTEG, preflight;
    /// The integration subnet has no NSG.
    SubnetNsgMissing => "SUBNET_NSG_MISSING", Error, APIM_INTEG, preflight;
    /// The subnet lacks the delegation the mode needs.
    SubnetDelegationMissing => "SUBNET_DELEGATION_MISSING", Error, APIM_INTEG, preflight;
    /// `Microsoft.Web` is not registered in the subscription.
    ProviderNotRegistered => "PROVIDER_NOT_REGISTERED", Error, APIM_INTEG, preflight;
    /// The principal lacks one of the three subnet actions.
    PermissionMissing => "PERMISSION_MISSING", Error, APIM_INTEG, preflight;
    /// Switching between injection and integration (or adding injection later) is not supported.
    ModeSwitchNotSupported => "MODE_SWITCH_NOT_SUPPORTED", Error, APIM_INTEG, preflight;
    /// More scale units than the tier allows (Standard v2 10, Premium v2 30).
    CapacityExceedsTier => "CAPACITY_EXCEEDS_TIER", Error, APIM_V2, preflight;
    /// An injection subnet without enough addresses for the requested units (2 per unit + 5 + 1).
    SubnetCapacityInsufficient => "SUBNET_CAPACITY_INSUFFICIENT", Error, APIM_INJECT, preflight;
    /// The integration subnet's NSG would deny TCP 443 to Storage or AzureKeyVault, or (a Deny on
    /// AzurePlatformDNS) DNS to Azure DNS.
    DependencyBlocked => "DEPENDENCY_BLOCKED", Warning, APIM_INTEG, preflight;
    /// A Key Vault-backed named value's vault is not reachable from the instance (DNS, public access disabled, or an NSG rule; also AzureActiveDirectory 443).
    KeyvaultUnreachable => "KEYVAULT_UNREACHABLE", Warning, APIM_TRUSTED_RETIREMENT, preflight;
    /// `virtual_network` is `integration` or `injection` but no subnet is given.
    ApimSubnetRequired => "APIM_SUBNET_REQUIRED", Error, APIM_INTEG, preflight;
    /// The instance's configured address is not a usable address of its subnet.
    ApimAddressInvalid => "APIM_ADDRESS_INVALID", Error, APIM_INTEG, preflight;
    /// A classic-tier instance with `virtualNetworkType` External/Internal (classic VNet injection, not a v2 mode).
    ClassicTierVnet => "CLASSIC_TIER_VNET", Warning, APIM_CLASSIC;
    // --- gateway model ---
    /// An API's backend URL does not parse as `http(s)://host[:port][/path]`.
    ApiBackendInvalid => "API_BACKEND_INVALID", Error, APIM_BACKENDS;
    /// An API's backend host name (or IP) is not a host of the topology.
    ApiBackendUnknownHost => "API_BACKEND_UNKNOWN_HOST", Error, APIM_BACKENDS;
    /// An API's backend host has no service on the backend port.
    ApiBackendNoService => "API_BACKEND_NO_SERVICE", Error, APIM_BACKENDS;
    /// An API's backend scheme disagrees with its service's `tls` setting.
    ApiBackendSchemeMismatch => "API_BACKEND_SCHEME_MISMATCH", Error, APIM_BACKENDS;
    /// An API's backend name does not resolve from the APIM instance (the gateway answers `502 DNS_FAILURE`).
    ApiBackendUnresolvable => "API_BACKEND_UNRESOLVABLE", Warning, PRIVATE_DNS;
    /// Two APIs share a path prefix (compared case-insensitively).
    ApiPathDuplicate => "API_PATH_DUPLICATE", Error, APIM_BACKENDS;
    /// An API path is not `/` followed by segments.
    ApiPathInvalid => "API_PATH_INVALID", Error, APIM_BACKENDS;
    /// A host service has neither or both of `serve` and `upstream`, or a bad upstream.
    ServiceInvalid => "SERVICE_INVALID", Error, APIM_BACKENDS;
    /// A host service's `upstream` is not a loopback socket (the gateway dials loopback only).
    ServiceUpstreamNotLoopback => "SERVICE_UPSTREAM_NOT_LOOPBACK", Error, APIM_BACKENDS;
    /// Two services of one host share a port.
    ServicePortDuplicate => "SERVICE_PORT_DUPLICATE", Error, APIM_BACKENDS;
    /// A private DNS zone name or record is malformed, or a DNS name is claimed twice.
    DnsNameInvalid => "DNS_NAME_INVALID", Error, PRIVATE_DNS;
    /// The gateway `listen` address is not a loopback socket address.
    GatewayListenInvalid => "GATEWAY_LISTEN_INVALID", Error, APIM_BACKENDS;
    // --- faults (a testing aid; the backends page describes how APIM meets failing backends) ---
    /// A fault rule's target is not `host:port` of a `[[hosts]]` entry (name or DNS name) and one of its service ports.
    FaultTargetUnknown => "FAULT_TARGET_UNKNOWN", Error, APIM_BACKENDS;
    /// A fault rule's probability is not a number from 0.0 to 1.0.
    FaultProbabilityInvalid => "FAULT_PROBABILITY_INVALID", Error, APIM_BACKENDS;
    /// A fault rule lacks a parameter its kind needs (`latency_ms`, `status`, `bytes_per_s`, `after_bytes`).
    FaultParameterMissing => "FAULT_PARAMETER_MISSING", Error, APIM_BACKENDS;
    /// A fault rule's name or parameter is out of range, belongs to another kind, or a `tls_*` kind targets a plain service.
    FaultParameterInvalid => "FAULT_PARAMETER_INVALID", Error, APIM_BACKENDS;
    // --- routing and egress devices ---
    /// A `VirtualAppliance` route without `next_hop_ip_address` (ARM: MissingNextHopIpAddress).
    RouteNextHopAddressMissing => "ROUTE_NEXT_HOP_ADDRESS_MISSING", Error, UDR;
    /// A route's prefix is neither a prefix nor a service tag allowed in routes, its next hop address does not parse, or an address is given for another next hop type.
    RouteInvalid => "ROUTE_INVALID", Error, UDR;
    /// A firewall's subnet is not named `AzureFirewallSubnet`, or its private address is not in it.
    FirewallSubnetInvalid => "FIREWALL_SUBNET_INVALID", Error, FIREWALL_FAQ;
    /// `AzureFirewallSubnet` is smaller than /26.
    FirewallSubnetTooSmall => "FIREWALL_SUBNET_TOO_SMALL", Error, FIREWALL_FAQ;
    /// An NSG on `AzureFirewallSubnet`: it is not applied to the firewall's traffic.
    FirewallSubnetNsg => "FIREWALL_SUBNET_NSG", Warning, FIREWALL_FAQ;
    /// A firewall rule, collection or group field is invalid (protocol, port, address, priority).
    FirewallRuleInvalid => "FIREWALL_RULE_INVALID", Error, FIREWALL_RULES;
    /// A DNAT rule names a destination that is not one of the firewall's public addresses (DNAT
    /// on a private address, not modelled): flows to it never match the rule.
    FirewallDnatNotModelled => "FIREWALL_DNAT_NOT_MODELLED", Warning, FIREWALL_RULES;
    // --- private DNS ---
    /// A zone link's `resolution_policy = "NxDomainRedirect"` on a zone that is not a Private Link (`privatelink.*`) zone: Azure applies it only to Private Link zones.
    DnsResolutionPolicyIgnored => "DNS_RESOLUTION_POLICY_IGNORED", Warning, DNS_FALLBACK;
    // --- service endpoints ---
    /// A subnet's service endpoint names no service that has virtual network service endpoints.
    ServiceEndpointServiceUnknown => "SERVICE_ENDPOINT_SERVICE_UNKNOWN", Error, SERVICE_ENDPOINTS;
    /// A service endpoint location is neither `*` nor a region with prefixes of the service in the service tag table.
    ServiceEndpointLocationUnknown => "SERVICE_ENDPOINT_LOCATION_UNKNOWN", Error, SERVICE_ENDPOINTS;
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FindingCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem found in a topology.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable code.
    pub code: FindingCode,
    /// Error or warning (fixed per code).
    pub severity: Severity,
    /// Resource path, e.g. `vnets/vnet-app/subnets/snet-apim` or `nsgs/n/securityRules/r`.
    pub subject: String,
    /// Human-readable explanation naming the Azure requirement.
    pub message: String,
    /// Learn URL of the requirement.
    pub reference: &'static str,
    /// Where the subject is written: file, line, column and pointer (see [`Location`]). `None`
    /// (JSON `null`; the key is always present) when nothing is known, e.g. a finding about an
    /// imported resource the importer could not place.
    pub location: Option<Location>,
}

impl Finding {
    /// A finding with the code's own severity and reference.
    pub fn new(
        code: FindingCode,
        subject: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            code,
            severity: code.severity(),
            subject: subject.into(),
            message: message.into(),
            reference: code.reference(),
            location: None,
        }
    }

    /// The same finding, located at `location`.
    ///
    /// ```
    /// use sim::{Finding, FindingCode, SourceMap};
    /// let f = Finding::new(FindingCode::SubnetTooSmall, "vnets/v/subnets/s", "too small")
    ///     .at(SourceMap::default().locate("/vnets/0/subnets/1"));
    /// assert_eq!(f.location.unwrap().pointer.as_deref(), Some("/vnets/0/subnets/1"));
    /// ```
    #[must_use]
    pub fn at(mut self, location: Option<Location>) -> Finding {
        self.location = location;
        self
    }

    /// Whether this finding makes the topology invalid.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Finding {
    /// `file:line: ` (when the file is known), then severity, code, subject and message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = self.location.as_ref().and_then(Location::file_line) {
            write!(f, "{at}: ")?;
        }
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{sev:7} {:28} {}: {}",
            self.code.as_str(),
            self.subject,
            self.message
        )
    }
}

/// Sorts findings deterministically: errors first, then by subject, code and message.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.severity, &a.subject, a.code, &a.message)
            .cmp(&(b.severity, &b.subject, b.code, &b.message))
    });
}

// === Assumptions ===

macro_rules! assumptions {
    ($( $(#[$m:meta])* $variant:ident => $code:literal, $msg:literal; )+) => {
        /// A behaviour the Azure documentation does not settle, modelled one named way.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Assumption { $( $(#[$m])* $variant ),+ }

        impl Assumption {
            /// Every assumption, in declaration order.
            pub const ALL: &'static [Assumption] = &[$(Assumption::$variant),+];
            /// The stable code, e.g. `ASSUMPTION_ALL_EGRESS_VIA_SUBNET`.
            pub fn code(self) -> &'static str {
                match self { $(Assumption::$variant => $code),+ }
            }
            /// What we assume and why.
            pub fn message(self) -> &'static str {
                match self { $(Assumption::$variant => $msg),+ }
            }
        }
    };
}

assumptions! {
    /// All egress of an integrated instance leaves through the integration subnet.
    AllEgressViaSubnet => "ASSUMPTION_ALL_EGRESS_VIA_SUBNET",
        "All outbound traffic of an integrated v2 instance, public destinations included, leaves from an address in the integration subnet and passes that subnet's outbound NSG rules (docs tell you to allow Storage/KeyVault and say NSGs can block internet egress, which implies it; not stated outright).";
    /// The integrated instance's source address.
    ApimSourceAddress => "ASSUMPTION_APIM_SOURCE_ADDRESS",
        "The integrated instance's outbound flows leave from the first usable address of the integration subnet (offset 4) unless [apim] address is set; Azure assigns it dynamically.";
    /// The public address of a non-integrated instance.
    ApimPublicAddress => "ASSUMPTION_APIM_PUBLIC_ADDRESS",
        "A non-integrated instance sends outbound traffic from a public address (default 20.105.0.10, or [apim] public_address) and no NSG applies to it.";
    /// `*` protocol includes ESP and AH.
    AnyProtocolIncludesEspAh => "ASSUMPTION_ANY_PROTOCOL_INCLUDES_ESP_AH",
        "Protocol `*` (Any) matches ESP and AH too; docs say Any encompasses TCP, UDP and ICMP, but the default rules are `*` and must decide every flow.";
    /// Port-less protocols and port fields.
    PortlessProtocols => "ASSUMPTION_PORTLESS_PROTOCOLS",
        "ICMP, ESP and AH flows carry no ports: they match a rule only if its port fields are `*` (or 0-65535).";
    /// Scope of private names outside private DNS zones.
    PrivateNameScope => "ASSUMPTION_PRIVATE_NAME_SCOPE",
        "A host's DNS name outside every private DNS zone resolves to its private address from the host's own VNet and that VNet's connected peers only; names of hosts outside every VNet, and of hosts with a public address, resolve everywhere.";
    /// Default source port.
    DefaultSourcePort => "ASSUMPTION_DEFAULT_SOURCE_PORT",
        "When a flow's source port is not given, 60000 is used (as in the IP flow verify quickstart).";
    /// VirtualNetwork tag contents.
    VirtualNetworkTagScope => "ASSUMPTION_VIRTUAL_NETWORK_TAG_SCOPE",
        "The VirtualNetwork tag of an NSG applied in a VNet is that VNet's address space, its connected peers' address spaces, its bgp_routes (the connected on-premises address spaces) and the prefix of every user-defined route on its subnets, 0.0.0.0/0 included (\"This tag might also contain default routes\"), so with a default route AllowVnetInBound/AllowVnetOutBound match every address; the host's virtual IP is left out (ASSUMPTION_HOST_VIP_TAGS) and the Internet tag still excludes only the VNet and its peers.";
    /// Internet tag contents.
    InternetTagScope => "ASSUMPTION_INTERNET_TAG_SCOPE",
        "The Internet tag is public address space outside VirtualNetwork: RFC 1918, 100.64.0.0/10, fc00::/7, loopback, link-local, multicast and documentation/reserved ranges are excluded.";
    /// NSG applied in several VNets.
    NsgPerVnetContext => "ASSUMPTION_NSG_PER_VNET_CONTEXT",
        "An NSG associated with subnets or NICs in several VNets resolves VirtualNetwork and Internet separately in each VNet's context.";
    /// Dependency check sampling.
    DependencyCheckSampling => "ASSUMPTION_DEPENDENCY_CHECK_SAMPLING",
        "DEPENDENCY_BLOCKED tests TCP 443 from the APIM source address to the first and last address of every Storage and AzureKeyVault prefix (regional forms for the APIM region when the table has them).";
    /// Denied SYN answered at once.
    DenyAnsweredImmediately => "ASSUMPTION_DENY_ANSWERED_IMMEDIATELY",
        "Azure silently drops a denied SYN so the gateway times out; the gateway answers at once by default ([gateway] deny_mode = \"drop\" waits for the connect timeout).";
    /// A network configuration change ends established flows.
    NetworkChangeResetsFlows => "ASSUMPTION_NETWORK_CHANGE_RESETS_FLOWS",
        "Changing the instance's network configuration (integration turned off or on, another subnet or address) ends its established outbound flows: their source address no longer belongs to the instance; so does a change that leaves a flow without a route (a peering removed).";
    /// IPv6 reserved addresses.
    Ipv6ReservedAddresses => "ASSUMPTION_IPV6_RESERVED_ADDRESSES",
        "An IPv6 subnet reserves the same five addresses as an IPv4 one (the first four and the last of each prefix); the VNet FAQ lists only the IPv4 ones.";
    /// Which tags match the host node's virtual IP.
    HostVipTags => "ASSUMPTION_HOST_VIP_TAGS",
        "168.63.129.16 (the host node's virtual IP) is matched by AzureLoadBalancer, `*` and literal prefixes, but by neither Internet (it is not an internet address) nor VirtualNetwork, so defaultSecurityRules/AllowAzureLoadBalancerInBound decides health probes under the default rules, as \"What is IP address 168.63.129.16?\" says; the service tags overview also lists \"the virtual IP address of the host\" in VirtualNetwork.";
    /// Addresses and ports of AzurePlatformDNS.
    PlatformDnsTag => "ASSUMPTION_PLATFORM_DNS_TAG",
        "AzurePlatformDNS (not in ServiceTags_Public) is 168.63.129.16/32 in a rule; the DNS exemption covers TCP and UDP destination port 53 to it, and only a matching Deny rule naming the tag removes it.";
    /// Addresses and ports of AzurePlatformIMDS.
    PlatformImdsTag => "ASSUMPTION_PLATFORM_IMDS_TAG",
        "AzurePlatformIMDS (not in ServiceTags_Public) is 169.254.169.254/32 in a rule; the IMDS exemption covers TCP destination port 80 to it, and only a matching Deny rule naming the tag removes it.";
    /// Addresses and ports of AzurePlatformLKM.
    PlatformLkmTag => "ASSUMPTION_PLATFORM_LKM_TAG",
        "AzurePlatformLKM (not in ServiceTags_Public) is the Azure KMS hosts 20.118.99.224, 40.83.235.53 and 23.102.135.246 (azkms/kms.core.windows.net) in a rule; the Windows activation exemption covers TCP destination port 1688 to them (not 168.63.129.16), and only a matching Deny rule naming the tag removes it; its removal by a 0.0.0.0/0 user-defined route is not modelled.";
    /// Established flows identified by pooled connections.
    PooledConnectionIsFlow => "ASSUMPTION_POOLED_CONNECTION_IS_FLOW",
        "A pooled gateway-to-backend connection is one established NSG flow; flows do not expire while pooled (Azure's flow timeout is not documented).";
    /// Dynamic private addresses of imported NICs.
    DynamicPrivateAddress => "ASSUMPTION_DYNAMIC_PRIVATE_ADDRESS",
        "An imported NIC whose private address is dynamic and not given gets the first free usable address of its subnet (offset 4 or higher, skipping static addresses and the APIM instance's address), in resource order; Azure assigns dynamic addresses itself and does not document the order.";
    /// Deployment scope of imported templates.
    DeploymentScopeDefaults => "ASSUMPTION_DEPLOYMENT_SCOPE_DEFAULTS",
        "A template used resourceGroup(), subscription() or resourceId() while the deployment scope was not fully given: a missing --subscription-id (with no exported resource id to take it from) is 00000000-0000-0000-0000-000000000000, a missing --resource-group is `vnetsim-rg`, a missing --location is `westeurope`.";
    /// Application rules matched by address.
    FirewallFqdnByAddress => "ASSUMPTION_FIREWALL_FQDN_BY_ADDRESS",
        "Azure Firewall application rules match the FQDN of the TLS SNI or HTTP Host; vnetsim matches a flow by address: the private and public addresses of the hosts whose name or DNS names match a target FQDN (`*` matches every destination).";
    /// The instance address application rules SNAT to.
    FirewallInstanceAddress => "ASSUMPTION_FIREWALL_INSTANCE_ADDRESS",
        "Application rules, and DNAT rules to a private destination, SNAT to a firewall instance address in AzureFirewallSubnet; vnetsim uses the subnet's first usable address after the firewall's private address (Azure picks an instance).";
    /// The firewall's infrastructure rule collection.
    FirewallInfrastructureRules => "ASSUMPTION_FIREWALL_INFRASTRUCTURE_RULES",
        "The built-in infrastructure rule collection allows platform FQDNs (Azure diagnostics, compute updates) that no host of a fixture has: it matches no flow vnetsim evaluates.";
    /// Public egress with `outbound_route_all = false`.
    PublicEgressFromPlatform => "ASSUMPTION_PUBLIC_EGRESS_FROM_PLATFORM",
        "With [apim] outbound_route_all = false, an integrated instance's flows to destinations outside RFC 1918 leave from its public address, through no NSG, route table or NAT gateway of the subnet (App Service's wording for VNet integration without route all; not documented for API Management).";
    /// The walk's bound on devices.
    WalkBound => "ASSUMPTION_WALK_BOUND",
        "A path passes at most 4 devices (firewalls, appliances); a longer one ends as ROUTING_LOOP. Azure sends a looping packet until its TTL runs out.";
    /// A null module parameter takes its default.
    NullModuleParameter => "ASSUMPTION_NULL_MODULE_PARAMETER",
        "A parameter passed to a nested deployment (a Bicep module) as null, such as a `.?` on a missing property, takes the parameter's defaultValue as if it were not passed; Bicep documents optional module parameters but not ARM's treatment of an explicit null.";
    /// The private address of an imported Azure Firewall.
    FirewallPrivateAddress => "ASSUMPTION_FIREWALL_PRIVATE_ADDRESS",
        "An imported Azure Firewall whose private address the input does not give (a template: Azure assigns it at deployment) has the first usable address of its AzureFirewallSubnet (offset 4); Azure does not document which address the firewall takes.";
    /// The prefixes of service endpoint routes.
    ServiceEndpointPrefixes => "ASSUMPTION_SERVICE_ENDPOINT_PREFIXES",
        "A service endpoint's VirtualNetworkServiceEndpoint routes are the IPv4 prefixes of the service's tag in the service tag table (Microsoft.KeyVault: AzureKeyVault, Microsoft.Storage: Storage, Microsoft.Sql: Sql, Microsoft.Web: AppService, Microsoft.CognitiveServices: CognitiveServicesManagement, the others their namesake tag): its regional forms for each location, the whole tag for `*`; Azure adds \"the public IP addresses\" of the service without publishing them.";
    /// Default locations of a service endpoint.
    ServiceEndpointLocations => "ASSUMPTION_SERVICE_ENDPOINT_LOCATIONS",
        "A service endpoint without locations covers what Azure fills into serviceEndpoints[].locations: Microsoft.Storage the VNet's region and its paired region, Microsoft.Sql the VNet's region, every other service `*` (all regions).";
    /// Service endpoint routes against user-defined routes of the same prefix.
    ServiceEndpointRoutePrecedence => "ASSUMPTION_SERVICE_ENDPOINT_ROUTE_PRECEDENCE",
        "A service endpoint route is a system route: a longer user-defined route wins over it and, on an equal prefix, a user-defined route wins (\"Virtual network traffic routing\"), while it beats a 0.0.0.0/0 route and more specific BGP routes; the service endpoints page's \"override any BGP or UDR routes for the address prefix match\" is read as the longest prefix match.";
    /// The public address of an imported private endpoint's target.
    ServicePublicAddress => "ASSUMPTION_SERVICE_PUBLIC_ADDRESS",
        "A private endpoint's target service (a Key Vault, a storage account) answers on its public name with the first IPv4 address of its regional service tag in the built-in table (AzureKeyVault.<region>, Storage.<region>); Azure gives each service its own public address, which an import cannot know.";
}

impl Serialize for Assumption {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Assumption", 2)?;
        st.serialize_field("code", self.code())?;
        st.serialize_field("message", self.message())?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_screaming_snake() {
        let mut seen = std::collections::BTreeSet::new();
        for c in FindingCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
            assert!(c
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_'));
        }
        for a in Assumption::ALL {
            assert!(seen.insert(a.code()));
            assert!(a.code().starts_with("ASSUMPTION_"));
        }
    }

    #[test]
    fn severities_follow_the_issue() {
        assert_eq!(
            FindingCode::SubnetBelowRecommended.severity(),
            Severity::Warning
        );
        assert_eq!(
            FindingCode::PeeringNotConnected.severity(),
            Severity::Warning
        );
        assert_eq!(FindingCode::DependencyBlocked.severity(), Severity::Warning);
        assert_eq!(FindingCode::SubnetTooSmall.severity(), Severity::Error);
    }

    #[test]
    fn preflight_codes_are_apim_requirements() {
        // The preflight column marks APIM requirements only: each cites an API Management page.
        for c in FindingCode::ALL.iter().filter(|c| c.is_preflight()) {
            assert!(c.reference().contains("/api-management/"), "{c}");
        }
        // Model errors are not preflight: they make flow evaluation untrustworthy.
        assert!(!FindingCode::AddressPrefixInvalid.is_preflight());
        assert!(FindingCode::SubnetTooSmall.is_preflight());
    }
}
