//! Static = live, as a property: random topologies (VNets, one- and two-sided peerings, custom
//! and `privatelink` zones with and without links (some with `NxDomainRedirect`), hosts with and
//! without public addresses, Private Link services by their public name (some without their own
//! record, some with public access Disabled),
//! NSGs with random rules, APIs), and for every API the static verdict (`check --from apim
//! --to HOST:PORT`, i.e. [`FlowQuery::explain`]) compared with what a real request through a
//! running gateway gets: status, problem `code` and `x-vnetsim-verdict`. One gateway per run,
//! reloaded per case through `POST /admin/reload` (the body replaces the inputs); then the same
//! after a live rule change (`PUT /admin/nsgs/nsg-apim/security_rules`) and after a reload of
//! the case with other subnet rules. Some cases give the integration subnet a Key Vault service
//! endpoint and a Key Vault host at a public Key Vault address, so paths through
//! `VirtualNetworkServiceEndpoint` routes are compared too.
//!
//! `VNETSIM_PARITY_CASES` sets the number of cases (default 32), `VNETSIM_PARITY_SEED` the
//! seed (default fixed, so CI is reproducible); a failure prints the seed, the case and its
//! fixture.

use std::fmt::Write as _;

use bytes::Bytes;
use http::Method;
use vnetsim::client::Client;
use vnetsim::harness::Simulation;
use vnetsim::{load_str, FlowQuery, TagSource};

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const VNETS: usize = 3;
/// Public Key Vault addresses of the built-in tag table: three in `AzureKeyVault.WestEurope`
/// (13.69.64.72/30, 20.61.103.224/29, 52.236.189.80/30), one in `AzureKeyVault.NorthEurope`
/// (13.69.227.72/30).
const KEY_VAULT_ADDRESSES: [&str; 4] = [
    "13.69.64.73",
    "20.61.103.226",
    "52.236.189.81",
    "13.69.227.73",
];
const ZONES: [&str; 3] = [
    "zone0.example",
    "zone1.example",
    "privatelink.vaultcore.azure.net",
];

/// A random NSG rule list (`[[nsgs.security_rules]]` TOML), with hosts' addresses among the
/// destinations so rules decide real backends.
fn rules(rng: &mut Rng, addresses: &[String]) -> String {
    let mut out = String::new();
    let n = rng.below(5);
    let mut priorities: Vec<u64> = Vec::new();
    for i in 0..n {
        let mut p = 100 + rng.below(40) * 10;
        while priorities.contains(&p) {
            p += 1;
        }
        priorities.push(p);
        let mut dsts: Vec<String> = vec![
            "*".into(),
            "VirtualNetwork".into(),
            "Internet".into(),
            "10.1.0.0/16".into(),
            "20.50.0.0/16".into(),
        ];
        dsts.extend(addresses.iter().cloned());
        let _ = write!(
            out,
            "[[nsgs.security_rules]]\nname = \"r{i}\"\npriority = {p}\ndirection = \"{}\"\naccess = \"{}\"\nprotocol = \"{}\"\nsource_address_prefix = \"{}\"\nsource_port_range = \"*\"\ndestination_address_prefix = \"{}\"\ndestination_port_range = \"{}\"\n\n",
            rng.pick(&["Inbound", "Outbound"]),
            rng.pick(&["Allow", "Deny", "Deny"]),
            rng.pick(&["Tcp", "*", "Udp"]),
            rng.pick(&["*", "VirtualNetwork", "10.0.0.0/24", "10.2.0.0/16"]),
            rng.pick(&dsts),
            rng.pick(&["*", "80", "443", "70-90"]),
        );
    }
    out
}

/// One random case: the fixture text, and its nsg-apim rule list as JSON for a live change.
struct Case {
    toml: String,
    other_subnet_rules: String,
    apim_rules_json: serde_json::Value,
}

fn case(rng: &mut Rng, id: usize) -> Case {
    let mut hosts = Vec::new(); // (name, address, public, dns, vnet or none)
    let n_hosts = 3 + rng.below(4) as usize;
    for h in 0..n_hosts {
        let inside = rng.chance(75);
        let (address, vnet) = if inside {
            let v = rng.below(VNETS as u64) as usize;
            (format!("10.{v}.1.{}", 10 + h), Some(v))
        } else {
            (
                format!("20.{}.{}.{}", 50 + id / 250, id % 250, 10 + h),
                None,
            )
        };
        let public = (inside && rng.chance(30))
            .then(|| format!("52.{}.{}.{}", 1 + id / 250, id % 250, 10 + h));
        let zone = rng.below(ZONES.len() as u64 + 1) as usize;
        // Names are unique per case, so pooled connections of earlier cases never serve it.
        let dns = match ZONES.get(zone) {
            Some(z) => format!("h{h}-c{id}.{z}"),
            None => format!("h{h}-c{id}.plain.example"),
        };
        hosts.push((format!("h{h}"), address, public, dns, vnet));
    }
    let integrated = rng.chance(85);
    // Service endpoints: sometimes a Key Vault host at a public Key Vault address, and the
    // integration subnet with a Key Vault endpoint (every region, or West Europe only).
    if rng.chance(40) {
        hosts.push((
            "kv".to_string(),
            rng.pick(&KEY_VAULT_ADDRESSES).to_string(),
            None,
            format!("kv-c{id}.vault.example"),
            None,
        ));
    }
    let endpoints = match (integrated, rng.below(3)) {
        (false, _) | (_, 0) => "",
        (true, 1) => "  service_endpoints = [\"Microsoft.KeyVault\"]\n",
        _ => "  service_endpoints = [{ service = \"Microsoft.KeyVault\", locations = [\"westeurope\"] }]\n",
    };
    let addresses: Vec<String> = hosts.iter().map(|h| h.1.clone()).collect();
    let mut t = String::new();
    let _ = writeln!(t, "[gateway]\ndeny_mode = \"answer\"\n");
    let _ = writeln!(
        t,
        "[apim]\nname = \"apim-parity\"\nsku = \"StandardV2\"\nregion = \"westeurope\"\nvirtual_network = \"{}\"\n{}",
        if integrated { "integration" } else { "none" },
        if integrated {
            "subnet = \"vnet0/snet-apim\"\n"
        } else {
            ""
        }
    );
    // Routing (issue 18): sometimes the integration subnet has a route table, one UDR with a
    // 0.0.0.0/0 or random prefix and next hop None, Internet, an IP-forwarding host or an Azure
    // Firewall, so live answers are compared with check on routed paths too.
    let mut forwarder: Option<usize> = None;
    let mut routed = String::new();
    if integrated && rng.chance(50) {
        let prefix = match rng.below(3) {
            0 if endpoints.is_empty() || rng.chance(50) => "0.0.0.0/0".to_string(),
            0 => "13.69.64.72/30".to_string(),
            1 => format!("10.{}.0.0/16", rng.below(VNETS as u64)),
            _ => format!("{}/32", rng.pick(&addresses)),
        };
        let inside: Vec<usize> = (0..hosts.len()).filter(|i| hosts[*i].4.is_some()).collect();
        let hop = match rng.below(4) {
            0 => "next_hop_type = \"None\"".to_string(),
            1 => "next_hop_type = \"Internet\"".to_string(),
            2 if !inside.is_empty() => {
                let i = *rng.pick(&inside);
                forwarder = Some(i);
                format!(
                    "next_hop_type = \"VirtualAppliance\"\nnext_hop_ip_address = \"{}\"",
                    hosts[i].1
                )
            }
            _ => {
                let action = if rng.chance(50) { "Allow" } else { "Deny" };
                let dst = if rng.chance(50) { "10.0.0.0/8" } else { "*" };
                let _ = writeln!(
                    routed,
                    "[[firewalls]]\nname = \"fw\"\nsubnet = \"vnet0/AzureFirewallSubnet\"\nprivate_address = \"10.0.2.4\"\npublic_addresses = [\"40.{}.{}.5\"]\n\n  [[firewalls.rule_collection_groups]]\n  name = \"g\"\n  priority = 100\n\n    [[firewalls.rule_collection_groups.rule_collections]]\n    name = \"net\"\n    priority = 100\n    kind = \"Network\"\n    action = \"{action}\"\n\n      [[firewalls.rule_collection_groups.rule_collections.rules]]\n      name = \"r\"\n      protocols = [\"TCP\"]\n      source_addresses = [\"*\"]\n      destination_addresses = [\"{dst}\"]\n      destination_ports = [\"80\"]\n",
                    1 + id / 250,
                    id % 250
                );
                "next_hop_type = \"VirtualAppliance\"\nnext_hop_ip_address = \"10.0.2.4\""
                    .to_string()
            }
        };
        let _ = writeln!(
            routed,
            "[[route_tables]]\nname = \"rt-apim\"\n\n  [[route_tables.routes]]\n  name = \"udr\"\n  address_prefix = \"{prefix}\"\n  {}\n",
            hop.replace('\n', "\n  ")
        );
    }
    // DNAT (Azure Firewall's public address as a backend): sometimes the firewall (the routed
    // one, or one with only a Dnat collection) publishes a random host's port 80 on its public
    // address, and an API names that address, so translated flows (and the default deny of an
    // unpublished port) are compared live too.
    let fw_public = format!("40.{}.{}.5", 1 + id / 250, id % 250);
    let dnat = rng.chance(35);
    if dnat {
        let mut collection = String::from("    [[firewalls.rule_collection_groups.rule_collections]]\n    name = \"publish\"\n    priority = 150\n    kind = \"Dnat\"\n\n");
        for r in 0..1 + rng.below(2) {
            let _ = writeln!(
                collection,
                "      [[firewalls.rule_collection_groups.rule_collections.rules]]\n      name = \"d{r}\"\n      protocols = [\"TCP\"]\n      source_addresses = [\"{}\"]\n      destination_addresses = [\"{fw_public}\"]\n      destination_ports = [\"{}\"]\n      translated_address = \"{}\"\n      translated_port = \"80\"\n",
                rng.pick(&["*", "*", "10.0.0.0/24", "20.0.0.0/8"]),
                rng.pick(&["80", "80", "443"]),
                rng.pick(&addresses),
            );
        }
        if routed.contains("[[firewalls]]") {
            routed = routed.replacen(
                "[[route_tables]]",
                &format!("{collection}\n[[route_tables]]"),
                1,
            );
        } else {
            let _ = writeln!(
                routed,
                "[[firewalls]]\nname = \"fw\"\nsubnet = \"vnet0/AzureFirewallSubnet\"\nprivate_address = \"10.0.2.4\"\npublic_addresses = [\"{fw_public}\"]\n\n  [[firewalls.rule_collection_groups]]\n  name = \"g\"\n  priority = 100\n\n{collection}"
            );
        }
    }
    // Peerings: each pair none, one-sided or two-sided.
    let mut peers: Vec<Vec<usize>> = vec![Vec::new(); VNETS];
    for a in 0..VNETS {
        for b in (a + 1)..VNETS {
            match rng.below(3) {
                0 => {}
                1 => peers[a].push(b),
                _ => {
                    peers[a].push(b);
                    peers[b].push(a);
                }
            }
        }
    }
    for (v, p) in peers.iter().enumerate() {
        let list: Vec<String> = p.iter().map(|x| format!("\"vnet{x}\"")).collect();
        let _ = writeln!(
            t,
            "[[vnets]]\nname = \"vnet{v}\"\nregion = \"westeurope\"\naddress_space = [\"10.{v}.0.0/16\"]\npeerings = [{}]\n",
            list.join(", ")
        );
        if v == 0 {
            let _ = writeln!(
                t,
                "  [[vnets.subnets]]\n  name = \"snet-apim\"\n  address_prefix = \"10.0.0.0/24\"\n  delegations = [\"Microsoft.Web/serverFarms\"]\n  nsg = \"nsg-apim\"\n{}{endpoints}",
                if routed.contains("[[route_tables]]") {
                    "  route_table = \"rt-apim\"\n"
                } else {
                    ""
                }
            );
            if routed.contains("[[firewalls]]") {
                let _ = writeln!(
                    t,
                    "  [[vnets.subnets]]\n  name = \"AzureFirewallSubnet\"\n  address_prefix = \"10.0.2.0/26\"\n"
                );
            }
        }
        let nsg = if rng.chance(60) {
            format!("  nsg = \"nsg-s{v}\"\n")
        } else {
            String::new()
        };
        let _ = writeln!(
            t,
            "  [[vnets.subnets]]\n  name = \"s\"\n  address_prefix = \"10.{v}.1.0/24\"\n  private_endpoint_network_policies = \"Enabled\"\n{nsg}"
        );
    }
    let mut apim_rules = rules(rng, &addresses);
    // Sometimes the integration subnet allows every private destination, so routing (not
    // DenyAllOutBound) decides flows to VNets that are not peered.
    if rng.chance(40) {
        apim_rules.push_str("[[nsgs.security_rules]]\nname = \"allow-private\"\npriority = 4090\ndirection = \"Outbound\"\naccess = \"Allow\"\nprotocol = \"*\"\nsource_address_prefix = \"*\"\nsource_port_range = \"*\"\ndestination_address_prefix = \"10.0.0.0/8\"\ndestination_port_range = \"*\"\n\n");
    }
    let _ = writeln!(
        t,
        "[[nsgs]]\nname = \"nsg-apim\"\nflush_connection = true\n\n{apim_rules}"
    );
    let mut subnet_rules = String::new();
    let mut other_subnet_rules = String::new();
    for v in 0..VNETS {
        let _ = writeln!(
            subnet_rules,
            "[[nsgs]]\nname = \"nsg-s{v}\"\nflush_connection = true\n\n{}",
            rules(rng, &addresses)
        );
        let _ = writeln!(
            other_subnet_rules,
            "[[nsgs]]\nname = \"nsg-s{v}\"\nflush_connection = true\n\n{}",
            rules(rng, &addresses)
        );
    }
    for z in ZONES {
        let mut links: Vec<String> = Vec::new();
        for v in 0..VNETS {
            if !rng.chance(40) {
                continue;
            }
            // A Private Link zone's link sometimes falls back to public DNS.
            links.push(if z.starts_with("privatelink.") && rng.chance(60) {
                format!("{{ vnet = \"vnet{v}\", resolution_policy = \"NxDomainRedirect\" }}")
            } else {
                format!("\"vnet{v}\"")
            });
        }
        let _ = writeln!(
            t,
            "[[private_dns_zones]]\nname = \"{z}\"\nlinks = [{}]\n",
            links.join(", ")
        );
    }
    t.push_str(&routed);
    // Private Link services (issue 17): a `privatelink` host serves the public name
    // `hN-cID.vault.azure.net` (a CNAME to its privatelink name), sometimes has no record of its
    // own in the declared zone (its endpoint registers elsewhere: NXDOMAIN from a linked VNet
    // unless the link says NxDomainRedirect), and sometimes refuses its public address.
    let mut public_names: Vec<(String, String)> = Vec::new(); // (api name, public name)
    let mut written_dns: Vec<String> = Vec::new();
    for (i, (name, address, public, dns, vnet)) in hosts.iter().enumerate() {
        let kind = if dns.contains("privatelink") && vnet.is_some() {
            "private-endpoint"
        } else {
            "nic"
        };
        let mut extra = String::new();
        let mut dns = dns.clone();
        if kind == "private-endpoint" {
            let public_name = dns.replace(".privatelink.vaultcore.azure.net", ".vault.azure.net");
            let _ = writeln!(extra, "private_link_fqdn = \"{public_name}\"");
            if rng.chance(30) {
                let _ = writeln!(extra, "public_network_access = \"Disabled\"");
            }
            if rng.chance(50) {
                dns = format!("{name}-c{id}.elsewhere.example");
            }
            public_names.push((name.clone(), public_name));
        }
        written_dns.push(dns.clone());
        let _ = writeln!(
            t,
            "[[hosts]]\nname = \"{name}\"\naddress = \"{address}\"\nkind = \"{kind}\"\ndns = [\"{dns}\"]\n{extra}{}{}\n  [[hosts.services]]\n  port = 80\n  serve = \"echo\"\n",
            public
                .as_ref()
                .map_or(String::new(), |p| format!("public_address = \"{p}\"\n")),
            if forwarder == Some(i) && kind == "nic" {
                "ip_forwarding = true\n"
            } else {
                ""
            }
        );
    }
    for (name, public_name) in &public_names {
        let _ = writeln!(
            t,
            "[[apis]]\nname = \"{name}-pl\"\npath = \"/{name}-pl\"\nbackend = \"http://{public_name}:80\"\n"
        );
    }
    for ((name, address, _, _, _), dns) in hosts.iter().zip(&written_dns) {
        let _ = writeln!(
            t,
            "[[apis]]\nname = \"{name}\"\npath = \"/{name}\"\nbackend = \"http://{dns}:80\"\n"
        );
        // Some backends by address: no DNS, so routing decides (NO_ROUTE, NOT_INTEGRATED).
        if rng.chance(50) {
            let _ = writeln!(
                t,
                "[[apis]]\nname = \"{name}-ip\"\npath = \"/{name}-ip\"\nbackend = \"http://{address}:80\"\n"
            );
        }
    }
    if dnat {
        let _ = writeln!(
            t,
            "[[apis]]\nname = \"fw-dnat\"\npath = \"/fw-dnat\"\nbackend = \"http://{fw_public}:80\"\n"
        );
    }
    let live = rules(rng, &addresses);
    let parsed = load_str(
        "live.toml",
        &format!("[[nsgs]]\nname = \"x\"\n{live}"),
        None,
        &TagSource::Fixture,
    )
    .expect("generated rules parse");
    let raw: Vec<sim::fixture::RawRule> = parsed.built.document.fixture().nsgs[0]
        .security_rules
        .iter()
        .map(sim::fixture::RawRule::from)
        .collect();
    let apim_rules_json = serde_json::to_value(&raw).unwrap();
    Case {
        toml: format!("{t}\n{subnet_rules}"),
        other_subnet_rules: format!("{t}\n{other_subnet_rules}"),
        apim_rules_json,
    }
}

/// Compares every API's static verdict with a real request; returns the number compared.
async fn compare(
    sim: &Simulation,
    label: &str,
    fixture: &str,
    codes: &mut std::collections::BTreeSet<&'static str>,
    endpoint_paths: &mut usize,
) -> usize {
    let topology = sim.gateway().with_topology(Clone::clone);
    let mut compared = 0;
    for api in topology.apis() {
        let to = format!("{}:{}", api.backend.host, api.backend.port);
        let v = FlowQuery::parse("apim", &to, None, None)
            .unwrap()
            .explain(&topology)
            .unwrap_or_else(|e| panic!("{label}: api {}: {e}\n{fixture}", api.name));
        let r = sim
            .client()
            .get(&format!("{}/probe", api.path))
            .await
            .unwrap();
        let ctx = || {
            format!(
                "{label}: api {} ({to}): static {:?} {} ({}), live {} {:?} {}\n{fixture}",
                api.name,
                v.verdict,
                v.code,
                v.detail,
                r.status,
                r.verdict_header(),
                r.text()
            )
        };
        if v.verdict == sim::VerdictKind::Allow {
            assert_eq!(r.status, 200, "{}", ctx());
        } else {
            // The gateway's one code → status table (502 for the walk's refusals, 403 when
            // the service refuses its public address).
            let status = gateway::error::ErrorCode::from(v.code).status().as_u16();
            assert_eq!(r.status, status, "{}", ctx());
            let p = r.problem().unwrap_or_else(|| panic!("{}", ctx()));
            assert_eq!(p.code, v.code.as_str(), "{}", ctx());
            let expected = match &v.decided_by {
                // A firewall names itself and its rule as `group/collection/rule` (`default`).
                Some(d) if d.kind == sim::DecidedKind::Firewall => {
                    let rule = match (&d.group, &d.collection) {
                        (Some(g), Some(c)) => format!("{g}/{c}/{}", d.rule),
                        _ => d.rule.clone(),
                    };
                    format!(
                        "{:?}; code={}; firewall={}; rule={rule}",
                        v.verdict, v.code, d.nsg
                    )
                }
                Some(d) => format!("{:?}; code={}; rule={}", v.verdict, v.code, d.rule),
                None => format!("{:?}; code={}", v.verdict, v.code),
            };
            assert_eq!(r.verdict_header(), Some(expected.as_str()), "{}", ctx());
        }
        codes.insert(v.code.as_str());
        if v.resolved.as_ref().map(|r| r.via) == Some(sim::Via::PublicFallback) {
            codes.insert("via:public-fallback");
        }
        if v.hops.iter().any(|h| {
            h.decided_by
                .as_deref()
                .is_some_and(|d| d.ends_with(" VirtualNetworkServiceEndpoint"))
        }) {
            *endpoint_paths += 1;
        }
        // DNAT coverage markers (asserted below): a translated flow, a firewall-address backend.
        if v.dnat.is_some() && v.verdict == sim::VerdictKind::Allow {
            codes.insert("DNAT_TRANSLATED_ALLOWED");
        }
        if api.name == "fw-dnat" {
            codes.insert("DNAT_BACKEND_COMPARED");
        }
        compared += 1;
    }
    compared
}

async fn post_reload(admin: &Client, token: &str, body: &str) -> vnetsim::client::Response {
    let auth = format!("Bearer {token}");
    admin
        .request(
            Method::POST,
            "/admin/reload",
            &[
                ("authorization", &auth),
                ("content-type", "application/toml"),
            ],
            Bytes::from(body.to_string()),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_verdicts_equal_live_traffic() {
    let cases: usize = std::env::var("VNETSIM_PARITY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let seed: u64 = std::env::var("VNETSIM_PARITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005E_ED0F_0A15);
    let sim = Simulation::default_topology()
        .unwrap()
        .start()
        .await
        .unwrap();
    let admin = Client::new(sim.gateway().admin_addr(), "admin", None);
    let token = sim.gateway().admin_token().to_string();
    let mut rng = Rng(seed);
    let (mut applied, mut refused, mut compared) = (0, 0, 0);
    let mut codes = std::collections::BTreeSet::new();
    let mut endpoint_paths = 0;
    let mut refusals = std::collections::BTreeSet::new();
    for id in 0..cases {
        let c = case(&mut rng, id);
        let label = format!("seed {seed} case {id}");
        let r = post_reload(&admin, &token, &c.toml).await;
        if r.status != 200 {
            // A generated topology Azure would refuse (an error finding): refused whole.
            assert_eq!(r.status, 422, "{label}: {}\n{}", r.text(), c.toml);
            let doc: serde_json::Value = r.json().unwrap_or_default();
            for f in doc["findings"].as_array().into_iter().flatten() {
                if f["severity"] == "error" {
                    refusals.insert(f["code"].as_str().unwrap_or("?").to_string());
                }
            }
            refused += 1;
            continue;
        }
        applied += 1;
        compared += compare(
            &sim,
            &format!("{label} (reload)"),
            &c.toml,
            &mut codes,
            &mut endpoint_paths,
        )
        .await;
        // A live rule change on the integration subnet's NSG.
        let auth = format!("Bearer {token}");
        let r = admin
            .request(
                Method::PUT,
                "/admin/nsgs/nsg-apim/security_rules",
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                Bytes::from(c.apim_rules_json.to_string()),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{label}: {}", r.text());
        compared += compare(
            &sim,
            &format!("{label} (rule change)"),
            &c.toml,
            &mut codes,
            &mut endpoint_paths,
        )
        .await;
        // A reload of the case with other subnet rules (same names).
        let r = post_reload(&admin, &token, &c.other_subnet_rules).await;
        assert_eq!(r.status, 200, "{label}: {}", r.text());
        compared += compare(
            &sim,
            &format!("{label} (second reload)"),
            &c.other_subnet_rules,
            &mut codes,
            &mut endpoint_paths,
        )
        .await;
    }
    eprintln!("parity: {cases} cases, {applied} applied, {refused} refused, {compared} API comparisons ({endpoint_paths} through a service endpoint route), codes {codes:?}, refusals {refusals:?}");
    assert!(
        applied * 10 >= cases * 8,
        "most generated cases are valid topologies ({applied} of {cases})"
    );
    if cases >= 32 {
        // The generator reaches the outcomes that matter.
        for code in [
            "ALLOWED",
            "NSG_DENIED",
            "DNS_FAILURE",
            "NO_ROUTE",
            "NOT_INTEGRATED",
            "ROUTE_NONE",
            "PUBLIC_ACCESS_DISABLED",
            "via:public-fallback",
            "DNAT_TRANSLATED_ALLOWED",
            "DNAT_BACKEND_COMPARED",
        ] {
            assert!(codes.contains(code), "no case reached {code}: {codes:?}");
        }
        assert!(
            endpoint_paths > 0,
            "no comparison took a VirtualNetworkServiceEndpoint route"
        );
    }
    sim.shutdown().await;
}
