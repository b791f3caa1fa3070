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
    status_field(pid, "Threads:").map(|n| n as usize)
}

/// The number a field of `/proc/<pid>/status` starts with (`VmSize:` in kB, `Threads:` …).
pub fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix(field))?;
    value.split_whitespace().next()?.parse().ok()
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
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
