//! Build stage: `[faults]`, each rule checked by [`Topology::check_fault`] (the one check, also
//! used for rules added live) against the finished model. A rule with a problem is left out of
//! the [`FaultSet`] and reported; two rules with one name are `NAME_DUPLICATE`.

use std::collections::BTreeSet;

use super::Builder;
use crate::fault::FaultSet;
use crate::finding::{Finding, FindingCode};
use crate::topology::Topology;

impl Builder<'_> {
    /// The checked faults of the fixture, with a finding per problem.
    pub(super) fn faults(&mut self, t: &Topology) -> FaultSet {
        let Some(file) = &self.fx.faults else {
            return FaultSet::default();
        };
        let mut set = FaultSet {
            seed: file.seed,
            rules: Vec::with_capacity(file.rules.len()),
        };
        let mut seen = BTreeSet::new();
        for (i, r) in file.rules.iter().enumerate() {
            let subject = format!("faults/rules/{}", r.name);
            let location = t.source.locate(&format!("/faults/rules/{i}"));
            if !seen.insert(r.name.to_ascii_lowercase()) {
                self.f.push(
                    Finding::new(
                        FindingCode::NameDuplicate,
                        subject,
                        format!(
                            "two fault rules are named `{}` (names compare case-insensitively)",
                            r.name
                        ),
                    )
                    .at(location),
                );
                continue;
            }
            match t.check_fault(r) {
                Ok(f) => set.rules.push(f),
                Err(problems) => {
                    for p in problems {
                        self.f.push(
                            Finding::new(p.code, subject.clone(), p.message).at(location.clone()),
                        );
                    }
                }
            }
        }
        set
    }
}
