//! Resources as the importer sees them, whatever their origin: the modelled types ([`Kind`]),
//! resource ids, and exported JSON (`az ... show`, `az resource show --ids`, REST responses) in
//! both the nested-`properties` REST shape and the flattened CLI shape.

use serde_json::Value;

use super::error::{ImportError, Location};
use super::eval::get_ci;
use super::json;
use super::value::Val;
use super::IgnoredResource;

/// The resource types vnetsim models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Vnet,
    Subnet,
    Peering,
    Nsg,
    SecurityRule,
    Asg,
    Nic,
    Apim,
    ApimApi,
    // Issue 17: the resources around APIM v2, mapped by `private_link` after the rest.
    PrivateEndpoint,
    ZoneGroup,
    PrivateDnsZone,
    ZoneLink,
    ZoneARecord,
    KeyVault,
    StorageAccount,
    ApimNamedValue,
    ApimCertificate,
    // Read by `policy` before the APIs are mapped: backends an API's policy selects.
    ApimBackend,
    ApimApiPolicy,
    // Issue 18: routing, mapped by `routing` after the network.
    RouteTable,
    Route,
    NatGateway,
    PublicIp,
    AzureFirewall,
    FirewallPolicy,
    RuleCollectionGroup,
}

impl Kind {
    /// The kind of a resource type, case-insensitively.
    pub fn from_type(ty: &str) -> Option<Kind> {
        Some(
            match ty
                .trim()
                .trim_end_matches('/')
                .to_ascii_lowercase()
                .as_str()
            {
                "microsoft.network/virtualnetworks" => Kind::Vnet,
                "microsoft.network/virtualnetworks/subnets" => Kind::Subnet,
                "microsoft.network/virtualnetworks/virtualnetworkpeerings" => Kind::Peering,
                "microsoft.network/networksecuritygroups" => Kind::Nsg,
                "microsoft.network/networksecuritygroups/securityrules" => Kind::SecurityRule,
                "microsoft.network/applicationsecuritygroups" => Kind::Asg,
                "microsoft.network/networkinterfaces" => Kind::Nic,
                "microsoft.apimanagement/service" => Kind::Apim,
                "microsoft.apimanagement/service/apis" => Kind::ApimApi,
                "microsoft.network/privateendpoints" => Kind::PrivateEndpoint,
                "microsoft.network/privateendpoints/privatednszonegroups" => Kind::ZoneGroup,
                "microsoft.network/privatednszones" => Kind::PrivateDnsZone,
                "microsoft.network/privatednszones/virtualnetworklinks" => Kind::ZoneLink,
                "microsoft.network/privatednszones/a" => Kind::ZoneARecord,
                "microsoft.keyvault/vaults" => Kind::KeyVault,
                "microsoft.storage/storageaccounts" => Kind::StorageAccount,
                "microsoft.apimanagement/service/namedvalues" => Kind::ApimNamedValue,
                "microsoft.apimanagement/service/certificates" => Kind::ApimCertificate,
                "microsoft.apimanagement/service/backends" => Kind::ApimBackend,
                "microsoft.apimanagement/service/apis/policies" => Kind::ApimApiPolicy,
                "microsoft.network/routetables" => Kind::RouteTable,
                "microsoft.network/routetables/routes" => Kind::Route,
                "microsoft.network/natgateways" => Kind::NatGateway,
                "microsoft.network/publicipaddresses" => Kind::PublicIp,
                "microsoft.network/azurefirewalls" => Kind::AzureFirewall,
                "microsoft.network/firewallpolicies" => Kind::FirewallPolicy,
                "microsoft.network/firewallpolicies/rulecollectiongroups" => {
                    Kind::RuleCollectionGroup
                }
                _ => return None,
            },
        )
    }

    /// Keys only the full form of an exported resource has (flattened CLI shape); a resource
    /// with none of them and no `properties` is the `az resource list` form.
    fn full_form_keys(self) -> &'static [&'static str] {
        match self {
            Kind::Vnet => &["addressSpace", "subnets"],
            Kind::Subnet => &["addressPrefix", "addressPrefixes"],
            Kind::Peering => &["remoteVirtualNetwork", "peeringState"],
            Kind::Nsg => &["securityRules", "defaultSecurityRules"],
            Kind::SecurityRule => &["priority", "access", "direction"],
            Kind::Asg => &[],
            Kind::Nic => &["ipConfigurations"],
            Kind::Apim => &[
                "virtualNetworkType",
                "publisherEmail",
                "gatewayUrl",
                "hostnameConfigurations",
            ],
            Kind::ApimApi => &["path", "serviceUrl", "apiRevision"],
            Kind::PrivateEndpoint => &["subnet", "privateLinkServiceConnections"],
            Kind::ZoneGroup => &["privateDnsZoneConfigs"],
            Kind::PrivateDnsZone => &["numberOfRecordSets", "maxNumberOfRecordSets"],
            Kind::ZoneLink => &["virtualNetwork", "registrationEnabled"],
            Kind::ZoneARecord => &["aRecords", "ttl"],
            Kind::KeyVault => &["vaultUri", "tenantId", "sku"],
            Kind::StorageAccount => &["primaryEndpoints", "publicNetworkAccess"],
            Kind::ApimNamedValue => &["displayName", "keyVault", "secret"],
            Kind::ApimCertificate => &["keyVault", "thumbprint", "subject"],
            Kind::ApimBackend => &["url", "protocol"],
            Kind::ApimApiPolicy => &["value", "format"],
            Kind::RouteTable => &["routes", "disableBgpRoutePropagation"],
            Kind::Route => &["addressPrefix", "nextHopType"],
            Kind::NatGateway => &["publicIpAddresses", "idleTimeoutInMinutes"],
            Kind::PublicIp => &["ipAddress", "publicIPAllocationMethod"],
            Kind::AzureFirewall => &[
                "ipConfigurations",
                "firewallPolicy",
                "networkRuleCollections",
            ],
            Kind::FirewallPolicy => &["ruleCollectionGroups", "threatIntelMode"],
            Kind::RuleCollectionGroup => &["ruleCollections", "priority"],
        }
    }

    fn show_command(self) -> &'static str {
        match self {
            Kind::Vnet => "az network vnet show --ids",
            Kind::Subnet => "az network vnet subnet show --ids",
            Kind::Peering => "az network vnet peering show --ids",
            Kind::Nsg => "az network nsg show --ids",
            Kind::SecurityRule => "az network nsg rule show --ids",
            Kind::Asg => "az network asg show --ids",
            Kind::Nic => "az network nic show --ids",
            Kind::Apim => "az apim show --ids",
            Kind::ApimApi => "az apim api show --ids",
            Kind::PrivateEndpoint => "az network private-endpoint show --ids",
            Kind::ZoneGroup => "az network private-endpoint dns-zone-group show --ids",
            Kind::PrivateDnsZone => "az network private-dns zone show --ids",
            Kind::ZoneLink => "az network private-dns link vnet show --ids",
            Kind::ZoneARecord => "az network private-dns record-set a show --ids",
            Kind::KeyVault => "az keyvault show --ids",
            Kind::StorageAccount => "az storage account show --ids",
            Kind::ApimNamedValue => "az apim nv show --ids",
            Kind::ApimCertificate => "az resource show --ids",
            Kind::ApimBackend | Kind::ApimApiPolicy => "az resource show --ids",
            Kind::RouteTable => "az network route-table show --ids",
            Kind::Route => "az network route-table route show --ids",
            Kind::NatGateway => "az network nat gateway show --ids",
            Kind::PublicIp => "az network public-ip show --ids",
            Kind::AzureFirewall => "az network firewall show --ids",
            Kind::FirewallPolicy => "az network firewall policy show --ids",
            Kind::RuleCollectionGroup => {
                "az network firewall policy rule-collection-group show --ids"
            }
        }
    }
}

/// One resource to map.
#[derive(Clone, Debug)]
pub(crate) struct Res {
    pub kind: Kind,
    /// The type as written.
    pub ty: String,
    /// Full name, parents first: `vnet/subnet`.
    pub name: String,
    /// The resource object (template resources: evaluated keys only).
    pub body: Val,
    /// Where the resource object is.
    pub at: Location,
    /// From exported JSON (not a template).
    pub export: bool,
    /// Subscription from the resource id, when there is one.
    pub subscription: Option<String>,
}

impl Res {
    /// `parent/child` of a child resource's full name (the parent's last segment).
    pub fn split_child(&self) -> Result<(String, String), ImportError> {
        match self.name.rsplit_once('/') {
            Some((parent, child)) if !parent.is_empty() && !child.is_empty() => Ok((
                parent.rsplit('/').next().unwrap_or(parent).to_string(),
                child.to_string(),
            )),
            _ => Err(ImportError::Invalid {
                at: self.at.clone(),
                message: format!("{} name `{}` must be `parent/child`", self.ty, self.name),
            }),
        }
    }

    /// This resource, listed as not mapped for `reason`.
    pub fn ignored(&self, reason: impl Into<String>) -> IgnoredResource {
        IgnoredResource {
            resource_type: self.ty.clone(),
            name: self.name.clone(),
            input: self.at.input.clone(),
            pointer: self.at.pointer.clone(),
            reason: reason.into(),
        }
    }

    /// The resource's properties: `properties` when present; the object itself for the
    /// flattened CLI shape; an empty object for a template resource without properties.
    pub fn props(&self) -> (&Val, String) {
        match self.body.get("properties") {
            Some(p @ Val::Obj(_)) => (p, json::key(&self.at.pointer, "properties")),
            _ if self.export => (&self.body, self.at.pointer.clone()),
            _ => (&EMPTY, json::key(&self.at.pointer, "properties")),
        }
    }
}

static EMPTY: Val = Val::Obj(Vec::new());

/// The parts of an ARM resource id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IdParts {
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
    /// `(type segment, name)` pairs after the provider namespace.
    pub segments: Vec<(String, String)>,
}

/// Parses `/subscriptions/s/resourceGroups/rg/providers/Ns/t1/n1/t2/n2...`, case-insensitively.
pub(crate) fn parse_id(id: &str) -> IdParts {
    let parts: Vec<&str> = id.trim().trim_matches('/').split('/').collect();
    let mut out = IdParts::default();
    let mut i = 0;
    while i + 1 < parts.len() {
        let k = parts[i].to_ascii_lowercase();
        match k.as_str() {
            "subscriptions" if out.subscription.is_none() => {
                out.subscription = Some(parts[i + 1].to_string());
                i += 2;
            }
            "resourcegroups" if out.resource_group.is_none() => {
                out.resource_group = Some(parts[i + 1].to_string());
                i += 2;
            }
            "providers" => {
                // Skip the namespace, then read type/name pairs.
                i += 2;
                while i + 1 < parts.len() {
                    if parts[i].eq_ignore_ascii_case("providers") {
                        break;
                    }
                    out.segments
                        .push((parts[i].to_string(), parts[i + 1].to_string()));
                    i += 2;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The name after the `segment` type in an id (`networkSecurityGroups` → the NSG's name).
pub(crate) fn name_in_id(id: &str, segment: &str) -> Option<String> {
    parse_id(id)
        .segments
        .into_iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(segment))
        .map(|(_, n)| n)
}

/// `vnet/subnet` of a subnet id.
pub(crate) fn subnet_of_id(id: &str) -> Option<String> {
    let p = parse_id(id);
    let vnet = p
        .segments
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case("virtualNetworks"))?;
    let sub = p
        .segments
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case("subnets"))?;
    Some(format!("{}/{}", vnet.1, sub.1))
}

/// Collects exported resources: a single object, an array, a REST list (`{"value": [...]}`) or
/// a REST API example (`{"parameters": ..., "responses": {"200": {"body": ...}}}`).
pub(crate) fn collect_exports(
    input: &str,
    doc: &Value,
) -> Result<(Vec<Res>, Vec<IgnoredResource>), ImportError> {
    let mut items: Vec<(String, &Value)> = Vec::new();
    match doc {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                items.push((json::index("", i), x));
            }
        }
        Value::Object(_) => {
            if let Some((code, body)) = rest_example_body(doc) {
                items.push((format!("/responses/{code}/body"), body));
            } else if let (Some(Value::Array(list)), None) =
                (get_ci(doc, "value"), get_ci(doc, "type"))
            {
                for (i, x) in list.iter().enumerate() {
                    items.push((json::index("/value", i), x));
                }
            } else {
                items.push((String::new(), doc));
            }
        }
        _ => {
            return Err(ImportError::NotAzure {
                input: input.to_string(),
                reason: "not a resource object or array of resources".into(),
            })
        }
    }
    let mut out = Vec::new();
    let mut ignored = Vec::new();
    for (ptr, item) in items {
        let at = Location::new(input, ptr.clone());
        let Some(ty) = get_ci(item, "type").and_then(Value::as_str) else {
            return Err(ImportError::Invalid {
                at,
                message: "an exported resource needs a `type`".into(),
            });
        };
        let id = get_ci(item, "id").and_then(Value::as_str).unwrap_or("");
        let parts = parse_id(id);
        let name = if parts.segments.is_empty() {
            get_ci(item, "name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        } else {
            parts
                .segments
                .iter()
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join("/")
        };
        let Some(kind) = Kind::from_type(ty) else {
            ignored.push(IgnoredResource {
                resource_type: ty.to_string(),
                name,
                input: input.to_string(),
                pointer: ptr,
                reason: format!("type `{ty}` is not modelled by vnetsim"),
            });
            continue;
        };
        let has_props = get_ci(item, "properties").is_some_and(Value::is_object);
        let full = kind.full_form_keys();
        if !has_props && !full.is_empty() && !full.iter().any(|k| get_ci(item, k).is_some()) {
            let shown = if id.is_empty() { "<id>" } else { id };
            return Err(ImportError::NoProperties {
                at,
                resource_type: ty.to_string(),
                name,
                id: shown.to_string(),
                command: format!("{} {shown}", kind.show_command()),
            });
        }
        out.push(Res {
            kind,
            ty: ty.to_string(),
            name,
            body: Val::from_json(item),
            at,
            export: true,
            subscription: parts.subscription,
        });
    }
    Ok((out, ignored))
}

/// The body of a REST API example response (`responses.200.body`, or 201).
pub(crate) fn rest_example_body(doc: &Value) -> Option<(&'static str, &Value)> {
    let responses = get_ci(doc, "responses")?;
    ["200", "201"].into_iter().find_map(|code| {
        get_ci(responses, code)
            .and_then(|r| get_ci(r, "body"))
            .filter(|b| b.is_object())
            .map(|b| (code, b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse() {
        let id = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/a";
        let p = parse_id(id);
        assert_eq!(p.subscription.as_deref(), Some("s1"));
        assert_eq!(p.resource_group.as_deref(), Some("rg"));
        assert_eq!(p.segments.len(), 2);
        assert_eq!(subnet_of_id(id).as_deref(), Some("v/a"));
        assert_eq!(
            name_in_id("/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/networkSecurityGroups/n1", "NETWORKSECURITYGROUPS").as_deref(),
            Some("n1")
        );
    }

    #[test]
    fn kinds_are_case_insensitive() {
        assert_eq!(
            Kind::from_type("microsoft.network/networkSecurityGroups/"),
            Some(Kind::Nsg)
        );
        assert_eq!(Kind::from_type("Microsoft.Web/serverfarms"), None);
    }

    #[test]
    fn resource_list_form_is_refused() {
        let doc = serde_json::json!([{"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/networkSecurityGroups/n",
            "name": "n", "type": "Microsoft.Network/networkSecurityGroups", "location": "westus", "resourceGroup": "r"}]);
        let e = collect_exports("list.json", &doc).unwrap_err();
        assert_eq!(e.code(), "ARM_NO_PROPERTIES");
        assert!(
            e.to_string()
                .contains("az network nsg show --ids /subscriptions/s/"),
            "{e}"
        );
        assert!(e.to_string().contains("az resource show --ids"), "{e}");
    }
}
