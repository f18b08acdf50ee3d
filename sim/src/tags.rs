//! Service tags: the table of named prefix sets that NSG rules may use (`Storage`,
//! `AzureKeyVault.WestEurope`, ...), loaded from the official `ServiceTags_Public` JSON format or
//! taken from the small built-in subset ([`ServiceTagTable::builtin`]).
//!
//! The *virtual* tags `VirtualNetwork`, `Internet` and `AzureLoadBalancer` are not in the file
//! (the platform resolves them); [`VirtualTag`] names them and [`crate::nsg`] resolves them in the
//! context of the VNet an NSG is applied in.

mod builtin;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cidr::{Cidr, CidrError};

/// The tags the platform resolves itself, with their classic spellings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VirtualTag {
    /// The VNet's address space plus its connected peers'.
    VirtualNetwork,
    /// Public address space outside `VirtualNetwork`.
    Internet,
    /// The host's virtual IP, 168.63.129.16.
    AzureLoadBalancer,
}

impl VirtualTag {
    /// Recognises a virtual tag (case-insensitive; classic spellings `VIRTUAL_NETWORK`,
    /// `INTERNET`, `AZURE_LOADBALANCER` too).
    pub fn parse(s: &str) -> Option<VirtualTag> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("VirtualNetwork") || t.eq_ignore_ascii_case("VIRTUAL_NETWORK") {
            Some(VirtualTag::VirtualNetwork)
        } else if t.eq_ignore_ascii_case("Internet") {
            Some(VirtualTag::Internet)
        } else if t.eq_ignore_ascii_case("AzureLoadBalancer")
            || t.eq_ignore_ascii_case("AZURE_LOADBALANCER")
        {
            Some(VirtualTag::AzureLoadBalancer)
        } else {
            None
        }
    }

    /// Canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VirtualTag::VirtualNetwork => "VirtualNetwork",
            VirtualTag::Internet => "Internet",
            VirtualTag::AzureLoadBalancer => "AzureLoadBalancer",
        }
    }
}

/// One named prefix set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceTag {
    /// Name as the table spells it (`Storage.WestEurope`).
    pub name: String,
    /// Region (lower case) for regional forms, empty for global tags.
    pub region: String,
    /// The prefixes.
    pub prefixes: Vec<Cidr>,
}

/// Where the table came from; printed in every output as `"service_tags"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServiceTagsInfo {
    /// `built-in` or `file`.
    pub source: String,
    /// The file's `changeNumber` (for the built-in table: that of the file it was cut from).
    pub change_number: Option<u64>,
    /// The cloud named by the file (`Public`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
}

/// Why a service tag file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagTableError {
    /// Not JSON of the `ServiceTags_Public` shape.
    #[error("not a ServiceTags_Public JSON file: {0}")]
    Format(String),
    /// A prefix in the file does not parse.
    #[error("service tag `{tag}`: {source}")]
    Prefix {
        /// The tag.
        tag: String,
        /// The parse error.
        source: CidrError,
    },
}

/// A service tag table (lookups are case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceTagTable {
    info: ServiceTagsInfo,
    by_lower: BTreeMap<String, ServiceTag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileShape {
    change_number: u64,
    #[serde(default)]
    cloud: Option<String>,
    values: Vec<FileValue>,
}

#[derive(Deserialize)]
struct FileValue {
    name: String,
    properties: FileProps,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileProps {
    #[serde(default)]
    region: Option<String>,
    address_prefixes: Vec<String>,
}

// === impl ServiceTagTable ===

impl ServiceTagTable {
    /// The built-in subset: `Storage`, `AzureKeyVault`, `Sql`, `EventHub`, `ApiManagement`,
    /// `AzureMonitor`, `AzureCloud` with their regional forms for westeurope, northeurope, eastus,
    /// westus2 and swedencentral (each global entry is the union of those regional forms only),
    /// plus `AzureActiveDirectory`, `AzureTrafficManager` and `AzureFrontDoor.Backend` whole —
    /// all cut from `ServiceTags_Public_20251028.json` (changeNumber 375).
    pub fn builtin() -> ServiceTagTable {
        let mut by_lower = BTreeMap::new();
        for (name, region, prefixes) in builtin::TAGS {
            let prefixes = prefixes
                .iter()
                .map(|p| p.parse().expect("built-in service tag prefixes are valid"))
                .collect();
            by_lower.insert(
                name.to_ascii_lowercase(),
                ServiceTag {
                    name: (*name).to_string(),
                    region: (*region).to_string(),
                    prefixes,
                },
            );
        }
        ServiceTagTable {
            info: ServiceTagsInfo {
                source: "built-in".into(),
                change_number: Some(builtin::SOURCE_CHANGE_NUMBER),
                cloud: Some("Public".into()),
            },
            by_lower,
        }
    }

    /// A table from tags already in memory (synthetic tables for benchmarks and tests); `source`
    /// is what outputs name as the table's source.
    pub fn from_tags(source: &str, tags: Vec<ServiceTag>) -> ServiceTagTable {
        let by_lower = tags
            .into_iter()
            .map(|t| (t.name.to_ascii_lowercase(), t))
            .collect();
        ServiceTagTable {
            info: ServiceTagsInfo {
                source: source.to_string(),
                change_number: None,
                cloud: None,
            },
            by_lower,
        }
    }

    /// Regions the built-in table has regional forms for.
    pub fn builtin_regions() -> &'static [&'static str] {
        builtin::REGIONS
    }

    /// Parses a `ServiceTags_Public` JSON document.
    ///
    /// # Errors
    /// [`TagTableError`] when the shape or a prefix is wrong.
    pub fn from_json(text: &str) -> Result<ServiceTagTable, TagTableError> {
        let shape: FileShape =
            serde_json::from_str(text).map_err(|e| TagTableError::Format(e.to_string()))?;
        let mut by_lower = BTreeMap::new();
        for v in shape.values {
            let mut prefixes = Vec::with_capacity(v.properties.address_prefixes.len());
            for p in &v.properties.address_prefixes {
                prefixes.push(Cidr::parse_address_or_prefix(p).map_err(|source| {
                    TagTableError::Prefix {
                        tag: v.name.clone(),
                        source,
                    }
                })?);
            }
            let region = v.properties.region.unwrap_or_default().to_ascii_lowercase();
            by_lower.insert(
                v.name.to_ascii_lowercase(),
                ServiceTag {
                    name: v.name,
                    region,
                    prefixes,
                },
            );
        }
        Ok(ServiceTagTable {
            info: ServiceTagsInfo {
                source: "file".into(),
                change_number: Some(shape.change_number),
                cloud: shape.cloud,
            },
            by_lower,
        })
    }

    /// Looks a tag up by name, case-insensitively (`SQL`, `storage.westeurope`).
    pub fn get(&self, name: &str) -> Option<&ServiceTag> {
        self.by_lower.get(&name.trim().to_ascii_lowercase())
    }

    /// The regional form `base.region` when the table has it.
    pub fn regional(&self, base: &str, region: &str) -> Option<&ServiceTag> {
        self.get(&format!("{base}.{region}"))
    }

    /// Where the table came from.
    pub fn info(&self) -> &ServiceTagsInfo {
        &self.info
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        self.by_lower.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_lower.is_empty()
    }

    /// Every tag, sorted by lower-cased name.
    pub fn iter(&self) -> impl Iterator<Item = &ServiceTag> {
        self.by_lower.values()
    }
}

impl Default for ServiceTagTable {
    fn default() -> Self {
        ServiceTagTable::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_dependency_tags() {
        let t = ServiceTagTable::builtin();
        assert_eq!(t.info().source, "built-in");
        assert!(t.get("storage").is_some());
        let kv = t.regional("AzureKeyVault", "westeurope").unwrap();
        assert_eq!(kv.name, "AzureKeyVault.WestEurope");
        assert!(kv
            .prefixes
            .iter()
            .any(|p| p.to_string() == "13.69.64.72/30"));
        assert!(
            t.get("VirtualNetwork").is_none(),
            "virtual tags are not table entries"
        );
    }

    #[test]
    fn loads_the_public_format() {
        let j = r#"{"changeNumber": 42, "cloud": "Public", "values": [
          {"name": "Storage.WestEurope", "id": "Storage.WestEurope", "properties": {"changeNumber": 1,
           "region": "westeurope", "regionId": 18, "platform": "Azure", "systemService": "AzureStorage",
           "addressPrefixes": ["13.69.40.16/28", "2603:1020:207::/48"], "networkFeatures": ["NSG"]}}]}"#;
        let t = ServiceTagTable::from_json(j).unwrap();
        assert_eq!(t.info().change_number, Some(42));
        assert_eq!(t.get("STORAGE.westeurope").unwrap().prefixes.len(), 2);
        assert!(ServiceTagTable::from_json("{}").is_err());
        let bad = j.replace("13.69.40.16/28", "13.69.40.17/28");
        assert!(matches!(
            ServiceTagTable::from_json(&bad),
            Err(TagTableError::Prefix { .. })
        ));
    }

    #[test]
    fn virtual_tags() {
        assert_eq!(
            VirtualTag::parse("virtual_network"),
            Some(VirtualTag::VirtualNetwork)
        );
        assert_eq!(VirtualTag::parse("INTERNET"), Some(VirtualTag::Internet));
        assert_eq!(VirtualTag::parse("Storage"), None);
    }
}
