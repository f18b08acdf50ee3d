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

// === CPU affinity (the one-CPU rows) ===

/// The CPU the one-CPU rows run on: the highest CPU this process may run on (CPU 0 takes most
/// interrupts).
pub(crate) fn pin_cpu() -> Result<usize, BenchError> {
    affinity::allowed_cpus()?
        .last()
        .copied()
        .ok_or_else(|| BenchError::Io {
            what: "reading this process's CPU affinity".into(),
            source: std::io::Error::other("no CPU allowed"),
        })
}

/// Every thread of some processes moved onto one CPU for one run; their previous affinity is
/// restored on drop (threads the processes start meanwhile inherit it from their creator).
pub(crate) struct Pinned {
    saved: Vec<(u32, affinity::CpuSet)>,
}

impl Pinned {
    /// Moves every thread of `pids` onto `cpu`.
    pub(crate) fn new(pids: &[u32], cpu: usize) -> Result<Pinned, BenchError> {
        let mut pinned = Pinned { saved: Vec::new() };
        for &pid in pids {
            for tid in threads_of(pid) {
                let res = affinity::get(tid)
                    .and_then(|old| affinity::set(tid, &affinity::CpuSet::one(cpu)).map(|()| old));
                match res {
                    Ok(old) => pinned.saved.push((tid, old)),
                    // A thread that ended since the listing is not an error.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(source) => {
                        return Err(BenchError::Io {
                            what: format!("pinning thread {tid} of process {pid} to CPU {cpu}"),
                            source,
                        })
                    }
                }
            }
        }
        Ok(pinned)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        for (tid, old) in self.saved.drain(..) {
            // A thread that ended meanwhile has nothing to restore.
            let _ = affinity::set(tid, &old);
        }
    }
}

/// Pins the calling thread to `cpu` (for the thread that runs a one-CPU row's client).
pub(crate) fn pin_current_thread(cpu: usize) -> Result<(), BenchError> {
    affinity::set(0, &affinity::CpuSet::one(cpu)).map_err(|source| BenchError::Io {
        what: format!("pinning the load generator's thread to CPU {cpu}"),
        source,
    })
}

/// The thread ids of `pid` (`/proc/PID/task`), ascending.
fn threads_of(pid: u32) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

#[cfg(target_os = "linux")]
mod affinity {
    use super::BenchError;

    /// A set of CPUs (`cpu_set_t`).
    #[derive(Clone, Copy)]
    pub(crate) struct CpuSet(libc::cpu_set_t);

    impl CpuSet {
        pub(crate) fn one(cpu: usize) -> CpuSet {
            // SAFETY: `cpu_set_t` is a plain bit array; all zeroes is the empty set.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            // SAFETY: `CPU_SET` ignores CPUs past the set's size.
            unsafe { libc::CPU_SET(cpu, &mut set) };
            CpuSet(set)
        }

        fn cpus(&self) -> Vec<usize> {
            let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
            // SAFETY: `CPU_ISSET` reads the set only, for CPUs within its size.
            (0..max)
                .filter(|&c| unsafe { libc::CPU_ISSET(c, &self.0) })
                .collect()
        }
    }

    /// The affinity of thread `tid` (0: the calling thread).
    pub(crate) fn get(tid: u32) -> std::io::Result<CpuSet> {
        let tid = libc::pid_t::try_from(tid).map_err(std::io::Error::other)?;
        // SAFETY: as in `CpuSet::one`.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: the kernel writes at most `size_of::<cpu_set_t>()` bytes into `set`.
        let rc = unsafe {
            libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
        };
        if rc == 0 {
            Ok(CpuSet(set))
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Sets the affinity of thread `tid` (0: the calling thread).
    pub(crate) fn set(tid: u32, set: &CpuSet) -> std::io::Result<()> {
        let tid = libc::pid_t::try_from(tid).map_err(std::io::Error::other)?;
        // SAFETY: the kernel reads `size_of::<cpu_set_t>()` bytes from `set`.
        let rc =
            unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set.0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// The CPUs the calling thread may run on, ascending.
    pub(crate) fn allowed_cpus() -> Result<Vec<usize>, BenchError> {
        get(0).map(|s| s.cpus()).map_err(|source| BenchError::Io {
            what: "reading this process's CPU affinity".into(),
            source,
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod affinity {
    use super::BenchError;

    fn unsupported() -> std::io::Error {
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "CPU pinning (the one-CPU rows) needs Linux",
        )
    }

    #[derive(Clone, Copy)]
    pub(crate) struct CpuSet;

    impl CpuSet {
        pub(crate) fn one(_cpu: usize) -> CpuSet {
            CpuSet
        }
    }

    pub(crate) fn get(_tid: u32) -> std::io::Result<CpuSet> {
        Err(unsupported())
    }

    pub(crate) fn set(_tid: u32, _set: &CpuSet) -> std::io::Result<()> {
        Err(unsupported())
    }

    pub(crate) fn allowed_cpus() -> Result<Vec<usize>, BenchError> {
        Err(BenchError::Io {
            what: "reading this process's CPU affinity".into(),
            source: unsupported(),
        })
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// `Cpus_allowed_list` of every thread of `pid`.
    fn allowed(pid: u32) -> Vec<String> {
        threads_of(pid)
            .into_iter()
            .map(|tid| {
                let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
                    .expect("status readable");
                text.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .expect("Cpus_allowed_list")
                    .trim()
                    .to_string()
            })
            .collect()
    }

    /// A pinned process runs on the one CPU while pinned and gets its old affinity back after.
    #[test]
    fn pinning_moves_every_thread_and_restores_it() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep runs");
        let pid = child.id();
        let before = allowed(pid);
        let cpu = pin_cpu().expect("affinity readable");
        {
            let _pinned = Pinned::new(&[pid], cpu).expect("pinned");
            assert!(
                allowed(pid).iter().all(|a| *a == cpu.to_string()),
                "{:?}",
                allowed(pid)
            );
        }
        assert_eq!(allowed(pid), before);
        let _ = child.kill();
        let _ = child.wait();
    }
}
