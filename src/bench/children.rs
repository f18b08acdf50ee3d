//! The child processes one `vnetsim bench` run starts — the echo backends, the gateways and
//! nginx — and what the bench reads back from them (ready files, the gateway's `/metrics`).
//! How a single child is spawned, stopped and measured is [`super::child`]'s.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{child, nginx, BenchError};

/// The admin socket of a gateway child (`admin_url` of its ready file).
fn admin_addr(doc: &serde_json::Value, name: &str) -> Result<SocketAddr, BenchError> {
    doc["admin_url"]
        .as_str()
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.trim_end_matches('/').parse().ok())
        .ok_or_else(|| BenchError::Ready {
            name: name.to_string(),
            field: "admin_url",
        })
}

/// The gateway child's flow table from its `GET /metrics`: (flows, bytes).
pub(super) async fn flow_table(admin: SocketAddr) -> Result<(u64, u64), BenchError> {
    let io = |source| BenchError::Io {
        what: format!("reading the gateway's metrics at {admin}"),
        source,
    };
    let resp = crate::client::Client::new(admin, "admin", None)
        .with_timeout(Duration::from_secs(5))
        .get("/metrics")
        .await
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let text = String::from_utf8_lossy(&resp.body);
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    match (
        gauge("vnetsim_gateway_flows_established"),
        gauge("vnetsim_gateway_flow_table_bytes"),
    ) {
        (Some(f), Some(b)) => Ok((f, b)),
        _ => Err(io(std::io::Error::other(format!(
            "{}: no vnetsim_gateway_flows_established / vnetsim_gateway_flow_table_bytes gauges",
            resp.status
        )))),
    }
}

/// The socket address in `field` of child `name`'s ready file.
fn ready_addr(
    doc: &serde_json::Value,
    name: &str,
    field: &'static str,
) -> Result<SocketAddr, BenchError> {
    doc[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Ready {
            name: name.to_string(),
            field,
        })
}

/// The child processes of one bench run, started one by one.
pub(super) struct Children {
    /// The run's temp dir: ready files, stderr files, nginx's prefix.
    dir: PathBuf,
    /// The `vnetsim` binary that plays the backends and gateways.
    exe: PathBuf,
    /// Every child, stopped in reverse order on drop.
    pub(super) procs: Vec<child::ChildProc>,
    /// Admin sockets of the gateway children, by name.
    pub(super) admin: std::collections::BTreeMap<String, SocketAddr>,
}

// === impl Children ===

impl Children {
    /// No children yet; they will run `exe` and keep their files in `dir`.
    pub(super) fn new(dir: PathBuf, exe: PathBuf) -> Children {
        Children {
            dir,
            exe,
            procs: Vec::new(),
            admin: std::collections::BTreeMap::new(),
        }
    }

    pub(super) async fn echo(
        &mut self,
        name: &str,
        tls_name: Option<&str>,
    ) -> Result<(SocketAddr, Option<PathBuf>), BenchError> {
        let ready = self.dir.join(format!("{name}.json"));
        let mut cmd = Command::new(&self.exe);
        cmd.args(["__echo", "--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready);
        if let Some(n) = tls_name {
            cmd.args(["--tls-name", n]);
        }
        let mut p = child::ChildProc::spawn(name, cmd, &self.dir)?;
        let doc = p.wait_ready_file(&ready).await;
        self.procs.push(p);
        let doc = doc?;
        let ca = doc["ca_pem"].as_str().map(PathBuf::from);
        Ok((ready_addr(&doc, name, "addr")?, ca))
    }

    pub(super) async fn gateway(
        &mut self,
        name: &str,
        args: &[String],
    ) -> Result<(SocketAddr, u32, Option<SocketAddr>), BenchError> {
        let ready = self.dir.join(format!("{name}.json"));
        let mut cmd = Command::new(&self.exe);
        cmd.arg("__gateway")
            .args(args)
            .arg("--ready-file")
            .arg(&ready);
        let mut p = child::ChildProc::spawn(name, cmd, &self.dir)?;
        let doc = p.wait_ready_file(&ready).await;
        let pid = p.pid();
        self.procs.push(p);
        let doc = doc?;
        self.admin.insert(name.to_string(), admin_addr(&doc, name)?);
        let unchecked = match doc["unchecked_addr"].as_str() {
            Some(_) => Some(ready_addr(&doc, name, "unchecked_addr")?),
            None => None,
        };
        Ok((ready_addr(&doc, name, "addr")?, pid, unchecked))
    }

    pub(super) async fn nginx(
        &mut self,
        bin: &Path,
        backend: SocketAddr,
    ) -> Result<(SocketAddr, Vec<u32>), BenchError> {
        let dir = self.dir.join("nginx");
        std::fs::create_dir_all(&dir).map_err(|source| BenchError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        let listen = SocketAddr::from(([127, 0, 0, 1], child::free_port()?));
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx::config(&dir, listen, backend)).map_err(|source| {
            BenchError::Io {
                what: format!("writing {}", conf.display()),
                source,
            }
        })?;
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"));
        let mut p = child::ChildProc::spawn("nginx", cmd, &self.dir)?;
        let up = p.wait_listening(listen).await;
        let master = p.pid();
        self.procs.push(p);
        up?;
        // The master accepts into the backlog before its worker exists: wait for the worker,
        // whose CPU is the one that matters.
        let start = std::time::Instant::now();
        let mut workers = child::children_of(master);
        while workers.is_empty() && start.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            workers = child::children_of(master);
        }
        if workers.is_empty() {
            return Err(BenchError::ChildFailed {
                name: "nginx".into(),
                detail: "started no worker process".into(),
            });
        }
        let mut pids = vec![master];
        pids.extend(workers);
        Ok((listen, pids))
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        while let Some(mut p) = self.procs.pop() {
            p.stop();
        }
    }
}
