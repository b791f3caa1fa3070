//! The seed's claims (docs/seed.md), one list for the whole lab: their ids and words, so that
//! `cargo xtask report` can list every claim and say which have evidence on this machine.
//! Which claims a topic gives evidence for is declared by the topic itself, in its
//! `Cargo.toml` (`[package.metadata.lab] claims = [...]`), so a copied crate needs no change
//! here.

/// One claim of the seed.
#[derive(Clone, Copy, Debug)]
pub struct ClaimInfo {
    /// A stable id, used in Reports.
    pub id: &'static str,
    /// The seed's words, abridged.
    pub seed: &'static str,
}

/// Every claim of the seed, in the seed's order.
pub const CLAIMS: &[ClaimInfo] = &[
    ClaimInfo {
        id: "mem.process-isolated",
        seed: "a process cannot directly access another's memory",
    },
    ClaimInfo {
        id: "mem.threads-share",
        seed: "threads share the same memory space",
    },
    ClaimInfo {
        id: "comm.process-needs-ipc",
        seed: "processes need pipes, sockets, shared memory or message queues to communicate",
    },
    ClaimInfo {
        id: "comm.threads-faster",
        seed: "inter-thread communication is simpler and faster than IPC",
    },
    ClaimInfo {
        id: "sync.primitives",
        seed: "locks, semaphores and condition variables coordinate threads",
    },
    ClaimInfo {
        id: "overhead.process-creation",
        seed: "creating processes costs more than creating threads",
    },
    ClaimInfo {
        id: "overhead.process-memory",
        seed: "a process needs its own memory space; threads share resources",
    },
    ClaimInfo {
        id: "switch.process-costlier",
        seed: "switching between processes costs more than between threads",
    },
    ClaimInfo {
        id: "concurrency.both-parallel",
        seed: "processes and threads both run in parallel on different cores",
    },
    ClaimInfo {
        id: "isolation.fault-contained",
        seed: "a fault in one process does not take down another; in a thread it takes the process",
    },
    ClaimInfo {
        id: "resources.shared",
        seed: "threads share resources such as open files; processes do not share directly",
    },
    ClaimInfo {
        id: "usecase.isolation",
        seed: "processes suit tasks that must be isolated",
    },
    ClaimInfo {
        id: "usecase.shared-data",
        seed: "threads suit shared data and fast communication",
    },
];

/// The claim with this id, if the seed has it.
pub fn claim(id: &str) -> Option<&'static ClaimInfo> {
    CLAIMS.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique() {
        for (i, c) in CLAIMS.iter().enumerate() {
            assert!(
                CLAIMS[..i].iter().all(|o| o.id != c.id),
                "duplicate {}",
                c.id
            );
        }
    }
}
