//! `KEYVAULT_UNREACHABLE` (issue 17): a Key Vault-backed named value's vault must be reachable
//! from the instance — by name (private zone linked, else public DNS), at an address that
//! accepts it (public access may be Disabled), through the NSGs on 443 (and Microsoft Entra ID).
//! Source: Learn, "Trusted service connectivity retirement (March 2026)": gateways of instances
//! created on or after 1 December 2025 no longer use the trusted-services exception.

use std::path::Path;

use sim::fixture::{Fixture, Format};
use sim::{ServiceTagTable, Topology};

fn base() -> String {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/invalid/keyvault-unreachable.toml");
    std::fs::read_to_string(p).expect("the fixture")
}

/// The `KEYVAULT_UNREACHABLE` messages of a fixture text.
fn kv(text: &str) -> Vec<String> {
    let f = Fixture::parse(text, Format::Toml).unwrap_or_else(|e| panic!("{e:?}"));
    let built = Topology::build(&f, ServiceTagTable::builtin());
    built
        .findings
        .iter()
        .filter(|f| f.code.as_str() == "KEYVAULT_UNREACHABLE")
        .map(|f| format!("{}: {}", f.subject, f.message))
        .collect()
}

#[test]
fn zone_linked_only_to_the_peered_vnet_means_public_and_public_is_disabled() {
    let found = kv(&base());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("apim/named_values/backend-key"),
        "{}",
        found[0]
    );
    assert!(
        found[0].contains("blocking step: public_access_disabled"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("kv1.vault.azure.net"), "{}", found[0]);
}

#[test]
fn linking_the_zone_to_the_instance_vnet_removes_it() {
    let text = base().replace(
        r#"links = ["vnet-hub"]"#,
        r#"links = ["vnet-hub", "vnet-app"]"#,
    );
    assert!(kv(&text).is_empty(), "{:?}", kv(&text));
}

#[test]
fn public_access_enabled_is_reachable_publicly() {
    let text = base().replace(
        r#"public_network_access = "Disabled""#,
        r#"public_network_access = "Enabled""#,
    );
    assert!(kv(&text).is_empty(), "{:?}", kv(&text));
}

#[test]
fn no_public_address_and_no_link_is_a_dns_step() {
    let text = base().replace("public_address = \"52.1.2.3\"\n", "");
    let found = kv(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("blocking step: dns"), "{}", found[0]);
}

#[test]
fn an_nsg_rule_on_the_private_path_is_named() {
    let text = base()
        .replace(r#"links = ["vnet-hub"]"#, r#"links = ["vnet-hub", "vnet-app"]"#)
        .replace(
            "[[nsgs]]\nname = \"nsg-apim\"\n",
            "[[nsgs]]\nname = \"nsg-apim\"\n\n  [[nsgs.security_rules]]\n  name = \"deny-hub\"\n  priority = 100\n  direction = \"Outbound\"\n  access = \"Deny\"\n  protocol = \"Tcp\"\n  source_address_prefix = \"*\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"10.1.0.0/16\"\n  destination_port_range = \"443\"\n",
        );
    let found = kv(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("blocking step: nsg"), "{}", found[0]);
    assert!(found[0].contains("deny-hub"), "{}", found[0]);
}

#[test]
fn entra_id_denied_is_named() {
    let text = base()
        .replace(r#"links = ["vnet-hub"]"#, r#"links = ["vnet-hub", "vnet-app"]"#)
        .replace(
            "[[nsgs]]\nname = \"nsg-apim\"\n",
            "[[nsgs]]\nname = \"nsg-apim\"\n\n  [[nsgs.security_rules]]\n  name = \"deny-entra\"\n  priority = 100\n  direction = \"Outbound\"\n  access = \"Deny\"\n  protocol = \"Tcp\"\n  source_address_prefix = \"*\"\n  source_port_range = \"*\"\n  destination_address_prefix = \"AzureActiveDirectory\"\n  destination_port_range = \"443\"\n",
        );
    let found = kv(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("AzureActiveDirectory") && found[0].contains("deny-entra"),
        "{}",
        found[0]
    );
}

// === the same from an ARM template (private endpoint, zone group, zone links, vault, named value) ===

fn arm(params: &[&str]) -> sim::arm::ImportResult {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/arm/keyvault-private-endpoint.json");
    let text = std::fs::read_to_string(p).expect("the template");
    sim::arm::import(
        &[sim::arm::Input::new("keyvault-private-endpoint.json", text)],
        &sim::arm::ImportOptions {
            parameters: params.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn kv_of(f: &Fixture) -> Vec<String> {
    kv(&f.to_toml().expect("TOML"))
}

#[test]
fn arm_template_with_a_key_vault_private_endpoint_warns_until_the_zone_is_linked() {
    let r = arm(&[]);
    assert!(r.unknowns.is_empty(), "{:?}", r.unknowns);
    let f = &r.fixture;
    // The private endpoint: a host in the hub's subnet, named by customNetworkInterfaceName,
    // serving kv1's public name, its A record in the zone group's zone.
    let pe = f
        .hosts
        .iter()
        .find(|h| h.name == "pe-kv1-nic")
        .expect("the endpoint");
    assert_eq!(pe.address, "10.1.1.4");
    assert_eq!(pe.dns, ["kv1.privatelink.vaultcore.azure.net"]);
    assert_eq!(pe.private_link_fqdn.as_deref(), Some("kv1.vault.azure.net"));
    assert_eq!(
        pe.public_network_access,
        Some(sim::fixture::PublicNetworkAccess::Disabled)
    );
    assert_eq!(
        f.private_dns_zones[0].name,
        "privatelink.vaultcore.azure.net"
    );
    assert_eq!(f.private_dns_zones[0].links, ["vnet-hub"]);
    let nv = &f.apim.as_ref().expect("apim").named_values;
    assert_eq!(
        nv[0].key_vault_secret,
        "https://kv1.vault.azure.net/secrets/backend-key"
    );
    // The import round-trips through TOML, and validate warns.
    let found = kv_of(f);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("blocking step: public_access_disabled"),
        "{}",
        found[0]
    );
    // Linking the zone to the instance's VNet removes it.
    let linked = arm(&["linkApimVnet=true"]);
    assert_eq!(
        linked.fixture.private_dns_zones[0].links,
        ["vnet-hub", "vnet-app"]
    );
    assert!(kv_of(&linked.fixture).is_empty());
}

// === one answer: the walk refuses the vault's public address; DNS with NxDomainRedirect ===

/// `check --from apim --to kv1.vault.azure.net:443`, through the one front door.
fn ask_vault(text: &str) -> sim::Verdict {
    let f = Fixture::parse(text, Format::Toml).unwrap_or_else(|e| panic!("{e:?}"));
    let t = Topology::build(&f, ServiceTagTable::builtin()).topology;
    t.ask(&sim::Question {
        protocol: sim::Protocol::Tcp,
        source: t.apim_source().expect("integrated"),
        source_port: Some(60000),
        destination: sim::Destination::Name {
            name: "kv1.vault.azure.net".into(),
            host_names: false,
        },
        destination_port: Some(443),
    })
}

/// ARM `Microsoft.KeyVault/vaults` `publicNetworkAccess`: "If set to 'disabled' all traffic
/// except private endpoint traffic and that that originates from trusted services will be
/// blocked". The flow `check` walks is refused by the vault, with the code the preflight uses.
#[test]
fn check_and_the_preflight_give_one_answer_for_a_disabled_public_endpoint() {
    let v = ask_vault(&base());
    assert_eq!(v.code.as_str(), "PUBLIC_ACCESS_DISABLED", "{}", v.detail);
    assert_eq!(v.verdict, sim::VerdictKind::Deny);
    assert_eq!(
        v.resolved.as_ref().and_then(|r| r.address),
        Some("52.1.2.3".parse().unwrap())
    );
    // Enabled: allowed at the public address, and no NSG of the endpoint's subnet is on the
    // path (the public endpoint is the service's, not the endpoint NIC's).
    let enabled = base().replace(
        r#"public_network_access = "Disabled""#,
        r#"public_network_access = "Enabled""#,
    );
    let v = ask_vault(&enabled);
    assert_eq!(v.code.as_str(), "ALLOWED", "{}", v.detail);
    // Linked: the private address, whatever the public access.
    let linked = base().replace(
        r#"links = ["vnet-hub"]"#,
        r#"links = ["vnet-hub", "vnet-app"]"#,
    );
    let v = ask_vault(&linked);
    assert_eq!(v.code.as_str(), "ALLOWED", "{}", v.detail);
    assert_eq!(
        v.resolved.as_ref().and_then(|r| r.address),
        Some("10.1.1.4".parse().unwrap())
    );
}

/// "Fallback to internet for Azure Private DNS zones": the zone linked to the instance's VNet
/// has no record for kv1 (its endpoint registers in another zone, not among the inputs), so
/// Azure DNS answers NXDOMAIN; `resolution_policy = "NxDomainRedirect"` on the link retries
/// publicly — and the public endpoint then decides.
#[test]
fn nx_domain_redirect_reaches_the_public_endpoint() {
    let no_record = base()
        .replace("dns = [\"kv1.privatelink.vaultcore.azure.net\"]\n", "")
        .replace(r#"links = ["vnet-hub"]"#, r#"links = ["vnet-app"]"#);
    let found = kv(&no_record);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("blocking step: dns") && found[0].contains("NxDomainRedirect"),
        "{}",
        found[0]
    );
    let redirect = no_record.replace(
        r#"links = ["vnet-app"]"#,
        r#"links = [{ vnet = "vnet-app", resolution_policy = "NxDomainRedirect" }]"#,
    );
    let found = kv(&redirect);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("blocking step: public_access_disabled"),
        "{}",
        found[0]
    );
    let v = ask_vault(&redirect);
    assert_eq!(v.code.as_str(), "PUBLIC_ACCESS_DISABLED");
    assert_eq!(
        v.resolved.as_ref().map(|r| r.via),
        Some(sim::Via::PublicFallback)
    );
    let open = redirect.replace(
        r#"public_network_access = "Disabled""#,
        r#"public_network_access = "Enabled""#,
    );
    assert!(kv(&open).is_empty(), "{:?}", kv(&open));
}

/// ARM `virtualNetworkLinks` `resolutionPolicy` (API 2024-06-01) maps onto the link.
#[test]
fn arm_resolution_policy_maps_onto_the_link() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/arm/keyvault-private-endpoint.json");
    let text = std::fs::read_to_string(p).expect("the template").replace(
        r#""properties": { "registrationEnabled": false,"#,
        r#""properties": { "registrationEnabled": false, "resolutionPolicy": "NxDomainRedirect","#,
    );
    let r = sim::arm::import(
        &[sim::arm::Input::new("keyvault-private-endpoint.json", text)],
        &sim::arm::ImportOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let link = &r.fixture.private_dns_zones[0].links[0];
    assert_eq!(link.vnet, "vnet-hub");
    assert_eq!(
        link.resolution_policy,
        sim::fixture::ResolutionPolicy::NxDomainRedirect
    );
    let toml = r.fixture.to_toml().unwrap();
    assert!(toml.contains("NxDomainRedirect"), "{toml}");
}
