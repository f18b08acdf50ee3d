//! The one resolver ([`Topology::lookup`]) against a small declarative reference, over random
//! topologies of three VNets, a custom zone and a Private Link zone (links, some with
//! `resolution_policy = "NxDomainRedirect"`), and hosts that hold or lack their zone records,
//! serve a public Private Link name (`private_link_fqdn`) or not, with or without a public
//! address. Every name a host could be asked by is resolved from every VNet and from public DNS.
//!
//! The reference states Azure's rules once, name by name:
//! - "Azure Private Endpoint DNS configuration": a service's public name `hN.vault.azure.net` is
//!   a CNAME to `hN.privatelink.vaultcore.azure.net`; public DNS answers the latter with the
//!   service's public address.
//! - "What is a virtual network link?": a private zone answers only VNets linked to it; a
//!   linked zone without the record answers NXDOMAIN.
//! - "Fallback to internet for Azure Private DNS zones": on a link with NxDomainRedirect, a
//!   Private Link zone's NXDOMAIN is retried publicly.

use std::net::IpAddr;

use proptest::prelude::*;
use sim::fixture::{Fixture, Format};
use sim::{ResolveFrom, ServiceTagTable, Topology, Via};

const VNETS: usize = 3;
const PL_ZONE: &str = "privatelink.vaultcore.azure.net";
const CUSTOM_ZONE: &str = "zone.example";

/// One generated host.
#[derive(Clone, Debug)]
struct GenHost {
    /// `Some(v)`: a NIC or private endpoint in VNet `v`; `None`: outside every VNet.
    vnet: Option<usize>,
    public: bool,
    /// Has its record in the Private Link zone (`hN.privatelink.vaultcore.azure.net`).
    pl_record: bool,
    /// Serves the public name `hN.vault.azure.net` (a private endpoint's `private_link_fqdn`).
    serves_public_name: bool,
    /// Has a name in the custom zone.
    custom_record: bool,
}

/// One generated zone: the linked VNets, and which of them redirect.
#[derive(Clone, Debug)]
struct GenZone {
    links: [bool; VNETS],
    redirect: [bool; VNETS],
}

#[derive(Clone, Debug)]
struct Gen {
    hosts: Vec<GenHost>,
    pl: GenZone,
    custom: GenZone,
}

fn arb_zone() -> impl Strategy<Value = GenZone> {
    (any::<[bool; VNETS]>(), any::<[bool; VNETS]>())
        .prop_map(|(links, redirect)| GenZone { links, redirect })
}

fn arb_host() -> impl Strategy<Value = GenHost> {
    (
        prop_oneof![Just(None), (0..VNETS).prop_map(Some)],
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(vnet, public, pl_record, serves_public_name, custom_record)| GenHost {
                vnet,
                public,
                pl_record,
                serves_public_name,
                custom_record,
            },
        )
}

fn arb_gen() -> impl Strategy<Value = Gen> {
    (
        prop::collection::vec(arb_host(), 1..5),
        arb_zone(),
        arb_zone(),
    )
        .prop_map(|(hosts, pl, custom)| Gen { hosts, pl, custom })
}

fn private_address(h: usize, v: usize) -> String {
    format!("10.{v}.1.{}", 10 + h)
}

fn outside_address(h: usize) -> String {
    format!("20.50.1.{}", 10 + h)
}

fn public_address(h: usize) -> String {
    format!("52.1.2.{}", 10 + h)
}

fn links_toml(z: &GenZone) -> String {
    let mut out = Vec::new();
    for v in 0..VNETS {
        if !z.links[v] {
            continue;
        }
        out.push(if z.redirect[v] {
            format!("{{ vnet = \"v{v}\", resolution_policy = \"NxDomainRedirect\" }}")
        } else {
            format!("\"v{v}\"")
        });
    }
    out.join(", ")
}

fn fixture(g: &Gen) -> String {
    let mut t = String::new();
    for v in 0..VNETS {
        t.push_str(&format!(
            "[[vnets]]\nname = \"v{v}\"\nregion = \"westeurope\"\naddress_space = [\"10.{v}.0.0/16\"]\n  [[vnets.subnets]]\n  name = \"s\"\n  address_prefix = \"10.{v}.1.0/24\"\n\n"
        ));
    }
    for (i, h) in g.hosts.iter().enumerate() {
        let address = match h.vnet {
            Some(v) => private_address(i, v),
            None => outside_address(i),
        };
        let mut dns = Vec::new();
        if h.pl_record {
            dns.push(format!("\"h{i}.{PL_ZONE}\""));
        }
        if h.custom_record {
            dns.push(format!("\"h{i}.{CUSTOM_ZONE}\""));
        }
        let pe = h.vnet.is_some() && h.serves_public_name;
        t.push_str(&format!(
            "[[hosts]]\nname = \"h{i}\"\naddress = \"{address}\"\nkind = \"{}\"\ndns = [{}]\n{}{}\n",
            if pe { "private-endpoint" } else { "nic" },
            dns.join(", "),
            if h.public {
                format!("public_address = \"{}\"\n", public_address(i))
            } else {
                String::new()
            },
            if pe {
                format!("private_link_fqdn = \"h{i}.vault.azure.net\"\n")
            } else {
                String::new()
            },
        ));
    }
    t.push_str(&format!(
        "[[private_dns_zones]]\nname = \"{PL_ZONE}\"\nlinks = [{}]\n\n[[private_dns_zones]]\nname = \"{CUSTOM_ZONE}\"\nlinks = [{}]\n",
        links_toml(&g.pl),
        links_toml(&g.custom)
    ));
    t
}

/// The reference answer: `Some((address, via))`, or `None` for NXDOMAIN.
fn reference(g: &Gen, name: &str, from: Option<usize>) -> Option<(IpAddr, Via)> {
    let linked = |z: &GenZone| from.is_some_and(|v| z.links[v]);
    let redirects = |z: &GenZone| from.is_some_and(|v| z.links[v] && z.redirect[v]);
    let host_address = |i: usize| -> IpAddr {
        match g.hosts[i].vnet {
            Some(v) => private_address(i, v),
            None => outside_address(i),
        }
        .parse()
        .unwrap()
    };
    // Public DNS's answer for the Private Link name of host label `i`: the public address of
    // the first host serving it (holding the record, or serving the public name), or the
    // address of one outside every VNet.
    let public_answer = |i: usize| -> Option<IpAddr> {
        g.hosts.iter().enumerate().find_map(|(j, h)| {
            let serves = j == i && (h.pl_record || (h.vnet.is_some() && h.serves_public_name));
            if !serves {
                return None;
            }
            if h.public {
                Some(public_address(j).parse().unwrap())
            } else if h.vnet.is_none() {
                Some(host_address(j))
            } else {
                None
            }
        })
    };
    let label = |suffix: &str| -> Option<usize> {
        name.strip_suffix(suffix)?
            .strip_prefix('h')?
            .parse::<usize>()
            .ok()
            .filter(|i| *i < g.hosts.len())
    };
    if let Some(i) = label(".vault.azure.net") {
        // The zone is always declared here, so the public name is always a CNAME.
        return reference(g, &format!("h{i}.{PL_ZONE}"), from);
    }
    if let Some(i) = label(&format!(".{PL_ZONE}")) {
        if linked(&g.pl) {
            if g.hosts[i].pl_record {
                return Some((host_address(i), Via::PrivateZone));
            }
            return if redirects(&g.pl) {
                public_answer(i).map(|a| (a, Via::PublicFallback))
            } else {
                None
            };
        }
        return public_answer(i).map(|a| (a, Via::Public));
    }
    if let Some(i) = label(&format!(".{CUSTOM_ZONE}")) {
        // A custom zone: only linked VNets get answers; NxDomainRedirect does not apply.
        return (linked(&g.custom) && g.hosts[i].custom_record)
            .then(|| (host_address(i), Via::PrivateZone));
    }
    unreachable!("generated names only")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_resolver_matches_the_reference(g in arb_gen()) {
        let text = fixture(&g);
        let f = Fixture::parse(&text, Format::Toml).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let built = Topology::build(&f, ServiceTagTable::builtin());
        prop_assert!(built.structural_errors().is_empty(), "{:#?}\n{text}", built.structural_errors());
        let t = built.topology;
        for i in 0..g.hosts.len() {
            for name in [
                format!("h{i}.vault.azure.net"),
                format!("h{i}.{PL_ZONE}"),
                format!("h{i}.{CUSTOM_ZONE}"),
            ] {
                for from in (0..VNETS).map(Some).chain([None]) {
                    let asked = from.map_or(ResolveFrom::Public, ResolveFrom::Vnet);
                    let got = t.lookup(&name, asked);
                    let expected = reference(&g, &name, from);
                    prop_assert_eq!(
                        got.address.map(|a| (a, got.via)),
                        expected,
                        "{} from {:?}: {:?}\n{}",
                        name,
                        from,
                        got.failure,
                        text
                    );
                }
            }
        }
    }
}
