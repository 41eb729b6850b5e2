//! The process metrics every Prometheus client library exports
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...),
//! read from `/proc/self` when encoding. Linux only; elsewhere there are
//! none.

/// Name (counters without `_total`), value.
pub(crate) type Sample = (&'static str, f64);

/// The current values.
#[cfg(target_os = "linux")]
pub(crate) fn samples() -> Vec<Sample> {
    let Ok(me) = procfs::process::Process::myself() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(6);
    if let Ok(stat) = me.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        out.push((
            "process_cpu_seconds",
            (stat.utime + stat.stime) as f64 / ticks,
        ));
        out.push((
            "process_resident_memory_bytes",
            (stat.rss * procfs::page_size()) as f64,
        ));
        out.push(("process_virtual_memory_bytes", stat.vsize as f64));
        if let Ok(boot) = procfs::boot_time_secs() {
            let start = boot as f64 + stat.starttime as f64 / ticks;
            out.push(("process_start_time_seconds", start));
        }
    }
    if let Ok(n) = me.fd_count() {
        out.push(("process_open_fds", n as f64));
    }
    if let Ok(limits) = me.limits()
        && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
    {
        out.push(("process_max_fds", max as f64));
    }
    out
}

/// No `/proc` here.
#[cfg(not(target_os = "linux"))]
pub(crate) fn samples() -> Vec<Sample> {
    Vec::new()
}
