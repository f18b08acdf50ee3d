//! `vnetsim check FIXTURE --from SRC --to DST[:PORT]`: one flow's explained verdict.

use crate::FlowQuery;
use sim::{Protocol, VerdictKind};

use super::inputs::InputArgs;
use super::output::{out, refuse_fixture};
use super::{Output, Status};

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    inputs: InputArgs,
    /// Source: `apim` (the instance's outbound address), a host name or DNS name of the fixture, or an IP address.
    #[arg(long, value_name = "SRC", allow_hyphen_values = true)]
    from: String,
    /// Destination: `apim` (the gateway endpoint), a host name, a DNS name or an IP, with `:PORT` for Tcp/Udp (`[addr]:PORT` for IPv6). A DNS name resolves from the source's VNet exactly as the gateway resolves it (private zones only from linked VNets; an unresolvable name is Unreachable / DNS_FAILURE); a `[[hosts]]` name is that host's address and wins over a DNS name of another host.
    #[arg(long, value_name = "DST[:PORT]", allow_hyphen_values = true)]
    to: String,
    /// Protocol, case-insensitive: Tcp (default), Udp, Icmp, Esp, Ah.
    #[arg(long, value_parser = parse_protocol)]
    protocol: Option<Protocol>,
    /// Source port for Tcp/Udp (default 60000).
    #[arg(long, value_name = "N")]
    source_port: Option<u16>,
    /// Output format.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    output: Output,
}

impl Args {
    pub(crate) fn output(&self) -> Output {
        self.output
    }
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    s.parse::<Protocol>().map_err(|e| e.to_string())
}

pub(crate) fn run(a: &Args) -> anyhow::Result<Status> {
    // Arguments first: a malformed flow is reported without reading the fixture.
    let query = FlowQuery::parse(&a.from, &a.to, a.protocol, a.source_port)?;
    let loaded = a.inputs.load(Vec::new())?;
    let structural = loaded.structural_errors();
    if !structural.is_empty() {
        return Ok(refuse_fixture(&loaded.name, &structural, a.output));
    }
    let verdict = query
        .explain(loaded.topology())
        .map_err(|source| InTopology {
            name: loaded.name.clone(),
            source,
        })?;
    match a.output {
        Output::Json => out(&serde_json::to_string_pretty(&verdict)?)?,
        Output::Text => out(&verdict.to_string())?,
    }
    Ok(if verdict.verdict == VerdictKind::Allow {
        Status::Success
    } else {
        Status::Negative
    })
}

/// A flow the topology does not have, named with the topology (the query error stays in the
/// chain for `--output json`'s code).
#[derive(Debug, thiserror::Error)]
#[error("{name}: {source}")]
struct InTopology {
    name: String,
    #[source]
    source: crate::QueryError,
}
