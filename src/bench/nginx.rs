//! nginx as the reference proxy: found on `PATH`, configured into the bench's temp dir as a
//! plain reverse proxy to the hello backend, loopback only, with the settings PERF-NOTES lists
//! as the fair comparison: `worker_processes 1`, upstream keep-alive (`proxy_http_version 1.1`
//! and an empty `Connection` header, or nginx opens a new upstream connection per request),
//! `keepalive_requests` raised on both sides, `access_log off`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The first executable `nginx` on `PATH`.
pub fn find_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("nginx"))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Requests per keep-alive connection, client and upstream side: high enough that no
/// connection is recycled during a run (nginx's default of 1000 would be).
pub const KEEPALIVE_REQUESTS: u32 = 10_000_000;

/// The configuration: `listen` on loopback, every request to `backend` over pooled keep-alive
/// connections; temp paths, pid and error log under `dir`.
pub fn config(dir: &Path, listen: SocketAddr, backend: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests {KEEPALIVE_REQUESTS};
    keepalive_timeout 300s;
    upstream hello {{
        server {backend};
        keepalive 256;
        keepalive_requests {KEEPALIVE_REQUESTS};
        keepalive_timeout 300s;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://hello;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_fair_comparison_settings() {
        let c = config(
            Path::new("/tmp/x"),
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        // Each of these is a PERF-NOTES pitfall when missing.
        for needle in [
            "worker_processes 1;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "access_log off;",
            "keepalive 256;",
            "listen 127.0.0.1:1;",
            "server 127.0.0.1:2;",
        ] {
            assert!(c.contains(needle), "missing `{needle}`");
        }
        assert_eq!(c.matches("keepalive_requests 10000000;").count(), 2);
    }
}
