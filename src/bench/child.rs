//! The child processes of `vnetsim bench` — the hello backend, the gateways and nginx — and
//! what the bench reads about them from `/proc`.
//!
//! Every child is a [`ChildProc`]: its stderr goes to a file in the bench's temp dir (quoted
//! when it fails to start), it dies with the bench process (`PR_SET_PDEATHSIG` on Linux, in case
//! the bench itself is killed), and dropping the guard stops it — `SIGTERM`, a short grace, then
//! `SIGKILL` — and reaps it, so no child outlives a run, an error or a Ctrl-C.

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BenchError;

/// How long a child may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a child has to exit after `SIGTERM` before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running child process, stopped and reaped on drop.
#[derive(Debug)]
pub(crate) struct ChildProc {
    /// What it plays (`backend`, `gateway`, `nginx`), for messages.
    pub(crate) name: String,
    child: Option<Child>,
    stderr_path: PathBuf,
}

// === impl ChildProc ===

impl ChildProc {
    /// Spawns `cmd` with stdin and stdout closed and stderr into `dir/<name>.stderr`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Result<ChildProc, BenchError> {
        let stderr_path = dir.join(format!("{name}.stderr"));
        let stderr = File::create(&stderr_path).map_err(|source| BenchError::Io {
            what: format!("creating {}", stderr_path.display()),
            source,
        })?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|source| BenchError::Io {
            what: format!("starting the {name} process ({:?})", cmd.get_program()),
            source,
        })?;
        Ok(ChildProc {
            name: name.to_string(),
            child: Some(child),
            stderr_path,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails with the child's stderr when it has exited.
    pub(crate) fn check_alive(&mut self) -> Result<(), BenchError> {
        let exited = match self.child.as_mut() {
            Some(c) => c.try_wait().ok().flatten(),
            None => None,
        };
        match exited {
            None => Ok(()),
            Some(status) => Err(BenchError::ChildFailed {
                name: self.name.clone(),
                detail: format!("exited ({status}): {}", self.stderr_tail()),
            }),
        }
    }

    /// Waits for `path` to hold complete JSON (ready files are written atomically).
    pub(crate) async fn wait_ready_file(
        &mut self,
        path: &Path,
    ) -> Result<serde_json::Value, BenchError> {
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(path) {
                if let Ok(v) = serde_json::from_str(&text) {
                    return Ok(v);
                }
            }
            self.check_alive()?;
            if start.elapsed() > READY_TIMEOUT {
                return Err(self.not_ready());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `addr` accepts TCP connections.
    pub(crate) async fn wait_listening(&mut self, addr: SocketAddr) -> Result<(), BenchError> {
        let start = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            self.check_alive()?;
            if start.elapsed() > READY_TIMEOUT {
                return Err(self.not_ready());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn not_ready(&self) -> BenchError {
        BenchError::ChildFailed {
            name: self.name.clone(),
            detail: format!(
                "not ready after {}s: {}",
                READY_TIMEOUT.as_secs(),
                self.stderr_tail()
            ),
        }
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n");
        if tail.is_empty() {
            "(no stderr)".into()
        } else {
            tail
        }
    }

    /// Stops the child (`SIGTERM`, then `SIGKILL` after a grace period) and reaps it.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        terminate(&child);
        let start = Instant::now();
        while start.elapsed() < STOP_GRACE {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(unix)]
fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: `kill` has no memory-safety preconditions; `pid` is our own unreaped child,
        // so it cannot have been recycled for another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

#[cfg(not(unix))]
fn terminate(_child: &Child) {}

#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs between fork and exec and only calls `prctl`, which is
    // async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// A loopback port that was free a moment ago (for nginx, which cannot report its own).
pub(crate) fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| BenchError::Io {
        what: "finding a free loopback port".into(),
        source,
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| BenchError::Io {
            what: "finding a free loopback port".into(),
            source,
        })
}

// === /proc ===

/// Clock ticks per second of `/proc/PID/stat` times.
fn clock_ticks() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: `sysconf` only reads a configuration value.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            return t as f64;
        }
    }
    100.0
}

/// The fields of `/proc/PID/stat` after the command name (field 3 is index 0).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// CPU time (user + system, every thread) of `pids`, in microseconds; `None` where `/proc` is
/// not readable.
pub(crate) fn cpu_us(pids: &[u32]) -> Option<f64> {
    let mut ticks = 0u64;
    for pid in pids {
        let f = stat_fields(*pid)?;
        // utime and stime are fields 14 and 15.
        let u: u64 = f.get(11)?.parse().ok()?;
        let s: u64 = f.get(12)?.parse().ok()?;
        ticks += u + s;
    }
    Some(ticks as f64 * 1e6 / clock_ticks())
}

/// The direct children of `pid` (nginx's worker under its master).
pub(crate) fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // ppid is field 4.
        if stat_fields(child).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(pid) {
            out.push(child);
        }
    }
    out.sort_unstable();
    out
}

/// Peak resident set size (`VmHWM`) of `pid`, KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Whether a process with this id exists (not yet reaped).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
