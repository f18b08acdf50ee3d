//! Virtual network service endpoints: which prefixes a subnet's `service_endpoints` add as
//! `VirtualNetworkServiceEndpoint` system routes.
//!
//! Azure ("Virtual network traffic routing", optional default routes,
//! <https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview#optional-default-routes>):
//! "The public IP addresses for certain services are added to the route table by Azure when you
//! enable a service endpoint to the service. Service endpoints are enabled for individual
//! subnets within a virtual network, so the route is only added to the route table of a subnet a
//! service endpoint is enabled for." The routes' source is `Default` and their next hop type
//! `VirtualNetworkServiceEndpoint`.
//!
//! Which addresses: Azure does not publish the routes' prefixes. vnetsim takes the service's
//! service tag from the table in use — its regional forms (`Storage.WestEurope`) for the
//! endpoint's `locations`, the whole tag for `"*"` — IPv4 prefixes only ("the source IP
//! addresses switch from using public IPv4 addresses to using their private IPv4 address",
//! "Virtual Network service endpoints",
//! <https://learn.microsoft.com/azure/virtual-network/virtual-network-service-endpoints-overview>)
//! (`ASSUMPTION_SERVICE_ENDPOINT_PREFIXES`). Without `locations`, the defaults Azure fills into
//! `serviceEndpoints[].locations`: Storage the VNet's region and its paired region, Sql the
//! VNet's region ("For Azure SQL, a service endpoint applies only to Azure service traffic
//! within a virtual network's region"), every other service `"*"`
//! (`ASSUMPTION_SERVICE_ENDPOINT_LOCATIONS`).

use crate::cidr::Cidr;
use crate::tags::ServiceTagTable;

/// How a service's `locations` default when not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DefaultLocations {
    /// The VNet's region and its paired region.
    RegionAndPair,
    /// The VNet's region.
    Region,
    /// Every region (`"*"`).
    All,
}

/// The services a subnet can have service endpoints for ("Virtual Network service endpoints":
/// the generally available and preview list, names as `serviceEndpoints[].service`), with the
/// service tag whose prefixes their routes take (`ASSUMPTION_SERVICE_ENDPOINT_PREFIXES`).
const SERVICES: &[(&str, &str, DefaultLocations)] = &[
    (
        "Microsoft.AzureActiveDirectory",
        "AzureActiveDirectory",
        DefaultLocations::All,
    ),
    (
        "Microsoft.AzureCosmosDB",
        "AzureCosmosDB",
        DefaultLocations::All,
    ),
    (
        "Microsoft.CognitiveServices",
        "CognitiveServicesManagement",
        DefaultLocations::All,
    ),
    (
        "Microsoft.ContainerRegistry",
        "AzureContainerRegistry",
        DefaultLocations::All,
    ),
    ("Microsoft.EventHub", "EventHub", DefaultLocations::All),
    ("Microsoft.KeyVault", "AzureKeyVault", DefaultLocations::All),
    ("Microsoft.ServiceBus", "ServiceBus", DefaultLocations::All),
    ("Microsoft.Sql", "Sql", DefaultLocations::Region),
    (
        "Microsoft.Storage",
        "Storage",
        DefaultLocations::RegionAndPair,
    ),
    ("Microsoft.Storage.Global", "Storage", DefaultLocations::All),
    ("Microsoft.Web", "AppService", DefaultLocations::All),
];

/// Azure's region pairs ("Azure cross-region replication pairings for all geographies",
/// <https://learn.microsoft.com/azure/reliability/cross-region-replication-azure>): each row is
/// a region and the region it is paired with (regions without a pair are absent).
const PAIRS: &[(&str, &str)] = &[
    ("australiacentral", "australiacentral2"),
    ("australiacentral2", "australiacentral"),
    ("australiaeast", "australiasoutheast"),
    ("australiasoutheast", "australiaeast"),
    ("brazilsouth", "southcentralus"),
    ("canadacentral", "canadaeast"),
    ("canadaeast", "canadacentral"),
    ("centralindia", "southindia"),
    ("centralus", "eastus2"),
    ("eastasia", "southeastasia"),
    ("eastus", "westus"),
    ("eastus2", "centralus"),
    ("francecentral", "francesouth"),
    ("francesouth", "francecentral"),
    ("germanynorth", "germanywestcentral"),
    ("germanywestcentral", "germanynorth"),
    ("japaneast", "japanwest"),
    ("japanwest", "japaneast"),
    ("koreacentral", "koreasouth"),
    ("koreasouth", "koreacentral"),
    ("northcentralus", "southcentralus"),
    ("northeurope", "westeurope"),
    ("norwayeast", "norwaywest"),
    ("norwaywest", "norwayeast"),
    ("southafricanorth", "southafricawest"),
    ("southafricawest", "southafricanorth"),
    ("southcentralus", "northcentralus"),
    ("southeastasia", "eastasia"),
    ("southindia", "centralindia"),
    ("swedencentral", "swedensouth"),
    ("swedensouth", "swedencentral"),
    ("switzerlandnorth", "switzerlandwest"),
    ("switzerlandwest", "switzerlandnorth"),
    ("uaecentral", "uaenorth"),
    ("uaenorth", "uaecentral"),
    ("uksouth", "ukwest"),
    ("ukwest", "uksouth"),
    ("westcentralus", "westus2"),
    ("westeurope", "northeurope"),
    ("westindia", "southindia"),
    ("westus", "eastus"),
    ("westus2", "westcentralus"),
    ("westus3", "eastus"),
];

/// ARM location names the `ServiceTags_Public` file spells otherwise in its `region` field
/// (`AzureCloud.centralfrance` is France Central); both spellings are accepted.
const TAG_REGION_NAMES: &[(&str, &str)] = &[
    ("brazilsoutheast", "brazilse"),
    ("chilecentral", "chilec"),
    ("francecentral", "centralfrance"),
    ("francesouth", "southfrance"),
    ("germanynorth", "germanyn"),
    ("germanywestcentral", "germanywc"),
    ("norwayeast", "norwaye"),
    ("norwaywest", "norwayw"),
    ("switzerlandnorth", "switzerlandn"),
    ("switzerlandwest", "switzerlandw"),
];

/// The `region` the service tag file uses for ARM location `location` (lower case).
fn tag_region(location: &str) -> &str {
    TAG_REGION_NAMES
        .iter()
        .find(|(arm, _)| *arm == location)
        .map_or(location, |(_, tag)| tag)
}

/// Every service name `service_endpoints` accepts.
pub fn known_services() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().map(|s| s.0)
}

/// The region paired with `region` (lower case), if it has one.
pub fn paired_region(region: &str) -> Option<&'static str> {
    let r = region.trim().to_ascii_lowercase();
    PAIRS.iter().find(|p| p.0 == r).map(|p| p.1)
}

/// Why a service endpoint adds no routes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EndpointError {
    /// Not a service with service endpoints.
    UnknownService,
    /// Locations that are neither `"*"` nor a region with prefixes of the service's tag in the
    /// table in use.
    UnknownLocations(Vec<String>),
}

/// A service endpoint resolved for a subnet of a VNet in `region`: the service's canonical name,
/// the locations in force (lower case, `"*"` for all) and the sorted, distinct IPv4 prefixes
/// its routes take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedEndpoint {
    /// The service's name as Azure spells it (`Microsoft.KeyVault`).
    pub service: &'static str,
    /// The locations in force (given, or the service's defaults).
    pub locations: Vec<String>,
    /// The routes' prefixes.
    pub prefixes: Vec<Cidr>,
}

/// Resolves `service` with `locations` (or the defaults) for a VNet in `region` against
/// `tags`. The unknown locations are reported together; the known ones still give prefixes
/// (returned in the `Ok` of the second element when some were unknown).
pub(crate) fn resolve(
    tags: &ServiceTagTable,
    service: &str,
    locations: Option<&[String]>,
    region: &str,
) -> (Option<ResolvedEndpoint>, Option<EndpointError>) {
    let Some(&(name, tag, default)) = SERVICES
        .iter()
        .find(|s| s.0.eq_ignore_ascii_case(service.trim()))
    else {
        return (None, Some(EndpointError::UnknownService));
    };
    let region = region.trim().to_ascii_lowercase();
    let locations: Vec<String> = match locations {
        Some(l) => l.iter().map(|x| x.trim().to_ascii_lowercase()).collect(),
        None => match default {
            DefaultLocations::All => vec!["*".to_string()],
            DefaultLocations::Region => vec![region.clone()],
            DefaultLocations::RegionAndPair => {
                let mut v = vec![region.clone()];
                v.extend(paired_region(&region).map(str::to_string));
                v
            }
        },
    };
    let mut prefixes = Vec::new();
    let mut unknown = Vec::new();
    let base = format!("{}.", tag.to_ascii_lowercase());
    for loc in &locations {
        if loc == "*" {
            if let Some(t) = tags.get(tag) {
                prefixes.extend(t.prefixes.iter().copied());
            } else {
                unknown.push(loc.clone());
            }
            continue;
        }
        let before = prefixes.len();
        let region = tag_region(loc);
        for t in tags
            .iter()
            .filter(|t| t.region == region && t.name.to_ascii_lowercase().starts_with(&base))
        {
            prefixes.extend(t.prefixes.iter().copied());
        }
        if prefixes.len() == before {
            unknown.push(loc.clone());
        }
    }
    prefixes.retain(Cidr::is_ipv4);
    prefixes.sort_unstable();
    prefixes.dedup();
    let resolved = ResolvedEndpoint {
        service: name,
        locations,
        prefixes,
    };
    let err = (!unknown.is_empty()).then_some(EndpointError::UnknownLocations(unknown));
    (Some(resolved), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags() -> ServiceTagTable {
        ServiceTagTable::builtin()
    }

    #[test]
    fn every_service_has_its_tag_in_the_builtin_table() {
        let t = tags();
        for (service, tag, _) in SERVICES {
            assert!(t.get(tag).is_some(), "{service}: tag {tag} missing");
        }
    }

    #[test]
    fn pairs_are_regions_of_the_table() {
        let t = tags();
        let regions: std::collections::BTreeSet<&str> =
            t.iter().map(|x| x.region.as_str()).collect();
        for (a, b) in PAIRS {
            assert!(regions.contains(tag_region(a)), "{a}");
            assert!(regions.contains(tag_region(b)), "{b}");
        }
        for (_, tag) in TAG_REGION_NAMES {
            assert!(regions.contains(tag), "{tag}");
        }
    }

    #[test]
    fn storage_defaults_to_the_region_and_its_pair() {
        let (r, err) = resolve(&tags(), "microsoft.storage", None, "WestEurope");
        let r = r.expect("a known service");
        assert_eq!(err, None);
        assert_eq!(r.service, "Microsoft.Storage");
        assert_eq!(r.locations, ["westeurope", "northeurope"]);
        let we = tags()
            .get("Storage.WestEurope")
            .expect("tag")
            .prefixes
            .clone();
        let ne = tags()
            .get("Storage.NorthEurope")
            .expect("tag")
            .prefixes
            .clone();
        // Every IPv4 prefix of both regional tags is routed, nothing of a third region.
        for p in we.iter().chain(&ne).filter(|p| p.is_ipv4()) {
            assert!(r.prefixes.contains(p), "{p}");
        }
        let us = tags().get("Storage.EastUS").expect("tag").prefixes.clone();
        assert!(us.iter().all(|p| !r.prefixes.contains(p)));
        assert!(r.prefixes.iter().all(Cidr::is_ipv4));
        assert!(r.prefixes.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn key_vault_defaults_to_every_region() {
        let (r, err) = resolve(&tags(), "Microsoft.KeyVault", None, "westeurope");
        let r = r.expect("a known service");
        assert_eq!(err, None);
        assert_eq!(r.locations, ["*"]);
        let all: Vec<Cidr> = tags()
            .get("AzureKeyVault")
            .expect("tag")
            .prefixes
            .iter()
            .copied()
            .filter(Cidr::is_ipv4)
            .collect();
        assert_eq!(r.prefixes.len(), {
            let mut a = all.clone();
            a.sort_unstable();
            a.dedup();
            a.len()
        });
    }

    #[test]
    fn arm_location_names_find_the_files_regions() {
        // ARM's `francecentral` is the file's `centralfrance`.
        let locs = vec!["francecentral".to_string()];
        let (r, err) = resolve(&tags(), "Microsoft.Storage", Some(&locs), "westeurope");
        assert_eq!(err, None);
        let want = tags()
            .get("Storage.FranceCentral")
            .expect("tag")
            .prefixes
            .clone();
        let r = r.expect("known service");
        assert!(want
            .iter()
            .filter(|p| p.is_ipv4())
            .all(|p| r.prefixes.contains(p)));
    }

    #[test]
    fn unknown_service_and_locations_are_reported() {
        assert_eq!(
            resolve(&tags(), "Microsoft.Bogus", None, "westeurope").1,
            Some(EndpointError::UnknownService)
        );
        let locs = vec!["westeurope".to_string(), "atlantis".to_string()];
        let (r, err) = resolve(&tags(), "Microsoft.KeyVault", Some(&locs), "westeurope");
        assert_eq!(
            err,
            Some(EndpointError::UnknownLocations(vec!["atlantis".into()]))
        );
        // The known location still gives its prefixes.
        assert!(!r.expect("known service").prefixes.is_empty());
    }
}
