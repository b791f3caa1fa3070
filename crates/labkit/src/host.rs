//! What machine the figures come from.

use std::fs;
use std::io;

use nix::sched::{CpuSet, sched_getaffinity};
use nix::unistd::Pid;

use serde::{Deserialize, Serialize};

/// The machine a Report was made on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub cpu_model: String,
    /// CPUs online.
    pub cpus: usize,
    /// CPUs this process may run on (its affinity mask).
    pub cpus_allowed: Vec<usize>,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// `release` or `debug`: debug figures are not representative.
    pub profile: String,
    /// The transparent-huge-page mode (`always`, `madvise`, `never`), which changes fork's cost.
    pub thp: String,
}

impl Host {
    /// Reads this machine's description; a part that cannot be read says `unknown`.
    pub fn collect() -> Host {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
            .map_or("unknown", |(_, m)| m.trim());
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(1);
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        // The mode in brackets, as in `always [madvise] never`.
        let thp =
            fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        let thp = thp.split_once('[').and_then(|(_, r)| r.split_once(']'));
        Host {
            cpu_model: cpu_model.to_owned(),
            cpus,
            cpus_allowed: allowed_cpus().unwrap_or_default(),
            kernel,
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_owned(),
            thp: thp.map_or("unknown", |(m, _)| m).to_owned(),
        }
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} CPUs (this process may use {:?}), Linux {}, {} build, THP {}",
            self.cpu_model, self.cpus, self.cpus_allowed, self.kernel, self.profile, self.thp
        )
    }
}

/// The CPUs this process may run on, in increasing order: the affinity of its main thread
/// (whose thread id is the process id), whatever the calling thread is pinned to.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    cpus_of(nix::unistd::getpid())
}

/// The CPUs the task `tid` may run on (`Pid::from_raw(0)`: the calling thread).
pub(crate) fn cpus_of(tid: Pid) -> io::Result<Vec<usize>> {
    let set = sched_getaffinity(tid).map_err(io::Error::from)?;
    Ok((0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect())
}
