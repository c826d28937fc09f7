//! Process and host CPU and memory, read from Linux's `/proc`.
//!
//! The parsers take a file's text and return `None` on anything unexpected;
//! [`HostSampler`] keeps the previous CPU counters so that CPU percentages
//! are over the window between two samples. Two constants stand in for
//! `sysconf`, which needs libc (not a dependency of this crate):
//! [`CLOCK_TICKS_PER_SECOND`] and [`PAGE_SIZE`]; the resident memory is
//! read from `/proc/self/status` (in kB, no page size involved) and only
//! falls back to `/proc/self/statm` × [`PAGE_SIZE`].
//!
//! On other systems (or without `/proc`) every value is `None`.

use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `USER_HZ`, the unit of the CPU times in `/proc`: 100 on every mainstream
/// Linux architecture (x86, x86-64, arm, arm64, riscv, ppc, s390), whatever
/// the kernel's internal `HZ`. `sysconf(_SC_CLK_TCK)` would need libc.
pub const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// The page size assumed for `/proc/self/statm` (4 KiB on x86-64 and most
/// arm64 kernels). Only used when `/proc/self/status` has no `VmRSS`.
pub const PAGE_SIZE: u64 = 4096;

/// CPU and memory of this process and its host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HostMetrics {
    /// CPU time of this process over the window, in percent of one core.
    pub process_cpu_percent: Option<f64>,
    /// Resident memory of this process, in bytes.
    pub process_memory_bytes: Option<u64>,
    /// Busy CPU time of the host over the window, in percent of all cores.
    pub host_cpu_percent: Option<f64>,
    /// Host memory in use (total minus available), in percent.
    pub host_memory_percent: Option<f64>,
}

/// Cumulative CPU times of the host (the `cpu` line of `/proc/stat`), in
/// clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest
    /// time is already inside user and nice).
    pub total: u64,
    /// idle + iowait.
    pub idle: u64,
}

/// The user and system CPU time of a process (`utime + stime`, fields 14 and
/// 15 of `/proc/<pid>/stat`), in clock ticks. The command name (field 2) is
/// in parentheses and may hold spaces and parentheses itself, so fields are
/// counted from the last `)`.
pub fn parse_process_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): utime is field 14, stime field 15.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Resident memory from `/proc/<pid>/statm` (second field, in pages) times
/// [`PAGE_SIZE`].
pub fn parse_statm_rss_bytes(statm: &str) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(PAGE_SIZE)
}

/// Resident memory from the `VmRSS:` line of `/proc/<pid>/status` (in kB,
/// meaning KiB).
pub fn parse_status_rss_bytes(status: &str) -> Option<u64> {
    kib_field(status, "VmRSS")?.checked_mul(1024)
}

/// The aggregate `cpu` line of `/proc/stat`.
pub fn parse_host_cpu(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let values: Vec<u64> = line.split_whitespace().skip(1).map(str::parse).collect::<Result<_, _>>().ok()?;
    if values.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal guest guest_nice
    let total = values.iter().take(8).try_fold(0u64, |acc, v| acc.checked_add(*v))?;
    let idle = values[3].checked_add(values.get(4).copied().unwrap_or(0))?;
    Some(CpuTimes { total, idle })
}

/// Host memory in use, in percent: `(MemTotal - MemAvailable) / MemTotal`.
/// Kernels before 3.14 have no `MemAvailable`; then
/// `MemFree + Buffers + Cached` stands in for it.
pub fn parse_meminfo_used_percent(meminfo: &str) -> Option<f64> {
    let total = kib_field(meminfo, "MemTotal").filter(|t| *t > 0)?;
    let available = kib_field(meminfo, "MemAvailable").or_else(|| {
        let free = kib_field(meminfo, "MemFree")?;
        let buffers = kib_field(meminfo, "Buffers")?;
        let cached = kib_field(meminfo, "Cached")?;
        free.checked_add(buffers)?.checked_add(cached)
    })?;
    let used = total.saturating_sub(available);
    Some(ratio(used, total) * 100.0)
}

/// The number of a `Key:   1234 kB` line.
fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        let mut parts = v.split_whitespace();
        let n = parts.next()?.parse().ok()?;
        match parts.next() {
            None | Some("kB") => Some(n),
            Some(_) => None,
        }
    })
}

/// `a / b` as a float (`b > 0`).
#[allow(clippy::cast_precision_loss)]
fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b as f64
}

/// The `/proc` files a sample reads, each `None` when unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcTexts {
    /// `/proc/self/stat`.
    pub self_stat: Option<String>,
    /// `/proc/self/statm`.
    pub self_statm: Option<String>,
    /// `/proc/self/status`.
    pub self_status: Option<String>,
    /// `/proc/stat`.
    pub stat: Option<String>,
    /// `/proc/meminfo`.
    pub meminfo: Option<String>,
}

impl ProcTexts {
    /// Reads the files (blocking file IO, a few KiB).
    pub fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        ProcTexts {
            self_stat: read("/proc/self/stat"),
            self_statm: read("/proc/self/statm"),
            self_status: read("/proc/self/status"),
            stat: read("/proc/stat"),
            meminfo: read("/proc/meminfo"),
        }
    }
}

/// Samples [`HostMetrics`]; CPU percentages are over the time since the
/// previous sample, so the first sample has none.
#[derive(Debug, Default)]
pub struct HostSampler {
    prev: Option<Previous>,
}

#[derive(Debug, Clone, Copy)]
struct Previous {
    at: Instant,
    process_ticks: Option<u64>,
    host: Option<CpuTimes>,
}

impl HostSampler {
    /// A sampler without a previous sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `/proc` now (blocking file IO).
    pub fn sample(&mut self) -> HostMetrics {
        let texts = ProcTexts::read();
        self.sample_texts(&texts, Instant::now())
    }

    /// A sample from texts read at `at`.
    pub fn sample_texts(&mut self, texts: &ProcTexts, at: Instant) -> HostMetrics {
        let process_ticks = texts.self_stat.as_deref().and_then(parse_process_cpu_ticks);
        let host = texts.stat.as_deref().and_then(parse_host_cpu);
        let process_memory_bytes = texts
            .self_status
            .as_deref()
            .and_then(parse_status_rss_bytes)
            .or_else(|| texts.self_statm.as_deref().and_then(parse_statm_rss_bytes));
        let host_memory_percent = texts.meminfo.as_deref().and_then(parse_meminfo_used_percent);

        let (mut process_cpu_percent, mut host_cpu_percent) = (None, None);
        if let Some(prev) = self.prev {
            let wall = at.saturating_duration_since(prev.at).as_secs_f64();
            if let (Some(now), Some(before)) = (process_ticks, prev.process_ticks)
                && now >= before
                && wall > 0.0
            {
                #[allow(clippy::cast_precision_loss)]
                let cpu_seconds = (now - before) as f64 / CLOCK_TICKS_PER_SECOND as f64;
                process_cpu_percent = Some(cpu_seconds / wall * 100.0);
            }
            if let (Some(now), Some(before)) = (host, prev.host)
                && now.total > before.total
                && now.idle >= before.idle
            {
                let total = now.total - before.total;
                let busy = total.saturating_sub(now.idle - before.idle);
                host_cpu_percent = Some(ratio(busy, total) * 100.0);
            }
        }
        self.prev = Some(Previous { at, process_ticks, host });
        HostMetrics { process_cpu_percent, process_memory_bytes, host_cpu_percent, host_memory_percent }
    }
}
