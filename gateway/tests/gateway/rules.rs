//! Rule and flow control on the admin API: one rule put (201, then 200) or deleted while the
//! NSG's other rules stay, NSGs read back, the whole-list replace reporting what it removed,
//! flushing established flows, and `now` on each flow.

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::*;

/// `keep-me` on nsg-apim: an outbound allow that no test touches (priority 300).
fn keep_me() -> String {
    rule(
        "keep-me",
        300,
        "Outbound",
        "Allow",
        "*",
        "10.0.2.0/24",
        "443",
    )
}

/// A gateway whose nsg-apim holds `keep-me`; returns it with its admin token.
async fn started() -> (gateway::GatewayHandle, String) {
    let topo = Topo {
        apim_rules: keep_me(),
        ..Topo::default()
    };
    let gw = start(&topo, opts()).await;
    let token = gw.admin_token().to_string();
    (gw, token)
}

/// [`deny_payments_out_json`] without its `name` (the path names it).
fn deny_payments_body(priority: u32) -> String {
    let mut v = deny_payments_out_json();
    let o = v.as_object_mut().unwrap();
    o.remove("name");
    o.insert("priority".into(), priority.into());
    v.to_string()
}

const DENY_PATH: &str = "/admin/nsgs/nsg-apim/security_rules/deny-payments-out";

/// The custom rule names of nsg-apim, read through `GET /admin/nsgs/nsg-apim`.
async fn rule_names(gw: &gateway::GatewayHandle, token: &str) -> Vec<String> {
    let r = admin(gw, "GET", "/admin/nsgs/nsg-apim", Some(token), None).await;
    assert_eq!(r.status, 200);
    r.json()["security_rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

/// `PUT` of the one-rule deny for payments at `priority`.
async fn put_deny(gw: &gateway::GatewayHandle, token: &str, priority: u32) -> Resp {
    admin(
        gw,
        "PUT",
        DENY_PATH,
        Some(token),
        Some(deny_payments_body(priority)),
    )
    .await
}

#[tokio::test]
async fn one_rule_put_creates_then_replaces_and_keeps_the_other_rules() {
    let (gw, token) = started().await;
    let r = put_deny(&gw, &token, 100).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let report = r.json();
    assert_eq!(report["created"], serde_json::json!(["deny-payments-out"]));
    assert_eq!(report["replaced"], serde_json::json!([]));
    assert_eq!(report["removed"], serde_json::json!([]));
    assert_eq!(report["generation"], 2);
    assert_eq!(r.header("location").as_deref(), Some(DENY_PATH));
    // The NSG's other rule stayed; the new one is in force for new flows.
    assert_eq!(
        rule_names(&gw, &token).await,
        ["keep-me", "deny-payments-out"]
    );
    let denied = get(&gw, "/payments/2").await;
    assert_eq!(denied.status, 502);
    assert_eq!(denied.code(), "NSG_DENIED");
    assert_eq!(denied.json()["rule"], "securityRules/deny-payments-out");

    // The same path again (a body naming the same rule is fine) replaces it in place: 200.
    let mut body = deny_payments_out_json();
    body["priority"] = 120.into();
    let r = admin(&gw, "PUT", DENY_PATH, Some(&token), Some(body.to_string())).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.json()["replaced"],
        serde_json::json!(["deny-payments-out"])
    );
    assert_eq!(r.json()["created"], serde_json::json!([]));
    assert_eq!(
        rule_names(&gw, &token).await,
        ["keep-me", "deny-payments-out"]
    );
    let one = admin(&gw, "GET", DENY_PATH, Some(&token), None).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["priority"], 120);
    assert_eq!(gw.generation(), 3);
    gw.shutdown().await;
}

#[tokio::test]
async fn an_invalid_one_rule_put_is_refused_and_the_old_state_kept() {
    let (gw, token) = started().await;
    let before = admin(&gw, "GET", "/admin/nsgs/nsg-apim", Some(&token), None)
        .await
        .json();

    // Priority 50 is outside 100..=4096: a topology with an error finding, 422 with findings.
    let r = put_deny(&gw, &token, 50).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "INVALID_CHANGE");
    let findings = r.json()["findings"].as_array().unwrap().clone();
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "RULE_PRIORITY_OUT_OF_RANGE"),
        "{findings:#?}"
    );
    // keep-me's priority and direction again: RULE_PRIORITY_DUPLICATE.
    let r = put_deny(&gw, &token, 300).await;
    assert_eq!(r.status, 422);
    assert!(r.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "RULE_PRIORITY_DUPLICATE"));
    // Not the fixture's rule shape: no direction, or an unknown key.
    let mut no_direction = deny_payments_out_json();
    no_direction.as_object_mut().unwrap().remove("direction");
    let r = admin(
        &gw,
        "PUT",
        DENY_PATH,
        Some(&token),
        Some(no_direction.to_string()),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (422, "INVALID_RULES"));
    let mut unknown_key = deny_payments_out_json();
    unknown_key["colour"] = "red".into();
    let r = admin(
        &gw,
        "PUT",
        DENY_PATH,
        Some(&token),
        Some(unknown_key.to_string()),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (422, "INVALID_RULES"));
    // A body naming another rule than the path.
    let mut other = deny_payments_out_json();
    other["name"] = "something-else".into();
    let r = admin(&gw, "PUT", DENY_PATH, Some(&token), Some(other.to_string())).await;
    assert_eq!((r.status, r.code().as_str()), (422, "RULE_NAME_MISMATCH"));
    // A default rule's name cannot be put.
    let r = admin(
        &gw,
        "PUT",
        "/admin/nsgs/nsg-apim/security_rules/AllowVnetOutBound",
        Some(&token),
        Some(deny_payments_body(130)),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (422, "DEFAULT_RULE"));
    // An unknown NSG, and a body that is not a JSON object.
    let r = admin(
        &gw,
        "PUT",
        "/admin/nsgs/nope/security_rules/deny-payments-out",
        Some(&token),
        Some(deny_payments_body(100)),
    )
    .await;
    assert_eq!((r.status, r.code().as_str()), (404, "UNKNOWN_NSG"));
    let r = admin(&gw, "PUT", DENY_PATH, Some(&token), Some("[]".into())).await;
    assert_eq!(r.status, 400);

    // Nothing was applied: same generation, same NSG, payments still allowed.
    assert_eq!(gw.generation(), 1);
    let after = admin(&gw, "GET", "/admin/nsgs/nsg-apim", Some(&token), None)
        .await
        .json();
    assert_eq!(after, before);
    assert_eq!(get(&gw, "/payments/1").await.status, 200);
    gw.shutdown().await;
}

#[tokio::test]
async fn delete_removes_a_custom_rule_and_refuses_default_rules() {
    let (gw, token) = started().await;
    let r = put_deny(&gw, &token, 100).await;
    assert_eq!(r.status, 201);
    assert_eq!(get(&gw, "/payments/1").await.code(), "NSG_DENIED");

    let r = admin(&gw, "DELETE", DENY_PATH, Some(&token), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.json()["removed"],
        serde_json::json!(["deny-payments-out"])
    );
    assert_eq!(rule_names(&gw, &token).await, ["keep-me"]);
    // Payments are allowed again for new flows.
    assert_eq!(get(&gw, "/payments/2").await.status, 200);
    // Gone: a second delete and a read find nothing.
    let r = admin(&gw, "DELETE", DENY_PATH, Some(&token), None).await;
    assert_eq!((r.status, r.code().as_str()), (404, "UNKNOWN_RULE"));
    let r = admin(&gw, "GET", DENY_PATH, Some(&token), None).await;
    assert_eq!((r.status, r.code().as_str()), (404, "UNKNOWN_RULE"));

    // Default rules, by name or qualified (two segments, or one with `%2F`): 422.
    for default in [
        "AllowVnetOutBound",
        "defaultSecurityRules/AllowInternetOutBound",
        "defaultSecurityRules%2FDenyAllOutBound",
    ] {
        let p = format!("/admin/nsgs/nsg-apim/security_rules/{default}");
        let r = admin(&gw, "DELETE", &p, Some(&token), None).await;
        assert_eq!((r.status, r.code().as_str()), (422, "DEFAULT_RULE"), "{p}");
    }
    // Only the first delete was applied.
    assert_eq!(gw.generation(), 3);
    gw.shutdown().await;
}

#[tokio::test]
async fn nsgs_read_back_as_name_flush_connection_and_rules() {
    let (gw, token) = started().await;
    let r = admin(&gw, "GET", "/admin/nsgs", Some(&token), None).await;
    assert_eq!(r.status, 200);
    let all = r.json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    // Exactly these three keys, always present.
    for n in all {
        let mut keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["flush_connection", "name", "security_rules"]);
    }
    assert_eq!(all[0]["name"], "nsg-apim");
    assert_eq!(all[0]["flush_connection"], false);
    assert_eq!(all[0]["security_rules"][0]["name"], "keep-me");
    assert_eq!(all[0]["security_rules"][0]["destination_port_range"], "443");
    assert_eq!(all[1]["name"], "nsg-backend");
    assert_eq!(all[1]["security_rules"], serde_json::json!([]));

    // One NSG by name (case-insensitive, as Azure's names), the same object.
    let r = admin(&gw, "GET", "/admin/nsgs/NSG-APIM", Some(&token), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), all[0]);
    let r = admin(&gw, "GET", "/admin/nsgs/nope", Some(&token), None).await;
    assert_eq!((r.status, r.code().as_str()), (404, "UNKNOWN_NSG"));
    // Reading needs the token; writing the collection is not a thing.
    let r = admin(&gw, "GET", "/admin/nsgs", None, None).await;
    assert_eq!(r.status, 401);
    let r = admin(&gw, "POST", "/admin/nsgs", Some(&token), None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow").as_deref(), Some("GET"));
    gw.shutdown().await;
}

#[tokio::test]
async fn whole_list_put_replaces_and_lists_what_it_removed() {
    let topo = Topo {
        apim_rules: format!(
            "{}{}",
            keep_me(),
            rule(
                "old-rule",
                310,
                "Outbound",
                "Allow",
                "*",
                "10.0.2.0/24",
                "80"
            )
        ),
        ..Topo::default()
    };
    let gw = start(&topo, opts()).await;
    let token = gw.admin_token().to_string();
    let body = serde_json::json!([
        rule_json(
            "keep-me",
            300,
            "Outbound",
            "Allow",
            "*",
            "10.0.2.0/24",
            "443"
        ),
        deny_payments_out_json(),
    ]);
    let r = admin(
        &gw,
        "PUT",
        "/admin/nsgs/nsg-apim/security_rules",
        Some(&token),
        Some(body.to_string()),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let report = r.json();
    // The rule left out is removed, and the report says so beside the usual fields.
    assert_eq!(report["removed"], serde_json::json!(["old-rule"]));
    assert_eq!(report["replaced"], serde_json::json!(["keep-me"]));
    assert_eq!(report["created"], serde_json::json!(["deny-payments-out"]));
    assert_eq!(report["generation"], 2);
    assert_eq!(report["flows_checked"], 0);
    assert_eq!(report["flows_cut"], 0);
    assert!(report["findings"].is_array());
    assert_eq!(
        rule_names(&gw, &token).await,
        ["keep-me", "deny-payments-out"]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn flush_makes_the_next_request_a_new_flow_and_now_shows_the_new_verdict() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/fast"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fast"))
        .mount(&mock)
        .await;
    let gw = start(
        &Topo::default(),
        opts().upstream("payments", 80, *mock.address()),
    )
    .await;
    let token = gw.admin_token().to_string();
    assert_eq!(get(&gw, "/payments/fast").await.status, 200);
    eventually("one pooled flow", || gw.flows().len() == 1).await;
    // Allowed now, by the default rule that lets the instance reach the internet.
    let flows = admin(&gw, "GET", "/admin/flows", Some(&token), None)
        .await
        .json();
    assert_eq!(
        flows[0]["now"],
        serde_json::json!({
            "verdict": "Allow", "code": "ALLOWED", "nsg": "nsg-apim",
            "rule": "defaultSecurityRules/AllowInternetOutBound",
        })
    );

    // A deny on an NSG without flush_connection: the pooled flow is kept…
    let r = put_deny(&gw, &token, 100).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.json()["flows_cut"], 0);
    let r = get(&gw, "/payments/fast").await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"fast");
    // …and `now` says what the rules would decide for it as a new flow, naming the rule.
    let flows = admin(&gw, "GET", "/admin/flows", Some(&token), None)
        .await
        .json();
    assert_eq!(flows.as_array().unwrap().len(), 1);
    let f = &flows[0];
    assert_eq!(
        f["now"],
        serde_json::json!({
            "verdict": "Deny", "code": "NSG_DENIED", "nsg": "nsg-apim",
            "rule": "securityRules/deny-payments-out",
        })
    );
    assert_eq!(f["flushed"], false);
    assert_eq!(f["requests"], 2);

    // The flush ends it: the next request is a new flow, decided afresh, and denied.
    let r = admin(&gw, "POST", "/admin/flows/flush", Some(&token), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["flushed"], 1);
    assert!(r.json()["idle_closed"].as_u64().unwrap() <= 1);
    let r = get(&gw, "/payments/fast").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.code(), "NSG_DENIED");
    assert_eq!(r.json()["rule"], "securityRules/deny-payments-out");
    eventually("the flushed flow to close", || gw.flows().is_empty()).await;
    // The backend saw the two requests before the flush, nothing after.
    assert_eq!(mock.received_requests().await.unwrap().len(), 2);
    // A second flush finds nothing; only POST flushes, and only with the token.
    let r = admin(&gw, "POST", "/admin/flows/flush", Some(&token), None).await;
    assert_eq!(r.json()["flushed"], 0);
    let r = admin(&gw, "GET", "/admin/flows/flush", Some(&token), None).await;
    assert_eq!(r.status, 405);
    let r = admin(&gw, "POST", "/admin/flows/flush", None, None).await;
    assert_eq!(r.status, 401);
    assert!(gw
        .metrics_text()
        .contains("vnetsim_gateway_flows_flushed_total 1"));
    gw.shutdown().await;
}
