//! Which limit of the machine a failed creation met, with its value and how to raise it: what
//! `finish` adds to an error whose cause is one of the limits' errnos. Where the errno
//! cannot tell them apart (`EAGAIN` from `fork` or `clone`), every candidate is listed.

use std::fs;
use std::io;

use nix::sys::resource::{Resource, getrlimit};

/// A note for `err`, if its chain holds an OS error (std's or nix's) that a limit gives.
pub fn note(err: &anyhow::Error) -> Option<String> {
    use Resource::{RLIMIT_AS, RLIMIT_MSGQUEUE, RLIMIT_NOFILE, RLIMIT_NPROC};
    let errno = err
        .chain()
        .find_map(|e| match e.downcast_ref::<io::Error>() {
            Some(io) => io.raw_os_error(),
            None => e.downcast_ref::<nix::errno::Errno>().map(|n| *n as i32),
        })?;
    let (nofile, mq) = (rlimit(RLIMIT_NOFILE), rlimit(RLIMIT_MSGQUEUE));
    Some(match (errno, format!("{err:#}").contains("mq_")) {
        (libc::EMFILE, false) => format!("limited by RLIMIT_NOFILE={nofile} (`ulimit -n`)"),
        (libc::EMFILE, true) => format!(
            "limited by RLIMIT_NOFILE={nofile} (`ulimit -n`) or RLIMIT_MSGQUEUE={mq} (`ulimit -q`)"
        ),
        (libc::EAGAIN, _) => format!(
            "limited by one of RLIMIT_NPROC={} (`ulimit -u`; root is exempt), the cgroup's \
             pids.max={}, kernel.threads-max={}, kernel.pid_max={}, or for a thread's stack \
             RLIMIT_AS={}",
            rlimit(RLIMIT_NPROC),
            pids_max(),
            sys("kernel/threads-max"),
            sys("kernel/pid_max"),
            rlimit(RLIMIT_AS)
        ),
        (libc::ENOMEM, _) => format!("limited by RLIMIT_AS={} (`ulimit -v`)", rlimit(RLIMIT_AS)),
        (libc::ENOSPC, true) => format!("fs.mqueue.queues_max={}", sys("fs/mqueue/queues_max")),
        (libc::ENOSPC, false) => format!("/dev/shm is full: a tmpfs of {} KiB", shm_kib()),
        _ => return None,
    })
}

/// A resource limit of this process, as `ulimit` prints it.
fn rlimit(resource: Resource) -> String {
    match getrlimit(resource) {
        Ok((soft, _)) if soft == libc::RLIM_INFINITY => "unlimited".into(),
        Ok((soft, _)) => soft.to_string(),
        Err(_) => "unknown".into(),
    }
}

/// The size of /dev/shm, in KiB.
fn shm_kib() -> String {
    let kib = nix::sys::statvfs::statvfs("/dev/shm").map(|v| v.blocks() * v.fragment_size() / 1024);
    kib.map_or("unknown".into(), |k| k.to_string())
}

/// A value under /proc/sys.
fn sys(path: &str) -> String {
    fs::read_to_string(format!("/proc/sys/{path}"))
        .map_or_else(|_| "unknown".into(), |v| v.trim().into())
}

/// `pids.max` of this process's cgroup (v2, or v1's pids hierarchy), or "none".
fn pids_max() -> String {
    let groups = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let path = |l: &str| match l.split_once(":pids:") {
        Some((_, p)) => Some(format!("/sys/fs/cgroup/pids{p}/pids.max")),
        None => l
            .strip_prefix("0::")
            .map(|p| format!("/sys/fs/cgroup{p}/pids.max")),
    };
    let max = groups
        .lines()
        .filter_map(path)
        .find_map(|f| fs::read_to_string(f).ok());
    max.map_or_else(|| "none".into(), |v| v.trim().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note_for(errno: i32, context: &str) -> Option<String> {
        note(&anyhow::Error::new(io::Error::from_raw_os_error(errno)).context(context.to_owned()))
    }

    #[test]
    fn a_limits_errno_names_the_limit_and_another_names_none() {
        let files = note_for(libc::EMFILE, "pipe").unwrap();
        assert!(
            files.contains("RLIMIT_NOFILE=") && !files.contains("RLIMIT_MSGQUEUE"),
            "{files}"
        );
        let queue = note_for(libc::EMFILE, "mq_open(/q)").unwrap();
        assert!(queue.contains("RLIMIT_MSGQUEUE="), "{queue}");
        let threads = note_for(libc::EAGAIN, "spawn the pong thread").unwrap();
        for candidate in [
            "RLIMIT_NPROC=",
            "pids.max=",
            "kernel.threads-max=",
            "RLIMIT_AS=",
        ] {
            assert!(threads.contains(candidate), "{threads}");
        }
        let nix = note(&anyhow::Error::new(nix::errno::Errno::EAGAIN).context("fork"));
        assert_eq!(nix, Some(threads), "nix's Errno is read as std's");
        assert_eq!(note_for(libc::EINVAL, "mmap"), None, "not a limit's errno");
        assert_eq!(note(&anyhow::anyhow!("no OS error at all")), None);
    }
}
