//! `vnetsim reach FIXTURE [--from SRC] [--to PREFIX|NAME] [--protocol P] [--ports RANGES]`: every
//! flow from one source partitioned into classes that share one outcome ([`sim::Topology::reach`]).

use serde_json::{json, Value};
use sim::{Protocol, VerdictKind};

use super::inputs::InputArgs;
use super::output::{out, refuse_fixture};
use super::space::{self, SpaceWords};
use super::{Output, Status};

/// Arguments of `reach`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    inputs: InputArgs,
    /// Source: `apim` (the instance's outbound address, the default), a host name or DNS name of the fixture, or an IP address.
    #[arg(long, value_name = "SRC", allow_hyphen_values = true)]
    from: Option<String>,
    /// Who can reach DST: every source partitioned the same way, into `apim` (the gateway endpoint), a host name or a host's DNS name, or an IP address.
    #[arg(long, value_name = "DST", allow_hyphen_values = true, conflicts_with_all = ["from", "to"])]
    into: Option<String>,
    /// Only these destinations: a prefix (`10.0.2.0/24`), an address, `apim`, or a host or DNS name resolved as `check` resolves it.
    #[arg(long, value_name = "PREFIX|NAME", allow_hyphen_values = true)]
    to: Option<String>,
    /// Only this protocol (Tcp, Udp, Icmp, Esp, Ah); default all five (Tcp and Udp with --ports).
    #[arg(long, value_parser = parse_protocol)]
    protocol: Option<Protocol>,
    /// Only these destination ports of Tcp/Udp flows: `443`, `80,8000-9000`.
    #[arg(long, value_name = "RANGES")]
    ports: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub(crate) output: Output,
}

pub(crate) fn parse_protocol(s: &str) -> Result<Protocol, String> {
    s.parse::<Protocol>().map_err(|e| e.to_string())
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    let loaded = a.inputs.load(Vec::new())?;
    let structural = loaded.structural_errors();
    if !structural.is_empty() {
        refuse_fixture(&loaded.name, &structural, a.output);
        return Ok(Status::BadInput);
    }
    let t = loaded.topology();
    let from = a.from.as_deref().unwrap_or("apim");
    let words = SpaceWords {
        from,
        into: a.into.as_deref(),
        to: a.to.as_deref(),
        protocol: a.protocol,
        ports: a.ports.as_deref(),
    };
    let q = space::query(t, &words).map_err(|e| anyhow::anyhow!("{}: {e}", loaded.name))?;
    let reach = t.reach(&q);
    match a.output {
        Output::Json => {
            let classes: Vec<Value> = reach
                .classes
                .iter()
                .map(|c| {
                    let mut m = serde_json::Map::new();
                    m.insert("verdict".into(), json!(c.decision.verdict));
                    m.insert("code".into(), json!(c.decision.code));
                    m.extend(space::class_fields(c));
                    m.insert("decided_by".into(), space::decided_by(t, &c.decision));
                    if let Some(f) = space::fqdns(t, &c.decision) {
                        m.insert("fqdns".into(), f);
                    }
                    m.insert("example".into(), space::flow_json(&c.example));
                    Value::Object(m)
                })
                .collect();
            let doc = json!({
                "query": space::query_json(&words, &q),
                "classes": classes,
            });
            out(&serde_json::to_string_pretty(&doc)?)?;
        }
        Output::Text => {
            let (title, into) = match q.anchor {
                sim::Anchor::From(s) => (format!("from {}", space::source_text(from, s)), false),
                sim::Anchor::Into(d) => (
                    format!(
                        "into {}",
                        space::source_text(a.into.as_deref().unwrap_or(""), d)
                    ),
                    true,
                ),
            };
            let mut s = format!(
                "Reach {title}: {} classes ({} cells walked)\n",
                reach.classes.len(),
                reach.cells
            );
            let rows: Vec<[String; 6]> = reach
                .classes
                .iter()
                .map(|c| {
                    let mark = if c.decision.verdict == VerdictKind::Allow {
                        "+"
                    } else {
                        " "
                    };
                    [
                        mark.to_string(),
                        c.decision.verdict.as_str().to_string(),
                        c.decision.code.as_str().to_string(),
                        space::service_text(c),
                        if into {
                            space::prefixes_text(&c.sources, 3)
                        } else {
                            space::destinations_text(c, 3)
                        },
                        space::decided_by_text(t, &c.decision),
                    ]
                })
                .collect();
            let ends = if into { "SOURCES" } else { "DESTINATIONS" };
            let head = [" ", "VERDICT", "CODE", "SERVICE", ends, "DECIDED BY"].map(String::from);
            s.push_str(&space::table(&head, &rows));
            s.push_str(
                "\n(+ marks Allow; largest classes first; --output json lists every prefix)",
            );
            out(&s)?;
        }
    }
    Ok(Status::Success)
}
