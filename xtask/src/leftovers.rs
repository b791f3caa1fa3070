//! What a run of the lab may leave behind, and finding it: names with the lab's prefix and
//! creator ledgers (a [`Snapshot`] before and after), and processes re-parented to xtask
//! ([`reap_leftovers`]).

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// The ledger files present now (one per creator that has objects, dead or alive).
pub fn ledger_files() -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(labkit::names::ledger_dir()) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ledger"))
        .collect();
    files.sort();
    files
}

/// What the lab's runs could leave behind: names with its prefix in /dev/shm and the temp dir,
/// and creator ledgers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot(BTreeSet<String>);

impl Snapshot {
    pub fn take() -> Snapshot {
        let names = testkit::present()
            .into_iter()
            .map(|p| p.display().to_string());
        let ledgers = ledger_files()
            .into_iter()
            .map(|p| format!("ledger {}", p.display()));
        Snapshot(names.chain(ledgers).collect())
    }

    /// Nothing: `x.new_since(&Snapshot::empty())` is all of `x`.
    pub fn empty() -> Snapshot {
        Snapshot(BTreeSet::new())
    }

    /// What is in `self` but was not in `before`.
    pub fn new_since(&self, before: &Snapshot) -> Vec<String> {
        self.0.difference(&before.0).cloned().collect()
    }
}

/// Processes left behind: with the subreaper set, an orphan of a topic is now our child. Reaps
/// the ones already dead; kills and reports the living, after a grace period for those dying.
pub fn reap_leftovers(grace: Duration) -> Vec<String> {
    let deadline = Instant::now() + grace;
    loop {
        // Reap zombies first: a child that already exited is not a leftover.
        while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            if matches!(status, WaitStatus::StillAlive) {
                break;
            }
        }
        let alive = labkit::procfs::children_of(std::process::id());
        if alive.is_empty() {
            return Vec::new();
        }
        if Instant::now() >= deadline {
            return alive
                .iter()
                .map(|pid| {
                    let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " ");
                    let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
                    let _ = waitpid(Pid::from_raw(*pid as i32), None);
                    format!("process {pid} ({})", cmd.trim())
                })
                .collect();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
