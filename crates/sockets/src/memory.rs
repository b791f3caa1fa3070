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
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("Pss:")?, field("Rss:")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_child_is_listed_with_its_memory() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(super::main_thread_children(me).contains(&child.id()));
        let (pss, rss) = super::memory_kib(child.id()).unwrap();
        assert!(pss > 0 && pss <= rss, "{pss} {rss}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
