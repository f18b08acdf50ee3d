//! NICs: one host per IP configuration (private address, subnet, NIC NSG, ASGs); dynamic
//! addresses are left for [`crate::arm::assemble`] to allocate.

use super::{invalid, props_of, read, unrepresentable, Addr, Got, IpConfig, Mapper, NicDef};
use crate::arm::error::ImportError;
use crate::arm::json;
use crate::arm::resource::{subnet_of_id, Res};
use crate::arm::value::Val;

// === impl Mapper (NICs) ===

impl Mapper {
    pub(super) fn nic(&mut self, r: &Res) -> Result<NicDef, ImportError> {
        let subject = format!("hosts/{}", r.name);
        let (p, pp) = r.props();
        let nsg = self.reference(
            p.get("networkSecurityGroup"),
            "networkSecurityGroups",
            &r.at,
            &json::key(&pp, "networkSecurityGroup"),
            &format!("{subject}/nsg"),
        )?;
        let cp = json::key(&pp, "ipConfigurations");
        let items = match read(p.get("ipConfigurations"))? {
            Got::Known(Val::Arr(items)) if !items.is_empty() => items,
            Got::Unknown(u) => {
                return Err(unrepresentable(
                    &u,
                    format!("the IP configurations of NIC `{}`", r.name),
                ))
            }
            _ => {
                return Err(invalid(
                    &r.at,
                    &pp,
                    format!("NIC `{}` has no ipConfigurations", r.name),
                ))
            }
        };
        let mut ip_configs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let ptr = json::index(&cp, i);
            let name = self.name(
                item.get("name"),
                &r.at,
                &json::key(&ptr, "name"),
                "the IP configuration name",
            )?;
            let (c, cpp) = props_of(item, &ptr);
            let method = c
                .get("privateIPAllocationMethod")
                .and_then(Val::as_str)
                .unwrap_or("Dynamic");
            let address = match self.text(
                c.get("privateIPAddress"),
                &r.at,
                &json::key(&cpp, "privateIPAddress"),
                &format!("{subject}/address"),
                "privateIPAddress",
            )? {
                Some(a) => Addr::Static(a),
                None if method.eq_ignore_ascii_case("Static") => {
                    return Err(invalid(&r.at, &cpp, format!("IP configuration `{name}` of NIC `{}` is Static but has no privateIPAddress", r.name)));
                }
                None => Addr::Dynamic,
            };
            let subnet = match self.reference(
                c.get("subnet"),
                "subnets",
                &r.at,
                &json::key(&cpp, "subnet"),
                &format!("{subject}/subnet"),
            )? {
                Some(m) if crate::arm::is_marker(&m) => m,
                Some(_) => {
                    let id = c
                        .get("subnet")
                        .and_then(|s| s.get("id"))
                        .and_then(Val::as_str)
                        .unwrap_or("");
                    subnet_of_id(id).ok_or_else(|| {
                        invalid(
                            &r.at,
                            &json::key(&cpp, "subnet"),
                            format!("`{id}` is not a subnet id"),
                        )
                    })?
                }
                None => {
                    return Err(invalid(
                        &r.at,
                        &cpp,
                        format!(
                            "IP configuration `{name}` of NIC `{}` has no subnet",
                            r.name
                        ),
                    ))
                }
            };
            let asgs = self
                .asg_list(
                    c.get("applicationSecurityGroups"),
                    &r.at,
                    &json::key(&cpp, "applicationSecurityGroups"),
                    &format!("{subject}/application_security_groups"),
                )?
                .unwrap_or_default();
            let primary = matches!(c.get("primary"), Some(Val::Bool(true)));
            let ipv6 = c
                .get("privateIPAddressVersion")
                .and_then(Val::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case("IPv6"));
            ip_configs.push(IpConfig {
                name,
                address,
                subnet,
                asgs,
                primary,
                ipv6,
            });
        }
        // ARM `enableIPForwarding`: the NIC forwards traffic not addressed to it (an appliance).
        let ip_forwarding = matches!(r.props().0.get("enableIPForwarding"), Some(Val::Bool(true)));
        Ok(NicDef {
            name: r.name.clone(),
            ip_forwarding,
            nsg,
            ip_configs,
        })
    }
}
