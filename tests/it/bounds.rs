//! Hardening: what a topology can make vnetsim read (regular files only, under a size cap;
//! files named by a reload body only when the admin allows it) and how much an ARM template can
//! make it evaluate (ARM's limits and the evaluator's bounds). Every case is bad input with a
//! clear error, quickly and in bounded memory, never a hang, an abort or a leaked file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Value};

use crate::one_answer::{admin_request, up};
use crate::support::{arg, cli, stop_cleanly, tempdir, write};

const VNET: &str =
    "[[vnets]]\nname = \"v\"\nregion = \"westeurope\"\naddress_space = [\"10.0.0.0/16\"]\n";

/// A fixture naming `file` as its service tag file.
fn with_tags(file: &str) -> String {
    format!("[service_tags]\nfile = {file:?}\n\n{VNET}")
}

fn fifo(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let made = Command::new("mkfifo")
        .arg(&p)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    p
}

/// `vnetsim ARGS` with its exit code, stderr, wall time and peak resident memory (from
/// `wait4`, this child's own, not every child's of the test process), killed after `limit`.
fn measured(args: &[&str], limit: Duration) -> (i32, String, Duration, u64) {
    let dir = tempdir();
    let err_path = dir.path().join("stderr");
    #[expect(
        clippy::zombie_processes,
        reason = "reaped by libc::wait4 below, which also reports this child's own peak RSS"
    )]
    let child = Command::new(env!("CARGO_BIN_EXE_vnetsim"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let start = Instant::now();
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child, not yet waited for; both out-pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4 failed");
        if r == pid {
            break;
        }
        if start.elapsed() > limit {
            // SAFETY: signalling our own child that has not been reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("vnetsim {args:?} still ran after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = start.elapsed();
    assert!(
        libc::WIFEXITED(status),
        "vnetsim {args:?} ended by signal {} (an abort?)",
        libc::WTERMSIG(status)
    );
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    // ru_maxrss is in KiB on Linux.
    let rss = u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024;
    (libc::WEXITSTATUS(status), stderr, elapsed, rss)
}

// === files a topology names ===

#[test]
fn validate_refuses_devices_and_fifos_as_tag_files_at_once() {
    let dir = tempdir();
    let fifo = fifo(dir.path(), "tags.json");
    for file in ["/dev/zero", arg(&fifo)] {
        let fx = write(dir.path(), "f.toml", &with_tags(file));
        let start = Instant::now();
        let run = cli(&["validate", arg(&fx)]);
        // /dev/zero used to be read without end, and a FIFO blocked the open forever.
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{file}: {:?}",
            start.elapsed()
        );
        run.expect_code(2);
        assert!(
            run.stderr.contains("not a regular file") && run.stderr.contains(file),
            "{}",
            run.stderr
        );
    }
    // The fixture itself, or a --parameters file, must be regular files too.
    let run = cli(&["validate", arg(&fifo)]);
    run.expect_code(2);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
}

#[test]
fn a_tag_file_that_is_not_one_is_not_quoted() {
    let dir = tempdir();
    let fx = write(dir.path(), "f.toml", &with_tags("/etc/passwd"));
    let run = cli(&["validate", arg(&fx)]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("not a ServiceTags_Public document"),
        "{}",
        run.stderr
    );
    // The 422 detail used to show the file's parse error, lines and all.
    assert!(!run.stderr.contains("root:"), "{}", run.stderr);
}

#[test]
fn the_file_size_cap_is_configurable() {
    let dir = tempdir();
    let fx = write(dir.path(), "f.toml", VNET);
    cli(&["validate", arg(&fx)]).expect_code(0);
    let run = cli(&["validate", arg(&fx), "--max-file-bytes", "16"]);
    run.expect_code(2);
    assert!(run.stderr.contains("16-byte limit"), "{}", run.stderr);
}

/// A reload body naming a FIFO (or `/dev/zero`) is refused at once, and `up` still stops on
/// SIGTERM within the shutdown grace: the reload used to block the process for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_bodies_cannot_name_devices_or_fifos() {
    for allow in [false, true] {
        let dir = tempdir();
        let fx = write(dir.path(), "f.toml", VNET);
        let fifo = fifo(dir.path(), "tags.json");
        let ready = dir.path().join("ready.json");
        let mut args = vec![arg(&fx)];
        if allow {
            args.push("--reload-body-files");
        }
        let (child, doc) = up(&args, &ready);
        let bodies = [
            with_tags(arg(&fifo)),
            with_tags("/dev/zero"),
            // Relative, inside the folder: allowed only with --reload-body-files, and then
            // refused because it is a FIFO.
            with_tags("tags.json"),
        ];
        for body in bodies {
            let start = Instant::now();
            let r = admin_request(
                &doc,
                Method::POST,
                "/admin/reload",
                "application/toml",
                body.clone(),
            )
            .await;
            assert!(start.elapsed() < Duration::from_secs(3), "{body}");
            assert_eq!(r.status, 422, "{body}: {}", r.text());
            let problem: Value = r.json().unwrap();
            assert_eq!(problem["code"], "INVALID_FIXTURE", "{problem}");
            let detail = problem["detail"].as_str().unwrap_or_default();
            // Without the flag every file is refused, saying how to allow it; with it, paths
            // outside the folder are refused and the FIFO inside is not a regular file.
            let expected = match (allow, body.contains("\"tags.json\"")) {
                (false, _) => "--reload-body-files",
                (true, false) => "inside the fixture's folder",
                (true, true) => "not a regular file",
            };
            assert!(detail.contains(expected), "{body}: {detail}");
        }
        let start = Instant::now();
        stop_cleanly(child, "up after refused reloads");
        assert!(
            start.elapsed() < gateway::config::DEFAULT_SHUTDOWN_GRACE,
            "{:?}",
            start.elapsed()
        );
    }
}

// === ARM evaluation ===

fn template(variables: Value, prefix: &str) -> String {
    json!({
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "variables": variables,
        "resources": [{ "type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "westeurope",
            "properties": { "addressSpace": { "addressPrefixes": [prefix] } } }]
    })
    .to_string()
}

/// `validate` on `text` exits 2 with ARM_LIMIT_EXCEEDED within 2 s and under 300 MB.
fn refused_quickly(name: &str, text: &str, limit_name: &str) {
    let dir = tempdir();
    let t = write(dir.path(), name, text);
    let (code, stderr, elapsed, rss) = measured(&["validate", arg(&t)], Duration::from_secs(20));
    assert_eq!(code, 2, "{name}: {stderr}");
    assert!(stderr.contains("ARM_LIMIT_EXCEEDED"), "{name}: {stderr}");
    assert!(stderr.contains(limit_name), "{name}: {stderr}");
    assert!(elapsed < Duration::from_secs(2), "{name}: {elapsed:?}");
    assert!(rss < 300 << 20, "{name}: peak RSS {} MB", rss >> 20);
}

#[test]
fn doubling_template_is_refused_in_bounded_memory() {
    // 2.5 KB that doubled a string 40 times: ~2 GB, then SIGABRT.
    let mut vars = serde_json::Map::new();
    vars.insert("v0".into(), json!("aaaaaaaaaa"));
    for i in 1..=40 {
        vars.insert(
            format!("v{i}"),
            json!(format!(
                "[concat(variables('v{0}'), variables('v{0}'))]",
                i - 1
            )),
        );
    }
    let text = template(vars.into(), "[variables('v40')]");
    assert!(text.len() < 3_000);
    refused_quickly("doubling.json", &text, "bytes of one evaluated value");
}

#[test]
fn long_chains_are_refused_not_a_stack_overflow() {
    // 3,000 variables, each the previous one: a stack overflow (exit 134) before.
    let mut vars = serde_json::Map::new();
    vars.insert("v0".into(), json!("10.0.0.0/16"));
    for i in 1..3_000 {
        vars.insert(format!("v{i}"), json!(format!("[variables('v{}')]", i - 1)));
    }
    let text = template(vars.into(), "[variables('v2999')]");
    refused_quickly("chain.json", &text, "variables in a template");
    // 26,000 accessors on one value.
    let vars = json!({ "o": { "a": "10.0.0.0/16" } });
    let text = template(vars, &format!("[variables('o'){}]", ".a".repeat(26_000)));
    refused_quickly(
        "accessors.json",
        &text,
        "characters in a template expression",
    );
    let vars = json!({ "o": [["10.0.0.0/16"]] });
    let text = template(vars, &format!("[variables('o'){}]", "[0]".repeat(5_000)));
    refused_quickly("indexes.json", &text, "nesting levels of an expression");
}

#[test]
fn deeply_nested_fixtures_are_load_errors() {
    let dir = tempdir();
    let n = 100_000;
    let cases = [
        (
            "deep.toml",
            format!("vnets = {}1{}", "[".repeat(n), "]".repeat(n)),
        ),
        (
            "deep.json",
            format!("{{\"vnets\": {}1{}}}", "[".repeat(n), "]".repeat(n)),
        ),
        (
            "deep.yaml",
            format!("vnets: {}1{}", "[".repeat(n), "]".repeat(n)),
        ),
    ];
    for (name, text) in cases {
        let fx = write(dir.path(), name, &text);
        let (code, stderr, elapsed, _) = measured(&["validate", arg(&fx)], Duration::from_secs(20));
        // A load error naming the file (exit 2), not a stack overflow or a minute of parsing.
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        assert!(elapsed < Duration::from_secs(3), "{name}: {elapsed:?}");
    }
}
