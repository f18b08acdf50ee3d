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
