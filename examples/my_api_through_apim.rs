//! A complete test of "my API works through API Management with this NSG", the way you would
//! write it in your own repository: your topology, your backend (here a wiremock server standing
//! in for the real service), real HTTP through the simulated gateway, and the NSG decisions
//! checked on the wire.
//!
//! Run it: `cargo run --example my_api_through_apim`. In your own crate the body of `main` goes
//! into a `#[tokio::test]`.

use vnetsim::harness::{Rule, Simulation, VerdictCode};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// My topology: an integrated Standard v2 instance, my orders API in a backend subnet behind its
/// own NSG, reached over a private DNS name.
const TOPOLOGY: &str = r#"
[[vnets]]
name = "vnet-app"
region = "westeurope"
address_space = ["10.0.0.0/16"]
  [[vnets.subnets]]
  name = "snet-apim"
  address_prefix = "10.0.1.0/24"
  delegations = ["Microsoft.Web/serverFarms"]
  nsg = "nsg-apim"
  [[vnets.subnets]]
  name = "snet-orders"
  address_prefix = "10.0.2.0/24"
  nsg = "nsg-orders"

[[nsgs]]
name = "nsg-apim"
  [[nsgs.security_rules]]
  name = "allow-storage"
  priority = 100
  direction = "Outbound"
  access = "Allow"
  protocol = "Tcp"
  source_address_prefix = "VirtualNetwork"
  source_port_range = "*"
  destination_address_prefix = "Storage"
  destination_port_range = "443"
  [[nsgs.security_rules]]
  name = "allow-keyvault"
  priority = 110
  direction = "Outbound"
  access = "Allow"
  protocol = "Tcp"
  source_address_prefix = "VirtualNetwork"
  source_port_range = "*"
  destination_address_prefix = "AzureKeyVault"
  destination_port_range = "443"

[[nsgs]]
name = "nsg-orders"
  [[nsgs.security_rules]]
  name = "allow-apim-8080"
  priority = 100
  direction = "Inbound"
  access = "Allow"
  protocol = "Tcp"
  source_address_prefix = "10.0.1.0/24"
  source_port_range = "*"
  destination_address_prefix = "*"
  destination_port_range = "8080"
  [[nsgs.security_rules]]
  name = "deny-everything-else"
  priority = 4000
  direction = "Inbound"
  access = "Deny"
  protocol = "*"
  source_address_prefix = "*"
  source_port_range = "*"
  destination_address_prefix = "*"
  destination_port_range = "*"

[[private_dns_zones]]
name = "internal.contoso.com"
links = ["vnet-app"]

[[hosts]]
name = "orders"
address = "10.0.2.4"
dns = ["orders.internal.contoso.com"]
  [[hosts.services]]
  port = 8080
  serve = "echo"            # replaced by my own server below

[apim]
name = "apim-contoso"
sku = "StandardV2"
region = "westeurope"
virtual_network = "integration"
subnet = "vnet-app/snet-apim"

[gateway]
hostname = "apim-contoso.azure-api.net"

[[apis]]
name = "orders"
path = "/orders"
backend = "http://orders.internal.contoso.com:8080/api"
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // My service, standing in for the real orders backend.
    let orders = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/orders/42"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": 42, "state": "shipped"})),
        )
        .expect(1)
        .mount(&orders)
        .await;

    // The simulation: the gateway, with my server playing orders.internal.contoso.com:8080.
    let sim = Simulation::from_str("my-topology.toml", TOPOLOGY)?
        .bind("orders", 8080, *orders.address())
        .start()
        .await?;

    // 1. My API works through APIM with this NSG.
    let resp = sim.get("/orders/orders/42").await?;
    assert_eq!(resp.status, 200);
    let body: serde_json::Value = resp.json()?;
    assert_eq!(body["state"], "shipped");

    // 2. Why it works: every NSG on the path and the rule that allowed it.
    let verdict = sim.verdict("apim", "orders:8080")?;
    println!("{verdict}");
    assert_eq!(
        verdict.decided_by.as_ref().map(|d| d.rule.as_str()),
        Some("securityRules/allow-apim-8080")
    );

    // 3. A colleague tightens nsg-orders: a new flow is refused with an explanation, and my
    //    server receives nothing more (wiremock checks `expect(1)` when `orders` drops).
    let mut rules = sim.current_rules("nsg-orders");
    rules.retain(|r| r.name != "allow-apim-8080");
    rules.push(
        Rule::allow("allow-apim-443-only")
            .inbound()
            .priority(100)
            .tcp()
            .from("10.0.1.0/24")
            .port(443)
            .build(),
    );
    sim.set_nsg_rules("nsg-orders", &rules)?;
    let verdict = sim.verdict("apim", "orders:8080")?;
    assert_eq!(verdict.code, VerdictCode::NsgDenied);
    println!(
        "after the change: {} by {:?}",
        verdict.code,
        verdict.decided_by.map(|d| d.rule)
    );

    sim.shutdown().await;
    println!("ok: my API works through APIM with this NSG, and the tightened NSG would break it");
    Ok(())
}
