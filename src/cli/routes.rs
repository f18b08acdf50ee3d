//! `vnetsim next-hop FIXTURE --from SRC --to DST` and `vnetsim routes FIXTURE --subnet
//! VNET/SUBNET`: Network Watcher's next hop and effective routes, from the routes `check` and
//! the gateway walk (JSON by default, as `az` prints; `--output text` for a table).

use anyhow::{anyhow, Context};

use crate::FlowQuery;
use sim::Protocol;

use super::inputs::InputArgs;
use super::output::{out, refuse_fixture};
use super::{Output, Status};

/// Output format (JSON by default, like `az`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AzOutput {
    /// One JSON document, Network Watcher's shape.
    #[default]
    Json,
    /// A table.
    Text,
}

impl AzOutput {
    /// As the CLI's common output format (for errors on bad input).
    fn common(self) -> Output {
        match self {
            AzOutput::Json => Output::Json,
            AzOutput::Text => Output::Text,
        }
    }
}

impl NextHopArgs {
    pub(crate) fn output(&self) -> Output {
        self.output.common()
    }
}

impl RoutesArgs {
    pub(crate) fn output(&self) -> Output {
        self.output.common()
    }
}

/// Arguments of `next-hop`.
#[derive(Debug, clap::Args)]
pub(crate) struct NextHopArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Source: `apim`, a host name or an IP address in a subnet.
    #[arg(long, value_name = "SRC", allow_hyphen_values = true)]
    from: String,
    /// Destination: a host name, a DNS name or an IP address.
    #[arg(long, value_name = "DST", allow_hyphen_values = true)]
    to: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    output: AzOutput,
}

/// Arguments of `routes`.
#[derive(Debug, clap::Args)]
pub(crate) struct RoutesArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// The subnet: `VNET/SUBNET`.
    #[arg(long, value_name = "VNET/SUBNET")]
    subnet: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    output: AzOutput,
}

pub(crate) fn next_hop(a: &NextHopArgs) -> anyhow::Result<Status> {
    let query = FlowQuery::parse(&a.from, &a.to, Some(Protocol::Icmp), None)?;
    let loaded = a.inputs.load(Vec::new())?;
    let structural = loaded.structural_errors();
    if !structural.is_empty() {
        refuse_fixture(&loaded.name, &structural, a.output.common());
        return Ok(Status::BadInput);
    }
    let t = loaded.topology();
    let resolved = query
        .resolve(t)
        .map_err(|e| anyhow!("{}: {e}", loaded.name))?;
    let flow = resolved.flow(t).ok_or_else(|| {
        anyhow!(
            "{}: `{}` does not resolve from the source",
            loaded.name,
            a.to
        )
    })?;
    let hop = t.next_hop(flow.source, flow.destination).ok_or_else(|| {
        anyhow!(
            "{}: the source {} is in no subnet: next hop needs a source in a subnet (as Network Watcher needs a VM)",
            loaded.name,
            flow.source
        )
    })?;
    match a.output {
        AzOutput::Json => out(&serde_json::to_string_pretty(&hop)?)?,
        AzOutput::Text => out(&format!(
            "NextHopIpAddress    NextHopType    RouteTableId\n{:<19} {:<14} {}\n",
            hop.next_hop_ip_address.as_deref().unwrap_or(""),
            hop.next_hop_type,
            hop.route_table_id
        ))?,
    }
    Ok(Status::Success)
}

pub(crate) fn routes(a: &RoutesArgs) -> anyhow::Result<Status> {
    let (vn, sn) = a
        .subnet
        .split_once('/')
        .with_context(|| format!("--subnet `{}`: expected VNET/SUBNET", a.subnet))?;
    let loaded = a.inputs.load(Vec::new())?;
    let structural = loaded.structural_errors();
    if !structural.is_empty() {
        refuse_fixture(&loaded.name, &structural, a.output.common());
        return Ok(Status::BadInput);
    }
    let t = loaded.topology();
    let (vi, v) = t
        .vnets()
        .iter()
        .enumerate()
        .find(|(_, v)| v.name.eq_ignore_ascii_case(vn))
        .ok_or_else(|| {
            anyhow!(
                "{}: --subnet `{}`: no VNet named `{vn}`",
                loaded.name,
                a.subnet
            )
        })?;
    let si = v
        .subnets
        .iter()
        .position(|s| s.name.eq_ignore_ascii_case(sn))
        .ok_or_else(|| {
            anyhow!(
                "{}: --subnet `{}`: VNet `{vn}` has no subnet `{sn}`",
                loaded.name,
                a.subnet
            )
        })?;
    let table = t
        .effective_route_table(vi, si)
        .ok_or_else(|| anyhow!("{}: no routes for `{}`", loaded.name, a.subnet))?;
    match a.output {
        AzOutput::Json => out(&serde_json::to_string_pretty(&table)?)?,
        AzOutput::Text => {
            let mut s = format!(
                "{:<22} {:<8} {:<20} {:<22} {}\n",
                "Source", "State", "Address Prefix", "Next Hop Type", "Next Hop IP"
            );
            for r in &table.value {
                s.push_str(&format!(
                    "{:<22} {:<8} {:<20} {:<22} {}\n",
                    format!("{:?}", r.source),
                    format!("{:?}", r.state),
                    r.address_prefix.join(" "),
                    r.next_hop_type,
                    r.next_hop_ip_address.join(" ")
                ));
            }
            out(&s)?;
        }
    }
    Ok(Status::Success)
}
