//! The admin API: tokens, refused changes that keep the old state, reloads, flows, metrics.

use crate::support::*;

#[tokio::test]
async fn admin_rejects_a_missing_or_wrong_token() {
    let gw = start(&Topo::default(), opts()).await;
    let r = admin(&gw, "GET", "/admin/flows", None, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.code(), "UNAUTHORIZED");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let r = admin(&gw, "GET", "/admin/flows", Some("not-the-token"), None).await;
    assert_eq!(r.status, 401);
    let r = admin(&gw, "POST", "/admin/reload", Some("x"), None).await;
    assert_eq!(r.status, 401);
    let r = admin(
        &gw,
        "PUT",
        "/admin/nsgs/nsg-apim/security_rules",
        None,
        Some("[]".into()),
    )
    .await;
    assert_eq!(r.status, 401);
    // The random token is long, and works.
    assert!(gw.admin_token().len() >= 32);
    let r = admin(&gw, "GET", "/admin/flows", Some(gw.admin_token()), None).await;
    assert_eq!(r.status, 200);
    assert!(r.json().as_array().unwrap().is_empty());
    gw.shutdown().await;
}

#[tokio::test]
async fn invalid_rule_change_is_refused_and_the_old_state_kept() {
    let gw = start(&Topo::default(), opts().admin_token("t0ken")).await;
    assert_eq!(gw.admin_token(), "t0ken");
    // Priority 50 is outside 100..=4096: an error finding.
    let bad = serde_json::json!([rule_json(
        "too-early",
        50,
        "Outbound",
        "Deny",
        "*",
        "*",
        "*"
    )]);
    let r = admin(
        &gw,
        "PUT",
        "/admin/nsgs/nsg-apim/security_rules",
        Some("t0ken"),
        Some(bad.to_string()),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "INVALID_CHANGE");
    let findings = r.json()["findings"].as_array().unwrap().clone();
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == "RULE_PRIORITY_OUT_OF_RANGE"),
        "{findings:#?}"
    );
    // Nothing changed: same generation, and the rule that would deny everything is not there.
    assert_eq!(gw.generation(), 1);
    assert_eq!(get(&gw, "/payments/1").await.status, 200);

    // A malformed rule (no direction) and an unknown NSG are refused too.
    let r = admin(
        &gw,
        "PUT",
        "/admin/nsgs/nsg-apim/security_rules",
        Some("t0ken"),
        Some(r#"[{"name":"x","priority":100,"access":"Deny","protocol":"Tcp","source_address_prefix":"*","source_port_range":"*","destination_address_prefix":"*","destination_port_range":"*"}]"#.into()),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "INVALID_RULES");
    let r = admin(
        &gw,
        "PUT",
        "/admin/nsgs/nope/security_rules",
        Some("t0ken"),
        Some("[]".into()),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "UNKNOWN_NSG");
    let r = admin(
        &gw,
        "PUT",
        "/admin/nsgs/nsg-apim/security_rules",
        Some("t0ken"),
        Some("{".into()),
    )
    .await;
    assert_eq!(r.status, 400);

    // A whole fixture with an error finding, posted as the body, is refused as well.
    let broken = Topo::default().toml().replace("10.0.2.0/24", "10.9.2.0/24");
    let r = admin(&gw, "POST", "/admin/reload", Some("t0ken"), Some(broken)).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.code(), "INVALID_CHANGE");
    assert_eq!(gw.generation(), 1);
    assert_eq!(get(&gw, "/orders/1").await.status, 200);

    // A valid fixture in the body is applied (here as JSON).
    let fixture =
        sim::fixture::Fixture::parse(&Topo::default().toml(), sim::fixture::Format::Toml).unwrap();
    let r = send(
        gw.admin_addr(),
        http::Request::builder()
            .method("POST")
            .uri("/admin/reload")
            .header("authorization", "Bearer t0ken")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                serde_json::to_vec(&fixture).unwrap(),
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(gw.generation(), 2);
    gw.shutdown().await;
}

#[tokio::test]
async fn reload_runs_the_owners_loader_again() {
    let dir = std::env::temp_dir().join(format!("vnetsim-gw-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("topology.toml");
    std::fs::write(&file, Topo::default().toml()).unwrap();
    let built = Topo::default().built();
    let hook = TestReload {
        file: Some(file.clone()),
    };
    let gw = gateway::start(built, opts().reload_with(std::sync::Arc::new(hook)))
        .await
        .unwrap();
    let token = gw.admin_token().to_string();
    assert_eq!(get(&gw, "/payments/1").await.status, 200);

    // An invalid file is refused; the running state stays.
    std::fs::write(&file, "[[vnets]]\nnmae = 1\n").unwrap();
    let r = admin(&gw, "POST", "/admin/reload", Some(&token), None).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "INVALID_FIXTURE");
    assert_eq!(get(&gw, "/payments/1").await.status, 200);

    // A valid file that denies payments is applied on the next reload.
    let deny = Topo {
        apim_rules: deny_payments_out(),
        ..Topo::default()
    };
    std::fs::write(&file, deny.toml()).unwrap();
    let r = admin(&gw, "POST", "/admin/reload", Some(&token), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["generation"], 2);
    // The established payments flow is kept (no flush); check the rules through the API.
    let r = admin(
        &gw,
        "GET",
        "/admin/nsgs/nsg-apim/security_rules",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(r.json()[0]["name"], "deny-payments-out");
    gw.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn flows_and_metrics_endpoints() {
    let gw = start(&Topo::default(), opts()).await;
    assert_eq!(get(&gw, "/orders/1").await.status, 200);
    assert_eq!(get(&gw, "/nothing").await.status, 404);
    eventually("the flow", || gw.flows().len() == 1).await;
    let r = admin(&gw, "GET", "/admin/flows", Some(gw.admin_token()), None).await;
    let flows = r.json();
    let f = &flows[0];
    assert_eq!(f["protocol"], "Tcp");
    assert_eq!(f["destination"], "10.0.2.4");
    assert_eq!(f["destination_port"], 443);
    assert_eq!(f["allowed_by"][0]["nsg"], "nsg-apim");
    assert!(f["allowed_by"][0]["rule"]
        .as_str()
        .unwrap()
        .contains("Rules/"));
    assert!(f["age_ms"].is_u64() && f["requests"] == 1);

    // Metrics need no token.
    let r = admin(&gw, "GET", "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(
        text.contains("vnetsim_gateway_requests_total{api=\"orders\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("vnetsim_gateway_requests_total{api=\"\",status=\"404\"} 1"));
    assert!(text.contains("vnetsim_gateway_request_duration_seconds_count{api=\"orders\"} 1"));
    assert!(text.contains(
        "vnetsim_gateway_flows_total{verdict=\"Allow\",code=\"ALLOWED\",nsg=\"nsg-backend\""
    ));
    assert!(text.contains("vnetsim_gateway_pool_connections{backend=\"https://orders.internal.contoso.com:443\",state=\"open\"} 1"));
    let r = admin(&gw, "GET", "/admin/nope", Some(gw.admin_token()), None).await;
    assert_eq!(r.status, 404);
    gw.shutdown().await;
}
