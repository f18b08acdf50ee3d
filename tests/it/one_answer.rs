//! One answer from every command: `check`, `test`, `validate` and a live `vnetsim up` agree on
//! DNS (custom zones unlinked or linked only to a peer, a `privatelink` zone unlinked with and
//! without a public address); a bodiless reload runs `up`'s load again with its options
//! (`--upstream`, `--service-tags`); a reload or rule change whose topology has an error
//! finding is refused with 422 and the old state kept.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::Value;
use vnetsim::client::Client;

use crate::support::{arg, cli, fixture, stop_cleanly, tempdir, write};

/// Every DNS case as one topology: vnet-app (the instance) peered both ways with vnet-hub,
/// which holds the backends.
const DNS_TOPOLOGY: &str = r#"
[[vnets]]
name = "vnet-app"
region = "westeurope"
address_space = ["10.0.0.0/16"]
peerings = ["vnet-hub"]
  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  delegations = ["Microsoft.Web/serverFarms"]
  nsg = "nsg-apim"

[[vnets]]
name = "vnet-hub"
region = "westeurope"
address_space = ["10.1.0.0/16"]
peerings = ["vnet-app"]
  [[vnets.subnets]]
  name = "snet-backend"
  address_prefix = "10.1.2.0/24"

[[nsgs]]
name = "nsg-apim"

[[private_dns_zones]]
name = "unlinked.example"

[[private_dns_zones]]
name = "peeronly.example"
links = ["vnet-hub"]

[[private_dns_zones]]
name = "linked.example"
links = ["vnet-app"]

[[private_dns_zones]]
name = "privatelink.vaultcore.azure.net"
links = ["vnet-hub"]

[[hosts]]
name = "unlinked"
address = "10.1.2.4"
dns = ["orders.unlinked.example"]
  [[hosts.services]]
  port = 80
  serve = "echo"

[[hosts]]
name = "peeronly"
address = "10.1.2.5"
dns = ["orders.peeronly.example"]
  [[hosts.services]]
  port = 80
  serve = "echo"

[[hosts]]
name = "linked"
address = "10.1.2.6"
dns = ["orders.linked.example"]
  [[hosts.services]]
  port = 80
  serve = "echo"

[[hosts]]
name = "kv1"
address = "10.1.2.7"
kind = "private-endpoint"
dns = ["kv1.privatelink.vaultcore.azure.net"]
  [[hosts.services]]
  port = 80
  serve = "echo"

[[hosts]]
name = "kv2"
address = "10.1.2.8"
public_address = "52.10.0.8"
kind = "private-endpoint"
dns = ["kv2.privatelink.vaultcore.azure.net"]
  [[hosts.services]]
  port = 80
  serve = "echo"

[apim]
name = "apim-dns"
sku = "StandardV2"
region = "westeurope"
virtual_network = "integration"
subnet = "vnet-app/snet-apim"

[[apis]]
name = "unlinked"
path = "/unlinked"
backend = "http://orders.unlinked.example"

[[apis]]
name = "peeronly"
path = "/peeronly"
backend = "http://orders.peeronly.example"

[[apis]]
name = "linked"
path = "/linked"
backend = "http://orders.linked.example"

[[apis]]
name = "kv1"
path = "/kv1"
backend = "http://kv1.privatelink.vaultcore.azure.net"

[[apis]]
name = "kv2"
path = "/kv2"
backend = "http://kv2.privatelink.vaultcore.azure.net"
"#;

/// (api, backend name, verdict, code, resolved address, zone, via) as Azure answers.
type DnsCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
);

/// The DNS cases, one row per API.
const DNS_CASES: [DnsCase; 5] = [
    (
        "unlinked",
        "orders.unlinked.example",
        "Unreachable",
        "DNS_FAILURE",
        None,
        "unlinked.example",
        "private-zone",
    ),
    (
        "peeronly",
        "orders.peeronly.example",
        "Unreachable",
        "DNS_FAILURE",
        None,
        "peeronly.example",
        "private-zone",
    ),
    (
        "linked",
        "orders.linked.example",
        "Allow",
        "ALLOWED",
        Some("10.1.2.6"),
        "linked.example",
        "private-zone",
    ),
    (
        "kv1",
        "kv1.privatelink.vaultcore.azure.net",
        "Unreachable",
        "DNS_FAILURE",
        None,
        "privatelink.vaultcore.azure.net",
        "public",
    ),
    (
        "kv2",
        "kv2.privatelink.vaultcore.azure.net",
        "Allow",
        "ALLOWED",
        Some("52.10.0.8"),
        "privatelink.vaultcore.azure.net",
        "public",
    ),
];

pub(crate) fn wait_ready(path: &Path) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).expect("complete ready file");
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no ready file");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn up(args: &[&str], ready: &Path) -> (Child, Value) {
    let child = Command::new(env!("CARGO_BIN_EXE_vnetsim"))
        .arg("up")
        .args(args)
        .args(["--ready-file", arg(ready)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let doc = wait_ready(ready);
    (child, doc)
}

pub(crate) fn client(url: &str) -> Client {
    let addr = url.trim_start_matches("http://").parse().unwrap();
    Client::new(addr, "gateway.test", None)
}

pub(crate) async fn admin_request(
    doc: &Value,
    method: Method,
    path: &str,
    content_type: &str,
    body: String,
) -> vnetsim::client::Response {
    let admin = client(doc["admin_url"].as_str().unwrap());
    let auth = format!("Bearer {}", doc["admin_token"].as_str().unwrap());
    admin
        .request(
            method,
            path,
            &[("authorization", &auth), ("content-type", content_type)],
            Bytes::from(body),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_check_test_validate_and_live_up_agree() {
    let dir = tempdir();
    let fx = write(dir.path(), "dns.toml", DNS_TOPOLOGY);

    // validate: API_BACKEND_UNRESOLVABLE for exactly the names that do not resolve.
    let v = cli(&["validate", arg(&fx), "--output", "json"]);
    v.expect_code(0);
    let unresolvable: Vec<String> = v.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "API_BACKEND_UNRESOLVABLE")
        .map(|f| f["subject"].as_str().unwrap().to_string())
        .collect();
    let mut failing: Vec<String> = DNS_CASES
        .iter()
        .filter(|c| c.3 == "DNS_FAILURE")
        .map(|c| format!("apis/{}", c.0))
        .collect();
    failing.sort();
    assert_eq!(unresolvable, failing, "{}", v.stdout);

    // check: the same resolver as the gateway, with `resolved` in the JSON.
    let mut expectations = String::from("topology = \"dns.toml\"\n");
    for (api, name, verdict, code, address, zone, via) in DNS_CASES {
        let to = format!("{name}:80");
        let r = cli(&[
            "check",
            arg(&fx),
            "--from",
            "apim",
            "--to",
            &to,
            "--output",
            "json",
        ]);
        r.expect_code(if verdict == "Allow" { 0 } else { 1 });
        let j = r.json();
        assert_eq!(
            (j["verdict"].as_str(), j["code"].as_str()),
            (Some(verdict), Some(code)),
            "{api}: {j}"
        );
        assert_eq!(j["resolved"]["name"], name, "{api}");
        assert_eq!(j["resolved"]["address"].as_str(), address, "{api}");
        assert_eq!(j["resolved"]["zone"], zone, "{api}");
        assert_eq!(j["resolved"]["via"], via, "{api}");
        if code == "DNS_FAILURE" {
            assert!(j["flow"]["destination"].is_null(), "{api}: {j}");
            let detail = j["detail"].as_str().unwrap();
            assert!(
                detail.contains(zone),
                "{api}: the detail names the zone: {detail}"
            );
            assert!(
                detail.contains("linked to"),
                "{api}: and its links: {detail}"
            );
        }
        expectations.push_str(&format!(
            "\n[[expect]]\nname = \"{api}\"\nfrom = \"apim\"\nto = \"{to}\"\nverdict = \"{verdict}\"\ncode = \"{code}\"\n"
        ));
    }
    // test: an expectations file stating Azure's answers passes.
    let ex = write(dir.path(), "dns.expect.toml", &expectations);
    cli(&["test", arg(&ex)]).expect_code(0);

    // live: `vnetsim up` answers each API as `check` did.
    let ready = dir.path().join("ready.json");
    let (child, doc) = up(&[arg(&fx)], &ready);
    let gw = client(doc["gateway_url"].as_str().unwrap());
    for (api, _, verdict, code, _, _, _) in DNS_CASES {
        let r = gw.get(&format!("/{api}/probe")).await.unwrap();
        assert_eq!(doc["backends"][api]["code"], code, "up's table: {api}");
        if verdict == "Allow" {
            assert_eq!(r.status, 200, "{api}: {}", r.text());
        } else {
            assert_eq!(r.status, 502, "{api}");
            assert_eq!(r.problem().unwrap().code, code, "{api}");
            assert_eq!(
                r.verdict_header(),
                Some(format!("{verdict}; code={code}").as_str()),
                "{api}"
            );
        }
    }
    stop_cleanly(child, "up dns.toml");
}

/// A tags file that defines a tag the built-in table lacks: a rule on it loads only with it.
const PARTNER_TAGS: &str = r#"{"changeNumber": 9, "cloud": "Public", "values": [
  {"name": "Storage", "id": "Storage", "properties": {"changeNumber": 1, "region": "", "platform": "Azure", "systemService": "AzureStorage", "addressPrefixes": ["20.60.0.0/16"]}},
  {"name": "AzureKeyVault", "id": "AzureKeyVault", "properties": {"changeNumber": 1, "region": "", "platform": "Azure", "systemService": "AzureKeyVault", "addressPrefixes": ["20.61.0.0/16"]}},
  {"name": "PartnerNet", "id": "PartnerNet", "properties": {"changeNumber": 1, "region": "", "platform": "Azure", "systemService": "", "addressPrefixes": ["20.50.0.0/16"]}}
]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_upstream_and_service_tags() {
    let dir = tempdir();
    let tags = write(dir.path(), "tags.json", PARTNER_TAGS);
    let text = std::fs::read_to_string(fixture("default.toml"))
        .unwrap()
        .replace(
            "destination_address_prefix = \"20.50.1.10\"",
            "destination_address_prefix = \"PartnerNet\"",
        );
    let fx = write(dir.path(), "partner.toml", &text);
    // The user's own server plays legacy:8080 (plain HTTP).
    let user = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("from-the-user"))
        .mount(&user)
        .await;
    // legacy:8080 is denied by nsg-apim's deny-legacy: allow it for this test.
    let allowed = text.replace("access = \"Deny\"\n  protocol = \"Tcp\"\n  source_address_prefix = \"*\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"10.0.2.5\"", "access = \"Allow\"\n  protocol = \"Tcp\"\n  source_address_prefix = \"*\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"10.0.2.5\"");
    assert_ne!(allowed, text, "the deny-legacy rule was found");
    let text = allowed;
    std::fs::write(&fx, &text).unwrap();
    let upstream = format!("legacy:8080={}", user.address());
    let ready = dir.path().join("ready.json");
    let (child, doc) = up(
        &[
            arg(&fx),
            "--upstream",
            &upstream,
            "--service-tags",
            arg(&tags),
        ],
        &ready,
    );
    let gw = client(doc["gateway_url"].as_str().unwrap());
    let before = gw.get("/legacy/ping").await.unwrap();
    assert_eq!(
        (before.status.as_u16(), before.text()),
        (200, "from-the-user".to_string())
    );
    // A bodiless reload runs the same load: the upstream stays the user's server, and the
    // PartnerNet rule still loads (without --service-tags it would be RULE_UNKNOWN_SERVICE_TAG).
    let r = admin_request(
        &doc,
        Method::POST,
        "/admin/reload",
        "text/plain",
        String::new(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json::<Value>().unwrap()["generation"], 2);
    let after = gw.get("/legacy/ping").await.unwrap();
    assert_eq!(after.text(), "from-the-user", "the reload kept --upstream");
    let payments = gw.get("/payments/x").await.unwrap();
    assert_eq!(
        payments.status, 200,
        "the PartnerNet rule still allows payments"
    );
    // A body replaces the inputs; the start options still apply (the same tag file).
    let r = admin_request(
        &doc,
        Method::POST,
        "/admin/reload",
        "application/toml",
        text.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = gw.get("/legacy/ping").await.unwrap();
    assert_eq!(
        after.text(),
        "from-the-user",
        "a body reload keeps --upstream too"
    );
    stop_cleanly(child, "up partner.toml");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_error_findings_is_refused_and_the_old_state_kept() {
    let dir = tempdir();
    let ready = dir.path().join("ready.json");
    let (child, doc) = up(&[arg(&fixture("default.toml"))], &ready);
    let gw = client(doc["gateway_url"].as_str().unwrap());
    let mut refused = 0;
    let mut files: Vec<_> = std::fs::read_dir(fixture("invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        // The files whose findings are errors (a load error is refused as INVALID_FIXTURE).
        let v = cli(&["validate", arg(&f), "--output", "json"]);
        if v.code == 0 {
            continue;
        }
        let r = admin_request(
            &doc,
            Method::POST,
            "/admin/reload",
            "application/toml",
            text,
        )
        .await;
        assert_eq!(r.status, 422, "{}: {}", f.display(), r.text());
        let code = r.problem().unwrap().code;
        assert!(
            code == "INVALID_CHANGE" || code == "INVALID_FIXTURE",
            "{}: {code}",
            f.display()
        );
        refused += 1;
    }
    assert!(refused >= 40, "only {refused} invalid fixtures were tried");
    // A rule change with an error finding (priority out of range) is refused the same way.
    let bad = r#"[{"name":"x","priority":50,"direction":"Outbound","access":"Deny","protocol":"*","source_address_prefix":"*","source_port_range":"*","destination_address_prefix":"*","destination_port_range":"*"}]"#;
    let r = admin_request(
        &doc,
        Method::PUT,
        "/admin/nsgs/nsg-apim/security_rules",
        "application/json",
        bad.into(),
    )
    .await;
    assert_eq!(r.status, 422);
    // The old state stays: nothing was applied, and the default topology still answers.
    let m = admin_request(&doc, Method::GET, "/metrics", "text/plain", String::new()).await;
    let m = m.text();
    assert!(m.contains("vnetsim_gateway_changes_applied_total 0"), "{m}");
    assert!(
        m.contains(&format!(
            "vnetsim_gateway_changes_refused_total {}",
            refused + 1
        )),
        "{m}"
    );
    let r = gw.get("/orders/1").await.unwrap();
    assert_eq!(r.status, 200);
    let r = gw.get("/legacy/1").await.unwrap();
    assert_eq!(r.problem().unwrap().code, "NSG_DENIED");
    stop_cleanly(child, "up default.toml");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_bind_survives_a_reload() {
    let user = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_string("bound"))
        .mount(&user)
        .await;
    let dir = tempdir();
    let text = std::fs::read_to_string(fixture("default.toml"))
        .unwrap()
        .replace(
            "destination_address_prefix = \"10.0.2.5\"",
            "destination_address_prefix = \"10.0.2.99\"",
        );
    let fx = write(dir.path(), "t.toml", &text);
    let sim = vnetsim::harness::Simulation::from_file(&fx)
        .unwrap()
        .bind("legacy", 8080, *user.address())
        .start()
        .await
        .unwrap();
    assert_eq!(sim.client().get("/legacy/x").await.unwrap().text(), "bound");
    // A bodiless reload runs the harness's load again; the binding is a start option and stays.
    let report = sim.gateway().reload_inputs(None).expect("reload accepted");
    assert_eq!(report.generation, 2);
    assert_eq!(sim.client().get("/legacy/x").await.unwrap().text(), "bound");
    // So does a reload with a body.
    let body = gateway::ReloadBody {
        text: text.clone(),
        media_type: None,
    };
    sim.gateway()
        .reload_inputs(Some(&body))
        .expect("reload accepted");
    assert_eq!(sim.client().get("/legacy/x").await.unwrap().text(), "bound");
    sim.shutdown().await;
}
