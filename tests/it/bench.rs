//! `vnetsim bench` end to end, short: the JSON contract, no errors on the direct and gateway
//! rows, a policy overhead, and no child process left behind. Speed targets are not asserted
//! here (they live in the benchmark); nginx rows appear only when nginx is on PATH.

use crate::support::{cli, has_keys};

#[test]
fn bench_json_has_the_contract_shape_and_reaps_its_children() {
    let run = cli(&[
        "bench",
        "--duration",
        "200ms",
        "--rounds",
        "2",
        "--connections",
        "4",
        "--output",
        "json",
    ]);
    run.expect_code(0);
    // Quiet with --output json: no progress bar on stderr.
    assert!(!run.stderr.contains('['), "{}", run.stderr);
    let doc = run.json();
    has_keys(&doc, &["rows", "ratios", "nsg"]);
    let rows = doc["rows"].as_array().expect("rows is an array");
    for r in rows {
        has_keys(
            r,
            &[
                "name",
                "rps",
                "p50_us",
                "p99_us",
                "cpu_us_per_req",
                "errors",
            ],
        );
    }
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row `{name}` in {doc}"))
    };
    for name in ["direct", "gateway"] {
        let r = row(name);
        assert_eq!(r["errors"], 0, "{name}: {r}");
        assert!(r["rps"].as_f64().unwrap() > 0.0, "{name}: {r}");
    }
    // The gateway is a child process, so its CPU per request is measured.
    assert!(row("gateway")["cpu_us_per_req"].as_f64().unwrap() > 0.0);
    assert!(row("direct")["cpu_us_per_req"].is_null());

    let ratios = &doc["ratios"];
    has_keys(
        ratios,
        &[
            "gateway_vs_direct",
            "gateway_vs_nginx",
            "gateway_cpu_vs_nginx",
            "policy_overhead",
        ],
    );
    assert!(ratios["policy_overhead"].is_f64(), "{ratios}");
    assert!(ratios["gateway_vs_direct"].as_f64().unwrap() > 0.0);
    let with_nginx = vnetsim::testing::find_nginx().is_some();
    // Without nginx the nginx ratios are null; with it they are numbers.
    assert_eq!(ratios["gateway_vs_nginx"].is_f64(), with_nginx, "{ratios}");
    assert_eq!(
        ratios["gateway_cpu_vs_nginx"].is_f64(),
        with_nginx,
        "{ratios}"
    );

    // The keep-alive gateway's flow table: one flow per client connection (4), and its bytes.
    let mem = &doc["memory"];
    assert_eq!(mem["flows_tracked"], 4, "{mem}");
    let per = mem["bytes_per_tracked_flow"].as_f64().unwrap();
    assert!(per > 100.0 && per < 4096.0, "{mem}");

    let nsg = &doc["nsg"];
    has_keys(nsg, &["rules", "compiled_ns", "reference_ns", "speedup"]);
    assert_eq!(nsg["rules"], 1000);
    assert!(nsg["compiled_ns"].as_f64().unwrap() > 0.0);
    // The NSG targets are checked in the report, with the measured values (whether they are
    // met depends on the machine; speed is not asserted here).
    let nsg_targets: Vec<&serde_json::Value> = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("nsg "))
        .collect();
    assert_eq!(nsg_targets.len(), 2, "{}", doc["targets"]);
    assert_eq!(nsg_targets[0]["value"], nsg["compiled_ns"]);
    assert_eq!(nsg_targets[1]["value"], nsg["speedup"]);
    assert!(nsg_targets.iter().all(|t| t["met"].is_boolean()));

    // Every child (backends, gateways, nginx master and worker) is gone.
    let pids = doc["settings"]["child_pids"]
        .as_array()
        .expect("child pids");
    assert!(pids.len() >= 5, "{pids:?}");
    for p in pids {
        let pid = u32::try_from(p.as_u64().unwrap()).unwrap();
        assert!(
            !vnetsim::testing::process_exists(pid),
            "child {pid} still exists"
        );
    }
}

#[test]
fn bench_without_nginx_reports_null_nginx_ratios() {
    let run = cli(&[
        "bench",
        "--duration",
        "100ms",
        "--rounds",
        "1",
        "--connections",
        "2",
        "--no-nginx",
        "--output",
        "json",
    ]);
    run.expect_code(0);
    let doc = run.json();
    assert!(doc["ratios"]["gateway_vs_nginx"].is_null());
    assert!(doc["ratios"]["gateway_cpu_vs_nginx"].is_null());
    assert!(doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| !r["name"].as_str().unwrap().starts_with("nginx")));
}

#[test]
fn bench_only_measures_the_named_rows_and_nulls_the_rest() {
    let run = cli(&[
        "bench",
        "--duration",
        "100ms",
        "--rounds",
        "1",
        "--connections",
        "2",
        "--no-nginx",
        "--only",
        "gateway,direct",
        "--output",
        "json",
    ]);
    run.expect_code(0);
    let doc = run.json();
    let names: Vec<&str> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["direct", "gateway"]);
    let ratios = &doc["ratios"];
    assert!(
        ratios["gateway_vs_direct"].as_f64().unwrap() > 0.0,
        "{ratios}"
    );
    // Rows left out: their ratios are null, never a made-up 0.
    assert!(ratios["policy_overhead"].is_null(), "{ratios}");
    assert!(ratios["gateway_added_p50_us"].is_null(), "{ratios}");

    let bad = cli(&["bench", "--only", "gateway,gatway", "--output", "json"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("unknown row `gatway`") && bad.stderr.contains("gateway_new_flow"),
        "{}",
        bad.stderr
    );
}

#[test]
fn bench_one_cpu_rows_report_the_latency_the_hop_adds() {
    let run = cli(&[
        "bench",
        "--duration",
        "100ms",
        "--rounds",
        "1",
        "--no-nginx",
        "--only",
        "gateway_1conn_1cpu,direct_1conn_1cpu",
        "--output",
        "json",
    ]);
    run.expect_code(0);
    let doc = run.json();
    let rows = doc["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["direct_1conn_1cpu", "gateway_1conn_1cpu"]);
    for r in rows {
        assert_eq!(r["errors"], 0, "{r}");
        assert_eq!(r["connections"], 1, "{r}");
        assert!(r["requests"].as_u64().unwrap() > 0, "{r}");
    }
    // The gateway's CPU is still its own (every thread, pinned or not).
    assert!(rows[1]["cpu_us_per_req"].as_f64().unwrap() > 0.0);
    let ratios = &doc["ratios"];
    assert!(ratios["gateway_added_p50_us_1cpu"].is_f64(), "{ratios}");
    assert!(ratios["gateway_added_p50_us"].is_null(), "{ratios}");
    assert!(ratios["nginx_added_p50_us_1cpu"].is_null(), "{ratios}");
    let target = doc["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["name"]
                .as_str()
                .unwrap()
                .starts_with("gateway_added_p50_us_1cpu")
        })
        .expect("a one-CPU latency target");
    assert_eq!(target["value"], ratios["gateway_added_p50_us_1cpu"]);
}
