//! The explained verdict as text: a short table, like `az network watcher test-ip-flow` plus
//! the per-NSG chain.

use std::fmt;

use super::{NsgEvaluation, Verdict};
use crate::source::Location;

// === Display ===

/// ` at file:line` for a location with a file, else nothing.
fn at_file_line(location: &Option<Location>) -> String {
    location
        .as_ref()
        .and_then(Location::file_line)
        .map_or(String::new(), |fl| format!(" at {fl}"))
}

impl fmt::Display for Verdict {
    /// A short table, like `az network watcher test-ip-flow` plus the per-NSG chain.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ep = |addr: &str, p: Option<u16>| match p {
            Some(p) if addr.contains(':') => format!("[{addr}]:{p}"),
            Some(p) => format!("{addr}:{p}"),
            None => addr.to_string(),
        };
        let destination = match (&self.flow.destination, &self.resolved) {
            (Some(d), _) => ep(d, self.flow.destination_port),
            (None, Some(r)) => ep(&r.name, self.flow.destination_port),
            (None, None) => "?".to_string(),
        };
        writeln!(
            f,
            "Flow      {} {} -> {}",
            self.flow.protocol,
            ep(&self.flow.source, self.flow.source_port),
            destination
        )?;
        if let Some(r) = &self.resolved {
            let via = match r.via {
                crate::dns::Via::PrivateZone => "private zone",
                crate::dns::Via::Public => "public DNS",
                crate::dns::Via::PublicFallback => {
                    "public DNS (the zone link's NxDomainRedirect fallback)"
                }
                crate::dns::Via::VnetName => "VNet name",
                crate::dns::Via::HostName => "[[hosts]] name",
            };
            let zone = r
                .zone
                .as_ref()
                .map_or(String::new(), |z| format!(", zone {z}"));
            match r.address {
                Some(a) => writeln!(f, "Resolved  {} -> {a} ({via}{zone})", r.name)?,
                None => writeln!(f, "Resolved  {} -> no answer ({via}{zone})", r.name)?,
            }
        }
        writeln!(f, "Verdict   {:?} ({})", self.verdict, self.code)?;
        if let Some(x) = &self.dnat {
            writeln!(
                f,
                "DNAT      {} / {} / {} / {}: {} -> {} (source {})",
                x.firewall,
                x.group,
                x.collection,
                x.rule,
                destination,
                ep(&x.translated_destination, Some(x.translated_port)),
                x.translated_source
            )?;
        }
        match &self.decided_by {
            Some(d) if d.kind == super::DecidedKind::Firewall => writeln!(
                f,
                "Firewall  {} / {}",
                d.nsg,
                [
                    d.group.as_deref(),
                    d.collection.as_deref(),
                    Some(d.rule.as_str())
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" / ")
            )?,
            Some(d) if d.kind == super::DecidedKind::Route => writeln!(
                f,
                "Route     {} ({} {})",
                d.rule,
                d.group.as_deref().unwrap_or("?"),
                d.collection.as_deref().unwrap_or("?")
            )?,
            Some(d) => writeln!(
                f,
                "Rule      {} / {} (priority {}, {} {}){}",
                d.nsg,
                d.rule,
                d.priority,
                d.direction,
                d.access,
                at_file_line(&d.location)
            )?,
            None => writeln!(f, "Rule      -")?,
        }
        for t in self.decided_by.iter().flat_map(|d| &d.tags) {
            writeln!(f, "Tag       {t}")?;
        }
        writeln!(f, "Why       {}", self.detail)?;
        let devices = |h: &[super::Hop]| h.iter().any(|x| x.kind != "nsg");
        if devices(&self.hops) {
            for (label, hops) in [("Path", &self.hops), ("Return", &self.return_hops)] {
                for (i, h) in hops.iter().enumerate() {
                    let head = if i == 0 { label } else { "" };
                    writeln!(
                        f,
                        "{head:<9} {:<9} {} ({} -> {}){}",
                        h.kind,
                        h.name,
                        h.source,
                        h.destination,
                        h.decided_by
                            .as_ref()
                            .map_or(String::new(), |d| format!(": {d}"))
                    )?;
                }
            }
            if let Some(e) = &self.egress_source {
                writeln!(f, "Egress    {e}")?;
            }
        }
        if !self.evaluated.is_empty() {
            writeln!(f)?;
            let width = |head: &str, col: &dyn Fn(&NsgEvaluation) -> usize| {
                self.evaluated
                    .iter()
                    .map(col)
                    .max()
                    .unwrap_or(0)
                    .max(head.len())
            };
            let wn = width("NSG", &|e| e.nsg.len());
            let wa = width("Applied to", &|e| e.applied_to.len());
            let wm = width("Matched rule", &|e| e.matched_rule.len());
            // A Source column (the matched rule's `file:line`) when any rule has one.
            let sources: Vec<Option<String>> = self
                .evaluated
                .iter()
                .map(|e| e.location.as_ref().and_then(Location::file_line))
                .collect();
            let any_source = sources.iter().any(Option::is_some);
            let tail = |access: &str, source: Option<&str>| {
                if any_source {
                    format!("{access:<6} {}", source.unwrap_or("-"))
                } else {
                    access.to_string()
                }
            };
            writeln!(
                f,
                "  {:<3} {:<wn$} {:<wa$} {:<9} {:<wm$} {}",
                "#",
                "NSG",
                "Applied to",
                "Direction",
                "Matched rule",
                tail("Access", Some("Source"))
            )?;
            for (i, (e, source)) in self.evaluated.iter().zip(&sources).enumerate() {
                writeln!(
                    f,
                    "  {:<3} {:<wn$} {:<wa$} {:<9} {:<wm$} {}",
                    i + 1,
                    e.nsg,
                    e.applied_to,
                    e.direction.as_str(),
                    e.matched_rule,
                    tail(e.access.as_str(), source.as_deref())
                )?;
            }
        }
        if !self.assumptions.is_empty() {
            writeln!(f)?;
            let codes: Vec<&str> = self.assumptions.iter().map(|a| a.code()).collect();
            writeln!(f, "Assumptions: {}", codes.join(", "))?;
        }
        write!(f, "Service tags: {}", self.service_tags.describe())
    }
}
