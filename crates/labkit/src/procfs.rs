//! The few facts about processes this lab reads from `/proc`.

use std::fs;

/// The fields of `/proc/<pid>/stat` after the command name, so `fields[0]` is the state
/// (field 3 of proc(5)). The name may hold spaces and parentheses, so parsing resumes after
/// the last `)`.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The parent of `pid` (field 4), if the process exists.
pub fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// When `pid` started, in clock ticks since boot (field 22): with the pid, it tells a process
/// apart from a later one that reused the number.
pub fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// How many threads process `pid` has now (`Threads:` of `/proc/<pid>/status`).
pub fn thread_count(pid: u32) -> Option<usize> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))?
        .trim()
        .parse()
        .ok()
}

/// The processes whose parent is `pid`, zombies included.
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
}

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
    use super::*;

    #[test]
    fn this_process_is_known() {
        let me = std::process::id();
        assert!(start_time(me).is_some_and(|t| t > 0));
        assert_eq!(parent_of(me), Some(std::os::unix::process::parent_id()));
        assert_eq!(start_time(u32::MAX), None);
        // Other tests run in threads of this process too, so only a lower bound is certain.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(
            thread_count(me).is_some_and(|n| n >= 2),
            "{:?}",
            thread_count(me)
        );
        drop(tx);
        let _ = t.join();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(children_of(me).contains(&child.id()));
        let (pss, rss) = memory_kib(child.id()).unwrap();
        assert!(pss > 0 && pss <= rss, "{pss} {rss}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
