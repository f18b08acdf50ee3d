//! Build stage: application security group placement. "All network interfaces assigned to an
//! application security group have to exist in the same virtual network that the first network
//! interface assigned to the application security group is in … If you specify an application
//! security group as the source and destination in a security rule, the network interfaces in
//! both application security groups must exist in the same virtual network."
//! (<https://learn.microsoft.com/azure/virtual-network/application-security-groups#allow-database-businesslogic>,
//! "Application security groups", constraints.)

use std::collections::{BTreeMap, BTreeSet};

use super::{Builder, Entry};
use crate::finding::FindingCode;
use crate::nsg::Nsg;
use crate::topology::{Host, Vnet};

impl Builder<'_> {
    /// `ASG_MEMBERS_IN_SEVERAL_VNETS` for each member placed outside the VNet of its ASG's
    /// first member (in host order), and `RULE_ASGS_IN_DIFFERENT_VNETS` for each rule whose
    /// source and destination ASGs live in different VNets.
    pub(super) fn asg_placement(&mut self, vnets: &[Vnet], hosts: &[Host], nsgs: &[Nsg]) {
        // ASG (lower-cased) -> (VNet of its first placed member, that member's name).
        let mut home: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
        for h in hosts {
            let Some((vi, _)) = h.placement else { continue };
            for a in &h.asgs {
                match home.get(a.as_str()) {
                    None => {
                        home.insert(a, (vi, &h.name));
                    }
                    Some(&(v0, first)) if v0 != vi => self.push(
                        FindingCode::AsgMembersInSeveralVnets,
                        &Entry::new(format!("hosts/{}", h.name), format!("/hosts/{}", h.index)),
                        format!(
                            "member of application security group `{a}` in VNet `{}`, but its first member `{first}` is in `{}`: all network interfaces of an ASG must be in the same VNet",
                            vnets[vi].name, vnets[v0].name
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        for (ni, n) in nsgs.iter().enumerate() {
            for r in &n.rules {
                if r.source.asgs.is_empty() || r.destination.asgs.is_empty() {
                    continue;
                }
                let homes: BTreeSet<usize> = r
                    .source
                    .asgs
                    .iter()
                    .chain(&r.destination.asgs)
                    .filter_map(|a| home.get(a.as_str()).map(|(v, _)| *v))
                    .collect();
                if homes.len() < 2 {
                    continue;
                }
                let names: Vec<&str> = homes.iter().map(|&v| vnets[v].name.as_str()).collect();
                let pointer = r.index.map_or_else(
                    || format!("/nsgs/{ni}"),
                    |ri| format!("/nsgs/{ni}/security_rules/{ri}"),
                );
                self.push(
                    FindingCode::RuleAsgsInDifferentVnets,
                    &Entry::new(format!("nsgs/{}/securityRules/{}", n.name, r.name), pointer),
                    format!(
                        "the source ({}) and destination ({}) application security groups have members in different VNets ({}): the network interfaces of both must be in the same VNet",
                        r.source.text.join(", "),
                        r.destination.text.join(", "),
                        names.join(", ")
                    ),
                );
            }
        }
    }
}
