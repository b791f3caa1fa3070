//! CPU placement, always chosen from the CPUs this process is allowed to use.

use std::io;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

use crate::cli::Pin;
use crate::cli::UsageError;

pub use crate::host::allowed_cpus;

/// The placements of a run, each with its CPUs, in order.
pub type Placements = Vec<(Pin, Placement)>;

/// Where the two sides of an exchange run: `None` leaves it to the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub main: Option<usize>,
    pub peer: Option<usize>,
}

impl Placement {
    /// Every placement `pin` asks for, with its CPUs, in order; and, for `each` on a machine
    /// that allows one CPU, why `split` was left out. A placement asked for by name that this
    /// machine cannot give is a usage error.
    pub fn each(pin: Pin) -> anyhow::Result<(Placements, Option<String>)> {
        let mut placements = Vec::new();
        let mut left_out = None;
        for one in pin.placements() {
            match Placement::choose(one) {
                Ok(p) => placements.push((one, p)),
                Err(e) if pin == Pin::Each => left_out = Some(format!("{e:#}")),
                Err(e) => return Err(e),
            }
        }
        Ok((placements, left_out))
    }

    /// [`Placement::each`], written into `report`: the `pin` and `placement` params, and where
    /// two CPUs are not to be had, a skip saying that `what` ran on one CPU only.
    pub fn each_noted(
        report: &mut crate::Report,
        pin: Pin,
        what: &str,
    ) -> anyhow::Result<Placements> {
        let (placements, left_out) = Placement::each(pin)?;
        report.param("pin", pin.as_str());
        let described: Vec<String> = placements.iter().map(|(_, p)| p.describe()).collect();
        report.param("placement", described.join("; "));
        if let Some(why) = left_out {
            report.skip(&format!("{what} on two CPUs"), why);
        }
        Ok(placements)
    }

    /// The placement `pin` asks for, or a usage error naming what this machine allows.
    pub fn choose(pin: Pin) -> anyhow::Result<Placement> {
        use anyhow::Context;
        let allowed = allowed_cpus().context("sched_getaffinity")?;
        let (main, peer) = match (pin, allowed.as_slice()) {
            (Pin::Each, _) => anyhow::bail!("--pin each is two placements: see Placement::each"),
            (Pin::None, _) => (None, None),
            (Pin::Same, &[first, ..]) => (Some(first), Some(first)),
            (Pin::Split, &[first, second, ..]) => (Some(first), Some(second)),
            (_, cpus) => {
                return Err(anyhow::Error::new(UsageError(format!(
                    "--pin {} needs {} CPU(s) this process may use; it may use only {cpus:?}",
                    pin.as_str(),
                    if pin == Pin::Split { 2 } else { 1 },
                ))));
            }
        };
        Ok(Placement { main, peer })
    }

    /// For people: `the scheduler's choice`, `both on CPU 0`, `CPU 0 and CPU 1`.
    pub fn describe(&self) -> String {
        match (self.main, self.peer) {
            (Some(a), Some(b)) if a == b => format!("both on CPU {a}"),
            (Some(a), Some(b)) => format!("CPU {a} and CPU {b}"),
            _ => "placed by the scheduler".to_owned(),
        }
    }
}

/// Pins the calling thread to `cpu`, restoring its previous mask when dropped.
#[must_use = "the pin is undone when the guard is dropped"]
pub struct PinGuard {
    previous: Option<CpuSet>,
}

impl PinGuard {
    /// Pins the calling thread to `cpu`; `None` leaves it where it is.
    pub fn pin(cpu: Option<usize>) -> io::Result<PinGuard> {
        let mut guard = PinGuard { previous: None };
        if let Some(cpu) = cpu {
            let previous = sched_getaffinity(Pid::from_raw(0)).map_err(io::Error::from)?;
            pin_current_thread(cpu)?;
            guard.previous = Some(previous);
        }
        Ok(guard)
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            // Best effort: the mask we restore was valid a moment ago.
            let _ = sched_setaffinity(Pid::from_raw(0), &previous);
        }
    }
}

/// Pins the calling thread, for good, to `cpu` if one was chosen (a peer thread of an
/// exchange, at its start). Best effort, as `taskset` is: a CPU taken away since
/// `sched_getaffinity` leaves the thread where it was, and its figures still count.
pub fn pin_thread_to(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        let _ = pin_current_thread(cpu);
    }
}

/// Pins the calling thread (pid 0 = this thread for `sched_setaffinity`) to one CPU, for good.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(io::Error::from)?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_come_from_the_allowed_set() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        let same = Placement::choose(Pin::Same).unwrap();
        assert_eq!(same.main, Some(allowed[0]));
        assert_eq!(same.main, same.peer);
        match Placement::choose(Pin::Split) {
            Ok(p) => assert!(p.main != p.peer && allowed.contains(&p.peer.unwrap())),
            Err(e) => assert!(allowed.len() < 2 && e.to_string().contains("needs 2")),
        }
        assert_eq!(Placement::choose(Pin::None).unwrap().main, None);
        let (each, left_out) = Placement::each(Pin::Each).unwrap();
        assert_eq!(each[0], (Pin::Same, same));
        assert_eq!(each.len() == 2, left_out.is_none());
    }

    #[test]
    fn a_pin_guard_restores_the_mask() {
        std::thread::spawn(|| {
            let this_thread = || crate::host::cpus_of(Pid::from_raw(0)).unwrap();
            let before = this_thread();
            {
                let _g = PinGuard::pin(Some(before[0])).unwrap();
                assert_eq!(this_thread(), vec![before[0]]);
                // The process's allowed set is the main thread's, untouched by this pin.
                assert_eq!(allowed_cpus().unwrap(), before);
            }
            assert_eq!(this_thread(), before);
        })
        .join()
        .unwrap();
    }
}
