//! What a server holds, read from `/proc` while it serves: its processes (the children of its
//! main thread) and the memory of each, shared pages counted once (PSS) and per process (RSS).

use std::fs;

/// The children of `pid`'s main thread, from `/proc/<pid>/task/<pid>/children`: cheap enough to
/// read every few milliseconds, and complete for a process that forks from its main thread.
pub fn main_thread_children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Memory of `pid` in KiB, from `/proc/<pid>/smaps_rollup`: (PSS, RSS). PSS divides every
/// shared page among the processes that map it, so a sum of PSS counts each page once, where
/// a sum of RSS counts a page shared by nine forked processes nine times.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some((kib_field(&text, "Pss:")?, kib_field(&text, "Rss:")?))
}

/// The value of a `Name:   1234 kB` line of a /proc file's `text` (smaps_rollup, meminfo).
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix(name))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

/// The processes of a server: itself, then its children.
pub fn tree(server: u32) -> impl Iterator<Item = u32> {
    std::iter::once(server).chain(main_thread_children(server))
}

/// The memory of `server` with its children, in KiB: PSS and RSS summed, and the processes
/// read. A zombie (exited, not yet reaped) has no memory left to read, and is not counted.
pub fn tree_kib(server: u32) -> (u64, u64, usize) {
    tree(server)
        .filter_map(memory_kib)
        .fold((0, 0, 0), |(pss, rss, n), (p, r)| (pss + p, rss + r, n + 1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_child_is_listed_with_its_memory() {
        // A shell whose main thread forks a `sleep`, then waits for it.
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 5 & wait"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let children = loop {
            let children = super::main_thread_children(shell.id());
            if !children.is_empty() || std::time::Instant::now() > deadline {
                break children;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(children.len(), 1, "{children:?}");
        let (pss, rss) = super::memory_kib(children[0]).unwrap();
        assert!(pss > 0 && pss <= rss, "{pss} {rss}");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(children[0] as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        shell.wait().unwrap();
    }
}
