//! Step 1: a private mapping stays a forked child's; a shared one (a POSIX shared-memory
//! object, `MAP_SHARED`) is everyone's. What the parent saw decides `comm.process-needs-ipc`.

use anyhow::{Context, Result, bail};
use labkit::{Report, Verdict};
use memmap2::{MmapMut, MmapRaw};

use crate::region::shm_object;

/// What step 1 saw: the parent's view of the child's writes to both pages.
pub struct Sharing {
    /// What the parent read in its private page, and in the shared one, after the child wrote 7.
    private: u8,
    shared: u8,
}

impl Sharing {
    /// `comm.process-needs-ipc` from what was seen: a private write that reached us would mean
    /// memory shared with no IPC at all (does not hold); a shared one that did not, that the
    /// mechanism itself failed (no verdict).
    pub fn verdict(&self) -> (Verdict, String) {
        let seen = format!(
            "a forked child wrote 7 to a private page and to a shm_open'ed MAP_SHARED one; the \
             parent then read {} and {}",
            self.private, self.shared
        );
        match (self.private == 7, self.shared == 7) {
            (true, _) => (
                Verdict::DoesNotHold,
                format!("{seen}: the private write reached us with no IPC at all"),
            ),
            (false, true) => (
                Verdict::Holds,
                format!(
                    "{seen}: memory is shared between processes only where they arrange it (the \
                     rings between processes worked only in such an object)"
                ),
            ),
            (false, false) => (
                Verdict::Inconclusive,
                format!("{seen}: the shared object itself did not carry the write"),
            ),
        }
    }
}

/// Step 1: a forked child writes 7 to a private page (`map_anon`) and to a shared one; the
/// parent reads both back (checked). It must run while this process has a single thread.
pub fn show_private_vs_shared(report: &mut Report) -> Result<Sharing> {
    let mut private = MmapMut::map_anon(4096).context("mmap a private page")?;
    let shared_fd = shm_object(4096)?;
    let shared = MmapRaw::map_raw(&shared_fd).context("mmap the shared page")?;
    let threads = std::fs::read_to_string("/proc/self/status")
        .context("read /proc/self/status (to count our threads before fork)")?;
    let threads = threads
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .map(str::trim);
    if threads != Some("1") {
        bail!(
            "refusing to fork: this process has {} threads, not one",
            threads.unwrap_or("?")
        );
    }
    // SAFETY: this process has one thread (checked just above: this step runs first), so the
    // child is a consistent copy; it only writes two bytes and leaves with `_exit`.
    match unsafe { nix::unistd::fork() }.context("fork")? {
        nix::unistd::ForkResult::Child => {
            private[0] = 7;
            // SAFETY: the shared page is mapped (4096 bytes) and nobody else writes it now.
            unsafe { *shared.as_mut_ptr() = 7 };
            // SAFETY: leaves without running the parent's exit code.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            nix::sys::wait::waitpid(child, None).context("waitpid")?;
        }
    }
    // SAFETY: the page is mapped; the child has exited, so nothing writes it concurrently.
    let (mine, ours) = (private[0], unsafe { *shared.as_mut_ptr() });
    let ok = mine == 0 && ours == 7;
    report.check(
        "a forked child's write reaches a shared mapping, not a private one",
        ok,
        format!("the child wrote 7 to both; the parent reads {mine} in its private (copy-on-write) page and {ours} in the shared one"),
    );
    Ok(Sharing {
        private: mine,
        shared: ours,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `comm.process-needs-ipc` follows what the parent read: forced the other way (the
    /// child's private write reached us, as it would from a thread), it does not hold.
    #[test]
    fn the_ipc_claim_follows_what_was_observed() {
        let verdict = |private, shared| Sharing { private, shared }.verdict();
        assert_eq!(verdict(0, 7).0, Verdict::Holds);
        let (v, evidence) = verdict(7, 7);
        assert_eq!(v, Verdict::DoesNotHold);
        assert!(evidence.contains("read 7 and 7"), "{evidence}");
        assert_eq!(verdict(0, 0).0, Verdict::Inconclusive);
    }
}
