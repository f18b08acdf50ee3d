//! Table tests written as fixtures: the scenarios of `AZURE-SEMANTICS.md` (§1.8 A, §1.9 B,
//! §1.10 C, §1.11 D), peering, private endpoints, the three APIM network modes, DNS, and every
//! APIM preflight code. Each test builds a topology from a TOML string through the public API and
//! asserts verdicts, deciding rules and the chain of NSGs evaluated.
//!
//! Every flow goes through [`verdict`], which also runs the verdict-only path
//! ([`Topology::decide`]) and asserts it agrees with the explaining path
//! ([`Topology::evaluate`]), so each table row checks both evaluators.

use std::net::IpAddr;

use sim::fixture::{Fixture, Format};
use sim::FlowKey;
use sim::ResolveFrom;
use sim::Verdict;
use sim::{Access, Built, Direction, Flow, Protocol, ServiceTagTable, Topology, VerdictKind};

// === helpers ===

fn build(text: &str) -> Built {
    let f = Fixture::parse(text, Format::Toml).unwrap_or_else(|e| panic!("fixture: {e}\n{text}"));
    Topology::build(&f, ServiceTagTable::builtin())
}

/// A topology that must have no structural error (APIM preflight findings are allowed).
fn topo(text: &str) -> Topology {
    let b = build(text);
    let errs = b.structural_errors();
    assert!(errs.is_empty(), "structural errors: {errs:#?}");
    b.topology
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn codes(b: &Built) -> Vec<&'static str> {
    b.findings.iter().map(|f| f.code.as_str()).collect()
}

fn tcp(src: &str, dst: &str, port: u16) -> Flow {
    Flow::tcp(ip(src), 60000, ip(dst), port)
}

fn flow(protocol: Protocol, src: &str, dst: &str, port: Option<u16>) -> Flow {
    Flow {
        protocol,
        source: ip(src),
        source_port: port.map(|_| 60000),
        destination: ip(dst),
        destination_port: port,
    }
}

/// Evaluates a flow on both paths and checks they agree (verdict, code, deciding rule, number of
/// NSGs on the path), then returns the explained verdict.
fn verdict(t: &Topology, f: Flow) -> Verdict {
    let v = t.evaluate(&f);
    let d = t.decide(&f);
    assert_eq!(d.verdict, v.verdict, "decide vs evaluate verdict for {f:?}");
    assert_eq!(d.code, v.code, "decide vs evaluate code for {f:?}");
    assert_eq!(
        d.decided_by.map(|r| {
            let i = t.rule_info(r);
            (i.nsg.to_string(), i.rule)
        }),
        v.decided_by
            .as_ref()
            .filter(|x| x.kind == sim::DecidedKind::Nsg)
            .map(|x| (x.nsg.clone(), x.rule.clone())),
        "decide vs evaluate deciding rule for {f:?}"
    );
    assert_eq!(
        d.nsgs().count(),
        v.evaluated.len(),
        "decide vs evaluate NSG count for {f:?}"
    );
    // Every NSG evaluated ends its rule list at its matched rule, and only that rule matched.
    for e in &v.evaluated {
        let (last, before) = e.rules.split_last().expect("an NSG always examines a rule");
        assert_eq!(last.name, e.matched_rule);
        assert!(last.matched());
        assert!(before.iter().all(|r| !r.matched()));
    }
    v
}

/// One NSG evaluated on a path: `(nsg, applied_to, direction, matched rule)`.
type ChainStep = (String, String, Direction, String);

/// The chain of NSGs evaluated, in order.
fn chain(v: &Verdict) -> Vec<ChainStep> {
    v.evaluated
        .iter()
        .map(|e| {
            (
                e.nsg.clone(),
                e.applied_to.clone(),
                e.direction,
                e.matched_rule.clone(),
            )
        })
        .collect()
}

fn has_error(b: &Built) -> bool {
    b.findings.iter().any(|f| f.is_error())
}

const AVI: &str = "defaultSecurityRules/AllowVnetInBound";
const ALB: &str = "defaultSecurityRules/AllowAzureLoadBalancerInBound";
const DAI: &str = "defaultSecurityRules/DenyAllInBound";
const AVO: &str = "defaultSecurityRules/AllowVnetOutBound";
const AIO: &str = "defaultSecurityRules/AllowInternetOutBound";
const DAO: &str = "defaultSecurityRules/DenyAllOutBound";

/// A rule in fixture syntax, with single-valued fields.
#[allow(clippy::too_many_arguments)]
fn rule(
    name: &str,
    priority: u32,
    direction: &str,
    access: &str,
    protocol: &str,
    src: &str,
    dst: &str,
    dport: &str,
) -> String {
    format!(
        r#"
  [[nsgs.security_rules]]
  name = "{name}"
  priority = {priority}
  direction = "{direction}"
  access = "{access}"
  protocol = "{protocol}"
  source_address_prefix = "{src}"
  source_port_range = "*"
  destination_address_prefix = "{dst}"
  destination_port_range = "{dport}"
"#
    )
}

// === Scenario A: "How network security groups filter network traffic" (spec §1.8) ===

/// An internet client: a public address outside every VNet.
const CLIENT: &str = "93.184.216.34";
/// A public web server (bing, as in the IP flow verify quickstart).
const WEB: &str = "13.107.21.200";

fn scenario_a(nsg1: &str, nsg2: &str) -> Topology {
    topo(&format!(
        r#"
[[nsgs]]
name = "NSG1"
{nsg1}
[[nsgs]]
name = "NSG2"
{nsg2}
[[vnets]]
name = "vnet1"
region = "westeurope"
address_space = ["10.0.0.0/16"]

  [[vnets.subnets]]
  name = "Subnet1"
  address_prefix = "10.0.1.0/24"
  nsg = "NSG1"

  [[vnets.subnets]]
  name = "Subnet2"
  address_prefix = "10.0.2.0/24"

  [[vnets.subnets]]
  name = "Subnet3"
  address_prefix = "10.0.3.0/24"

[[hosts]]
name = "VM1"
address = "10.0.1.4"
public_address = "20.1.1.1"
nsg = "NSG2"

[[hosts]]
name = "VM2"
address = "10.0.1.5"
public_address = "20.1.1.2"

[[hosts]]
name = "VM3"
address = "10.0.2.4"
public_address = "20.1.1.3"
nsg = "NSG2"

[[hosts]]
name = "VM4"
address = "10.0.3.4"
public_address = "20.1.1.4"
"#
    ))
}

#[test]
fn scenario_a_nsg_how_it_works_matrix() {
    let allow80 = rule(
        "Allow-HTTP-Internet",
        100,
        "Inbound",
        "Allow",
        "Tcp",
        "Internet",
        "*",
        "80",
    );
    let deny80out = rule(
        "Deny-HTTP-Internet-Out",
        100,
        "Outbound",
        "Deny",
        "Tcp",
        "*",
        "Internet",
        "80",
    );
    let deny_all = format!(
        "{}{}",
        rule("Deny-All-In", 100, "Inbound", "Deny", "*", "*", "*", "*"),
        rule("Deny-All-Out", 100, "Outbound", "Deny", "*", "*", "*", "*")
    );
    // Configurations C0–C4 of §1.8: (NSG1 custom rules, NSG2 custom rules).
    let configs = [
        ("", String::new()),
        (allow80.as_str(), String::new()),
        (allow80.as_str(), allow80.clone()),
        ("", deny80out),
        (deny_all.as_str(), String::new()),
    ];
    let topologies: Vec<Topology> = configs.iter().map(|(a, b)| scenario_a(a, b)).collect();

    // The nine flows of §1.8; internet flows reach a VM through its public address.
    let flows = [
        tcp(CLIENT, "20.1.1.1", 80),     // 1 Internet→VM1
        tcp(CLIENT, "20.1.1.2", 80),     // 2 Internet→VM2
        tcp(CLIENT, "20.1.1.3", 80),     // 3 Internet→VM3
        tcp(CLIENT, "20.1.1.4", 80),     // 4 Internet→VM4
        tcp("10.0.1.4", WEB, 80),        // 5 VM1→Internet
        tcp("10.0.1.5", WEB, 80),        // 6 VM2→Internet
        tcp("10.0.2.4", WEB, 80),        // 7 VM3→Internet
        tcp("10.0.3.4", WEB, 80),        // 8 VM4→Internet
        tcp("10.0.1.5", "10.0.1.4", 22), // 9 VM2→VM1 (intra-subnet)
    ];

    // Where each NSG is applied, with the direction it is evaluated in.
    let s1 = "vnets/vnet1/subnets/Subnet1";
    type Step = (&'static str, &'static str, Direction, &'static str);
    let n1i = |r| ("NSG1", s1, Direction::Inbound, r);
    let n1o = |r| ("NSG1", s1, Direction::Outbound, r);
    let vm1i = |r| ("NSG2", "hosts/VM1", Direction::Inbound, r);
    let vm1o = |r| ("NSG2", "hosts/VM1", Direction::Outbound, r);
    let vm3i = |r| ("NSG2", "hosts/VM3", Direction::Inbound, r);
    let vm3o = |r| ("NSG2", "hosts/VM3", Direction::Outbound, r);
    let u_allow = "securityRules/Allow-HTTP-Internet";
    let u_deny80 = "securityRules/Deny-HTTP-Internet-Out";
    let u_in = "securityRules/Deny-All-In";
    let u_out = "securityRules/Deny-All-Out";
    use VerdictKind::{Allow, Deny};

    // expected[flow][config] = (verdict, the exact chain of NSGs evaluated). The deciding rule
    // is the last step of the chain (the deny, or for Allow the last NSG's match); an empty
    // chain means no NSG is on the path. A chain that stops early proves the later NSGs were
    // not evaluated, as §1.4 requires.
    let expected: [[(VerdictKind, Vec<Step>); 5]; 9] = [
        [
            (Deny, vec![n1i(DAI)]), // NSG1 denies; NSG2 never evaluated
            (Deny, vec![n1i(u_allow), vm1i(DAI)]),
            (Allow, vec![n1i(u_allow), vm1i(u_allow)]), // both NSGs must allow port 80
            (Deny, vec![n1i(DAI)]),
            (Deny, vec![n1i(u_in)]),
        ],
        [
            (Deny, vec![n1i(DAI)]),
            (Allow, vec![n1i(u_allow)]), // VM2 has only the subnet NSG
            (Allow, vec![n1i(u_allow)]),
            (Deny, vec![n1i(DAI)]),
            (Deny, vec![n1i(u_in)]),
        ],
        [
            (Deny, vec![vm3i(DAI)]), // Subnet2 has no NSG: only NSG2 on the NIC
            (Deny, vec![vm3i(DAI)]),
            (Allow, vec![vm3i(u_allow)]),
            (Deny, vec![vm3i(DAI)]),
            (Deny, vec![vm3i(DAI)]),
        ],
        [
            (Allow, vec![]), // VM4: no NSG anywhere, all traffic allowed
            (Allow, vec![]),
            (Allow, vec![]),
            (Allow, vec![]),
            (Allow, vec![]),
        ],
        [
            (Allow, vec![vm1o(AIO), n1o(AIO)]), // outbound: NIC NSG first, then subnet NSG
            (Allow, vec![vm1o(AIO), n1o(AIO)]),
            (Allow, vec![vm1o(AIO), n1o(AIO)]),
            (Deny, vec![vm1o(u_deny80)]), // NSG2 denies; NSG1 never evaluated
            (Deny, vec![vm1o(AIO), n1o(u_out)]), // NSG1 denies after NSG2 allows
        ],
        [
            (Allow, vec![n1o(AIO)]),
            (Allow, vec![n1o(AIO)]),
            (Allow, vec![n1o(AIO)]),
            (Allow, vec![n1o(AIO)]),
            (Deny, vec![n1o(u_out)]),
        ],
        [
            (Allow, vec![vm3o(AIO)]),
            (Allow, vec![vm3o(AIO)]),
            (Allow, vec![vm3o(AIO)]),
            (Deny, vec![vm3o(u_deny80)]),
            (Allow, vec![vm3o(AIO)]), // C4 changes NSG1 only; VM3 is not behind it
        ],
        [
            (Allow, vec![]),
            (Allow, vec![]),
            (Allow, vec![]),
            (Allow, vec![]),
            (Allow, vec![]),
        ],
        [
            // Intra-subnet: NSG1 outbound, then NSG1 inbound, then VM1's NIC NSG2 inbound.
            (Allow, vec![n1o(AVO), n1i(AVI), vm1i(AVI)]),
            (Allow, vec![n1o(AVO), n1i(AVI), vm1i(AVI)]),
            (Allow, vec![n1o(AVO), n1i(AVI), vm1i(AVI)]),
            (Allow, vec![n1o(AVO), n1i(AVI), vm1i(AVI)]),
            (Deny, vec![n1o(u_out)]), // deny-all in NSG1 cuts VM2 off from VM1
        ],
    ];

    for (fi, row) in expected.iter().enumerate() {
        for (ci, (kind, steps)) in row.iter().enumerate() {
            let t = &topologies[ci];
            let v = verdict(t, flows[fi]);
            let ctx = format!("flow {} under C{ci}:\n{v}", fi + 1);
            // The verdict of the §1.8 matrix cell.
            assert_eq!(v.verdict, *kind, "{ctx}");
            // The exact NSG chain: deciding NSG and rule, and that later NSGs were skipped.
            let want: Vec<ChainStep> = steps
                .iter()
                .map(|(n, a, d, r)| (n.to_string(), a.to_string(), *d, r.to_string()))
                .collect();
            assert_eq!(chain(&v), want, "{ctx}");
            // decided_by is the last step: the denying rule, or the last NSG's allow.
            assert_eq!(
                v.decided_by
                    .as_ref()
                    .map(|d| (d.nsg.as_str(), d.rule.as_str())),
                steps.last().map(|(n, _, _, r)| (*n, *r)),
                "{ctx}"
            );
            // Stable codes: ALLOWED or NSG_DENIED, never Unreachable in this scenario.
            assert_eq!(
                v.code.as_str(),
                if *kind == Allow {
                    "ALLOWED"
                } else {
                    "NSG_DENIED"
                },
                "{ctx}"
            );
        }
    }
}

#[test]
fn scenario_a_internet_needs_a_public_address_and_nsgs_see_the_private_one() {
    let t = scenario_a(
        &rule(
            "Allow-HTTP-Internet",
            100,
            "Inbound",
            "Allow",
            "Tcp",
            "Internet",
            "10.0.1.5",
            "80",
        ),
        "",
    );
    // The rule names VM2's *private* address: it matches traffic sent to VM2's public address,
    // because NSGs process inbound traffic after the public→private translation (§1.1).
    let v = verdict(&t, tcp(CLIENT, "20.1.1.2", 80));
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert_eq!(
        v.decided_by.unwrap().rule,
        "securityRules/Allow-HTTP-Internet"
    );
    // The internet cannot address a VM's private IP: no NSG is consulted, no route exists.
    let v = verdict(&t, tcp(CLIENT, "10.0.1.5", 80));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Unreachable, "NO_PUBLIC_ENDPOINT")
    );
    assert!(v.evaluated.is_empty() && v.decided_by.is_none());
}

// === Scenario B: application security groups (spec §1.9) ===

fn scenario_b() -> Topology {
    let rules = format!(
        "{}{}{}",
        rule(
            "Allow-HTTP-Inbound-Internet",
            100,
            "Inbound",
            "Allow",
            "Tcp",
            "Internet",
            "*",
            "80"
        )
        .replace(
            "destination_address_prefix = \"*\"",
            "destination_application_security_groups = [\"AsgWeb\"]"
        ),
        rule(
            "Allow-Database-BusinessLogic",
            110,
            "Inbound",
            "Allow",
            "Tcp",
            "*",
            "*",
            "1433"
        )
        .replace(
            "source_address_prefix = \"*\"",
            "source_application_security_groups = [\"AsgLogic\"]"
        )
        .replace(
            "destination_address_prefix = \"*\"",
            "destination_application_security_groups = [\"AsgDb\"]"
        ),
        rule(
            "Deny-Database-All",
            120,
            "Inbound",
            "Deny",
            "*",
            "*",
            "*",
            "1433"
        )
        .replace(
            "destination_address_prefix = \"*\"",
            "destination_application_security_groups = [\"AsgDb\"]"
        ),
    );
    topo(&format!(
        r#"
[[nsgs]]
name = "NSG1"
{rules}
[[vnets]]
name = "vnet1"
region = "westeurope"
address_space = ["10.0.0.0/16"]

  [[vnets.subnets]]
  name = "Subnet1"
  address_prefix = "10.0.1.0/24"
  nsg = "NSG1"

  [[vnets.subnets]]
  name = "Subnet2"
  address_prefix = "10.0.2.0/24"
  nsg = "NSG1"

[[hosts]]
name = "NIC1"
address = "10.0.1.4"
public_address = "20.10.0.1"
application_security_groups = ["AsgWeb"]

[[hosts]]
name = "NIC2"
address = "10.0.1.5"
public_address = "20.10.0.2"
application_security_groups = ["AsgWeb"]

[[hosts]]
name = "NIC3"
address = "10.0.2.4"
public_address = "20.10.0.3"
application_security_groups = ["AsgLogic"]

[[hosts]]
name = "NIC4"
address = "10.0.2.5"
public_address = "20.10.0.4"
application_security_groups = ["AsgDb"]
"#
    ))
}

#[test]
fn scenario_b_application_security_groups() {
    let t = scenario_b();
    let s1 = "vnets/vnet1/subnets/Subnet1";
    let s2 = "vnets/vnet1/subnets/Subnet2";
    let step =
        |a: &str, d: Direction, r: &str| ("NSG1".to_string(), a.to_string(), d, r.to_string());
    let web = "securityRules/Allow-HTTP-Inbound-Internet";
    let logic = "securityRules/Allow-Database-BusinessLogic";
    let deny_db = "securityRules/Deny-Database-All";
    use Direction::{Inbound as In, Outbound as Out};
    use VerdictKind::{Allow, Deny};
    let rows: Vec<(&str, Flow, VerdictKind, Vec<ChainStep>)> = vec![
        (
            "internet → web NIC1:80 is allowed by the AsgWeb rule",
            tcp(CLIENT, "20.10.0.1", 80),
            Allow,
            vec![step(s1, In, web)],
        ),
        (
            "internet → web NIC2:80 too: the rule covers every AsgWeb member",
            tcp(CLIENT, "20.10.0.2", 80),
            Allow,
            vec![step(s1, In, web)],
        ),
        (
            "internet → logic NIC3:80: not an AsgWeb member, DenyAllInBound needs no extra rule",
            tcp(CLIENT, "20.10.0.3", 80),
            Deny,
            vec![step(s2, In, DAI)],
        ),
        (
            "internet → web NIC1:443: the web rule is port 80 only",
            tcp(CLIENT, "20.10.0.1", 443),
            Deny,
            vec![step(s1, In, DAI)],
        ),
        (
            "internet → db NIC4:1433 hits Deny-Database-All",
            tcp(CLIENT, "20.10.0.4", 1433),
            Deny,
            vec![step(s2, In, deny_db)],
        ),
        (
            "AsgLogic → AsgDb 1433/TCP: priority 110 wins over Deny-Database-All at 120",
            tcp("10.0.2.4", "10.0.2.5", 1433),
            Allow,
            vec![step(s2, Out, AVO), step(s2, In, logic)],
        ),
        (
            "AsgWeb → AsgDb 1433: denied although AllowVnetInBound would allow it",
            tcp("10.0.1.4", "10.0.2.5", 1433),
            Deny,
            vec![step(s1, Out, AVO), step(s2, In, deny_db)],
        ),
        (
            "AsgLogic → AsgDb 1433/UDP: the allow is TCP only, the deny is Any",
            flow(Protocol::Udp, "10.0.2.4", "10.0.2.5", Some(1433)),
            Deny,
            vec![step(s2, Out, AVO), step(s2, In, deny_db)],
        ),
        (
            "AsgWeb → AsgDb on another port: AllowVnetInBound",
            tcp("10.0.1.4", "10.0.2.5", 22),
            Allow,
            vec![step(s1, Out, AVO), step(s2, In, AVI)],
        ),
        (
            "AsgWeb → AsgLogic 1433: Deny-Database-All applies only to AsgDb members",
            tcp("10.0.1.5", "10.0.2.4", 1433),
            Allow,
            vec![step(s1, Out, AVO), step(s2, In, AVI)],
        ),
    ];
    for (what, f, kind, want) in rows {
        let v = verdict(&t, f);
        assert_eq!(v.verdict, kind, "{what}\n{v}");
        assert_eq!(chain(&v), want, "{what}\n{v}");
    }

    // Per-field flags (Network Watcher's rulesEvaluationResult) for internet → NIC3:80: every
    // rule before DenyAllInBound is listed with the field that failed.
    let v = verdict(&t, tcp(CLIENT, "20.10.0.3", 80));
    let r = &v.evaluated[0].rules;
    let names: Vec<&str> = r.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, [web, logic, deny_db, AVI, ALB, DAI]);
    // The web rule fails only on the destination (NIC3 is not in AsgWeb).
    assert!(r[0].source_matched && r[0].protocol_matched && r[0].destination_port_matched);
    assert!(!r[0].destination_matched);
    // The logic rule fails on source (internet is not AsgLogic), destination and port.
    assert!(!r[1].source_matched && !r[1].destination_matched && !r[1].destination_port_matched);
    // AllowVnetInBound fails on the source only: the internet is not VirtualNetwork.
    assert!(!r[3].source_matched && r[3].destination_matched);
}

// === Scenario C: IP flow verify quickstart (spec §1.10) ===

#[test]
fn scenario_c_ip_flow_verify_quickstart() {
    // `az vm create` puts the NSG on the NIC, with default-allow-ssh besides the defaults.
    let t = topo(&format!(
        r#"
[[nsgs]]
name = "myVmNSG"
{}
[[vnets]]
name = "myVNet"
region = "eastus"
address_space = ["10.0.0.0/16"]

  [[vnets.subnets]]
  name = "default"
  address_prefix = "10.0.0.0/24"

[[hosts]]
name = "myVm"
address = "10.0.0.4"
nsg = "myVmNSG"
"#,
        rule(
            "default-allow-ssh",
            1000,
            "Inbound",
            "Allow",
            "Tcp",
            "*",
            "*",
            "22"
        )
    ));

    // Row 1: outbound to bing 13.107.21.200:80 → Allow, AllowInternetOutBound.
    let v = verdict(&t, tcp("10.0.0.4", WEB, 80));
    assert_eq!(v.verdict, VerdictKind::Allow);
    let d = v.decided_by.as_ref().unwrap();
    assert_eq!(
        (d.nsg.as_str(), d.rule.as_str(), d.direction, d.access),
        ("myVmNSG", AIO, Direction::Outbound, Access::Allow)
    );
    // 13.107.21.200 is not VirtualNetwork but is Internet (inside 12.0.0.0/6).
    let r = &v.evaluated[0].rules;
    assert_eq!((r[0].name.as_str(), r[0].destination_matched), (AVO, false));
    assert_eq!((r[1].name.as_str(), r[1].destination_matched), (AIO, true));

    // Row 2: outbound to 172.31.0.100:80 → Deny, DenyAllOutBound. The deny is reported although
    // no route exists (172.16.0.0/12 is neither VirtualNetwork nor Internet).
    let v = verdict(&t, tcp("10.0.0.4", "172.31.0.100", 80));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Deny, "NSG_DENIED")
    );
    assert_eq!(v.decided_by.as_ref().unwrap().rule, DAO);
    let r = &v.evaluated[0].rules;
    assert_eq!(
        r.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        [AVO, AIO, DAO]
    );
    assert!(
        !r[1].destination_matched,
        "a private address is not Internet"
    );

    // Row 3: inbound 172.31.0.100:60000 → 10.0.0.4:80 → Deny, DenyAllInBound. IP flow verify
    // asks the NIC's NSG only, so this row is checked on the NSG evaluators directly.
    let n = t.nsg_index("myVmNSG").unwrap();
    let nsg = &t.nsgs()[n];
    let key = FlowKey::new(
        Protocol::Tcp,
        ip("172.31.0.100"),
        Some(60000),
        ip("10.0.0.4"),
        Some(80),
    );
    let compiled = t.compiled(n, 0).expect("myVmNSG is applied in myVNet");
    let (trace, m) = compiled.explain(nsg, Direction::Inbound, &key);
    assert_eq!(
        (nsg.rules[m.rule].qualified_name().as_str(), m.access),
        (DAI, Access::Deny)
    );
    assert_eq!(
        trace.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["securityRules/default-allow-ssh", AVI, ALB, DAI]
    );
    // default-allow-ssh is skipped on the destination port alone.
    assert!(!trace[0].destination_port_matched && trace[0].source_matched);
    // The verdict-only and reference evaluators agree with the explaining one.
    assert_eq!(compiled.decide(Direction::Inbound, &key), m);
    assert_eq!(
        t.reference(n, 0).unwrap().decide(Direction::Inbound, &key),
        Some(m)
    );
    // Through the whole topology the flow cannot even arrive: a private source outside every
    // VNet has no route into Azure (issue §4: NO_ROUTE), and no NSG is consulted.
    let v = verdict(&t, tcp("172.31.0.100", "10.0.0.4", 80));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Unreachable, "NO_ROUTE")
    );
}

// === Scenario D: NSG diagnostics with Bastion (spec §1.11) ===

fn scenario_d(with_bastion_rule: bool) -> Topology {
    let mut nic_rules = rule(
        "DenyVnetInBound",
        1000,
        "Inbound",
        "Deny",
        "*",
        "VirtualNetwork",
        "*",
        "*",
    );
    if with_bastion_rule {
        nic_rules.push_str(&rule(
            "AllowBastionConnections",
            900,
            "Inbound",
            "Allow",
            "*",
            "10.0.1.0/26",
            "*",
            "*",
        ));
    }
    topo(&format!(
        r#"
[[nsgs]]
name = "mySubnet-nsg"

[[nsgs]]
name = "myVM-nsg"
{nic_rules}
[[vnets]]
name = "myVNet"
region = "eastus"
address_space = ["10.0.0.0/16"]

  [[vnets.subnets]]
  name = "mySubnet"
  address_prefix = "10.0.0.0/24"
  nsg = "mySubnet-nsg"

  [[vnets.subnets]]
  name = "AzureBastionSubnet"
  address_prefix = "10.0.1.0/26"

[[hosts]]
name = "myVM"
address = "10.0.0.4"
nsg = "myVM-nsg"
"#
    ))
}

#[test]
fn scenario_d_nsg_diagnostics_bastion() {
    let subnet = "vnets/myVNet/subnets/mySubnet";
    // The query's destination port is `*`: several ports and a port-less protocol stand in for it;
    // the source is any address of 10.0.1.0/26 (usable range .4–.62).
    let flows: Vec<Flow> = ["10.0.1.4", "10.0.1.33", "10.0.1.62"]
        .iter()
        .flat_map(|src| {
            [
                tcp(src, "10.0.0.4", 22),
                tcp(src, "10.0.0.4", 3389),
                flow(Protocol::Icmp, src, "10.0.0.4", None),
            ]
        })
        .collect();

    let before = scenario_d(false);
    for f in &flows {
        let v = verdict(&before, *f);
        // securityRuleAccessResult: Deny.
        assert_eq!(v.verdict, VerdictKind::Deny, "{v}");
        // Subnet NSG first (matched AllowVnetInBound), then the NIC NSG (matched DenyVnetInBound).
        assert_eq!(
            chain(&v),
            [
                (
                    "mySubnet-nsg".into(),
                    subnet.into(),
                    Direction::Inbound,
                    AVI.into()
                ),
                (
                    "myVM-nsg".into(),
                    "hosts/myVM".into(),
                    Direction::Inbound,
                    "securityRules/DenyVnetInBound".into()
                ),
            ]
        );
        // Each matched rule is the first examined, with every per-field flag true (NSGDIAG).
        for e in &v.evaluated {
            assert_eq!(e.rules.len(), 1);
            let r = &e.rules[0];
            assert!(
                r.source_matched
                    && r.source_port_matched
                    && r.destination_matched
                    && r.destination_port_matched
                    && r.protocol_matched
            );
        }
        assert_eq!(v.evaluated[0].access, Access::Allow);
        assert_eq!(v.evaluated[1].access, Access::Deny);
    }

    let after = scenario_d(true);
    for f in &flows {
        let v = verdict(&after, *f);
        // After AllowBastionConnections (900 < 1000): Allow, matched by the new rule.
        assert_eq!(v.verdict, VerdictKind::Allow, "{v}");
        assert_eq!(
            v.evaluated[1].matched_rule,
            "securityRules/AllowBastionConnections"
        );
        assert_eq!(v.evaluated[1].rules.len(), 1);
        assert!(v.evaluated[1].rules[0].matched());
        assert_eq!(
            v.decided_by.as_ref().unwrap().rule,
            "securityRules/AllowBastionConnections"
        );
    }

    // From outside the Bastion subnet the new rule fails on its source only, and the deny follows.
    let v = verdict(&after, tcp("10.0.0.5", "10.0.0.4", 22));
    assert_eq!(v.verdict, VerdictKind::Deny);
    let nic = v.evaluated.last().unwrap();
    assert_eq!(nic.matched_rule, "securityRules/DenyVnetInBound");
    let r = &nic.rules[0];
    assert_eq!(r.name, "securityRules/AllowBastionConnections");
    assert!(!r.source_matched);
    assert!(r.source_port_matched && r.destination_matched && r.destination_port_matched);
    assert!(r.protocol_matched);
}

// === Peering ===

fn peering_topology(peers: [&[&str]; 3], with_nsgs: bool) -> Built {
    let mut text = String::new();
    if with_nsgs {
        text.push_str(
            "[[nsgs]]\nname = \"nsg-a\"\n[[nsgs]]\nname = \"nsg-b\"\n[[nsgs]]\nname = \"nsg-c\"\n",
        );
    }
    for (i, v) in ["a", "b", "c"].iter().enumerate() {
        let list: Vec<String> = peers[i].iter().map(|p| format!("\"{p}\"")).collect();
        text.push_str(&format!(
            "[[vnets]]\nname = \"{v}\"\nregion = \"westeurope\"\naddress_space = [\"10.{n}.0.0/16\"]\npeerings = [{}]\n  [[vnets.subnets]]\n  name = \"s\"\n  address_prefix = \"10.{n}.1.0/24\"\n{}",
            list.join(", "),
            if with_nsgs { format!("  nsg = \"nsg-{v}\"\n") } else { String::new() },
            n = i + 1
        ));
    }
    for (i, v) in ["a", "b", "c"].iter().enumerate() {
        text.push_str(&format!(
            "[[hosts]]\nname = \"h{v}\"\naddress = \"10.{}.1.4\"\n",
            i + 1
        ));
    }
    build(&text)
}

#[test]
fn one_sided_peering_is_initiated_and_carries_nothing() {
    let b = peering_topology([&["b"], &[], &[]], false);
    // A peering listed by one side only is a warning, not an error.
    assert_eq!(codes(&b), ["PEERING_NOT_CONNECTED"]);
    assert_eq!(b.findings[0].subject, "vnets/a/peerings/b");
    assert!(!has_error(&b));
    let t = &b.topology;
    // No traffic in either direction.
    for f in [
        tcp("10.1.1.4", "10.2.1.4", 443),
        tcp("10.2.1.4", "10.1.1.4", 443),
    ] {
        let v = verdict(t, f);
        assert_eq!(
            (v.verdict, v.code.as_str()),
            (VerdictKind::Unreachable, "NO_ROUTE")
        );
    }
    // b's space is not part of a's VirtualNetwork tag.
    let b_space: sim::Cidr = "10.2.0.0/16".parse().unwrap();
    assert!(!t.vnets()[0].virtual_network_tag.contains(&b_space));
    assert!(!t.connected(0, 1));

    // With NSGs the same flow is denied by DenyAllOutBound, not allowed by AllowVnetOutBound: the
    // engine itself does not count b as VirtualNetwork (and a private range is not Internet).
    let t = peering_topology([&["b"], &[], &[]], true).topology;
    let v = verdict(&t, tcp("10.1.1.4", "10.2.1.4", 443));
    assert_eq!(v.verdict, VerdictKind::Deny);
    assert_eq!(v.decided_by.unwrap().rule, DAO);
}

#[test]
fn two_sided_peering_connects_through_the_virtual_network_tag() {
    let b = peering_topology([&["b"], &["A"], &[]], true);
    // Both sides list each other (case-insensitively): connected, no finding.
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
    let t = &b.topology;
    let v = verdict(t, tcp("10.1.1.4", "10.2.1.4", 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
    // Allowed by AllowVnetOutBound in a's NSG and AllowVnetInBound in b's NSG.
    assert_eq!(
        chain(&v),
        [
            (
                "nsg-a".into(),
                "vnets/a/subnets/s".into(),
                Direction::Outbound,
                AVO.into()
            ),
            (
                "nsg-b".into(),
                "vnets/b/subnets/s".into(),
                Direction::Inbound,
                AVI.into()
            ),
        ]
    );
    // And back.
    assert!(verdict(t, tcp("10.2.1.4", "10.1.1.4", 443)).verdict == VerdictKind::Allow);
}

#[test]
fn peering_is_not_transitive() {
    // a ↔ b ↔ c, but not a ↔ c.
    let b = peering_topology([&["b"], &["a", "c"], &["b"]], false);
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
    let t = &b.topology;
    // Neighbours talk.
    assert!(verdict(t, tcp("10.1.1.4", "10.2.1.4", 80)).verdict == VerdictKind::Allow);
    assert!(verdict(t, tcp("10.2.1.4", "10.3.1.4", 80)).verdict == VerdictKind::Allow);
    // a and c do not: no route through b.
    for f in [
        tcp("10.1.1.4", "10.3.1.4", 80),
        tcp("10.3.1.4", "10.1.1.4", 80),
    ] {
        let v = verdict(t, f);
        assert_eq!(
            (v.verdict, v.code.as_str()),
            (VerdictKind::Unreachable, "NO_ROUTE")
        );
    }
    // b's VirtualNetwork tag holds both neighbours; a's holds b but not c.
    let tag = |v: usize| t.vnets()[v].virtual_network_tag.clone();
    let p = |s: &str| s.parse::<sim::Cidr>().unwrap();
    assert!(tag(1).contains(&p("10.1.0.0/16")) && tag(1).contains(&p("10.3.0.0/16")));
    assert!(tag(0).contains(&p("10.2.0.0/16")) && !tag(0).contains(&p("10.3.0.0/16")));
    // With NSGs, a → c is denied by DenyAllOutBound: c is not VirtualNetwork as seen from a.
    let t = peering_topology([&["b"], &["a", "c"], &["b"]], true).topology;
    let v = verdict(&t, tcp("10.1.1.4", "10.3.1.4", 80));
    assert_eq!(v.decided_by.unwrap().rule, DAO);
}

#[test]
fn peered_vnets_must_not_overlap() {
    let text = r#"
[[vnets]]
name = "a"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = ["b"]
[[vnets]]
name = "b"
region = "westeurope"
address_space = ["10.0.128.0/17"]
peerings = ["a"]
"#;
    // Connected VNets' address spaces must not overlap (§2.1): one error for the pair.
    assert_eq!(codes(&build(text)), ["PEERING_ADDRESS_OVERLAP"]);
    // Azure refuses the first link already (ARM VnetAddressSpacesOverlap): a one-sided peering
    // between overlapping VNets is the same error, not merely "Initiated".
    let one_sided = text.replace("peerings = [\"a\"]", "");
    assert_eq!(codes(&build(&one_sided)), ["PEERING_ADDRESS_OVERLAP"]);
}

/// VNet peering overview ("The address spaces of the virtual networks must not overlap") and
/// ARM's `VnetAddressSpaceOverlapsWithAlreadyPeeredVnet`: a hub peered with spoke1 cannot also
/// peer with a spoke2 that overlaps spoke1, although hub and spoke2 do not overlap. The refused
/// link carries nothing; the first one stays connected. Unpeered overlapping VNets are legal.
#[test]
fn a_hub_cannot_peer_with_two_overlapping_spokes() {
    let text = r#"
[[vnets]]
name = "hub"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = ["spoke1", "spoke2"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.0.1.0/24"
[[vnets]]
name = "spoke1"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["hub"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.1.1.0/24"
[[vnets]]
name = "spoke2"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["hub"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.1.2.0/24"
[[hosts]]
name = "h"
address = "10.0.1.4"
[[hosts]]
name = "s1"
address = "10.1.1.4"
"#;
    let b = build(text);
    assert_eq!(codes(&b), ["PEERING_OVERLAPS_PEERED_VNET"]);
    assert_eq!(b.findings[0].subject, "vnets/hub");
    assert!(b.findings[0].message.contains("spoke1"));
    assert!(b.topology.connected(0, 1));
    assert!(!b.topology.connected(0, 2) && !b.topology.connected(2, 0));
    // Without the peerings the two spokes may overlap: no finding at all.
    let unpeered = text
        .replace("peerings = [\"spoke1\", \"spoke2\"]", "")
        .replace("peerings = [\"hub\"]", "");
    assert!(
        build(&unpeered).findings.is_empty(),
        "{:?}",
        codes(&build(&unpeered))
    );
}

// === Private endpoints ===

fn private_endpoint_topology(policies: Option<&str>, client_rules: &str) -> Topology {
    let pol = policies.map_or(String::new(), |p| {
        format!("  private_endpoint_network_policies = \"{p}\"\n")
    });
    topo(&format!(
        r#"
[[nsgs]]
name = "nsg-client"
{client_rules}
[[nsgs]]
name = "nsg-pe"
{}
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16"]

  [[vnets.subnets]]
  name = "snet-client"
  address_prefix = "10.0.1.0/24"
  nsg = "nsg-client"

  [[vnets.subnets]]
  name = "snet-pe"
  address_prefix = "10.0.2.0/24"
  nsg = "nsg-pe"
{pol}
[[hosts]]
name = "client"
address = "10.0.1.4"

[[hosts]]
name = "pe-blob"
address = "10.0.2.4"
kind = "private-endpoint"

[[hosts]]
name = "vm"
address = "10.0.2.5"
"#,
        rule("deny-all-in", 100, "Inbound", "Deny", "*", "*", "*", "*")
    ))
}

/// A private endpoint's `public_address` is its service's public endpoint ("What is a private
/// endpoint?": the endpoint is a NIC in your subnet; the service keeps its public endpoint
/// unless its public network access is disabled). Flows to it never reach the endpoint's NIC,
/// so even a subnet NSG that applies to the endpoint (`Enabled`) does not filter them; with
/// `publicNetworkAccess` Disabled ("all traffic except private endpoint traffic and that that
/// originates from trusted services will be blocked", ARM `Microsoft.KeyVault/vaults`) the
/// service refuses them: Deny `PUBLIC_ACCESS_DISABLED`.
#[test]
fn a_private_endpoints_public_address_is_the_services_public_endpoint() {
    let text = |access: &str| {
        format!(
            r#"
[[nsgs]]
name = "nsg-pe"
{}
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16"]

  [[vnets.subnets]]
  name = "snet-pe"
  address_prefix = "10.0.2.0/24"
  nsg = "nsg-pe"
  private_endpoint_network_policies = "Enabled"

[[hosts]]
name = "pe-kv"
address = "10.0.2.4"
kind = "private-endpoint"
public_address = "52.1.2.3"
private_link_fqdn = "kv1.vault.azure.net"
public_network_access = "{access}"
"#,
            rule("deny-all-in", 100, "Inbound", "Deny", "*", "*", "*", "*")
        )
    };
    let t = topo(&text("Enabled"));
    let v = verdict(&t, tcp(CLIENT, "52.1.2.3", 443));
    assert_eq!(v.verdict, VerdictKind::Allow, "{v}");
    assert!(chain(&v).is_empty(), "no NSG is on the path: {v}");
    // The private address is still behind the subnet's NSG (policies Enabled).
    let v = verdict(&t, tcp(CLIENT, "10.0.2.4", 443));
    assert_eq!(v.code.as_str(), "NO_PUBLIC_ENDPOINT", "{v}");
    let t = topo(&text("Disabled"));
    let v = verdict(&t, tcp(CLIENT, "52.1.2.3", 443));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Deny, "PUBLIC_ACCESS_DISABLED"),
        "{v}"
    );
    assert!(v.detail.contains("Disabled"), "{}", v.detail);
}

#[test]
fn private_endpoints_ignore_inbound_nsgs_unless_policies_enable_them() {
    let to_pe = tcp("10.0.1.4", "10.0.2.4", 443);
    // Default (ARM `Disabled`): the PE subnet's deny-all-in is not evaluated at all; only the
    // client's outbound NSG is on the path.
    for pol in [None, Some("Disabled"), Some("RouteTableEnabled")] {
        let t = private_endpoint_topology(pol, "");
        let v = verdict(&t, to_pe);
        assert_eq!(v.verdict, VerdictKind::Allow, "{pol:?}\n{v}");
        assert_eq!(
            chain(&v),
            [(
                "nsg-client".into(),
                "vnets/v/subnets/snet-client".into(),
                Direction::Outbound,
                AVO.into()
            )],
            "{pol:?}"
        );
        // The same NSG still filters an ordinary NIC in the same subnet.
        let v = verdict(&t, tcp("10.0.1.4", "10.0.2.5", 443));
        assert_eq!(
            v.decided_by.unwrap().rule,
            "securityRules/deny-all-in",
            "{pol:?}"
        );
    }
    // `Enabled` and `NetworkSecurityGroupEnabled` make the subnet NSG apply to the PE.
    for pol in [
        "Enabled",
        "NetworkSecurityGroupEnabled",
        "networksecuritygroupenabled",
    ] {
        let t = private_endpoint_topology(Some(pol), "");
        let v = verdict(&t, to_pe);
        assert_eq!(v.verdict, VerdictKind::Deny, "{pol}");
        let d = v.decided_by.unwrap();
        assert_eq!(
            (d.nsg.as_str(), d.rule.as_str(), d.direction),
            ("nsg-pe", "securityRules/deny-all-in", Direction::Inbound),
            "{pol}"
        );
    }
    // Source-side rules always apply: the client's own outbound deny stops the flow.
    let t = private_endpoint_topology(
        None,
        &rule(
            "deny-to-pe",
            100,
            "Outbound",
            "Deny",
            "Tcp",
            "*",
            "10.0.2.4",
            "443",
        ),
    );
    let v = verdict(&t, to_pe);
    assert_eq!(v.verdict, VerdictKind::Deny);
    assert_eq!(
        chain(&v),
        [(
            "nsg-client".into(),
            "vnets/v/subnets/snet-client".into(),
            Direction::Outbound,
            "securityRules/deny-to-pe".into()
        )]
    );
}

// === APIM network modes ===

fn apim_topology(apim: &str, apim_nsg_rules: &str) -> Topology {
    topo(&format!(
        r#"
[[nsgs]]
name = "nsg-apim"
{apim_nsg_rules}
[[nsgs]]
name = "nsg-backend"

[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16"]

  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  delegations = ["Microsoft.Web/serverFarms", "Microsoft.Web/hostingEnvironments"]
  nsg = "nsg-apim"

  [[vnets.subnets]]
  name = "snet-backend"
  address_prefix = "10.0.2.0/24"
  nsg = "nsg-backend"

[[hosts]]
name = "backend"
address = "10.0.2.4"
dns = ["backend.v.internal"]

[[hosts]]
name = "payments"
address = "20.50.1.10"
dns = ["api.payments.example"]

[apim]
name = "apim-1"
region = "westeurope"
{apim}
"#
    ))
}

fn apim_rules() -> String {
    format!(
        "{}{}{}",
        rule(
            "allow-backend",
            100,
            "Outbound",
            "Allow",
            "Tcp",
            "*",
            "10.0.2.0/24",
            "443"
        ),
        rule(
            "deny-internet",
            4000,
            "Outbound",
            "Deny",
            "*",
            "*",
            "Internet",
            "*"
        ),
        rule("deny-all-in", 4090, "Inbound", "Deny", "*", "*", "*", "*"),
    )
}

#[test]
fn apim_integration_leaves_from_the_subnet_through_its_outbound_nsg() {
    let t = apim_topology(
        "sku = \"StandardV2\"\nvirtual_network = \"integration\"\nsubnet = \"v/snet-apim\"",
        &apim_rules(),
    );
    // The source is the first usable address of the integration subnet (offset 4).
    let src = t.apim_source().unwrap();
    assert_eq!(src, ip("10.0.1.4"));
    let s = src.to_string();
    let apim_out = (
        "nsg-apim".to_string(),
        "vnets/v/subnets/snet-apim".to_string(),
        Direction::Outbound,
    );

    // Private backend: allowed by the subnet's outbound rule, then the backend's inbound NSG.
    let v = verdict(&t, tcp(&s, "10.0.2.4", 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert_eq!(
        (
            v.evaluated[0].nsg.clone(),
            v.evaluated[0].applied_to.clone(),
            v.evaluated[0].direction
        ),
        apim_out
    );
    assert_eq!(v.evaluated[0].matched_rule, "securityRules/allow-backend");
    // The integrated source is named as an assumption.
    let a: Vec<&str> = v.assumptions.iter().map(|a| a.code()).collect();
    assert!(a.contains(&"ASSUMPTION_ALL_EGRESS_VIA_SUBNET"));
    assert!(a.contains(&"ASSUMPTION_APIM_SOURCE_ADDRESS"));

    // Public destinations pass the same outbound NSG: deny-internet stops them.
    let v = verdict(&t, tcp(&s, "20.50.1.10", 443));
    assert_eq!(v.verdict, VerdictKind::Deny);
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-internet");

    // Inbound to the gateway endpoint is public: no NSG applies, although nsg-apim denies all
    // inbound.
    let gw = t.apim_endpoint().unwrap();
    assert_eq!(gw, ip(sim::DEFAULT_APIM_PUBLIC_ADDRESS));
    let v = verdict(&t, tcp(CLIENT, &gw.to_string(), 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert!(v.evaluated.is_empty() && v.decided_by.is_none());
    // So is a VNet host calling the gateway: its own outbound NSG is the only one evaluated.
    let v = verdict(&t, tcp("10.0.2.4", &gw.to_string(), 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert!(v
        .evaluated
        .iter()
        .all(|e| e.direction == Direction::Outbound));

    // Integration is outbound-only: nothing accepts traffic at the subnet address.
    let v = verdict(&t, tcp("10.0.2.4", &s, 443));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Unreachable, "NO_ROUTE")
    );

    // A configured address replaces the default source.
    let t = apim_topology(
        "sku = \"StandardV2\"\nvirtual_network = \"integration\"\nsubnet = \"v/snet-apim\"\naddress = \"10.0.1.10\"",
        &apim_rules(),
    );
    assert_eq!(t.apim_source(), Some(ip("10.0.1.10")));
}

#[test]
fn apim_without_integration_reaches_only_public_destinations() {
    let t = apim_topology(
        "sku = \"StandardV2\"\npublic_address = \"20.105.7.7\"",
        &apim_rules(),
    );
    // Outbound flows leave from the instance's public address.
    assert_eq!(t.apim_source(), Some(ip("20.105.7.7")));
    // A private destination is unreachable: NOT_INTEGRATED, and no NSG is consulted.
    let v = verdict(&t, tcp("20.105.7.7", "10.0.2.4", 443));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Unreachable, "NOT_INTEGRATED")
    );
    assert!(v.evaluated.is_empty());
    // A public destination is allowed with no NSG (nsg-apim's deny-internet does not apply).
    let v = verdict(&t, tcp("20.105.7.7", "20.50.1.10", 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert!(v.evaluated.is_empty() && v.decided_by.is_none());
    assert!(v
        .assumptions
        .iter()
        .any(|a| a.code() == "ASSUMPTION_APIM_PUBLIC_ADDRESS"));
    // Inbound to the public gateway endpoint: allowed, no NSG.
    assert_eq!(t.apim_endpoint(), Some(ip("20.105.7.7")));
    let v = verdict(&t, tcp(CLIENT, "20.105.7.7", 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert!(v.evaluated.is_empty());
}

#[test]
fn apim_injection_gateway_is_private_behind_the_subnet_inbound_nsg() {
    let apim = "sku = \"PremiumV2\"\nvirtual_network = \"injection\"\nsubnet = \"v/snet-apim\"";
    let t = apim_topology(apim, &apim_rules());
    // The gateway endpoint is the private address in the injection subnet.
    let gw = t.apim_endpoint().unwrap();
    assert_eq!(gw, ip("10.0.1.4"));
    // Inbound to it passes the subnet's inbound NSG: deny-all-in decides.
    let v = verdict(&t, tcp("10.0.2.4", "10.0.1.4", 443));
    assert_eq!(v.verdict, VerdictKind::Deny);
    let d = v.decided_by.unwrap();
    assert_eq!(
        (d.nsg.as_str(), d.rule.as_str(), d.direction),
        ("nsg-apim", "securityRules/deny-all-in", Direction::Inbound)
    );
    assert_eq!(
        v.evaluated.last().unwrap().applied_to,
        "vnets/v/subnets/snet-apim"
    );
    // An inbound allow ahead of it lets VNet clients in.
    let rules = format!(
        "{}{}",
        apim_rules(),
        rule(
            "allow-vnet-443",
            100,
            "Inbound",
            "Allow",
            "Tcp",
            "VirtualNetwork",
            "*",
            "443"
        )
    );
    let t = apim_topology(apim, &rules);
    let v = verdict(&t, tcp("10.0.2.4", "10.0.1.4", 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/allow-vnet-443");
    // There is no public gateway endpoint with injection.
    let v = verdict(&t, tcp(CLIENT, sim::DEFAULT_APIM_PUBLIC_ADDRESS, 443));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Unreachable, "NO_PUBLIC_ENDPOINT")
    );
    // Outbound from the injected gateway passes the subnet's outbound NSG too.
    let v = verdict(&t, tcp("10.0.1.4", "20.50.1.10", 443));
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-internet");
}

// === DNS ===

fn dns_topology(apim: &str) -> Topology {
    topo(&format!(
        r#"
[[vnets]]
name = "app"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = ["shared"]
  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  [[vnets.subnets]]
  name = "snet-backend"
  address_prefix = "10.0.2.0/24"

[[vnets]]
name = "shared"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["app"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.1.1.0/24"

[[vnets]]
name = "other"
region = "westeurope"
address_space = ["10.2.0.0/16"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.2.1.0/24"

[[vnets]]
name = "half"
region = "westeurope"
address_space = ["10.3.0.0/16"]
peerings = ["shared"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.3.1.0/24"

[[private_dns_zones]]
name = "internal.contoso.com"
links = ["app"]

[[hosts]]
name = "orders"
address = "10.0.2.4"
dns = ["orders.internal.contoso.com"]

[[hosts]]
name = "db"
address = "10.1.1.4"
dns = ["db.shared.local"]

[[hosts]]
name = "www"
address = "10.2.1.4"
public_address = "20.60.0.1"
dns = ["www.contoso.example"]

[[hosts]]
name = "partner"
address = "20.50.1.10"
dns = ["api.partner.example"]
{apim}
"#
    ))
}

#[test]
fn dns_private_zones_links_and_peering() {
    let t = dns_topology("");
    let (app, shared, other, half) = (0, 1, 2, 3);
    let from = ResolveFrom::Vnet;
    let ok = |name: &str, f: ResolveFrom| t.resolve(name, f).map_err(|e| e.to_string());
    // A zone record resolves from a linked VNet (case and trailing dot do not matter).
    assert_eq!(
        ok("orders.internal.contoso.com", from(app)),
        Ok(ip("10.0.2.4"))
    );
    assert_eq!(
        ok("ORDERS.Internal.contoso.com.", from(app)),
        Ok(ip("10.0.2.4"))
    );
    // Zone links are not carried by peering: `shared` is peered with `app` but not linked.
    let e = t
        .resolve("orders.internal.contoso.com", from(shared))
        .unwrap_err();
    assert!(e.reason.contains("internal.contoso.com"), "{e}");
    // Unlinked and public resolvers fail too.
    assert!(t
        .resolve("orders.internal.contoso.com", from(other))
        .is_err());
    assert!(t
        .resolve("orders.internal.contoso.com", ResolveFrom::Public)
        .is_err());
    // A name under the zone with no record fails even from the linked VNet.
    assert!(t
        .resolve("missing.internal.contoso.com", from(app))
        .is_err());

    // A private name outside every zone: own VNet and two-sided peers only.
    assert_eq!(ok("db.shared.local", from(shared)), Ok(ip("10.1.1.4")));
    assert_eq!(ok("db.shared.local", from(app)), Ok(ip("10.1.1.4")));
    assert!(
        t.resolve("db.shared.local", from(other)).is_err(),
        "not peered"
    );
    assert!(
        t.resolve("db.shared.local", from(half)).is_err(),
        "a one-sided peering does not connect"
    );
    assert!(t.resolve("db.shared.local", ResolveFrom::Public).is_err());

    // Public names resolve everywhere: a host with a public address to that address, a host
    // outside every VNet to its own address.
    for f in [
        from(app),
        from(shared),
        from(other),
        from(half),
        ResolveFrom::Public,
    ] {
        assert_eq!(ok("www.contoso.example", f), Ok(ip("20.60.0.1")));
        assert_eq!(ok("api.partner.example", f), Ok(ip("20.50.1.10")));
        // IP literals resolve to themselves.
        assert_eq!(ok("10.9.9.9", f), Ok(ip("10.9.9.9")));
    }
    // Unknown names fail with the gateway's DNS_FAILURE code.
    assert!(t.resolve("nope.example", from(app)).is_err());
    assert_eq!(sim::DnsError::CODE, "DNS_FAILURE");
}

#[test]
fn dns_as_the_apim_instance_sees_it() {
    let integrated = dns_topology(
        "[apim]\nname = \"a\"\nsku = \"StandardV2\"\nregion = \"westeurope\"\nvirtual_network = \"integration\"\nsubnet = \"app/snet-apim\"",
    );
    // Integrated: resolves from its subnet's VNet, private zone included.
    assert_eq!(
        integrated
            .resolve_from_apim("orders.internal.contoso.com")
            .ok(),
        Some(ip("10.0.2.4"))
    );
    assert_eq!(
        integrated.resolve_from_apim("db.shared.local").ok(),
        Some(ip("10.1.1.4"))
    );
    let none = dns_topology("[apim]\nname = \"a\"\nsku = \"StandardV2\"\nregion = \"westeurope\"");
    // Not integrated: public DNS only.
    assert!(none
        .resolve_from_apim("orders.internal.contoso.com")
        .is_err());
    assert!(none.resolve_from_apim("db.shared.local").is_err());
    assert_eq!(
        none.resolve_from_apim("api.partner.example").ok(),
        Some(ip("20.50.1.10"))
    );
    assert_eq!(
        none.resolve_from_apim("www.contoso.example").ok(),
        Some(ip("20.60.0.1"))
    );
    // Without an [apim] there is nothing to resolve from.
    assert!(dns_topology("")
        .resolve_from_apim("api.partner.example")
        .is_err());
}

// === APIM preflight ===

const PREFLIGHT_BASE: &str = r#"
[subscription]
id = "sub-1"
registered_providers = ["Microsoft.Web", "Microsoft.Network"]

[principal]
actions = ["Microsoft.Network/virtualNetworks/read", "Microsoft.Network/virtualNetworks/subnets/read", "Microsoft.Network/virtualNetworks/subnets/join/action"]

[[vnets]]
name = "vnet-app"
region = "westeurope"
address_space = ["10.0.0.0/16"]

  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  delegations = ["Microsoft.Web/serverFarms"]
  nsg = "nsg-apim"

[[nsgs]]
name = "nsg-apim"
#RULES

[apim]
name = "apim-1"
sku = "StandardV2"
capacity = 1
region = "westeurope"
virtual_network = "integration"
subnet = "vnet-app/snet-apim"
"#;

/// The base preflight fixture with textual replacements applied.
fn preflight(edits: &[(&str, &str)]) -> Built {
    let mut text = PREFLIGHT_BASE.to_string();
    for (from, to) in edits {
        assert!(
            text.contains(from),
            "edit target `{from}` not in the base fixture"
        );
        text = text.replacen(from, to, 1);
    }
    build(&text)
}

fn sorted_codes(b: &Built) -> Vec<&'static str> {
    let mut c = codes(b);
    c.sort_unstable();
    c
}

const SKU: &str = "sku = \"StandardV2\"";
const MODE: &str = "virtual_network = \"integration\"";
const DELEG: &str = "delegations = [\"Microsoft.Web/serverFarms\"]";
const PREFIX: &str = "address_prefix = \"10.0.1.0/24\"";
const ACTIONS: &str = "actions = [\"Microsoft.Network/virtualNetworks/read\", \"Microsoft.Network/virtualNetworks/subnets/read\", \"Microsoft.Network/virtualNetworks/subnets/join/action\"]";
const INJECTION: [(&str, &str); 3] = [
    (SKU, "sku = \"PremiumV2\""),
    (MODE, "virtual_network = \"injection\""),
    (
        DELEG,
        "delegations = [\"Microsoft.Web/hostingEnvironments\"]",
    ),
];

#[test]
fn preflight_baselines_are_clean() {
    // The base integration fixture meets every requirement R1–R8.
    let b = preflight(&[]);
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
    // So does its Premium v2 injection twin.
    let b = preflight(&INJECTION);
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
    // Without VNet attachment no requirement applies (even for a tier without integration).
    let b = preflight(&[
        (MODE, "virtual_network = \"none\""),
        (SKU, "sku = \"BasicV2\""),
    ]);
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
}

#[test]
fn preflight_each_code_alone() {
    let with_resource = format!("{DELEG}\n  resources = [\"appgw-1\"]");
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        // R1: integration needs Standard v2 or Premium v2.
        ("Basic v2 integration", vec![(SKU, "sku = \"BasicV2\"")], vec!["SKU_NOT_SUPPORTED"]),
        ("classic Developer integration", vec![(SKU, "sku = \"Developer\"")], vec!["SKU_NOT_SUPPORTED"]),
        ("Premium v2 integration is fine", vec![(SKU, "sku = \"PremiumV2\"")], vec![]),
        // Injection needs Premium v2.
        (
            "Standard v2 injection",
            vec![INJECTION[1], INJECTION[2]],
            vec!["SKU_NOT_SUPPORTED"],
        ),
        // R2: same region and subscription.
        ("region", vec![("region = \"westeurope\"\nvirtual", "region = \"northeurope\"\nvirtual")], vec!["REGION_MISMATCH"]),
        ("region display name", vec![("region = \"westeurope\"\nvirtual", "region = \"West Europe\"\nvirtual")], vec![]),
        (
            "VNet subscription",
            vec![("address_space", "subscription = \"sub-2\"\naddress_space")],
            vec!["SUBSCRIPTION_MISMATCH"],
        ),
        (
            "instance subscription",
            vec![("capacity = 1", "capacity = 1\nsubscription = \"sub-2\"")],
            vec!["SUBSCRIPTION_MISMATCH"],
        ),
        // R3: dedicated subnet.
        (
            "another resource in the subnet",
            vec![(DELEG, with_resource.as_str())],
            vec!["SUBNET_NOT_DEDICATED"],
        ),
        (
            "a host in the subnet",
            vec![("[apim]", "[[hosts]]\nname = \"vm\"\naddress = \"10.0.1.100\"\n\n[apim]")],
            vec!["SUBNET_NOT_DEDICATED"],
        ),
        // R4: /27 minimum (error), /24 recommended (warning), reported once.
        ("/28", vec![(PREFIX, "address_prefix = \"10.0.1.0/28\"")], vec!["SUBNET_TOO_SMALL"]),
        ("/27", vec![(PREFIX, "address_prefix = \"10.0.1.0/27\"")], vec!["SUBNET_BELOW_RECOMMENDED"]),
        ("/25", vec![(PREFIX, "address_prefix = \"10.0.1.0/25\"")], vec!["SUBNET_BELOW_RECOMMENDED"]),
        ("/23", vec![(PREFIX, "address_prefix = \"10.0.0.0/23\"")], vec![]),
        // R5: an NSG on the subnet.
        ("no NSG", vec![("  nsg = \"nsg-apim\"\n", "")], vec!["SUBNET_NSG_MISSING"]),
        // R6: delegation to Microsoft.Web/serverFarms (case-insensitive).
        ("no delegation", vec![(DELEG, "delegations = []")], vec!["SUBNET_DELEGATION_MISSING"]),
        (
            "wrong delegation for integration",
            vec![(DELEG, "delegations = [\"Microsoft.Web/hostingEnvironments\"]")],
            vec!["SUBNET_DELEGATION_MISSING"],
        ),
        ("serverfarms in lower case", vec![(DELEG, "delegations = [\"microsoft.web/serverfarms\"]")], vec![]),
        (
            "injection delegated to serverFarms",
            vec![INJECTION[0], INJECTION[1]],
            vec!["SUBNET_DELEGATION_MISSING"],
        ),
        // R7: Microsoft.Web registered (case-insensitive).
        (
            "provider not registered",
            vec![("registered_providers = [\"Microsoft.Web\", ", "registered_providers = [")],
            vec!["PROVIDER_NOT_REGISTERED"],
        ),
        (
            "provider in lower case",
            vec![("\"Microsoft.Web\", ", "\"microsoft.web\", ")],
            vec![],
        ),
        // R8: the three subnet actions, wildcards allowed.
        (
            "join action missing",
            vec![(ACTIONS, "actions = [\"Microsoft.Network/virtualNetworks/read\", \"Microsoft.Network/virtualNetworks/subnets/read\"]")],
            vec!["PERMISSION_MISSING"],
        ),
        (
            "only VNet read",
            vec![(ACTIONS, "actions = [\"Microsoft.Network/virtualNetworks/read\"]")],
            vec!["PERMISSION_MISSING", "PERMISSION_MISSING"],
        ),
        ("wrong provider wildcard", vec![(ACTIONS, "actions = [\"Microsoft.Web/*\"]")], vec!["PERMISSION_MISSING"; 3]),
        ("*", vec![(ACTIONS, "actions = [\"*\"]")], vec![]),
        ("Microsoft.Network/*", vec![(ACTIONS, "actions = [\"Microsoft.Network/*\"]")], vec![]),
        (
            "virtualNetworks/* in another case",
            vec![(ACTIONS, "actions = [\"microsoft.network/VIRTUALNETWORKS/*\"]")],
            vec![],
        ),
        // Mode switches.
        (
            "injection → integration",
            vec![("capacity = 1", "capacity = 1\nprevious_virtual_network = \"injection\"")],
            vec!["MODE_SWITCH_NOT_SUPPORTED"],
        ),
        (
            "none → integration is allowed after creation",
            vec![("capacity = 1", "capacity = 1\nprevious_virtual_network = \"none\"")],
            vec![],
        ),
        (
            "integration → injection",
            vec![
                INJECTION[0],
                INJECTION[1],
                INJECTION[2],
                ("capacity = 1", "capacity = 1\nprevious_virtual_network = \"integration\""),
            ],
            vec!["MODE_SWITCH_NOT_SUPPORTED"],
        ),
        (
            "none → injection: injection only at creation",
            vec![
                INJECTION[0],
                INJECTION[1],
                INJECTION[2],
                ("capacity = 1", "capacity = 1\nprevious_virtual_network = \"none\""),
            ],
            vec!["MODE_SWITCH_NOT_SUPPORTED"],
        ),
        // Scale limits: Standard v2 10 units, Premium v2 30.
        ("Standard v2 at 10", vec![("capacity = 1", "capacity = 10")], vec![]),
        ("Standard v2 at 11", vec![("capacity = 1", "capacity = 11")], vec!["CAPACITY_EXCEEDS_TIER"]),
        ("Premium v2 at 30", vec![(SKU, "sku = \"PremiumV2\""), ("capacity = 1", "capacity = 30")], vec![]),
        (
            "Premium v2 at 31",
            vec![(SKU, "sku = \"PremiumV2\""), ("capacity = 1", "capacity = 31")],
            vec!["CAPACITY_EXCEEDS_TIER"],
        ),
        // Injection IP table: a /27 holds 13 units (32 − 5 reserved − 1 ILB = 26 = 2 × 13).
        (
            "injection /27 with 13 units",
            vec![
                INJECTION[0],
                INJECTION[1],
                INJECTION[2],
                (PREFIX, "address_prefix = \"10.0.1.0/27\""),
                ("capacity = 1", "capacity = 13"),
            ],
            vec!["SUBNET_BELOW_RECOMMENDED"],
        ),
        (
            "injection /27 with 14 units",
            vec![
                INJECTION[0],
                INJECTION[1],
                INJECTION[2],
                (PREFIX, "address_prefix = \"10.0.1.0/27\""),
                ("capacity = 1", "capacity = 14"),
            ],
            vec!["SUBNET_BELOW_RECOMMENDED", "SUBNET_CAPACITY_INSUFFICIENT"],
        ),
        // Integration and injection need a subnet, and a configured address must be usable.
        (
            "integration without a subnet",
            vec![("subnet = \"vnet-app/snet-apim\"\n", "")],
            vec!["APIM_SUBNET_REQUIRED"],
        ),
        (
            "address among the reserved first four",
            vec![("capacity = 1", "capacity = 1\naddress = \"10.0.1.3\"")],
            vec!["APIM_ADDRESS_INVALID"],
        ),
        (
            "address outside the subnet",
            vec![("capacity = 1", "capacity = 1\naddress = \"10.0.2.4\"")],
            vec!["APIM_ADDRESS_INVALID"],
        ),
        (
            "first usable address",
            vec![("capacity = 1", "capacity = 1\naddress = \"10.0.1.4\"")],
            vec![],
        ),
        // Enum values are case-insensitive: `Standardv2` is StandardV2.
        ("Standardv2", vec![(SKU, "sku = \"Standardv2\"")], vec![]),
    ];
    for (what, edits, want) in cases {
        let b = preflight(&edits);
        // Exactly the expected codes: each requirement is checked on its own.
        assert_eq!(sorted_codes(&b), want, "{what}: {:#?}", b.findings);
        // Preflight findings never make a topology unusable for flow checks.
        assert!(b.structural_errors().is_empty(), "{what}");
        // Subjects are resource paths.
        for f in &b.findings {
            assert!(
                f.subject == "apim" || f.subject == "vnets/vnet-app/subnets/snet-apim",
                "{what}: subject {}",
                f.subject
            );
        }
    }
}

#[test]
fn preflight_permission_names_the_missing_action() {
    let b = preflight(&[(
        ACTIONS,
        "actions = [\"Microsoft.Network/virtualNetworks/read\", \"Microsoft.Network/virtualNetworks/subnets/read\"]",
    )]);
    // The one finding names the action that is missing, not the ones held.
    assert!(b.findings[0]
        .message
        .contains("Microsoft.Network/virtualNetworks/subnets/join/action"));
}

#[test]
fn preflight_severities() {
    // Errors fail validation; below-recommended is only a warning.
    let b = preflight(&[(PREFIX, "address_prefix = \"10.0.1.0/26\"")]);
    assert_eq!(codes(&b), ["SUBNET_BELOW_RECOMMENDED"]);
    assert!(!has_error(&b));
    let b = preflight(&[(PREFIX, "address_prefix = \"10.0.1.0/29\"")]);
    assert_eq!(codes(&b), ["SUBNET_TOO_SMALL"]);
    assert!(has_error(&b));
}

#[test]
fn preflight_dependency_blocked_names_the_first_denying_rule() {
    let deny_storage = rule(
        "deny-storage",
        200,
        "Outbound",
        "Deny",
        "Tcp",
        "*",
        "Storage",
        "443",
    );
    let deny_internet = rule(
        "deny-internet",
        4000,
        "Outbound",
        "Deny",
        "*",
        "*",
        "Internet",
        "*",
    );
    let allow = |name: &str, tag: &str, prio: u32| {
        rule(
            name,
            prio,
            "Outbound",
            "Allow",
            "Tcp",
            "VirtualNetwork",
            tag,
            "443",
        )
    };

    // Storage is blocked first by deny-storage, Key Vault by deny-internet: one warning each,
    // each naming the rule that denies it first in evaluation order.
    let b = preflight(&[("#RULES", &format!("{deny_storage}{deny_internet}"))]);
    assert_eq!(codes(&b), ["DEPENDENCY_BLOCKED", "DEPENDENCY_BLOCKED"]);
    assert!(!has_error(&b), "a warning, not an error");
    let msg = |tag: &str| {
        b.findings
            .iter()
            .find(|f| f.message.contains(tag))
            .unwrap_or_else(|| panic!("no finding about {tag}: {:#?}", b.findings))
            .message
            .clone()
    };
    assert!(msg("to Storage").contains("securityRules/deny-storage"));
    assert!(msg("to AzureKeyVault").contains("securityRules/deny-internet"));

    // Allowing both dependencies ahead of the internet block clears the warning (the pattern
    // Learn recommends).
    let rules = format!(
        "{}{}{deny_internet}",
        allow("allow-storage", "Storage", 100),
        allow("allow-keyvault", "AzureKeyVault", 110)
    );
    assert!(preflight(&[("#RULES", &rules)]).findings.is_empty());
    // Allowing only Storage leaves Key Vault blocked.
    let rules = format!("{}{deny_internet}", allow("allow-storage", "Storage", 100));
    let b = preflight(&[("#RULES", &rules)]);
    assert_eq!(codes(&b), ["DEPENDENCY_BLOCKED"]);
    assert!(b.findings[0].message.contains("AzureKeyVault"));
    assert!(b.findings[0]
        .message
        .contains("securityRules/deny-internet"));

    // The regional form for the instance's region is what is checked: a deny of
    // Storage.WestEurope blocks a westeurope instance but not a northeurope one.
    let regional = rule(
        "deny-storage-we",
        200,
        "Outbound",
        "Deny",
        "Tcp",
        "*",
        "Storage.WestEurope",
        "443",
    );
    let b = preflight(&[("#RULES", &regional)]);
    assert_eq!(codes(&b), ["DEPENDENCY_BLOCKED"]);
    assert!(b.findings[0]
        .message
        .contains("securityRules/deny-storage-we"));
    let b = preflight(&[
        ("#RULES", &regional),
        (
            "region = \"westeurope\"\naddress",
            "region = \"northeurope\"\naddress",
        ),
        (
            "region = \"westeurope\"\nvirtual",
            "region = \"northeurope\"\nvirtual",
        ),
    ]);
    assert!(b.findings.is_empty(), "{:#?}", b.findings);

    // Azure DNS is exempt from NSG rules ("Azure platform considerations"): a deny-all outbound
    // rule blocks Storage and Key Vault but not DNS; a Deny naming AzurePlatformDNS does.
    let deny_all = rule("deny-all", 4000, "Outbound", "Deny", "*", "*", "*", "*");
    let b = preflight(&[("#RULES", &deny_all)]);
    assert_eq!(codes(&b), ["DEPENDENCY_BLOCKED", "DEPENDENCY_BLOCKED"]);
    assert!(!b.findings.iter().any(|f| f.message.contains("DNS")));
    let deny_dns = rule(
        "deny-dns",
        300,
        "Outbound",
        "Deny",
        "*",
        "*",
        "AzurePlatformDNS",
        "*",
    );
    let b = preflight(&[("#RULES", &deny_dns)]);
    assert_eq!(codes(&b), ["DEPENDENCY_BLOCKED"]);
    assert!(b.findings[0].message.contains("Azure DNS"));
    assert!(b.findings[0].message.contains("securityRules/deny-dns"));
}

#[test]
fn tag_names_are_case_insensitive() {
    // `SQL` is the table's `Sql`: no unknown-tag finding, and the rule matches Sql addresses.
    let deny_sql = rule(
        "deny-sql", 100, "Outbound", "Deny", "Tcp", "*", "SQL", "1433",
    );
    let b = preflight(&[("#RULES", &deny_sql)]);
    assert!(b.findings.is_empty(), "{:#?}", b.findings);
    let t = b.topology;
    let sql = t.service_tags().get("Sql").expect("built-in Sql tag");
    let dst = sql.prefixes[0].first().to_string();
    let src = t.apim_source().unwrap().to_string();
    let v = verdict(&t, tcp(&src, &dst, 1433));
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-sql");
    // The classic spellings of the virtual tags work too.
    let classic = rule(
        "allow-classic",
        100,
        "Outbound",
        "Allow",
        "*",
        "VIRTUAL_NETWORK",
        "INTERNET",
        "*",
    );
    assert!(preflight(&[("#RULES", &classic)]).findings.is_empty());
}

// === Reserved addresses and traffic the platform blocks (VNet FAQ) ===

const RESERVED: &str = r#"
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16", "fd00:10::/48"]
  [[vnets.subnets]]
  name = "a"
  address_prefixes = ["10.0.1.0/24", "fd00:10:0:1::/64"]
  [[vnets.subnets]]
  name = "b"
  address_prefixes = ["10.0.2.0/24", "fd00:10:0:2::/64"]
[[hosts]]
name = "vm1"
address = "10.0.1.4"
[[hosts]]
name = "vm2"
address = "10.0.2.4"
"#;

/// VNet FAQ, "Are there any restrictions on using IP addresses within these subnets?": "Azure
/// reserves the first four and last IP address for a total of 5 IP addresses within each
/// subnet … x.x.x.0: Network address; x.x.x.1: Reserved by Azure for the default gateway;
/// x.x.x.2, x.x.x.3: Reserved by Azure to map the Azure DNS IPs to the virtual network space;
/// x.x.x.255: Network broadcast address". A flow to them is Unreachable / RESERVED_ADDRESS,
/// naming the role; the next address answers as usual.
#[test]
fn reserved_addresses_never_answer_as_hosts() {
    let t = topo(RESERVED);
    for (dst, role) in [
        ("10.0.2.0", "network address"),
        ("10.0.2.1", "default gateway"),
        ("10.0.2.2", "Azure DNS"),
        ("10.0.2.3", "Azure DNS"),
        ("10.0.2.255", "broadcast address"),
    ] {
        let v = verdict(&t, tcp("10.0.1.4", dst, 443));
        assert_eq!(
            (v.verdict, v.code.as_str()),
            (VerdictKind::Unreachable, "RESERVED_ADDRESS"),
            "{dst}"
        );
        assert!(v.detail.contains(role), "{dst}: {}", v.detail);
        assert!(v.decided_by.is_none());
    }
    // x.x.x.4 is a usable address (vm2 answers; a free one is a plain Allow too).
    assert_eq!(
        verdict(&t, tcp("10.0.1.4", "10.0.2.4", 443)).code.as_str(),
        "ALLOWED"
    );
    assert_eq!(
        verdict(&t, tcp("10.0.1.4", "10.0.2.5", 443)).code.as_str(),
        "ALLOWED"
    );
    // IPv6 prefixes reserve the same offsets, as a named assumption.
    let v = verdict(&t, tcp("fd00:10:0:1::4", "fd00:10:0:2::1", 443));
    assert_eq!(v.code.as_str(), "RESERVED_ADDRESS");
    assert!(v
        .assumptions
        .iter()
        .any(|a| a.code() == "ASSUMPTION_IPV6_RESERVED_ADDRESSES"));
}

/// VNet FAQ, "What protocols can I use within VNets?": "Unicast is supported within VNets, with
/// the exception of Dynamic Host Configuration Protocol (DHCP) via Unicast (source port
/// UDP/68 / destination port UDP/67) and UDP source port 65330 which is reserved for the host.
/// Multicast, broadcast, IP-in-IP encapsulated packets, and Generic Routing Encapsulation (GRE)
/// packets are blocked within VNets." Deny / PLATFORM_BLOCKED, never an Allow, whatever the
/// NSGs say (here none applies: the default rules would allow).
#[test]
fn traffic_the_platform_blocks_is_denied_without_a_rule() {
    let t = topo(RESERVED);
    let udp = |sport: u16, dst: &str, dport: u16| Flow {
        protocol: Protocol::Udp,
        source: ip("10.0.1.4"),
        source_port: Some(sport),
        destination: ip(dst),
        destination_port: Some(dport),
    };
    for (f, why) in [
        (udp(68, "10.0.2.4", 67), "unicast DHCP"),
        (udp(65330, "10.0.2.4", 5000), "65330"),
        (udp(65330, "20.50.1.10", 5000), "65330"),
        (udp(5000, "255.255.255.255", 5000), "broadcast"),
        (udp(5000, "224.0.0.251", 5353), "multicast"),
    ] {
        let v = verdict(&t, f);
        assert_eq!(
            (v.verdict, v.code.as_str()),
            (VerdictKind::Deny, "PLATFORM_BLOCKED"),
            "{f:?}"
        );
        assert!(v.detail.contains(why), "{f:?}: {}", v.detail);
        assert!(v.decided_by.is_none() && v.evaluated.is_empty());
    }
    // Ordinary unicast UDP, and DHCP-like ports the other way round, are not blocked.
    assert_eq!(
        verdict(&t, udp(5000, "10.0.2.4", 67)).code.as_str(),
        "ALLOWED"
    );
    assert_eq!(
        verdict(&t, udp(67, "10.0.2.4", 68)).code.as_str(),
        "ALLOWED"
    );
    // IPv6 multicast too.
    let v = verdict(
        &t,
        Flow {
            protocol: Protocol::Udp,
            source: ip("fd00:10:0:1::4"),
            source_port: Some(5000),
            destination: ip("ff02::fb"),
            destination_port: Some(5353),
        },
    );
    assert_eq!(v.code.as_str(), "PLATFORM_BLOCKED");
}

// === Azure platform addresses (issue 16, class 1) ===

/// A VM without a public address in a subnet whose NSG carries `rules`, plus a second NSG-less
/// subnet with a VM.
fn platform_topology(rules: &str) -> Topology {
    topo(&format!(
        r#"
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "web"
  address_prefix = "10.0.1.0/24"
  nsg = "nsg-web"
  [[vnets.subnets]]
  name = "open"
  address_prefix = "10.0.2.0/24"
[[hosts]]
name = "vm1"
address = "10.0.1.4"
[[hosts]]
name = "vm2"
address = "10.0.2.4"
[[nsgs]]
name = "nsg-web"
{rules}
"#
    ))
}

fn deny_all_out() -> String {
    rule("deny-all-out", 4096, "Outbound", "Deny", "*", "*", "*", "*")
}

fn udp_flow(src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
    Flow {
        protocol: Protocol::Udp,
        source: ip(src),
        source_port: Some(sport),
        destination: ip(dst),
        destination_port: Some(dport),
    }
}

/// "What is IP address 168.63.129.16?": "When the VM is part of a load balancer backend pool,
/// health probe communication should be allowed to originate from 168.63.129.16. The default
/// network security group configuration has a rule that allows this communication. This rule
/// uses the AzureLoadBalancer service tag. If desired, this traffic can be blocked by
/// configuring the network security group." The VM has no public address, yet the probe
/// reaches it and the AzureLoadBalancer rules decide.
#[test]
fn health_probes_from_the_host_vip_are_decided_by_azure_load_balancer_rules() {
    let t = platform_topology("");
    let v = verdict(&t, tcp("168.63.129.16", "10.0.1.4", 80));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Allow, "ALLOWED")
    );
    assert_eq!(v.decided_by.as_ref().unwrap().rule, ALB);
    assert_eq!(
        chain(&v),
        vec![(
            "nsg-web".to_string(),
            "vnets/v/subnets/web".to_string(),
            Direction::Inbound,
            ALB.to_string()
        )]
    );
    assert!(v
        .assumptions
        .iter()
        .any(|a| a.code() == "ASSUMPTION_HOST_VIP_TAGS"));
    // "If desired, this traffic can be blocked": a Deny on AzureLoadBalancer decides.
    let t = platform_topology(&rule(
        "deny-probes",
        100,
        "Inbound",
        "Deny",
        "*",
        "AzureLoadBalancer",
        "*",
        "*",
    ));
    let v = verdict(&t, tcp("168.63.129.16", "10.0.1.4", 80));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Deny, "NSG_DENIED")
    );
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-probes");
    // 168.63.129.16 is not an internet address: a Deny on Internet does not stop the probe.
    let t = platform_topology(&rule(
        "deny-internet",
        100,
        "Inbound",
        "Deny",
        "*",
        "Internet",
        "*",
        "*",
    ));
    let v = verdict(&t, tcp("168.63.129.16", "10.0.1.4", 80));
    assert_eq!(v.decided_by.unwrap().rule, ALB);
    // A VM in a subnet without NSG: allowed with no NSG on the path.
    let v = verdict(&t, tcp("168.63.129.16", "10.0.2.4", 80));
    assert_eq!(v.code.as_str(), "ALLOWED");
    assert!(v.evaluated.is_empty());
    // Reserved addresses still answer nothing; outside every subnet there is no route.
    assert_eq!(
        verdict(&t, tcp("168.63.129.16", "10.0.1.1", 80))
            .code
            .as_str(),
        "RESERVED_ADDRESS"
    );
    assert_eq!(
        verdict(&t, tcp("168.63.129.16", "93.184.216.34", 80))
            .code
            .as_str(),
        "NO_ROUTE"
    );
}

/// NSG overview, "Azure platform considerations": "By default, these services aren't subject
/// to the configured network security groups unless targeted by service tags specific to each
/// service. To override this basic infrastructure communication, you can create a security rule
/// to deny traffic by using the following service tags on your Network Security Group rules:
/// AzurePlatformDNS, AzurePlatformIMDS, AzurePlatformLKM." "What is IP address
/// 168.63.129.16?": "To block DNS traffic to Azure DNS through NSG, create an outbound rule to
/// deny traffic to AzurePlatformDNS."
#[test]
fn dns_to_the_host_vip_is_exempt_unless_a_deny_names_azure_platform_dns() {
    // A deny-all outbound NSG: DNS (UDP and TCP 53) is still allowed, without NSG evaluation.
    let t = platform_topology(&deny_all_out());
    for f in [
        udp_flow("10.0.1.4", 50000, "168.63.129.16", 53),
        tcp("10.0.1.4", "168.63.129.16", 53),
    ] {
        let v = verdict(&t, f);
        assert_eq!(
            (v.verdict, v.code.as_str()),
            (VerdictKind::Allow, "PLATFORM_EXEMPT"),
            "{f:?}"
        );
        assert!(v.detail.contains("AzurePlatformDNS"), "{}", v.detail);
        assert!(v.decided_by.is_none() && v.evaluated.is_empty());
        assert!(v
            .assumptions
            .iter()
            .any(|a| a.code() == "ASSUMPTION_PLATFORM_DNS_TAG"));
    }
    // Other traffic to the VIP is not exempt: the deny-all rule decides.
    let v = verdict(&t, tcp("10.0.1.4", "168.63.129.16", 443));
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-all-out");
    // A Deny naming AzurePlatformDNS removes the exemption; the NSGs decide.
    let t = platform_topology(&rule(
        "deny-dns",
        100,
        "Outbound",
        "Deny",
        "*",
        "*",
        "AzurePlatformDNS",
        "*",
    ));
    let v = verdict(&t, udp_flow("10.0.1.4", 50000, "168.63.129.16", 53));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Deny, "NSG_DENIED")
    );
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-dns");
    assert!(
        v.detail.contains("takes away the platform exemption"),
        "{}",
        v.detail
    );
    // Allow rules and literal 168.63.129.16 prefixes change nothing.
    for rules in [
        rule(
            "deny-literal",
            100,
            "Outbound",
            "Deny",
            "*",
            "*",
            "168.63.129.16",
            "53",
        ),
        rule(
            "deny-literal",
            100,
            "Outbound",
            "Deny",
            "*",
            "*",
            "168.63.129.16/32",
            "*",
        ) + &deny_all_out(),
        rule(
            "allow-dns",
            100,
            "Outbound",
            "Allow",
            "*",
            "*",
            "AzurePlatformDNS",
            "*",
        ) + &deny_all_out(),
    ] {
        let t = platform_topology(&rules);
        let v = verdict(&t, udp_flow("10.0.1.4", 50000, "168.63.129.16", 53));
        assert_eq!(v.code.as_str(), "PLATFORM_EXEMPT", "{rules}");
    }
    // A Deny on AzurePlatformDNS that does not match the flow (TCP only) leaves UDP exempt.
    let t = platform_topology(&rule(
        "deny-dns-tcp",
        100,
        "Outbound",
        "Deny",
        "Tcp",
        "*",
        "AzurePlatformDNS",
        "53",
    ));
    assert_eq!(
        verdict(&t, udp_flow("10.0.1.4", 50000, "168.63.129.16", 53))
            .code
            .as_str(),
        "PLATFORM_EXEMPT"
    );
    assert_eq!(
        verdict(&t, tcp("10.0.1.4", "168.63.129.16", 53))
            .code
            .as_str(),
        "NSG_DENIED"
    );
    // A Deny on another platform tag does not remove the DNS exemption.
    let t = platform_topology(&rule(
        "deny-imds",
        100,
        "Outbound",
        "Deny",
        "*",
        "*",
        "AzurePlatformIMDS",
        "*",
    ));
    assert_eq!(
        verdict(&t, udp_flow("10.0.1.4", 50000, "168.63.129.16", 53))
            .code
            .as_str(),
        "PLATFORM_EXEMPT"
    );
}

/// The other exemptions: IMDS (AzurePlatformIMDS), Windows activation to KMS on TCP 1688
/// (AzurePlatformLKM — "The request is made outbound through port 1688", not 168.63.129.16),
/// DHCP (no tag: always exempt) and WireServer ("The VM agent requires outbound communication
/// over ports 80/tcp and 32526/tcp with WireServer (168.63.129.16) … The communication on these
/// ports with 168.63.129.16 isn't subject to the configured network security groups.").
#[test]
fn imds_kms_dhcp_and_wireserver_exemptions() {
    let everything_denied = deny_all_out()
        + &rule(
            "deny-imds",
            200,
            "Outbound",
            "Deny",
            "*",
            "*",
            "AzurePlatformIMDS",
            "*",
        )
        + &rule(
            "deny-lkm",
            201,
            "Outbound",
            "Deny",
            "*",
            "*",
            "AzurePlatformLKM",
            "*",
        );
    let open = platform_topology(&deny_all_out());
    let closed = platform_topology(&everything_denied);
    let imds = tcp("10.0.1.4", "169.254.169.254", 80);
    let kms = tcp("10.0.1.4", "20.118.99.224", 1688);
    let dhcp = udp_flow("10.0.1.4", 68, "168.63.129.16", 67);
    let dhcp_broadcast = udp_flow("10.0.1.4", 68, "255.255.255.255", 67);
    let wire = tcp("10.0.1.4", "168.63.129.16", 32526);
    for (f, why) in [
        (imds, "AzurePlatformIMDS"),
        (kms, "AzurePlatformLKM"),
        (dhcp, "DHCP"),
        (dhcp_broadcast, "DHCP"),
        (wire, "WireServer"),
    ] {
        let v = verdict(&open, f);
        assert_eq!(v.code.as_str(), "PLATFORM_EXEMPT", "{f:?}");
        assert!(v.detail.contains(why), "{f:?}: {}", v.detail);
    }
    // A Deny on the tag removes IMDS and KMS; DHCP and WireServer have no tag.
    assert_eq!(
        verdict(&closed, imds).decided_by.unwrap().rule,
        "securityRules/deny-imds"
    );
    assert_eq!(
        verdict(&closed, kms).decided_by.unwrap().rule,
        "securityRules/deny-lkm"
    );
    for f in [dhcp, dhcp_broadcast, wire] {
        assert_eq!(
            verdict(&closed, f).code.as_str(),
            "PLATFORM_EXEMPT",
            "{f:?}"
        );
    }
    // KMS on another port is ordinary internet traffic.
    assert_eq!(
        verdict(&open, tcp("10.0.1.4", "20.118.99.224", 443))
            .code
            .as_str(),
        "NSG_DENIED"
    );
    // Unicast DHCP between VMs stays blocked (VNet FAQ).
    assert_eq!(
        verdict(&open, udp_flow("10.0.1.4", 68, "10.0.2.4", 67))
            .code
            .as_str(),
        "PLATFORM_BLOCKED"
    );
    // The platform addresses answer VMs only: not the internet.
    assert_eq!(
        verdict(&open, udp_flow("93.184.216.34", 5000, "168.63.129.16", 53))
            .code
            .as_str(),
        "NO_ROUTE"
    );
}

/// The AzurePlatform* tags are valid in rules although ServiceTags_Public does not list them;
/// a misspelt one is still an unknown tag.
#[test]
fn platform_tags_are_valid_in_rules() {
    for tag in ["AzurePlatformDNS", "azureplatformimds", "AzurePlatformLKM"] {
        let b = build(&format!(
            "[[nsgs]]\nname = \"n\"\n{}",
            rule("r", 100, "Outbound", "Deny", "*", "*", tag, "*")
        ));
        assert!(!has_error(&b), "{tag}: {:?}", codes(&b));
    }
    let b = build(&format!(
        "[[nsgs]]\nname = \"n\"\n{}",
        rule(
            "r",
            100,
            "Outbound",
            "Deny",
            "*",
            "*",
            "AzurePlatformDHCP",
            "*"
        )
    ));
    assert!(codes(&b).contains(&"RULE_UNKNOWN_SERVICE_TAG"));
}

// === Overlapping, unpeered VNets: placing hosts (issue 16, class 3) ===

const OVERLAPPING: &str = r#"
[[vnets]]
name = "v1"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "a"
  address_prefix = "10.0.1.0/24"
  nsg = "deny-in"
[[vnets]]
name = "v2"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "b"
  address_prefix = "10.0.1.0/24"
  [[vnets.subnets]]
  name = "c"
  address_prefix = "10.0.2.0/24"
[[nsgs]]
name = "deny-in"
  [[nsgs.security_rules]]
  name = "deny-all-in"
  priority = 100
  direction = "Inbound"
  access = "Deny"
  protocol = "*"
  source_address_prefix = "*"
  source_port_range = "*"
  destination_address_prefix = "*"
  destination_port_range = "*"
[[hosts]]
name = "client"
address = "10.0.2.4"
[[hosts]]
name = "vm"
address = "10.0.1.4"
#SUBNET
"#;

/// VNet FAQ: "You can link a virtual network to other virtual networks … as long as the CIDR
/// blocks don't overlap" — VNets that are not linked may overlap, so an address alone does not
/// say which subnet a host is in. Without `subnet` the host is not placed silently
/// (HOST_PLACEMENT_AMBIGUOUS); with it, the walk uses the declared subnet.
#[test]
fn a_host_in_overlapping_vnets_needs_its_subnet() {
    let b = build(&OVERLAPPING.replace("#SUBNET", ""));
    assert_eq!(codes(&b), ["HOST_PLACEMENT_AMBIGUOUS"]);
    assert_eq!(b.findings[0].subject, "hosts/vm");
    assert!(b.findings[0].message.contains("v1/a") && b.findings[0].message.contains("v2/b"));

    // Declared in v2/b: the client in v2/c reaches it (same VNet, no NSG on b) — the subnet of
    // the first VNet (v1/a, whose NSG denies all inbound) is not used.
    let t = topo(&OVERLAPPING.replace("#SUBNET", "subnet = \"v2/b\""));
    let v = verdict(&t, tcp("10.0.2.4", "10.0.1.4", 443));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Allow, "ALLOWED")
    );
    assert!(v.evaluated.is_empty());
    // Declared in v1/a: the client in v2 has no route to it.
    let t = topo(&OVERLAPPING.replace("#SUBNET", "subnet = \"V1/A\""));
    assert_eq!(
        verdict(&t, tcp("10.0.2.4", "10.0.1.4", 443)).code.as_str(),
        "NO_ROUTE"
    );
    // A declared subnet that does not hold the address, or that does not exist.
    let b = build(&OVERLAPPING.replace("#SUBNET", "subnet = \"v2/c\""));
    assert_eq!(codes(&b), ["HOST_NOT_IN_SUBNET"]);
    let b = build(&OVERLAPPING.replace("#SUBNET", "subnet = \"v2/bb\""));
    assert_eq!(codes(&b), ["REFERENCE_UNKNOWN"]);
    assert!(
        b.findings[0].message.contains("did you mean `b`"),
        "{}",
        b.findings[0].message
    );
}

// === Rule fields with ARM's exact syntax, ASG placement (issue 16, class 3) ===

fn one_rule(body: &str) -> Built {
    build(&format!(
        r#"
[[nsgs]]
name = "n"
  [[nsgs.security_rules]]
  name = "r"
  priority = 100
  direction = "Inbound"
  access = "Allow"
  protocol = "Tcp"
{body}
"#
    ))
}

/// NSG swagger: `sourcePortRange` / `destinationPortRange` hold "Integer or range between 0
/// and 65535" (one value), `*AddressPrefix` "The CIDR or source IP range"; a comma list is ARM's
/// SecurityRuleInvalidPortRange (the portal splits "80, 443" into the plural field). Overlapping
/// prefixes in one rule are ARM's OverlappingSubnetsNotPermittedInSecurityRule.
#[test]
fn single_value_rule_fields_hold_one_value_and_lists_do_not_overlap() {
    let fields = |src: &str, sport: &str, dst: &str, dport: &str| {
        format!("  {src}\n  {sport}\n  {dst}\n  {dport}\n")
    };
    let ok = one_rule(&fields(
        "source_address_prefix = \"*\"",
        "source_port_range = \" * \"",
        "destination_address_prefixes = [\"10.0.1.0/24\", \" 10.0.2.0/24 \"]",
        "destination_port_ranges = [\"80\", \" 1024-65535\"]",
    ));
    assert!(
        ok.findings.is_empty(),
        "whitespace is accepted: {:#?}",
        ok.findings
    );
    for (body, code) in [
        (
            fields(
                "source_address_prefix = \"*\"",
                "source_port_range = \"*\"",
                "destination_address_prefix = \"*\"",
                "destination_port_range = \"80,443\"",
            ),
            "RULE_PORT_INVALID",
        ),
        (
            fields(
                "source_address_prefix = \"*\"",
                "source_port_range = \"*\"",
                "destination_address_prefix = \"*\"",
                "destination_port_ranges = [\"80, 443\"]",
            ),
            "RULE_PORT_INVALID",
        ),
        (
            fields(
                "source_address_prefix = \"10.0.1.0/24,10.0.2.0/24\"",
                "source_port_range = \"*\"",
                "destination_address_prefix = \"*\"",
                "destination_port_range = \"443\"",
            ),
            "RULE_PREFIX_INVALID",
        ),
        (
            fields(
                "source_address_prefixes = [\"1.1.0.0/24\", \"1.1.0.22/32\"]",
                "source_port_range = \"*\"",
                "destination_address_prefix = \"*\"",
                "destination_port_range = \"443\"",
            ),
            "RULE_PREFIX_OVERLAP",
        ),
    ] {
        let b = one_rule(&body);
        assert_eq!(codes(&b), [code], "{body}");
        assert_eq!(b.findings[0].subject, "nsgs/n/securityRules/r");
    }
}

/// Application security groups: "All network interfaces assigned to an application security
/// group have to exist in the same virtual network that the first network interface assigned to
/// the application security group is in … If you specify an application security group as the
/// source and destination in a security rule, the network interfaces in both application
/// security groups must exist in the same virtual network."
#[test]
fn application_security_groups_stay_in_one_vnet() {
    let text = |web2_asg: &str, rule_dst: &str| {
        format!(
            r#"
[[vnets]]
name = "v1"
region = "westeurope"
address_space = ["10.1.0.0/16"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.1.1.0/24"
  nsg = "n"
[[vnets]]
name = "v2"
region = "westeurope"
address_space = ["10.2.0.0/16"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "10.2.1.0/24"
[[hosts]]
name = "web1"
address = "10.1.1.4"
application_security_groups = ["asg-web"]
[[hosts]]
name = "db1"
address = "10.1.1.5"
application_security_groups = ["asg-db"]
[[hosts]]
name = "web2"
address = "10.2.1.4"
application_security_groups = ["{web2_asg}"]
[[nsgs]]
name = "n"
  [[nsgs.security_rules]]
  name = "web-to-db"
  priority = 100
  direction = "Inbound"
  access = "Allow"
  protocol = "Tcp"
  source_application_security_groups = ["asg-web"]
  source_port_range = "*"
  destination_application_security_groups = ["{rule_dst}"]
  destination_port_range = "1433"
"#
        )
    };
    // Each ASG in one VNet, the rule's two ASGs in the same VNet: fine.
    assert!(build(&text("asg-other", "asg-db")).findings.is_empty());
    // web2 joins asg-web from another VNet.
    let b = build(&text("asg-web", "asg-db"));
    assert_eq!(codes(&b), ["ASG_MEMBERS_IN_SEVERAL_VNETS"]);
    assert_eq!(b.findings[0].subject, "hosts/web2");
    assert!(b.findings[0].message.contains("web1"));
    // The rule's destination ASG lives in v2, its source ASG in v1.
    let b = build(&text("asg-other", "asg-other"));
    assert_eq!(codes(&b), ["RULE_ASGS_IN_DIFFERENT_VNETS"]);
    assert_eq!(b.findings[0].subject, "nsgs/n/securityRules/web-to-db");
}

// === Root causes, not cascades (issue 16, class 5) ===

/// A broken prefix is reported once, as the root cause: a subnet whose prefix is rejected does
/// not also report its hosts as "in no subnet"; a VNet whose address space prefix is rejected
/// does not also report its subnets as "outside the address space"; a host left out for a bad
/// address does not also make the API on it an "unknown host". Unknown names suggest the
/// nearest known ones.
#[test]
fn broken_prefixes_do_not_cascade_and_unknown_names_suggest() {
    let base = |space: &str, subnet: &str, host: &str, nsg: &str| {
        format!(
            r#"
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16", "{space}"]
  [[vnets.subnets]]
  name = "s"
  address_prefix = "{subnet}"
  nsg = "{nsg}"
[[nsgs]]
name = "nsg-app"
[[hosts]]
name = "vm"
address = "{host}"
dns = ["vm.contoso.com"]
  [[hosts.services]]
  port = 443
  serve = "echo"
[[apis]]
name = "a"
path = "/a"
backend = "http://vm.contoso.com:443"
"#
        )
    };
    let ok = build(&base("10.1.0.0/16", "10.1.1.0/24", "10.1.1.4", "nsg-app"));
    assert!(!has_error(&ok), "{:?}", codes(&ok));
    // The subnet prefix has host bits set: one finding, not also HOST_NOT_IN_SUBNET.
    let b = build(&base("10.1.0.0/16", "10.1.1.7/24", "10.1.1.4", "nsg-app"));
    assert_eq!(codes(&b), ["ADDRESS_PREFIX_INVALID"], "{:#?}", b.findings);
    // The address space prefix is broken: not also SUBNET_OUTSIDE_ADDRESS_SPACE.
    let b = build(&base("10.1.0.0/33", "10.1.1.0/24", "10.1.1.4", "nsg-app"));
    assert_eq!(codes(&b), ["ADDRESS_PREFIX_INVALID"], "{:#?}", b.findings);
    // The host's address is broken: not also API_BACKEND_UNKNOWN_HOST.
    let b = build(&base("10.1.0.0/16", "10.1.1.0/24", "10.1.1.400", "nsg-app"));
    assert_eq!(codes(&b), ["HOST_ADDRESS_INVALID"], "{:#?}", b.findings);
    // A misspelt NSG name suggests the nearest one.
    let b = build(&base("10.1.0.0/16", "10.1.1.0/24", "10.1.1.4", "nsg-ap"));
    assert_eq!(codes(&b), ["REFERENCE_UNKNOWN"]);
    assert!(
        b.findings[0].message.contains("did you mean `nsg-app`"),
        "{}",
        b.findings[0].message
    );
}

// === Classic tiers through import (issue 16, class 6) ===

/// A classic Premium instance injected into `snet-apim` (NSG: allow 443 from the internet, deny
/// other inbound; deny outbound to 10.0.3.0/24), and a VM in another subnet.
fn classic_topology(kind: &str) -> Built {
    build(&format!(
        r#"
[[vnets]]
name = "v"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  nsg = "nsg-apim"
  [[vnets.subnets]]
  name = "snet-app"
  address_prefix = "10.0.2.0/24"
  [[vnets.subnets]]
  name = "snet-secret"
  address_prefix = "10.0.3.0/24"
[[hosts]]
name = "app"
address = "10.0.2.4"
[[hosts]]
name = "secret"
address = "10.0.3.4"
[[nsgs]]
name = "nsg-apim"
{}{}{}
[apim]
name = "apim-classic"
region = "westeurope"
virtual_network = "classic"
{kind}
subnet = "v/snet-apim"
address = "10.0.1.10"
public_address = "20.105.0.10"
"#,
        rule(
            "allow-https-in",
            100,
            "Inbound",
            "Allow",
            "Tcp",
            "Internet",
            "*",
            "443"
        ),
        rule("deny-in", 200, "Inbound", "Deny", "*", "*", "*", "*"),
        rule(
            "deny-secret",
            100,
            "Outbound",
            "Deny",
            "*",
            "*",
            "10.0.3.0/24",
            "*"
        ),
    ))
}

/// API Management "virtual network concepts": a classic (Developer/Premium) instance injected
/// into a VNet — External: "The API Management gateway … accessible from the public internet via
/// an external load balancer"; Internal: "accessible only from within the virtual network". An
/// imported classic instance keeps these semantics (virtual_network = "classic"): no v2
/// preflight (CLASSIC_TIER_VNET is a warning), outbound leaves from its subnet through the
/// subnet's NSG, inbound to the gateway passes that NSG.
#[test]
fn classic_injection_keeps_its_subnet_and_nsg() {
    let b = classic_topology("classic_vnet_type = \"External\"\nsku = \"Premium\"");
    assert_eq!(codes(&b), ["CLASSIC_TIER_VNET"], "{:#?}", b.findings);
    assert!(!has_error(&b));
    let t = b.topology;
    // Outbound from the subnet address, through the subnet's outbound rules.
    let v = verdict(&t, tcp("10.0.1.10", "10.0.3.4", 443));
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-secret");
    let v = verdict(&t, tcp("10.0.1.10", "10.0.2.4", 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
    assert_eq!(t.apim_source(), Some(ip("10.0.1.10")));
    // External: the public gateway address passes the subnet's inbound NSG (seeing the private
    // address): 443 allowed, 8080 denied.
    let v = verdict(&t, tcp(CLIENT, "20.105.0.10", 443));
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/allow-https-in");
    let v = verdict(&t, tcp(CLIENT, "20.105.0.10", 8080));
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-in");
    assert_eq!(t.apim_endpoint(), Some(ip("20.105.0.10")));

    // Internal: no public endpoint; the private address from the VNet passes the inbound NSG.
    let b = classic_topology("classic_vnet_type = \"Internal\"\nsku = \"Developer\"");
    assert_eq!(codes(&b), ["CLASSIC_TIER_VNET"]);
    let t = b.topology;
    assert_eq!(
        verdict(&t, tcp(CLIENT, "20.105.0.10", 443)).code.as_str(),
        "NO_PUBLIC_ENDPOINT"
    );
    assert_eq!(t.apim_endpoint(), Some(ip("10.0.1.10")));
    let v = verdict(&t, tcp("10.0.2.4", "10.0.1.10", 8080));
    assert_eq!(v.decided_by.unwrap().rule, "securityRules/deny-in");

    // The type is required; a v2 tier cannot use classic injection.
    let b = classic_topology("sku = \"Premium\"");
    assert_eq!(codes(&b), ["APIM_SUBNET_REQUIRED"]);
    let b = classic_topology("classic_vnet_type = \"External\"\nsku = \"StandardV2\"");
    assert!(codes(&b).contains(&"SKU_NOT_SUPPORTED"), "{:?}", codes(&b));
}

// === service endpoints on an APIM v2 integration subnet ===
//
// - ROUTING: "Virtual network traffic routing", optional default routes and the 0.0.0.0/0
//   prefix <https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview>
// - SE: "Virtual Network service endpoints"
//   <https://learn.microsoft.com/azure/virtual-network/virtual-network-service-endpoints-overview>
// - NAT: "What is Azure NAT Gateway?" <https://learn.microsoft.com/azure/nat-gateway/nat-overview>

/// An IPv4 address inside the first IPv4 prefix of service tag `tag` of the built-in table.
fn tag_address(tag: &str) -> String {
    let t = ServiceTagTable::builtin();
    let p = t
        .get(tag)
        .unwrap_or_else(|| panic!("tag {tag}"))
        .prefixes
        .iter()
        .find(|p| p.is_ipv4())
        .copied()
        .expect("an IPv4 prefix");
    p.nth(1).unwrap_or(p.first()).to_string()
}

/// A hub (Azure Firewall 10.100.1.4, public 20.61.20.5, allowing TCP 443 from the APIM subnet
/// to AzureKeyVault and Storage) and a spoke whose APIM v2 integration subnet forces
/// 0.0.0.0/0 to the firewall and has a NAT gateway (20.61.10.4); `endpoints` is the subnet's
/// `service_endpoints` value, `rules` the outbound rules of its NSG.
fn forced_tunnel_apim(endpoints: &str, rules: &str) -> Topology {
    topo(&format!(
        r#"
[[vnets]]
name = "hub"
region = "westeurope"
address_space = ["10.100.0.0/16"]
peerings = ["spoke"]
  [[vnets.subnets]]
  name = "AzureFirewallSubnet"
  address_prefix = "10.100.1.0/26"

[[vnets]]
name = "spoke"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = [{{ remote = "hub", allow_forwarded_traffic = true }}]
  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  delegations = ["Microsoft.Web/serverFarms"]
  nsg = "nsg-apim"
  route_table = "rt-apim"
  nat_gateway = "nat-egress"
  service_endpoints = {endpoints}

[[route_tables]]
name = "rt-apim"
  [[route_tables.routes]]
  name = "default-to-firewall"
  address_prefix = "0.0.0.0/0"
  next_hop_type = "VirtualAppliance"
  next_hop_ip_address = "10.100.1.4"

[[nat_gateways]]
name = "nat-egress"
public_addresses = ["20.61.10.4"]

[[firewalls]]
name = "fw-hub"
subnet = "hub/AzureFirewallSubnet"
private_address = "10.100.1.4"
public_addresses = ["20.61.20.5"]
  [[firewalls.rule_collection_groups]]
  name = "apim"
  priority = 200
    [[firewalls.rule_collection_groups.rule_collections]]
    name = "deps"
    priority = 100
    kind = "Network"
    action = "Allow"
      [[firewalls.rule_collection_groups.rule_collections.rules]]
      name = "apim-dependencies"
      protocols = ["TCP"]
      source_addresses = ["10.0.1.0/24"]
      destination_addresses = ["AzureKeyVault", "Storage"]
      destination_ports = ["443"]

[[nsgs]]
name = "nsg-apim"
{rules}

[apim]
name = "apim"
sku = "StandardV2"
region = "westeurope"
virtual_network = "integration"
subnet = "spoke/snet-apim"
address = "10.0.1.10"
"#
    ))
}

/// ROUTING, optional default routes: "Default | Multiple | VirtualNetworkServiceEndpoint |
/// Only the subnet a service endpoint is enabled for"; 0.0.0.0/0: "When you enable a service
/// endpoint for a service, Azure creates a route with address prefixes for the service.
/// Traffic to the service doesn't route to the next hop type in a route with the 0.0.0.0/0
/// address prefix." SE: "Endpoints always take service traffic directly from your virtual
/// network to the service" and "service traffic switches to use virtual network private
/// addresses as the source IP addresses". NAT: the NAT gateway "replaces the default Internet
/// destination of a subnet" — not a service endpoint route.
#[test]
fn key_vault_endpoint_bypasses_the_forced_tunnel_and_the_nat_gateway() {
    let t = forced_tunnel_apim(
        r#"[{ service = "Microsoft.KeyVault", locations = ["westeurope"] }]"#,
        "",
    );
    let kv_we = tag_address("AzureKeyVault.WestEurope");
    let kv_ne = tag_address("AzureKeyVault.NorthEurope");
    // Key Vault in the endpoint's location: the service endpoint route, no firewall, the
    // private source (the NAT gateway is not used either).
    let v = verdict(&t, tcp("10.0.1.10", &kv_we, 443));
    assert_eq!(v.code.as_str(), "ALLOWED", "{}", v.detail);
    let hop = t
        .next_hop(ip("10.0.1.10"), ip(&kv_we))
        .expect("a subnet source");
    assert_eq!(hop.next_hop_type, "VirtualNetworkServiceEndpoint");
    assert_eq!(hop.route_table_id, "System Route");
    assert_eq!(hop.next_hop_ip_address, None);
    assert!(t.decide(&tcp("10.0.1.10", &kv_we, 443)).firewall.is_none());
    assert_eq!(v.egress_source.as_deref(), Some("10.0.1.10"));
    assert!(v
        .assumptions
        .iter()
        .any(|a| a.code() == "ASSUMPTION_SERVICE_ENDPOINT_PREFIXES"));
    // Key Vault in another region (outside `locations`): the 0.0.0.0/0 UDR to the firewall,
    // which SNATs to its public address.
    let hop = t
        .next_hop(ip("10.0.1.10"), ip(&kv_ne))
        .expect("a subnet source");
    assert_eq!(hop.next_hop_type, "VirtualAppliance");
    assert_eq!(hop.next_hop_ip_address.as_deref(), Some("10.100.1.4"));
    let d = t.decide(&tcp("10.0.1.10", &kv_ne, 443));
    assert_eq!(d.code.as_str(), "ALLOWED");
    assert!(d.firewall.is_some());
    assert_eq!(d.egress_source, Some(ip("20.61.20.5")));
    // Storage has no endpoint here: the firewall too.
    let st = tag_address("Storage.WestEurope");
    assert!(t.decide(&tcp("10.0.1.10", &st, 443)).firewall.is_some());
    // Without the endpoint, the same Key Vault address goes through the firewall.
    let t0 = forced_tunnel_apim("[]", "");
    let d = t0.decide(&tcp("10.0.1.10", &kv_we, 443));
    assert!(d.firewall.is_some());
    assert_eq!(d.egress_source, Some(ip("20.61.20.5")));
}

/// The effective routes list the endpoint's prefixes as `Default` routes with next hop type
/// `VirtualNetworkServiceEndpoint` on the subnet with the endpoint only (ROUTING, optional
/// default routes), and the `0.0.0.0/0` UDR stays active for everything else.
#[test]
fn effective_routes_list_the_endpoint_prefixes() {
    let t = forced_tunnel_apim(r#"["Microsoft.KeyVault"]"#, "");
    let (v, s) = t.subnet_of(ip("10.0.1.10")).expect("the APIM subnet");
    let table = t.effective_route_table(v, s).expect("routes");
    let se: Vec<_> = table
        .value
        .iter()
        .filter(|r| r.next_hop_type == "VirtualNetworkServiceEndpoint")
        .collect();
    // Microsoft.KeyVault defaults to every region (ASSUMPTION_SERVICE_ENDPOINT_LOCATIONS):
    // every IPv4 prefix of AzureKeyVault.
    let kv: std::collections::BTreeSet<String> = ServiceTagTable::builtin()
        .get("AzureKeyVault")
        .expect("tag")
        .prefixes
        .iter()
        .filter(|p| p.is_ipv4())
        .map(ToString::to_string)
        .collect();
    let listed: std::collections::BTreeSet<String> =
        se.iter().map(|r| r.address_prefix[0].clone()).collect();
    assert_eq!(listed, kv);
    assert!(se
        .iter()
        .all(|r| r.source == sim::RouteSource::Default && r.state == sim::RouteState::Active));
    // The hub's firewall subnet has no endpoint: no such route there.
    let (hv, hs) = t.subnet_of(ip("10.100.1.4")).expect("the firewall subnet");
    assert!(t
        .effective_route_table(hv, hs)
        .expect("routes")
        .value
        .iter()
        .all(|r| r.next_hop_type != "VirtualNetworkServiceEndpoint"));
    // NEXT_HOP with the default locations: another region's Key Vault takes the endpoint too.
    let kv_ne = tag_address("AzureKeyVault.NorthEurope");
    assert_eq!(
        t.next_hop(ip("10.0.1.10"), ip(&kv_ne))
            .expect("hop")
            .next_hop_type,
        "VirtualNetworkServiceEndpoint"
    );
}

/// SE, NSGs with service endpoints: outbound NSG rules still apply ("If you want to deny all
/// outbound internet traffic and allow only traffic to specific Azure services, you can do so
/// using service tags in your NSGs") — a deny of AzureKeyVault on the subnet's NSG blocks the
/// endpoint traffic; the service sees the private source.
#[test]
fn outbound_nsg_still_applies_to_endpoint_traffic() {
    let deny = r#"
  [[nsgs.security_rules]]
  name = "deny-kv"
  priority = 100
  direction = "Outbound"
  access = "Deny"
  protocol = "Tcp"
  source_address_prefix = "*"
  source_port_range = "*"
  destination_address_prefix = "AzureKeyVault"
  destination_port_range = "443"
"#;
    let t = forced_tunnel_apim(r#"["Microsoft.KeyVault"]"#, deny);
    let kv = tag_address("AzureKeyVault.WestEurope");
    let v = verdict(&t, tcp("10.0.1.10", &kv, 443));
    assert_eq!(v.verdict, VerdictKind::Deny);
    assert_eq!(v.code.as_str(), "NSG_DENIED");
    assert_eq!(
        v.decided_by.as_ref().map(|d| d.rule.as_str()),
        Some("securityRules/deny-kv")
    );
}

/// ROUTING, "How Azure selects a route": longest prefix first — a UDR for one Key Vault /32
/// to the firewall wins over the endpoint's shorter prefix; on the equal prefix the user route
/// wins too (`ASSUMPTION_SERVICE_ENDPOINT_ROUTE_PRECEDENCE`), and the endpoint route is
/// listed `Invalid`.
#[test]
fn longer_or_equal_user_routes_win_over_the_endpoint_route() {
    let kv_prefix = ServiceTagTable::builtin()
        .get("AzureKeyVault.WestEurope")
        .expect("tag")
        .prefixes
        .iter()
        .find(|p| p.is_ipv4())
        .copied()
        .expect("an IPv4 prefix");
    let kv = kv_prefix.nth(1).expect("an address").to_string();
    for prefix in [format!("{kv}/32"), kv_prefix.to_string()] {
        let t = user_route_over_endpoint(&prefix);
        let hop = t.next_hop(ip("10.0.1.10"), ip(&kv)).expect("hop");
        assert_eq!(hop.next_hop_type, "VirtualAppliance", "UDR {prefix}");
        assert!(hop.route_table_id.ends_with("/routeTables/rt-apim"));
        assert!(t.decide(&tcp("10.0.1.10", &kv, 443)).firewall.is_some());
        if prefix == kv_prefix.to_string() {
            let (v, s) = t.subnet_of(ip("10.0.1.10")).expect("subnet");
            let table = t.effective_route_table(v, s).expect("routes");
            let se = table
                .value
                .iter()
                .find(|r| {
                    r.next_hop_type == "VirtualNetworkServiceEndpoint"
                        && r.address_prefix[0] == prefix
                })
                .expect("the endpoint route stays listed");
            assert_eq!(se.state, sim::RouteState::Invalid);
        }
    }
}

/// The forced-tunnel APIM topology with the Key Vault endpoint and one more UDR on rt-apim:
/// `prefix` → the firewall.
fn user_route_over_endpoint(prefix: &str) -> Topology {
    let text = format!(
        r#"
[[vnets]]
name = "hub"
region = "westeurope"
address_space = ["10.100.0.0/16"]
peerings = ["spoke"]
  [[vnets.subnets]]
  name = "AzureFirewallSubnet"
  address_prefix = "10.100.1.0/26"

[[vnets]]
name = "spoke"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = [{{ remote = "hub", allow_forwarded_traffic = true }}]
  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  route_table = "rt-apim"
  service_endpoints = ["Microsoft.KeyVault"]

[[route_tables]]
name = "rt-apim"
  [[route_tables.routes]]
  name = "default-to-firewall"
  address_prefix = "0.0.0.0/0"
  next_hop_type = "VirtualAppliance"
  next_hop_ip_address = "10.100.1.4"
  [[route_tables.routes]]
  name = "kv-to-firewall"
  address_prefix = "{prefix}"
  next_hop_type = "VirtualAppliance"
  next_hop_ip_address = "10.100.1.4"

[[firewalls]]
name = "fw-hub"
subnet = "hub/AzureFirewallSubnet"
private_address = "10.100.1.4"
public_addresses = ["20.61.20.5"]
"#
    );
    topo(&text)
}

/// Bad `service_endpoints` values are findings naming the subnet (SE lists the services).
#[test]
fn unknown_service_or_location_is_a_finding() {
    let text = |endpoints: &str| {
        format!(
            "[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n  [[vnets.subnets]]\n  name = \"s\"\n  address_prefix = \"10.0.1.0/24\"\n  service_endpoints = {endpoints}\n"
        )
    };
    let b = build(&text(r#"["Microsoft.KeyVaults"]"#));
    assert_eq!(codes(&b), ["SERVICE_ENDPOINT_SERVICE_UNKNOWN"]);
    assert!(b.findings[0].subject.starts_with("vnets/v/subnets/s"));
    let b = build(&text(
        r#"[{ service = "Microsoft.Storage", locations = ["westeurope", "atlantis"] }]"#,
    ));
    assert_eq!(codes(&b), ["SERVICE_ENDPOINT_LOCATION_UNKNOWN"]);
    assert!(b.findings[0].message.contains("`atlantis`"));
    // `*` and ARM's location names are accepted.
    let b = build(&text(
        r#"["Microsoft.Sql", { service = "Microsoft.Storage", locations = ["*"] }, { service = "Microsoft.EventHub", locations = ["francecentral"] }]"#,
    ));
    assert!(!has_error(&b), "{:?}", codes(&b));
}

// === Azure Firewall DNAT ===

/// A hub with an Azure Firewall publishing `orders` (10.1.1.4:8443 in a peered spoke) on its
/// public address 20.61.20.5:443, a `byname` rule translating to a private DNS name, a
/// non-integrated instance (public 20.105.7.7) and an integrated one's subnet.
const DNAT_TOPOLOGY: &str = r#"
[[vnets]]
name = "vnet-hub"
region = "westeurope"
address_space = ["10.100.0.0/16"]
peerings = ["vnet-spoke"]
  [[vnets.subnets]]
  name = "AzureFirewallSubnet"
  address_prefix = "10.100.1.0/26"

[[vnets]]
name = "vnet-spoke"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["vnet-hub"]
  [[vnets.subnets]]
  name = "snet-backend"
  address_prefix = "10.1.1.0/24"
  nsg = "nsg-backend"

[[nsgs]]
name = "nsg-backend"
  [[nsgs.security_rules]]
  name = "allow-firewall-8443"
  priority = 100
  direction = "Inbound"
  access = "Allow"
  protocol = "Tcp"
  source_address_prefix = "10.100.1.0/26"
  source_port_range = "*"
  destination_address_prefix = "10.1.1.4"
  destination_port_range = "8443"
  [[nsgs.security_rules]]
  name = "deny-rest"
  priority = 200
  direction = "Inbound"
  access = "Deny"
  protocol = "*"
  source_address_prefix = "*"
  source_port_range = "*"
  destination_address_prefix = "*"
  destination_port_range = "*"

[[hosts]]
name = "orders"
address = "10.1.1.4"
dns = ["orders.internal.contoso"]

[[private_dns_zones]]
name = "internal.contoso"
links = ["vnet-hub"]

[[firewalls]]
name = "fw-hub"
subnet = "vnet-hub/AzureFirewallSubnet"
private_address = "10.100.1.4"
public_addresses = ["20.61.20.5"]
  [[firewalls.rule_collection_groups]]
  name = "inbound"
  priority = 100
    [[firewalls.rule_collection_groups.rule_collections]]
    name = "publish"
    priority = 100
    kind = "Dnat"
      [[firewalls.rule_collection_groups.rule_collections.rules]]
      name = "orders-https"
      protocols = ["TCP"]
      source_addresses = ["*"]
      destination_addresses = ["20.61.20.5"]
      destination_ports = ["443"]
      translated_address = "10.1.1.4"
      translated_port = "8443"
      [[firewalls.rule_collection_groups.rule_collections.rules]]
      name = "orders-by-name"
      protocols = ["TCP"]
      source_addresses = ["20.105.7.7"]
      destination_addresses = ["20.61.20.5"]
      destination_ports = ["8000"]
      translated_fqdn = "orders.internal.contoso"
      translated_port = "8443"
      [[firewalls.rule_collection_groups.rule_collections.rules]]
      name = "orders-wrong-port"
      protocols = ["TCP"]
      source_addresses = ["*"]
      destination_addresses = ["20.61.20.5"]
      destination_ports = ["9000"]
      translated_address = "10.1.1.4"
      translated_port = "9000"
      [[firewalls.rule_collection_groups.rule_collections.rules]]
      name = "nowhere"
      protocols = ["TCP"]
      source_addresses = ["*"]
      destination_addresses = ["20.61.20.5"]
      destination_ports = ["7000"]
      translated_fqdn = "missing.internal.contoso"
      translated_port = "443"

[apim]
name = "apim"
sku = "StandardV2"
region = "westeurope"
public_address = "20.105.7.7"
"#;

fn dnat_topology() -> Topology {
    topo(DNAT_TOPOLOGY)
}

/// "Filter inbound Internet or intranet traffic with Azure Firewall DNAT" (Learn): "Each rule in
/// the NAT rule collection can then be used to translate your firewall public IP address and
/// port to a private IP address and port"; "Azure Firewall rule processing logic" (Learn): "If
/// a match is found, the traffic is translated according to the DNAT rule and allowed by the
/// firewall" — no network rule is needed ("DNAT rules implicitly add a corresponding network
/// rule to allow the translated traffic"). The backend's inbound NSG sees the firewall's SNAT
/// address (one of AzureFirewallSubnet's, "Azure Firewall NAT Behaviors") and the translated port.
#[test]
fn dnat_translates_a_non_integrated_instances_backend_flow_to_the_private_backend() {
    let t = dnat_topology();
    let v = verdict(&t, tcp("20.105.7.7", "20.61.20.5", 443));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Allow, "ALLOWED")
    );
    let x = v.dnat.as_ref().expect("a DNAT translation");
    assert_eq!(
        (
            x.firewall.as_str(),
            x.group.as_str(),
            x.collection.as_str(),
            x.rule.as_str()
        ),
        ("fw-hub", "inbound", "publish", "orders-https")
    );
    assert_eq!(
        (x.translated_destination.as_str(), x.translated_port),
        ("10.1.1.4", 8443)
    );
    // SNAT to the firewall's instance address in AzureFirewallSubnet
    // (ASSUMPTION_FIREWALL_INSTANCE_ADDRESS): the backend sees 10.100.1.5.
    assert_eq!(x.translated_source, "10.100.1.5");
    assert_eq!(v.egress_source.as_deref(), Some("10.100.1.5"));
    // nsg-backend decided on the translated source and port.
    let by = v.decided_by.as_ref().expect("nsg-backend decided");
    assert_eq!(by.rule, "securityRules/allow-firewall-8443");
    assert!(
        v.detail.contains("DNAT rule inbound/publish/orders-https"),
        "{}",
        v.detail
    );
    assert!(
        v.to_string()
            .contains("DNAT      fw-hub / inbound / publish / orders-https"),
        "{v}"
    );
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["dnat"]["translated_destination"], "10.1.1.4");
    assert_eq!(json["dnat"]["translated_port"], 8443);
    assert_eq!(json["dnat"]["rule"], "orders-https");
    // A hop names the DNAT rule and the translated destination.
    assert!(v.hops.iter().any(|h| h.kind == "firewall"
        && h.destination == "10.1.1.4"
        && h.decided_by.as_deref() == Some("Dnat inbound/publish/orders-https → 10.1.1.4:8443")));
}

/// "Azure Firewall rule processing logic": "Azure Firewall denies all traffic by default, until
/// rules are manually configured to allow traffic" — a flow to the firewall's public address
/// that no DNAT rule matches is dropped: FIREWALL_DENIED, rule `default`.
#[test]
fn dnat_no_match_on_the_public_address_is_the_default_deny() {
    let t = dnat_topology();
    for f in [
        tcp("20.105.7.7", "20.61.20.5", 80),
        flow(Protocol::Udp, "20.105.7.7", "20.61.20.5", Some(443)),
        flow(Protocol::Icmp, "20.105.7.7", "20.61.20.5", None),
    ] {
        let v = verdict(&t, f);
        assert_eq!(
            (v.verdict, v.code.as_str()),
            (VerdictKind::Deny, "FIREWALL_DENIED"),
            "{f}"
        );
        let by = v.decided_by.as_ref().expect("the firewall decided");
        assert_eq!((by.nsg.as_str(), by.rule.as_str()), ("fw-hub", "default"));
        assert!(v.dnat.is_none() && v.egress_source.is_none());
        assert!(v.detail.contains("no DNAT rule matches"), "{}", v.detail);
    }
    // The rule's source addresses count: orders-by-name takes only 20.105.7.7.
    let v = verdict(&t, tcp("52.1.2.3", "20.61.20.5", 8000));
    assert_eq!(v.code.as_str(), "FIREWALL_DENIED");
}

/// The DNAT rule is allowed by the firewall, but the translated destination's NSG still
/// filters ("Network security groups": inbound rules apply to traffic arriving at the subnet):
/// port 9000 is not allowed by nsg-backend.
#[test]
fn dnat_translated_flow_meets_the_backends_inbound_nsg() {
    let t = dnat_topology();
    let v = verdict(&t, tcp("52.1.2.3", "20.61.20.5", 9000));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Deny, "NSG_DENIED")
    );
    assert_eq!(
        v.decided_by.as_ref().unwrap().rule,
        "securityRules/deny-rest"
    );
    assert_eq!(v.dnat.as_ref().unwrap().rule, "orders-wrong-port");
    // From the internet as from the instance: the same rule translates.
    let v = verdict(&t, tcp("52.1.2.3", "20.61.20.5", 443));
    assert_eq!(v.verdict, VerdictKind::Allow);
}

/// `translatedFqdn` ("New-AzFirewallPolicyNatRule": `-TranslatedFqdn`) is resolved with the DNS
/// of the firewall's VNet (the private zone linked to vnet-hub); a name that does not resolve
/// is DNS_FAILURE.
#[test]
fn dnat_translated_fqdn_resolves_from_the_firewalls_vnet() {
    let t = dnat_topology();
    let v = verdict(&t, tcp("20.105.7.7", "20.61.20.5", 8000));
    assert_eq!(v.verdict, VerdictKind::Allow, "{v}");
    let x = v.dnat.as_ref().unwrap();
    assert_eq!(x.translated_destination, "10.1.1.4");
    assert_eq!(
        x.translated_fqdn.as_deref(),
        Some("orders.internal.contoso")
    );
    let v = verdict(&t, tcp("20.105.7.7", "20.61.20.5", 7000));
    assert_eq!(
        (v.verdict, v.code.as_str()),
        (VerdictKind::Unreachable, "DNS_FAILURE")
    );
    assert!(
        v.detail.contains("missing.internal.contoso"),
        "{}",
        v.detail
    );
}

/// DNAT rules take TCP or UDP and need a translated port and one translated destination
/// ("New-AzFirewallPolicyNatRule"); a DNAT rule on an address that is not one of the firewall's
/// public addresses (private IP DNAT) stays unmodelled: FIREWALL_DNAT_NOT_MODELLED.
#[test]
fn dnat_rule_fields_are_checked() {
    let b = build(DNAT_TOPOLOGY);
    assert!(!codes(&b).contains(&"FIREWALL_DNAT_NOT_MODELLED"));
    assert!(!codes(&b).contains(&"FIREWALL_RULE_INVALID"));
    let private = DNAT_TOPOLOGY.replacen(
        "destination_addresses = [\"20.61.20.5\"]",
        "destination_addresses = [\"10.100.1.4\"]",
        1,
    );
    assert!(codes(&build(&private)).contains(&"FIREWALL_DNAT_NOT_MODELLED"));
    let icmp = DNAT_TOPOLOGY.replacen("protocols = [\"TCP\"]", "protocols = [\"ICMP\"]", 1);
    assert!(codes(&build(&icmp)).contains(&"FIREWALL_RULE_INVALID"));
    let no_port = DNAT_TOPOLOGY.replacen("translated_port = \"8443\"\n", "", 1);
    assert!(codes(&build(&no_port)).contains(&"FIREWALL_RULE_INVALID"));
    let both = DNAT_TOPOLOGY.replacen(
        "translated_address = \"10.1.1.4\"",
        "translated_address = \"10.1.1.4\"\n      translated_fqdn = \"orders.internal.contoso\"",
        1,
    );
    assert!(codes(&build(&both)).contains(&"FIREWALL_RULE_INVALID"));
}

/// An integrated instance whose subnet reaches the firewall's public address through its
/// Internet route (with outbound_route_all) is translated the same way: the DNAT step sees the
/// source after the subnet's egress.
#[test]
fn dnat_from_an_integrated_instances_subnet_through_its_internet_route() {
    let text = DNAT_TOPOLOGY
        .replace(
            "public_address = \"20.105.7.7\"",
            "virtual_network = \"integration\"\nsubnet = \"vnet-apim/snet-apim\"",
        )
        .replace(
            "[[nsgs]]\nname = \"nsg-backend\"",
            "[[vnets]]\nname = \"vnet-apim\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n  [[vnets.subnets]]\n  name = \"snet-apim\"\n  address_prefix = \"10.0.1.0/24\"\n  delegations = [\"Microsoft.Web/serverFarms\"]\n\n[[nsgs]]\nname = \"nsg-backend\"",
        );
    let t = topo(&text);
    let src = t.apim_source().unwrap().to_string();
    let v = verdict(&t, tcp(&src, "20.61.20.5", 443));
    assert_eq!(v.verdict, VerdictKind::Allow, "{v}");
    assert_eq!(v.dnat.as_ref().unwrap().translated_destination, "10.1.1.4");
    // Port 80: no DNAT rule, the default deny.
    let v = verdict(&t, tcp(&src, "20.61.20.5", 80));
    assert_eq!(v.code.as_str(), "FIREWALL_DENIED");
    // With outbound_route_all = false the public destination leaves from the instance's public
    // address (ASSUMPTION_PUBLIC_EGRESS_FROM_PLATFORM): the DNAT rules see that source, so
    // orders-by-name (source 20.105.7.7 only) translates it.
    let off = topo(&text.replace(
        "subnet = \"vnet-apim/snet-apim\"",
        "subnet = \"vnet-apim/snet-apim\"\npublic_address = \"20.105.7.7\"\noutbound_route_all = false",
    ));
    let v = verdict(&off, tcp(&src, "20.61.20.5", 8000));
    assert_eq!(v.verdict, VerdictKind::Allow, "{v}");
    assert_eq!(v.dnat.as_ref().unwrap().rule, "orders-by-name");
    // From the subnet's own address (route all), that rule does not match.
    let v = verdict(&t, tcp(&src, "20.61.20.5", 8000));
    assert_eq!(v.code.as_str(), "FIREWALL_DENIED");
}
