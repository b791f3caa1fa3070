//! The limits of the machine, twice: [`check`] refuses, before a run starts, flags that ask for
//! more than a limit leaves room for (exit 2); [`note`] says which limit a failed creation met,
//! with its value and how to raise it: what `finish` adds to an error whose cause is one of the
//! limits' errnos. Where the errno cannot tell them apart (`EAGAIN` from `fork` or `clone`),
//! every candidate is listed.

use std::fs;
use std::io;

use nix::sys::resource::{Resource, getrlimit};

use crate::cli::usage;
use crate::report::format_bytes;

/// What a run's flags ask of the machine at once, besides what the process holds already.
#[derive(Clone, Copy, Debug)]
pub enum Ask {
    /// Open descriptors.
    Descriptors(u64),
    /// Processes and threads.
    Tasks(u64),
    /// Bytes of address space.
    AddressSpace(u64),
    /// Bytes in `/dev/shm`.
    Shm(u64),
}

/// Refuses `flags` (as the user wrote them, e.g. `--workers 32`) if they ask for more than the
/// tightest limit on `ask` leaves room for: a usage error (exit 2) that says what they ask,
/// the limit with its value, and the room left.
pub fn check(flags: &str, ask: Ask) -> anyhow::Result<()> {
    judge(flags, ask, room_for(ask))
}

fn judge(flags: &str, ask: Ask, room: Option<Room>) -> anyhow::Result<()> {
    let (n, show): (u64, fn(u64) -> String) = match ask {
        Ask::Descriptors(n) => (n, |n| format!("{n} descriptors")),
        Ask::Tasks(n) => (n, |n| format!("{n} processes or threads")),
        Ask::AddressSpace(n) | Ask::Shm(n) => (n, format_bytes),
    };
    match room {
        Some(Room(left, limit, used)) if n > left => Err(usage(format!(
            "{flags} asks for {} at once, but {limit} leaves room for {} ({used})",
            show(n),
            show(left)
        ))),
        _ => Ok(()),
    }
}

/// What the tightest limit on an ask leaves: the room, the limit with its value, and what is
/// used of it already.
struct Room(u64, String, String);

/// The room the tightest limit on `ask` leaves; `None` if no limit applies.
fn room_for(ask: Ask) -> Option<Room> {
    let soft = |r| match getrlimit(r) {
        Ok((soft, _)) if soft != libc::RLIM_INFINITY => Some(soft),
        _ => None,
    };
    let me = std::process::id();
    Some(match ask {
        Ask::Descriptors(_) => {
            let (max, open) = (
                soft(Resource::RLIMIT_NOFILE)?,
                fs::read_dir("/proc/self/fd"),
            );
            let open = open.map_or(0, |d| d.count() as u64);
            let limit = format!("RLIMIT_NOFILE={max} (`ulimit -n`)");
            Room(max.saturating_sub(open), limit, format!("{open} open"))
        }
        Ask::Tasks(_) => {
            let max: u64 = pids_file("pids.max")?.parse().ok()?;
            let now: u64 = pids_file("pids.current")?.parse().ok()?;
            let limit = format!("the cgroup's pids.max={max}");
            Room(max.saturating_sub(now), limit, format!("{now} in use"))
        }
        Ask::AddressSpace(_) => {
            let max = soft(Resource::RLIMIT_AS)?;
            let mapped = crate::procfs::status_field(me, "VmSize:")? * 1024;
            let (limit, used) = (
                format!("RLIMIT_AS={max} (`ulimit -v`)"),
                format_bytes(mapped),
            );
            Room(max.saturating_sub(mapped), limit, format!("{used} mapped"))
        }
        Ask::Shm(_) => {
            let v = nix::sys::statvfs::statvfs("/dev/shm").ok()?;
            let free = v.blocks_available() * v.fragment_size();
            let limit = format!("/dev/shm, a tmpfs of {} KiB,", shm_kib());
            Room(free, limit, format!("{} free", format_bytes(free)))
        }
    })
}

/// Raises this process's `RLIMIT_NOFILE` to its hard limit, for a process that holds many
/// connections; returns the limit now in force.
pub fn raise_nofile() -> nix::Result<u64> {
    use nix::sys::resource::setrlimit;
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    Ok(hard)
}

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
             pids.max={} (its file pids.max), kernel.threads-max={} or kernel.pid_max={} \
             (`sysctl`), or for a thread's stack RLIMIT_AS={} (`ulimit -v`)",
            rlimit(RLIMIT_NPROC),
            pids_file("pids.max").unwrap_or_else(|| "none".into()),
            sys("kernel/threads-max"),
            sys("kernel/pid_max"),
            rlimit(RLIMIT_AS)
        ),
        (libc::ENOMEM, _) => format!("limited by RLIMIT_AS={} (`ulimit -v`)", rlimit(RLIMIT_AS)),
        (libc::ENOSPC, true) => format!(
            "limited by fs.mqueue.queues_max={} (`sysctl`)",
            sys("fs/mqueue/queues_max")
        ),
        (libc::ENOSPC, false) => format!(
            "/dev/shm is full: a tmpfs of {} KiB (`mount -o remount,size=… /dev/shm`)",
            shm_kib()
        ),
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

/// A file of this process's pids cgroup (v2, or v1's pids hierarchy), trimmed.
fn pids_file(name: &str) -> Option<String> {
    let groups = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let path = |l: &str| match l.split_once(":pids:") {
        Some((_, p)) => Some(format!("/sys/fs/cgroup/pids{p}/{name}")),
        None => l
            .strip_prefix("0::")
            .map(|p| format!("/sys/fs/cgroup{p}/{name}")),
    };
    let found = groups
        .lines()
        .filter_map(path)
        .find_map(|f| fs::read_to_string(f).ok());
    found.map(|v| v.trim().to_owned())
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

    #[test]
    fn flags_that_ask_beyond_the_room_left_are_a_usage_error_naming_the_limit() {
        let room = || {
            let (limit, used) = ("RLIMIT_NOFILE=8 (`ulimit -n`)".into(), "3 open".into());
            Some(Room(5, limit, used))
        };
        assert!(judge("--clients 2", Ask::Descriptors(5), room()).is_ok());
        let err = judge("--clients 3", Ask::Descriptors(6), room()).unwrap_err();
        assert!(
            err.downcast_ref::<crate::cli::UsageError>().is_some(),
            "exit 2"
        );
        assert_eq!(
            err.to_string(),
            "--clients 3 asks for 6 descriptors at once, but RLIMIT_NOFILE=8 (`ulimit -n`) \
             leaves room for 5 descriptors (3 open)"
        );
        assert!(
            judge("--pages 9", Ask::AddressSpace(1 << 40), None).is_ok(),
            "no limit"
        );
        // This process's own address space is read.
        let mapped = crate::procfs::status_field(std::process::id(), "VmSize:");
        assert!(mapped.is_some_and(|kib| kib > 1024), "{mapped:?}");
    }
}
