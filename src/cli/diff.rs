//! `vnetsim diff BEFORE AFTER [--from SRC|--all-sources] [--by-rule]`: the flow classes whose
//! outcome differs between two topologies ([`sim::Topology::diff`]); exit 1 when any does.

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{json, Value};
use sim::{DiffKey, SpaceQuery, Topology};

use super::inputs::AzureArgs;
use super::output::{out, refuse_fixture};
use super::space;
use super::{Output, Status};

/// Arguments of `diff`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The topology before: a fixture or Azure input (as `validate` accepts).
    before: PathBuf,
    /// The topology after.
    after: PathBuf,
    /// Source: `apim`, a host name or DNS name, or an IP address (resolved in BEFORE).
    #[arg(
        long,
        value_name = "SRC",
        default_value = "apim",
        allow_hyphen_values = true,
        conflicts_with = "all_sources"
    )]
    from: String,
    /// Every source: the APIM instance and every host of either topology.
    #[arg(long)]
    all_sources: bool,
    /// Also report flows whose deciding rule changed while verdict and code stayed.
    #[arg(long)]
    by_rule: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub(crate) output: Output,
    #[command(flatten)]
    azure: AzureArgs,
}

fn load(path: &PathBuf, a: &AzureArgs, output: Output) -> anyhow::Result<Option<crate::Loaded>> {
    let loaded = crate::load_inputs(std::slice::from_ref(path), &a.load_options())?;
    let structural = loaded.structural_errors();
    if !structural.is_empty() {
        refuse_fixture(&loaded.name, &structural, output);
        return Ok(None);
    }
    Ok(Some(loaded))
}

fn sources(a: &Args, before: &Topology, after: &Topology) -> anyhow::Result<Vec<(String, IpAddr)>> {
    if !a.all_sources {
        let s = crate::query::resolve_source_word(before, &a.from)?;
        return Ok(vec![(a.from.clone(), s)]);
    }
    let mut out: Vec<(String, IpAddr)> = Vec::new();
    for t in [before, after] {
        if let Some(s) = t.apim_source() {
            out.push(("apim".into(), s));
        }
        for h in t.hosts() {
            out.push((h.name.clone(), h.address));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|(_, ip)| seen.insert(*ip));
    Ok(out)
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    let (Some(before), Some(after)) = (
        load(&a.before, &a.azure, a.output)?,
        load(&a.after, &a.azure, a.output)?,
    ) else {
        return Ok(Status::BadInput);
    };
    let (tb, ta) = (before.topology(), after.topology());
    let key = if a.by_rule {
        DiffKey::ByRule
    } else {
        DiffKey::Verdict
    };
    let mut changed: Vec<Value> = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    for (from, source) in sources(a, tb, ta)? {
        for d in tb.diff(ta, &SpaceQuery::from(source), key) {
            let outcome = |t: &Topology, dec: &sim::Decision| {
                json!({
                    "verdict": dec.verdict,
                    "code": dec.code,
                    "decided_by": space::decided_by(t, dec),
                })
            };
            let verb = match (d.class.decision.allowed(), d.after.allowed()) {
                (false, true) => "opens",
                (true, false) => "closes",
                _ if d.rerouted
                    && (d.class.decision.verdict, d.class.decision.code)
                        == (d.after.verdict, d.after.code) =>
                {
                    "reroutes"
                }
                _ => "changes",
            };
            let mut m = serde_json::Map::new();
            m.insert("change".into(), json!(verb));
            m.insert("from".into(), json!(from));
            m.extend(space::class_fields(&d.class));
            m.insert("before".into(), outcome(tb, &d.class.decision));
            m.insert("after".into(), outcome(ta, &d.after));
            m.insert("example".into(), space::flow_json(&d.class.example));
            changed.push(Value::Object(m));
            lines.push(format!(
                "{verb} {from} → {} {}: {} {} ({}) → {} {} ({})",
                space::destinations_text(&d.class, 3),
                space::service_text(&d.class),
                d.class.decision.verdict.as_str(),
                d.class.decision.code,
                space::decided_by_text(tb, &d.class.decision),
                d.after.verdict.as_str(),
                d.after.code,
                space::decided_by_text(ta, &d.after),
            ));
        }
    }
    match a.output {
        Output::Json => out(&serde_json::to_string_pretty(
            &json!({ "changed": changed }),
        )?)?,
        Output::Text if lines.is_empty() => out("No flow changes outcome.")?,
        Output::Text => out(&lines.join("\n"))?,
    }
    Ok(if changed.is_empty() {
        Status::Success
    } else {
        Status::Negative
    })
}
