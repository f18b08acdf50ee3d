//! `vnetsim next-hop` and `vnetsim routes`: Network Watcher's shapes, compared field by field
//! with the documented examples (`az network watcher show-next-hop`, "Diagnose a virtual
//! machine network routing problem"; `az network nic show-effective-route-table`,
//! `EffectiveRoute` of the Network REST API), and `check`'s hops on the forced-tunnel fixture.

use serde_json::json;

use crate::support::{arg, cli, keys, tempdir, write};

/// The documented setup: a VM at 10.0.0.4 in a 10.0.0.0/16 VNet with only system routes.
const DOC_VNET: &str = r#"
[[vnets]]
name = "myVNet"
region = "eastus"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "mySubnet"
  address_prefix = "10.0.0.0/24"
[[hosts]]
name = "myVM"
address = "10.0.0.4"
"#;

#[test]
fn next_hop_matches_the_documented_examples() {
    let dir = tempdir();
    let f = write(dir.path(), "doc.toml", DOC_VNET);
    // "dest 13.107.21.200 → nextHopType Internet, routeTableId System Route".
    let r = cli(&[
        "next-hop",
        arg(&f),
        "--from",
        "10.0.0.4",
        "--to",
        "13.107.21.200",
    ]);
    r.expect_code(0);
    assert_eq!(
        r.json(),
        json!({"nextHopIpAddress": null, "nextHopType": "Internet", "routeTableId": "System Route"})
    );
    // "dest 172.31.0.100 → None, System Route" ("while there is a valid system route to the
    // destination, there is no next hop").
    let r = cli(&[
        "next-hop",
        arg(&f),
        "--from",
        "myVM",
        "--to",
        "172.31.0.100",
    ]);
    assert_eq!(
        r.json(),
        json!({"nextHopIpAddress": null, "nextHopType": "None", "routeTableId": "System Route"})
    );
    // A user route: the table's id and the appliance address.
    let r = cli(&[
        "next-hop",
        "fixtures/forced-tunnel.toml",
        "--from",
        "apim",
        "--to",
        "20.50.1.10",
    ]);
    r.expect_code(0);
    assert_eq!(
        r.json(),
        json!({"nextHopIpAddress": "10.100.1.4", "nextHopType": "VirtualAppliance",
               "routeTableId": "/subscriptions/00000000-0000-0000-0000-00000000c0de/resourceGroups/vnetsim-rg/providers/Microsoft.Network/routeTables/rt-apim"})
    );
    // A source in no subnet is bad input.
    cli(&[
        "next-hop",
        arg(&f),
        "--from",
        "20.1.1.1",
        "--to",
        "10.0.0.4",
    ])
    .expect_code(2);
}

#[test]
fn routes_match_the_documented_effective_route() {
    let dir = tempdir();
    let f = write(dir.path(), "doc.toml", DOC_VNET);
    let r = cli(&["routes", arg(&f), "--subnet", "myVNet/mySubnet"]);
    r.expect_code(0);
    let j = r.json();
    assert_eq!(keys(&j), ["value"]);
    let value = j["value"].as_array().unwrap();
    // The documented entry, field by field; `disableBgpRoutePropagation` is the one field of
    // the EffectiveRoute schema the example leaves out.
    let documented = json!({"addressPrefix": ["172.16.0.0/12"], "name": null, "nextHopIpAddress": [],
                            "nextHopType": "None", "source": "Default", "state": "Active"});
    let ours = value
        .iter()
        .find(|v| v["addressPrefix"] == json!(["172.16.0.0/12"]))
        .expect("the 172.16.0.0/12 None route");
    for (k, v) in documented.as_object().unwrap() {
        assert_eq!(&ours[k], v, "field {k}");
    }
    assert_eq!(ours["disableBgpRoutePropagation"], false);
    let prefixes: Vec<&str> = value
        .iter()
        .map(|v| v["addressPrefix"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        prefixes,
        [
            "10.0.0.0/16",
            "0.0.0.0/0",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10"
        ]
    );
    // With a 0.0.0.0/0 user route the reserved-range None routes are removed and the system
    // default is Invalid (the routing example of "Virtual network traffic routing").
    let r = cli(&[
        "routes",
        "fixtures/forced-tunnel.toml",
        "--subnet",
        "vnet-spoke/snet-apim",
    ]);
    let j = r.json();
    let rows: Vec<(String, String, String, String)> = j["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (
                s("source"),
                s("state"),
                v["addressPrefix"][0].as_str().unwrap().to_string(),
                s("nextHopType"),
            )
        })
        .collect();
    let row = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert_eq!(
        rows,
        [
            row("Default", "Active", "10.0.0.0/16", "VnetLocal"),
            row("Default", "Active", "10.100.0.0/16", "VNetPeering"),
            row("Default", "Invalid", "0.0.0.0/0", "Internet"),
            row("User", "Active", "0.0.0.0/0", "VirtualAppliance"),
            row("User", "Active", "10.0.2.0/24", "VirtualAppliance"),
            row("User", "Active", "10.0.9.0/24", "None"),
        ]
    );
    cli(&[
        "routes",
        "fixtures/forced-tunnel.toml",
        "--subnet",
        "vnet-spoke/nope",
    ])
    .expect_code(2);
}

#[test]
fn check_json_has_hops_and_egress_source() {
    let r = cli(&[
        "check",
        "fixtures/forced-tunnel.toml",
        "--from",
        "apim",
        "--to",
        "api.partner.example:443",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let j = r.json();
    let kinds: Vec<&str> = j["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["nsg", "route", "firewall", "route"]);
    assert_eq!(
        keys(&j["hops"][2]),
        ["decided_by", "destination", "kind", "name", "source"]
    );
    assert_eq!(
        j["hops"][2]["source"], "20.61.20.5",
        "after the firewall's SNAT"
    );
    assert_eq!(j["egress_source"], "20.61.20.5");
    assert_eq!(j["return_hops"], json!([]));
    // Denied by the firewall's default deny.
    let r = cli(&[
        "check",
        "fixtures/forced-tunnel.toml",
        "--from",
        "apim",
        "--to",
        "api.blocked.example:443",
        "--output",
        "json",
    ]);
    r.expect_code(1);
    let j = r.json();
    assert_eq!(j["code"], "FIREWALL_DENIED");
    assert_eq!(
        j["decided_by"],
        json!({"kind": "firewall", "firewall": "fw-hub", "group": null, "collection": null, "rule": "default"})
    );
    // Dropped by a None route.
    let r = cli(&[
        "check",
        "fixtures/forced-tunnel.toml",
        "--from",
        "apim",
        "--to",
        "legacy:8080",
        "--output",
        "json",
    ]);
    r.expect_code(1);
    let j = r.json();
    assert_eq!(j["code"], "ROUTE_NONE");
    assert_eq!(j["decided_by"]["kind"], "route");
    assert_eq!(j["decided_by"]["route"], "legacy-drop");
    assert_eq!(j["decided_by"]["route_table"], "rt-apim");
    // The backend: through the firewall both ways.
    let r = cli(&[
        "check",
        "fixtures/forced-tunnel.toml",
        "--from",
        "apim",
        "--to",
        "orders:443",
        "--output",
        "json",
    ]);
    r.expect_code(0);
    let j = r.json();
    let ret: Vec<&str> = j["return_hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert_eq!(ret, ["route", "firewall", "route"]);
}

/// Real requests through `vnetsim up` on the forced-tunnel fixture: allowed through the
/// firewall (network and application rule), denied by its default deny, dropped by a `None`
/// route; each answer agrees with `check`, and the firewall shows in `x-vnetsim-verdict` and
/// `/admin/flows`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_tunnel_through_up_agrees_with_check() {
    let dir = tempdir();
    let ready = dir.path().join("ready.json");
    let (child, doc) = crate::one_answer::up(&["fixtures/forced-tunnel.toml"], &ready);
    let client = crate::one_answer::client(doc["gateway_url"].as_str().unwrap());
    for (path, to, status, code) in [
        ("/orders/x", "orders:443", 200, "ALLOWED"),
        ("/partner/x", "api.partner.example:443", 200, "ALLOWED"),
        (
            "/blocked/x",
            "api.blocked.example:443",
            502,
            "FIREWALL_DENIED",
        ),
        ("/legacy/x", "legacy:8080", 502, "ROUTE_NONE"),
    ] {
        let r = client.get(path).await.unwrap();
        assert_eq!(r.status, status, "{path}: {}", r.text());
        let checked = cli(&[
            "check",
            "fixtures/forced-tunnel.toml",
            "--from",
            "apim",
            "--to",
            to,
            "--output",
            "json",
        ]);
        assert_eq!(checked.json()["code"], code, "check {to}");
        if status != 200 {
            assert_eq!(r.problem().unwrap().code, code, "{path}");
            let h = r.verdict_header().unwrap().to_string();
            assert!(h.starts_with(&format!("Deny; code={code}")), "{h}");
            if code == "FIREWALL_DENIED" {
                assert!(h.contains("firewall=fw-hub; rule=default"), "{h}");
            }
        }
    }
    // The established flows name the firewall that allowed them.
    let admin: std::net::SocketAddr = doc["admin_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let token = format!("Bearer {}", doc["admin_token"].as_str().unwrap());
    let r = vnetsim::client::Client::new(admin, "admin.test", None)
        .request(
            http::Method::GET,
            "/admin/flows",
            &[("authorization", token.as_str())],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let flows: serde_json::Value = r.json().unwrap();
    let text = flows.to_string();
    assert!(
        text.contains("\"kind\":\"firewall\"") && text.contains("apim/apim-partners/partner-api"),
        "{text}"
    );
    crate::support::stop_cleanly(child, "forced-tunnel up");
}

/// Real HTTP through `vnetsim up` on the firewall-DNAT fixture: a non-integrated instance whose
/// backend URL is the firewall's public address reaches the *translated* backend (the echo of
/// `orders` on 8080 answers), and a port no DNAT rule publishes is `502 FIREWALL_DENIED`
/// (`rule=default`), the code `check` gives ("Azure Firewall rule processing logic").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_dnat_through_up_reaches_the_translated_backend() {
    let dir = tempdir();
    let ready = dir.path().join("ready.json");
    let (child, doc) = crate::one_answer::up(&["fixtures/firewall-dnat.toml"], &ready);
    let client = crate::one_answer::client(doc["gateway_url"].as_str().unwrap());
    // Translated: the echo that plays orders:8080 answers, with the backend URL's Host.
    let r = client.get("/published/x").await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let echo: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(echo["host"], "orders");
    assert_eq!(echo["port"], 8080);
    assert_eq!(echo["headers"]["host"], "20.61.20.5");
    let checked = cli(&[
        "check",
        "fixtures/firewall-dnat.toml",
        "--from",
        "apim",
        "--to",
        "20.61.20.5:80",
        "--output",
        "json",
    ]);
    let j = checked.json();
    assert_eq!(j["code"], "ALLOWED");
    assert_eq!(
        j["dnat"],
        json!({"firewall": "fw-hub", "group": "inbound", "collection": "publish",
               "rule": "orders-http", "translated_destination": "10.1.1.4",
               "translated_port": 8080, "translated_source": "10.100.1.5"})
    );
    // Not published: the firewall's default deny, as `check` says.
    let r = client.get("/closed/x").await.unwrap();
    assert_eq!(r.status, 502, "{}", r.text());
    let checked = cli(&[
        "check",
        "fixtures/firewall-dnat.toml",
        "--from",
        "apim",
        "--to",
        "20.61.20.5:8081",
        "--output",
        "json",
    ]);
    assert_eq!(checked.json()["code"], "FIREWALL_DENIED");
    assert_eq!(r.problem().unwrap().code, "FIREWALL_DENIED");
    let h = r.verdict_header().unwrap().to_string();
    assert!(
        h.starts_with("Deny; code=FIREWALL_DENIED") && h.contains("firewall=fw-hub; rule=default"),
        "{h}"
    );
    crate::support::stop_cleanly(child, "firewall-dnat up");
}
