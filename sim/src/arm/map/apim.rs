//! The API Management instance (tier, capacity, region, network mode) and its APIs.

use std::str::FromStr;

use super::{invalid, read, unrepresentable, ApiDef, ApimDef, Got, Mapped, Mapper};
use crate::arm::error::ImportError;
use crate::arm::json;
use crate::arm::resource::{subnet_of_id, Res};
use crate::arm::value::Val;
use crate::fixture::{ApiFile, ApimFile, NetworkMode, Sku};

// === impl Mapper (API Management) ===

impl Mapper {
    pub(super) fn apim(&mut self, r: &Res) -> Result<ApimDef, ImportError> {
        let region = self.location(r, "apim/region")?;
        let sku_v = r.body.get("sku");
        let sp = json::key(&r.at.pointer, "sku");
        let sku = match read(sku_v.and_then(|s| s.get("name")))? {
            Got::Known(Val::Str(s)) => Sku::from_str(s)
                .map_err(|e| invalid(&r.at, &json::key(&sp, "name"), e.to_string()))?,
            Got::Unknown(u) => {
                return Err(unrepresentable(&u, "the API Management tier (sku.name)"))
            }
            _ => {
                return Err(invalid(
                    &r.at,
                    &sp,
                    format!("API Management instance `{}` has no sku.name", r.name),
                ))
            }
        };
        let capacity = match read(sku_v.and_then(|s| s.get("capacity")))? {
            Got::Missing => 1,
            Got::Known(Val::Int(i)) => u32::try_from(*i).map_err(|_| {
                invalid(
                    &r.at,
                    &json::key(&sp, "capacity"),
                    format!("capacity {i} is not a unit count"),
                )
            })?,
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    "the API Management capacity (sku.capacity)",
                ))
            }
            Got::Known(o) => {
                return Err(invalid(
                    &r.at,
                    &json::key(&sp, "capacity"),
                    format!("capacity must be an int, got {}", o.type_name()),
                ))
            }
        };
        let (p, pp) = r.props();
        let tp = json::key(&pp, "virtualNetworkType");
        let vnet_type = match read(p.get("virtualNetworkType"))? {
            Got::Missing => "none".to_string(),
            Got::Known(Val::Str(s)) => s.to_ascii_lowercase(),
            Got::Unknown(u) => return Err(unrepresentable(&u, "virtualNetworkType")),
            Got::Known(o) => {
                return Err(invalid(
                    &r.at,
                    &tp,
                    format!("virtualNetworkType must be a string, got {}", o.type_name()),
                ))
            }
        };
        let cp = json::key(
            &json::key(&pp, "virtualNetworkConfiguration"),
            "subnetResourceId",
        );
        let subnet = match self.text(
            p.get("virtualNetworkConfiguration")
                .and_then(|c| c.get("subnetResourceId")),
            &r.at,
            &cp,
            "apim/subnet",
            "subnetResourceId",
        )? {
            Some(m) if crate::arm::is_marker(&m) => Some(m),
            Some(id) => Some(
                subnet_of_id(&id)
                    .ok_or_else(|| invalid(&r.at, &cp, format!("`{id}` is not a subnet id")))?,
            ),
            None => None,
        };
        let v2 = matches!(sku, Sku::BasicV2 | Sku::StandardV2 | Sku::PremiumV2);
        let (mode, classic) = match vnet_type.as_str() {
            "none" | "" => (NetworkMode::None, None),
            "external" if v2 => (NetworkMode::Integration, None),
            "internal" if v2 => (NetworkMode::Injection, None),
            // Classic tiers keep classic injection semantics (CLASSIC_TIER_VNET comes from the
            // build stage, so validating the imported TOML still warns).
            "external" => (NetworkMode::Classic, Some("External".to_string())),
            "internal" => (NetworkMode::Classic, Some("Internal".to_string())),
            other => {
                return Err(invalid(
                    &r.at,
                    &tp,
                    format!("virtualNetworkType `{other}` is not None, External or Internal"),
                ))
            }
        };
        let mut address = None;
        let mut public_address = None;
        if r.export {
            let first = |k: &str| match p.get(k) {
                Some(Val::Arr(a)) => a.first().and_then(Val::as_str).map(str::to_string),
                _ => None,
            };
            if matches!(mode, NetworkMode::Injection | NetworkMode::Classic) {
                address = first("privateIPAddresses");
            }
            public_address = first("publicIPAddresses").filter(|a| {
                a.parse::<std::net::IpAddr>()
                    .is_ok_and(crate::cidr::is_public)
            });
        }
        Ok(ApimDef {
            file: ApimFile {
                name: r.name.clone(),
                sku,
                capacity,
                region,
                subscription: self.own_subscription(r),
                virtual_network: mode,
                subnet,
                previous_virtual_network: None,
                address,
                public_address,
                classic_vnet_type: match classic.as_deref() {
                    Some("Internal") => Some(crate::fixture::ClassicVnetType::Internal),
                    Some(_) => Some(crate::fixture::ClassicVnetType::External),
                    None => None,
                },
                outbound_route_all: None,
                named_values: Vec::new(),
            },
            classic_vnet: classic,
        })
    }

    pub(super) fn api(&mut self, r: &Res) -> Result<Mapped, ImportError> {
        let (service, api) = r.split_child()?;
        let ignore = |reason: String| Ok(Mapped::Ignored(r.ignored(reason)));
        if api.contains(";rev=") {
            return ignore("an API revision (only the current revision is routed)".into());
        }
        let (p, pp) = r.props();
        if matches!(p.get("isCurrent"), Some(Val::Bool(false))) {
            return ignore("not the current revision".into());
        }
        let subject = format!("apis/{api}");
        let path = self
            .text(
                p.get("path"),
                &r.at,
                &json::key(&pp, "path"),
                &format!("{subject}/path"),
                "path",
            )?
            .unwrap_or_default();
        // The backend the API's policy selects (set-backend-service) wins over serviceUrl.
        let selected = self
            .policy_backends
            .get(&format!("{service}/{api}").to_ascii_lowercase())
            .cloned();
        let backend = match selected {
            Some(url) => Some(url),
            None => self.text(
                p.get("serviceUrl"),
                &r.at,
                &json::key(&pp, "serviceUrl"),
                &format!("{subject}/backend"),
                "serviceUrl",
            )?,
        };
        let Some(backend) = backend else {
            return ignore(
                "the API has no serviceUrl and its policy selects no backend among the inputs"
                    .into(),
            );
        };
        let path = if crate::arm::is_marker(&path) {
            path
        } else {
            format!("/{}", path.trim_start_matches('/'))
        };
        Ok(Mapped::Api(ApiDef {
            service,
            file: ApiFile {
                name: api,
                path,
                backend,
            },
        }))
    }
}
