//! The seed's claims, and the topics that give evidence for them: one table for the whole lab,
//! so `cargo xtask report` can list every claim and say which have evidence on this machine.

/// One claim of the seed (`shared/seed/processes-vs-threads.md`).
#[derive(Clone, Copy, Debug)]
pub struct ClaimInfo {
    /// A stable id, used in Reports.
    pub id: &'static str,
    /// The seed's words, abridged.
    pub seed: &'static str,
    /// The topics whose Reports give evidence for it.
    pub topics: &'static [&'static str],
}

/// Every claim of the seed, in the seed's order.
pub const CLAIMS: &[ClaimInfo] = &[
    ClaimInfo {
        id: "mem.process-isolated",
        seed: "a process cannot directly access another's memory",
        topics: &["isolation"],
    },
    ClaimInfo {
        id: "mem.threads-share",
        seed: "threads share the same memory space",
        topics: &["isolation"],
    },
    ClaimInfo {
        id: "comm.process-needs-ipc",
        seed: "processes need pipes, sockets, shared memory or message queues to communicate",
        topics: &["pipes", "sockets", "shm", "mqueue"],
    },
    ClaimInfo {
        id: "comm.threads-faster",
        seed: "inter-thread communication is simpler and faster than IPC",
        topics: &["pipes", "sockets", "shm", "mqueue"],
    },
    ClaimInfo {
        id: "sync.primitives",
        seed: "locks, semaphores and condition variables coordinate threads",
        topics: &["mutex", "semaphore", "condvar"],
    },
    ClaimInfo {
        id: "overhead.process-creation",
        seed: "creating processes costs more than creating threads",
        topics: &["spawn"],
    },
    ClaimInfo {
        id: "overhead.process-memory",
        seed: "a process needs its own memory space; threads share resources",
        topics: &["spawn"],
    },
    ClaimInfo {
        id: "switch.process-costlier",
        seed: "switching between processes costs more than between threads",
        topics: &["switch"],
    },
    ClaimInfo {
        id: "concurrency.both-parallel",
        seed: "processes and threads both run in parallel on different cores",
        topics: &["parallel"],
    },
    ClaimInfo {
        id: "isolation.fault-contained",
        seed: "a fault in one process does not take down another; in a thread it takes the process",
        topics: &["isolation"],
    },
    ClaimInfo {
        id: "resources.shared",
        seed: "threads share resources such as open files; processes do not share directly",
        topics: &["isolation"],
    },
    ClaimInfo {
        id: "usecase.isolation",
        seed: "processes suit tasks that must be isolated",
        topics: &["isolation", "mutex"],
    },
    ClaimInfo {
        id: "usecase.shared-data",
        seed: "threads suit shared data and fast communication",
        topics: &["parallel", "sockets"],
    },
];

/// One topic crate of the lab.
#[derive(Clone, Copy, Debug)]
pub struct TopicInfo {
    /// The crate (and binary) name.
    pub name: &'static str,
    /// What it shows, in a phrase.
    pub shows: &'static str,
    /// Whether its Report must hold both a `process` and a `thread` measurement
    /// (`cargo xtask verify` checks this).
    pub both_variants: bool,
}

/// Every topic of DESIGN.md, landed or not; `xtask` runs those present in the workspace.
pub const TOPICS: &[TopicInfo] = &[
    TopicInfo {
        name: "pipes",
        shows: "anonymous pipes and a FIFO as IPC; byte streams, EOF, EPIPE",
        both_variants: true,
    },
    TopicInfo {
        name: "sockets",
        shows: "Unix and TCP sockets; a small server under load",
        both_variants: true,
    },
    TopicInfo {
        name: "shm",
        shows: "POSIX shared memory and a ring buffer in it",
        both_variants: true,
    },
    TopicInfo {
        name: "mqueue",
        shows: "POSIX message queues: boundaries, priorities, limits",
        both_variants: true,
    },
    TopicInfo {
        name: "mutex",
        shows: "Mutex in threads; a robust process-shared pthread mutex",
        both_variants: true,
    },
    TopicInfo {
        name: "semaphore",
        shows: "POSIX named and unnamed semaphores; a thread semaphore",
        both_variants: true,
    },
    TopicInfo {
        name: "condvar",
        shows: "Condvar in threads; a process-shared pthread condvar",
        both_variants: true,
    },
    TopicInfo {
        name: "parallel",
        shows: "CPU-bound work over cores: threads vs worker processes",
        both_variants: true,
    },
    TopicInfo {
        name: "isolation",
        shows: "address spaces, fd tables, a crashing child vs a crashing thread",
        both_variants: true,
    },
    TopicInfo {
        name: "spawn",
        shows: "creation cost and memory per process vs per thread",
        both_variants: true,
    },
    TopicInfo {
        name: "switch",
        shows: "context-switch cost between processes vs threads",
        both_variants: true,
    },
];

/// The claim with this id, if the seed has it.
pub fn claim(id: &str) -> Option<&'static ClaimInfo> {
    CLAIMS.iter().find(|c| c.id == id)
}

/// The topic with this name, if DESIGN.md lists it.
pub fn topic(name: &str) -> Option<&'static TopicInfo> {
    TOPICS.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_evidence_topic_exists() {
        for (i, c) in CLAIMS.iter().enumerate() {
            assert!(
                CLAIMS[..i].iter().all(|o| o.id != c.id),
                "duplicate {}",
                c.id
            );
            assert!(!c.topics.is_empty(), "{} has no topic", c.id);
            for t in c.topics {
                assert!(topic(t).is_some(), "{} names unknown topic {t}", c.id);
            }
        }
    }
}
