//! What this machine's limits leave room for when a server holds many connections at once:
//! descriptors for every model (the server and the crowd each hold one per connection, after
//! raising `RLIMIT_NOFILE` to its hard limit) and local ports for the crowd's; a process or
//! thread per connection for the models that make one (and two mappings per thread); and
//! memory, by a generous estimate per connection.

use std::fs;

use labkit::limits::{Ask, check};
use nix::sys::resource::{Resource, getrlimit};

use crate::server::Model;

/// Descriptors a process holds besides its connections, with room to spare (the server holds
/// about 10, the crowd 8; measured here).
const SPARE_FDS: u64 = 64;
/// Processes and threads a run makes besides one per connection, with room to spare.
const SPARE_TASKS: u64 = 64;
/// A thread's stack, reserved in the address space (std's default for a spawned thread).
const THREAD_STACK: u64 = 2 << 20;

/// Memory one connection takes at the most, by an estimate per unit with room to spare (KiB;
/// measured here: about 300 for a forked process, 10 for a thread, under 2 for a task or a
/// connection in an epoll loop, socket buffers aside).
fn estimate_kib(model: Model) -> u64 {
    match model {
        Model::ForkPerConnection => 1024,
        Model::ThreadPerConnection => 64,
        Model::Prefork { .. } | Model::ThreadPool { .. } | Model::Async => 16,
    }
}

/// Why `model` cannot hold `n` connections here, naming the limit and its value; `None` when
/// every limit leaves room.
pub fn limit_for(model: Model, n: u64) -> Option<String> {
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && hard != libc::RLIM_INFINITY
        && n + SPARE_FDS > hard
    {
        return Some(format!(
            "the hard RLIMIT_NOFILE={hard} (`ulimit -Hn`) leaves room for {} connections",
            hard.saturating_sub(SPARE_FDS)
        ));
    }
    // Every connection of the crowd's comes from its own local port, to the one server port.
    let ports = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    if let Some((lo, hi)) = ports.split_once(char::is_whitespace)
        && let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u64>(), hi.trim().parse::<u64>())
        && n > hi.saturating_sub(lo) + 1
    {
        return Some(format!(
            "net.ipv4.ip_local_port_range={lo} {hi} (`sysctl`) leaves room for {} connections \
             to one port",
            hi.saturating_sub(lo) + 1
        ));
    }
    // A thread takes two mappings (its stack and the guard page below it).
    let maps = sysctl("vm/max_map_count");
    if model == Model::ThreadPerConnection && 2 * (n + SPARE_TASKS) > maps {
        return Some(format!(
            "vm.max_map_count={maps} (`sysctl`) leaves room for about {} threads, two mappings \
             each",
            maps / 2 - SPARE_TASKS.min(maps / 2)
        ));
    }
    let of = format!("{n} connections of {}", model.name());
    if matches!(model, Model::ForkPerConnection | Model::ThreadPerConnection) {
        let used = threads_in_use();
        for name in ["kernel.threads-max", "kernel.pid_max"] {
            let max = sysctl(&name.replace('.', "/"));
            let room = max.saturating_sub(used + SPARE_TASKS);
            if n > room {
                return Some(format!(
                    "{name}={max} (`sysctl`) leaves room for {room} more processes and threads \
                     ({used} in use)"
                ));
            }
        }
        if let Err(e) = check(&of, Ask::Tasks(n + SPARE_TASKS)) {
            return Some(e.to_string());
        }
    }
    if model == Model::ThreadPerConnection
        && let Err(e) = check(&of, Ask::AddressSpace(n * THREAD_STACK))
    {
        return Some(e.to_string());
    }
    let available = meminfo_kib("MemAvailable:")?;
    let each = estimate_kib(model);
    (n * each > available).then(|| {
        format!(
            "MemAvailable={available} KiB leaves room for about {} connections at {each} KiB \
             each (an estimate for {})",
            available / each,
            model.name()
        )
    })
}

/// Threads on the machine now, every one of which holds a pid: `/proc/loadavg`'s fourth field
/// is "running/total".
fn threads_in_use() -> u64 {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let total = text
        .split_whitespace()
        .nth(3)
        .and_then(|f| f.split_once('/'));
    total.and_then(|(_, t)| t.parse().ok()).unwrap_or(0)
}

/// A number under /proc/sys (`u64::MAX` if unreadable: no limit known).
fn sysctl(path: &str) -> u64 {
    let text = fs::read_to_string(format!("/proc/sys/{path}")).unwrap_or_default();
    text.trim().parse().unwrap_or(u64::MAX)
}

/// A field of /proc/meminfo, in KiB.
fn meminfo_kib(field: &str) -> Option<u64> {
    crate::memory::kib_field(&fs::read_to_string("/proc/meminfo").ok()?, field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_beyond_a_limit_names_it_and_a_small_one_passes() {
        for model in Model::all(8) {
            assert_eq!(limit_for(model, 10), None, "{model:?}");
        }
        let why = limit_for(Model::Async, u64::MAX / 1024).expect("beyond any machine");
        assert!(
            why.contains("RLIMIT_NOFILE=") || why.contains("MemAvailable="),
            "{why}"
        );
        let why = limit_for(Model::ThreadPerConnection, 40_000_000).unwrap();
        assert!(
            why.contains("RLIMIT_NOFILE=") || why.contains("kernel."),
            "{why}"
        );
        assert!(threads_in_use() > 1);
    }
}
