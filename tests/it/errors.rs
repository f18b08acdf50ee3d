//! Errors that say why: `up` start failures print their cause chain and exit 2, every command's
//! `--output json` prints a JSON error object on bad input (codes from docs/cli-errors.md),
//! findings tables name their Learn page; and `up --upstream HOST:PORT=http://...` dials a
//! plain-HTTP server for a `tls = true` service.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{arg, cli, fixture, stop_cleanly, tempdir, write};

#[test]
fn up_on_a_busy_port_prints_the_cause_and_exits_2() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let fx = fixture("default.toml");
    let r = cli(&["up", arg(&fx), "--listen", &addr]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("error: starting the simulation"),
        "{}",
        r.stderr
    );
    let cause = r
        .stderr
        .lines()
        .find(|l| l.starts_with("  caused by: "))
        .unwrap_or_else(|| panic!("no cause line: {}", r.stderr));
    assert!(cause.contains(&addr), "{cause}");
    assert!(cause.to_lowercase().contains("in use"), "{cause}");

    let r = cli(&["up", arg(&fx), "--listen", &addr, "--output", "json"]);
    r.expect_code(2);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "START_FAILED");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("in use"),
        "{e}"
    );
    assert!(e["location"].is_null());
    drop(busy);
}

#[test]
fn up_on_a_non_loopback_address_says_so() {
    let r = cli(&[
        "up",
        arg(&fixture("default.toml")),
        "--admin-listen",
        "192.0.2.1:0",
    ]);
    r.expect_code(2);
    assert!(
        r.stderr.contains("caused by: ") && r.stderr.contains("loopback only"),
        "{}",
        r.stderr
    );
}

#[test]
fn check_json_on_a_missing_file_prints_a_json_error() {
    let r = cli(&[
        "check",
        "no/such.toml",
        "--from",
        "apim",
        "--to",
        "orders:443",
        "--output",
        "json",
    ]);
    r.expect_code(2);
    let j = r.json();
    assert_eq!(j["error"]["code"], "FILE_UNREADABLE");
    assert_eq!(j["error"]["location"]["file"], "no/such.toml");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read"),
        "{j}"
    );
    // The text on stderr stays.
    assert!(r.stderr.starts_with("error: no/such.toml"), "{}", r.stderr);
}

#[test]
fn json_errors_carry_a_code_and_a_location() {
    let dir = tempdir();
    let bad = write(
        dir.path(),
        "x.toml",
        "[[vnets]]\nname = \"v\"\ncolour = \"red\"\n",
    );
    let r = cli(&["validate", arg(&bad), "--output", "json"]);
    r.expect_code(2);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "PARSE_ERROR");
    assert_eq!(e["location"]["file"], arg(&bad));
    assert_eq!(e["location"]["line"], 3);
    assert!(e["location"]["column"].as_u64().is_some());

    // A flow the topology does not have.
    let r = cli(&[
        "check",
        arg(&fixture("default.toml")),
        "--from",
        "apim",
        "--to",
        "nowhere:443",
        "--output",
        "json",
    ]);
    r.expect_code(2);
    assert_eq!(r.json()["error"]["code"], "BAD_FLOW");
    assert!(r.json()["error"]["location"].is_null());

    // Structural findings refuse `check`, at the first finding's resource.
    let overlap = fixture("invalid/subnet-overlap.toml");
    let r = cli(&[
        "check",
        arg(&overlap),
        "--from",
        "10.0.1.4",
        "--to",
        "10.0.2.4:443",
        "--output",
        "json",
    ]);
    r.expect_code(2);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "STRUCTURAL_FINDINGS");
    assert!(
        e["message"].as_str().unwrap().contains("SUBNET_OVERLAP"),
        "{e}"
    );
    assert_eq!(e["location"]["file"], arg(&overlap));
    assert!(e["location"]["line"].as_u64().is_some(), "{e}");

    // A usage error, when --output json is on the command line.
    let r = cli(&["check", "--output", "json"]);
    r.expect_code(2);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "USAGE");
    assert!(e["message"].as_str().unwrap().contains("--from"), "{e}");
    // Without it, clap's own text only.
    let r = cli(&["check"]);
    r.expect_code(2);
    assert!(r.stdout.is_empty());
}

#[test]
fn findings_tables_show_the_learn_reference_and_file_line() {
    let fx = fixture("invalid/subnet-overlap.toml");
    let r = cli(&["validate", arg(&fx)]);
    r.expect_code(1);
    let row = r
        .stdout
        .lines()
        .find(|l| l.contains("SUBNET_OVERLAP") && l.contains("error"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(row.starts_with(&format!("{}:", arg(&fx))), "{row}");
    let reference = r
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Learn references:"))
        .find(|l| l.contains("SUBNET_OVERLAP"))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(
        reference.contains("https://learn.microsoft.com/"),
        "{reference}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_upstream_http_plays_a_tls_service_in_plain_http() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let orders = MockServer::start().await;
    Mock::given(path("/v1/7"))
        .respond_with(ResponseTemplate::new(200).set_body_string("plain"))
        .expect(1)
        .mount(&orders)
        .await;
    let dir = tempdir();
    let ready = dir.path().join("ready.json");
    // orders:443 is `tls = true` behind an https:// backend in the default fixture.
    let upstream = format!("orders:443=http://{}", orders.address());
    let mut child = Command::new(env!("CARGO_BIN_EXE_vnetsim"))
        .args([
            "up",
            arg(&fixture("default.toml")),
            "--upstream",
            &upstream,
            "--ready-file",
            arg(&ready),
            "--output",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let doc: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no ready file");
        std::thread::sleep(Duration::from_millis(20));
    };
    // `--output json`: the same document, one line on stdout.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&line).unwrap(),
        doc
    );
    assert_eq!(
        doc["backends"]["orders"]["upstream"],
        orders.address().to_string()
    );
    let addr = doc["gateway_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let client = vnetsim::client::Client::new(addr, "gateway.test", None);
    let r = client.get("/orders/7").await.unwrap();
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "plain"));
    stop_cleanly(child, "up --upstream http://");
}
