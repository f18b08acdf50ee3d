//! The process runtime of a running gateway, shared by `vnetsim up` and the bench's gateway
//! child: the Tokio runtime it runs on, and the signals that stop it.

/// The default number of proxy threads: one per *free* core (one core is left to the client
/// and backends that share the machine), at least one. On 2 cores that is one thread, which
/// PERF-NOTES found fastest (a second proxy thread never raised throughput and tripled p99).
pub fn default_proxy_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .saturating_sub(1)
        .max(1)
}

/// The runtime a gateway runs on: one `current_thread` runtime for `threads == 1` (the default
/// on small machines), else a multi-thread runtime with `threads` workers.
///
/// # Errors
/// When the runtime cannot be built (no threads, no timer).
pub fn proxy_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

/// Waits for Ctrl-C or SIGTERM (Ctrl-C alone off Unix).
///
/// # Errors
/// When a signal handler cannot be installed.
#[cfg(unix)]
pub async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

/// Waits for Ctrl-C or SIGTERM (Ctrl-C alone off Unix).
///
/// # Errors
/// When the Ctrl-C handler cannot be installed.
#[cfg(not(unix))]
pub async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
