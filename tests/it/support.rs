//! Helpers: run the built `vnetsim` binary, find fixtures, write temporary files.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The package root (where `fixtures/` lives); commands run from here.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A path under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures").join(rel)
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as JSON (panics with both streams when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts that stdout is one JSON error document (`--output json` on bad input) and
    /// returns its `error` object: `{"code", "message", "location"}`.
    #[track_caller]
    pub fn json_error(&self) -> serde_json::Value {
        let j = self.json();
        assert_eq!(keys(&j), ["error"], "stdout: {}", self.stdout);
        let e = j["error"].clone();
        assert_eq!(
            keys(&e),
            ["code", "location", "message"],
            "stdout: {}",
            self.stdout
        );
        e
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `vnetsim ARGS` from the package root.
pub fn cli(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_vnetsim"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the vnetsim binary runs");
    Run {
        code: out.status.code().expect("exited normally, not by a signal"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

/// A path as a `&str` argument (temporary paths are UTF-8).
pub fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write a temporary file");
    p
}

/// A tiny `ServiceTags_Public` document: `Storage` and `AzureKeyVault` (the tags the default
/// fixture names) on prefixes the built-in table does not have.
pub const TINY_TAGS: &str = r#"{
  "changeNumber": 4242,
  "cloud": "Public",
  "values": [
    {"name": "Storage", "id": "Storage", "properties": {"changeNumber": 1, "platform": "Azure",
      "addressPrefixes": ["93.184.216.0/24"]}},
    {"name": "AzureKeyVault", "id": "AzureKeyVault", "properties": {"changeNumber": 1,
      "platform": "Azure", "addressPrefixes": ["93.184.217.0/24"]}}
  ]
}"#;

/// An address in the tiny table's `Storage` prefix.
pub const TINY_STORAGE_ADDRESS: &str = "93.184.216.34";

/// `v` without its `location` members, at any depth: for comparing answers about the same
/// topology read from different files.
pub fn without_locations(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("location");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// Asserts that `v` has at least these keys.
#[track_caller]
pub fn has_keys(v: &serde_json::Value, expected: &[&str]) {
    let k = keys(v);
    for e in expected {
        assert!(k.iter().any(|x| x == e), "missing key `{e}` in {v}");
    }
}

/// Stops a running `vnetsim up` with SIGTERM and asserts it exits cleanly; returns its output.
/// `what` names the run in the failure message.
pub fn stop_cleanly(child: std::process::Child, what: &str) -> std::process::Output {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: up did not stop cleanly: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
