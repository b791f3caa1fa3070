//! What the demonstrations saw: for each, the yes/no that decides its check and its claim,
//! and the words that say what happened, which become the evidence.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use labkit::child::describe;
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use crate::child::PLANNED_UNITS;
use crate::fds::Tables;
use crate::fork::CopyOnWrite;
use crate::{CHILD_VALUE, MOVED_BY, THREAD_VALUE};

/// What step 1 found, and what was seen, in words.
pub struct Memory {
    pub child_isolated: bool,
    pub child_seen: String,
    /// Whether `process_vm_readv` did what "not directly" allows (read with permission, or
    /// refused); `None` where the call does not exist (ENOSYS).
    pub kernel_read_allowed: Option<bool>,
    pub read_through_kernel: String,
    pub thread_shared: bool,
    pub thread_seen: String,
}

impl Memory {
    /// From the forked child's demo (`cow`), and the (global, heap) values the main thread read
    /// after another thread wrote [`THREAD_VALUE`] to both.
    pub fn observe(cow: &CopyOnWrite, (global, heap): (u64, u64)) -> Memory {
        let child_isolated = cow.child.global == CHILD_VALUE
            && cow.child.heap == CHILD_VALUE
            && cow.parent.global == 1
            && cow.parent.heap == 1
            && cow.child.heap_addr == cow.parent.heap_addr;
        let child_seen = format!(
            "the child wrote {CHILD_VALUE:#x} to a global and to the heap value at {:#x} and saw \
             ({:#x}, {:#x}); here, at {:#x}, we then read ({:#x}, {:#x})",
            cow.child.heap_addr,
            cow.child.global,
            cow.child.heap,
            cow.parent.heap_addr,
            cow.parent.global,
            cow.parent.heap
        );
        let (kernel_read_allowed, read_through_kernel) = kernel_read(cow.read_through_kernel);
        Memory {
            child_isolated,
            child_seen,
            kernel_read_allowed,
            read_through_kernel,
            thread_shared: global == THREAD_VALUE && heap == THREAD_VALUE,
            thread_seen: format!(
                "a thread wrote {THREAD_VALUE:#x} to the same global and heap value; the main \
                 thread then read ({global:#x}, {heap:#x})"
            ),
        }
    }
}

/// Which of the two outcomes the seed's "not directly" allows happened: the kernel read the
/// child's memory for us (ptrace permission), or it refused. Anything else is a failure.
fn kernel_read(read: Result<u64, Errno>) -> (Option<bool>, String) {
    match read {
        Ok(v) if v == CHILD_VALUE => (
            Some(true),
            format!(
                "permitted, read through the kernel: process_vm_readv read the child's {v:#x} \
                 at that address (with ptrace permission, not directly)"
            ),
        ),
        Ok(v) => (
            Some(false),
            format!("process_vm_readv read {v:#x}, not the child's value"),
        ),
        Err(e @ (Errno::EPERM | Errno::EACCES)) => (
            Some(true),
            format!("refused: process_vm_readv failed with {e} (no ptrace permission here)"),
        ),
        Err(Errno::ENOSYS) => (None, "process_vm_readv: ENOSYS".to_owned()),
        Err(e) => (
            Some(false),
            format!("process_vm_readv failed with {e}, neither a read nor a refusal"),
        ),
    }
}

/// What step 3 found, and what was seen, in words.
pub struct Files {
    pub thread_closed_for_all: bool,
    pub child_close_contained: bool,
    pub offset_shared: bool,
    pub seen: [String; 3],
}

impl Files {
    /// From the descriptor demos, run on a file that holds `content`.
    pub fn observe(t: &Tables, content: &[u8]) -> Files {
        let seen = [
            format!(
                "another thread closed a descriptor; here fcntl(F_GETFD) then {}",
                if t.closed_by_thread {
                    "failed with EBADF: one table"
                } else {
                    "still answered: NOT one table"
                }
            ),
            format!(
                "a forked child closed its copy; ours then {}{}",
                if t.open_after_child_closed {
                    "still answered fcntl(F_GETFD): two tables"
                } else {
                    "failed too: NOT two tables"
                },
                unless_died(t.children[0])
            ),
            format!(
                "the child read {MOVED_BY} bytes; our next read returned {:?} (from the start: \
                 {:?}){}",
                String::from_utf8_lossy(&t.read_after_child),
                String::from_utf8_lossy(&content[..MOVED_BY]),
                unless_died(t.children[1])
            ),
        ];
        Files {
            thread_closed_for_all: t.closed_by_thread,
            child_close_contained: t.open_after_child_closed,
            offset_shared: t.read_after_child == content[MOVED_BY..2 * MOVED_BY],
            seen,
        }
    }
}

/// For a check's detail: nothing if the child exited 0, else how it ended.
fn unless_died(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, 0) => String::new(),
        WaitStatus::Signaled(_, sig, _) => {
            format!(" (NOT SHOWN: the child was killed by {})", sig.as_str())
        }
        other => format!(" (NOT SHOWN: the child ended otherwise: {other:?})"),
    }
}

/// What step 4 found, and what was seen, in words.
pub struct Faults {
    pub child_fault_contained: bool,
    pub child_seen: String,
    pub thread_fault_killed_all: bool,
    pub thread_seen: String,
    pub panic_seen: String,
}

/// A forked child that faulted ended with `status`: did it die of SIGSEGV alone, no core?
pub fn child_fault(status: WaitStatus) -> (bool, String) {
    let contained = matches!(status, WaitStatus::Signaled(_, Signal::SIGSEGV, false));
    let seen = format!(
        "a child wrote to a PROT_NONE page and {}; this process went on{}",
        match status {
            WaitStatus::Signaled(_, sig, _) => format!("was killed by {}", sig.as_str()),
            other => format!("ended otherwise: {other:?}"),
        },
        if matches!(status, WaitStatus::Signaled(_, _, true)) {
            " (a core was dumped)"
        } else {
            ", no core dumped"
        }
    );
    (contained, seen)
}

/// The sacrificial process ended with `status` after its worker thread had done `done` units:
/// did the fault of one thread take the whole process, the worker's work with it?
pub fn thread_fault(status: ExitStatus, done: u64) -> (bool, String) {
    let killed_all = status.signal() == Some(libc::SIGSEGV) && done < PLANNED_UNITS;
    let seen = format!(
        "in a sacrificial process, one thread faulted after its sibling had done {done} units; \
         the process {}, and the sibling lost {} of its {PLANNED_UNITS} planned units",
        describe(status),
        PLANNED_UNITS - done
    );
    (killed_all, seen)
}

/// A thread panicked beside one that worked: `joined` is (the panicking one joined with
/// `Err`, the working one with `Ok`), `units` the worker's units out of `planned`.
pub fn thread_panic(joined: (bool, bool), units: u64, planned: u64) -> (bool, String) {
    let contained = joined == (true, true) && units == planned;
    let seen = format!(
        "a thread panicked: join returned {} for it; its sibling {} and finished {units} of \
         {planned} units, and the process went on (a panic unwinds one thread; a fault is a \
         signal to the whole process)",
        if joined.0 { "Err" } else { "Ok" },
        if joined.1 {
            "joined Ok"
        } else {
            "ended with Err"
        },
    );
    (contained, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;

    /// Found by `cargo xtask torture`: a demo child killed mid-run failed its check with text
    /// that did not say it had died.
    #[test]
    fn a_killed_demo_child_is_named_in_the_check() {
        let pid = Pid::from_raw(1234);
        assert_eq!(unless_died(WaitStatus::Exited(pid, 0)), "");
        let killed = unless_died(WaitStatus::Signaled(pid, Signal::SIGKILL, false));
        assert!(killed.contains("killed by SIGKILL"), "{killed}");
        assert!(unless_died(WaitStatus::Exited(pid, 1)).contains("NOT SHOWN"));
    }
}
