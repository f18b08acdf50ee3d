//! Build stage: NSGs. Each NSG's rules are parsed and checked against the service tag table and
//! the set of ASG names (declared ones plus those hosts are members of); later stages refer to
//! NSGs by name through [`Builder::nsg_ref`].

use std::collections::BTreeSet;

use super::{Builder, Entry};
use crate::finding::FindingCode;
use crate::nsg::Nsg;
use crate::topology::find_ci;

impl Builder<'_> {
    /// The NSGs (invalid rules left out) and the lower-cased names of every known ASG.
    pub(super) fn nsgs(&mut self) -> (Vec<Nsg>, BTreeSet<String>) {
        let fx = self.fx;
        self.dup_names("nsgs", fx.nsgs.iter().map(|n| n.name.as_str()));
        let mut known_asgs: BTreeSet<String> = fx
            .application_security_groups
            .iter()
            .map(|a| a.to_ascii_lowercase())
            .collect();
        for h in &fx.hosts {
            known_asgs.extend(
                h.application_security_groups
                    .iter()
                    .map(|a| a.to_ascii_lowercase()),
            );
        }
        let mut nsgs = Vec::new();
        for (ni, n) in fx.nsgs.iter().enumerate() {
            let (nsg, fs) = Nsg::from_rules_indexed(
                &n.name,
                n.flush_connection,
                &n.security_rules,
                &self.tags,
                &known_asgs,
            );
            for (rule, f) in fs {
                let pointer = match rule {
                    Some(ri) => format!("/nsgs/{ni}/security_rules/{ri}"),
                    None => format!("/nsgs/{ni}"),
                };
                let location = self.source.locate(&pointer);
                self.f.push(f.at(location));
            }
            nsgs.push(nsg);
        }
        (nsgs, known_asgs)
    }

    /// The index of the NSG a subnet or host names, or a `REFERENCE_UNKNOWN` finding about `subject`.
    pub(super) fn nsg_ref(
        &mut self,
        nsgs: &[Nsg],
        name: &Option<String>,
        subject: &Entry,
    ) -> Option<usize> {
        let name = name.as_ref()?;
        match find_ci(nsgs, name, |n| &n.name) {
            Some((i, _)) => Some(i),
            None => {
                self.push(
                    FindingCode::ReferenceUnknown,
                    subject,
                    format!(
                        "NSG `{name}` is not defined in [[nsgs]]{}",
                        super::did_you_mean(name, nsgs.iter().map(|n| n.name.as_str()))
                    ),
                );
                None
            }
        }
    }
}
