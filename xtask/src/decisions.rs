//! "What this means on this machine": figures derived from a bench's measurements, each with
//! its formula and its inputs, so that a reader can check it, and redo it with figures of their
//! own. `report.md` and `report.html` open with them. A derived figure whose inputs this bench
//! did not measure is left out, saying which input is missing.

use crate::summary::{Figure, Summary};
use crate::text::duration_text as format_ns_f;

/// Bytes for a person: `4.27 MiB`.
fn format_bytes_f(bytes: f64) -> String {
    labkit::report::format_bytes(bytes.round() as u64)
}

/// The share of a job's time that creating its unit, or handing it out, may take.
const SHARE: f64 = 0.05;
/// Connections held at once, for memory per connection.
const CONNECTIONS: f64 = 10_000.0;

/// Every derived figure a bench of all topics gives.
pub const ALL: [&str; 5] = [
    "unit-per-job",
    "ipc-cpu",
    "memory-10k",
    "server-10k",
    "process-pool",
];

/// One derived figure: the question it answers, the answer, how it was computed, and from what.
pub struct Decision {
    pub id: &'static str,
    pub question: String,
    pub answer: String,
    pub formula: String,
    /// Each input: what it is (topic: measurement), and its value on this machine.
    pub inputs: Vec<(String, String)>,
}

/// The median of the figure `topic: name/variant/mechanism` whose config holds `config`'s pairs.
fn find<'a>(
    s: &'a Summary,
    id: (&str, &str, &str, &str),
    config: &[(&str, serde_json::Value)],
) -> Option<&'a Figure> {
    let (topic, name, variant, mechanism) = id;
    s.figures.iter().find(|f| {
        (
            f.topic.as_str(),
            f.name.as_str(),
            f.variant.as_str(),
            f.mechanism.as_str(),
        ) == (topic, name, variant, mechanism)
            && config.iter().all(|(k, v)| f.config.get(*k) == Some(v))
    })
}

/// Every derived figure this bench has the inputs for, and a note for each it has not.
pub fn decisions(s: &Summary) -> (Vec<Decision>, Vec<String>) {
    let all = [
        unit_per_job(s),
        ipc_costs_a_cpu(s),
        memory_for_connections(s),
        server_for_connections(s),
        process_pool_vs_threads(s),
    ];
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for d in all {
        match d {
            Ok(d) => found.push(d),
            Err(why) => missing.push(why),
        }
    }
    (found, missing)
}

/// An input's label: `topic: name/variant/mechanism config`.
fn label(f: &Figure) -> String {
    f.id()
}

/// The shortest job for which creating its own unit (and waiting for it) costs under 5%.
fn unit_per_job(s: &Summary) -> Result<Decision, String> {
    let ways = [
        ("a process (fork)", "process", "fork"),
        ("a thread", "thread", "thread-spawn"),
        ("an async task", "task", "tokio-task"),
    ];
    let mut inputs = Vec::new();
    let mut answers = Vec::new();
    for (what, variant, mechanism) in ways {
        let Some(f) = find(s, ("spawn", "create", variant, mechanism), &[]) else {
            continue;
        };
        inputs.push((label(f), format_ns_f(f.figure.median)));
        answers.push(format!("{what} {}", format_ns_f(f.figure.median / SHARE)));
    }
    if answers.is_empty() {
        return Err("a unit per job: no creation cost measured (spawn did not run)".into());
    }
    Ok(Decision {
        id: "unit-per-job",
        question: "How long must a job be for a unit of its own (created, then waited for) to \
                   cost under 5% of it?"
            .into(),
        answer: format!("at least: {}", answers.join("; ")),
        formula: format!("job ≥ creation time ÷ {SHARE}"),
        inputs,
    })
}

/// The round-trip rate at which talking to another process takes a whole CPU (both sides on
/// one CPU: every cycle of the exchange is on it).
fn ipc_costs_a_cpu(s: &Summary) -> Result<Decision, String> {
    let one_cpu = ("pin", serde_json::json!("same"));
    let ways = [
        (
            "over a pipe",
            ("pipes", "round_trip", "process", "pipe"),
            64,
        ),
        (
            "over a Unix socket",
            ("sockets", "round_trip", "process", "unix-stream"),
            100,
        ),
        (
            "through shared memory (the shm ring, blocking)",
            ("shm", "round_trip", "process", "shm-ring"),
            64,
        ),
    ];
    let mut inputs = Vec::new();
    let mut answers = Vec::new();
    for (what, id, bytes) in ways {
        let config = [one_cpu.clone(), ("bytes", serde_json::json!(bytes))];
        let Some(f) = find(s, id, &config) else {
            continue;
        };
        let Some(cpu) = f.cpu_ns_per_op.as_ref().map(|c| c.median) else {
            continue;
        };
        inputs.push((
            format!("{} (CPU per round trip)", label(f)),
            format_ns_f(cpu),
        ));
        answers.push(format!("{what} {:.0} round trips/s", 1e9 / cpu));
    }
    if answers.is_empty() {
        return Err("IPC taking a CPU: no round trip on one CPU with its CPU time".into());
    }
    Ok(Decision {
        id: "ipc-cpu",
        question: "At what rate of small messages does talking to another process take a whole \
                   CPU?"
            .into(),
        answer: answers.join("; "),
        formula: "round trips per second = 1 s ÷ CPU time per round trip (both sides, on one \
                  CPU)"
            .into(),
        inputs,
    })
}

/// The memory of 10,000 idle units, one per connection, before any buffer.
fn memory_for_connections(s: &Summary) -> Result<Decision, String> {
    let ways = [
        ("processes", "process", "fork"),
        ("threads", "thread", "thread-spawn"),
        ("async tasks", "task", "tokio-task"),
    ];
    let mut inputs = Vec::new();
    let mut answers = Vec::new();
    for (what, variant, mechanism) in ways {
        let Some(f) = find(s, ("spawn", "memory_per_unit", variant, mechanism), &[]) else {
            continue;
        };
        let kib = f.figure.median;
        inputs.push((label(f), format!("{kib:.2} KiB")));
        answers.push(format!(
            "{what} {}",
            format_bytes_f(kib * 1024.0 * CONNECTIONS)
        ));
    }
    if answers.is_empty() {
        return Err("memory per connection: no memory per idle unit measured".into());
    }
    Ok(Decision {
        id: "memory-10k",
        question: "How much memory do 10,000 connections take with a unit each, idle, before \
                   any buffer?"
            .into(),
        answer: answers.join("; "),
        formula: format!(
            "memory per idle unit × {CONNECTIONS:.0} (PSS, and page tables for processes)"
        ),
        inputs,
    })
}

/// What each server model of sockets needs to hold 10,000 connections: measured if it held
/// that many, else its memory at the most it held, plus its memory per connection for the rest.
fn server_for_connections(s: &Summary) -> Result<Decision, String> {
    let count = |f: &Figure| f.config_f64("connections").filter(|n| *n <= CONNECTIONS);
    let mut inputs = Vec::new();
    let mut answers = Vec::new();
    for model in crate::held::MODELS {
        let held = (s.figures.iter())
            .filter(|f| f.topic == "sockets" && f.name == "held_pss" && f.mechanism == model)
            .filter_map(|f| Some((count(f)?, f)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((n, held)) = held else {
            continue;
        };
        let at_n = [("connections", serde_json::json!(n as u64))];
        let id = (
            "sockets",
            "held_pss_per_connection",
            held.variant.as_str(),
            model,
        );
        let Some(each) = find(s, id, &at_n) else {
            continue;
        };
        inputs.push((label(held), format!("{:.0} KiB", held.figure.median)));
        let kib = if n < CONNECTIONS {
            inputs.push((label(each), format!("{:.2} KiB", each.figure.median)));
            held.figure.median + each.figure.median * (CONNECTIONS - n)
        } else {
            held.figure.median
        };
        let how = if n < CONNECTIONS { "" } else { " (measured)" };
        answers.push(format!("{model} {}{how}", format_bytes_f(kib * 1024.0)));
    }
    if answers.is_empty() {
        return Err("server memory for 10,000 connections: sockets held no connections".into());
    }
    Ok(Decision {
        id: "server-10k",
        question: "How much memory does each server model take to hold 10,000 connections?".into(),
        answer: answers.join("; "),
        formula: format!(
            "memory held at the most connections N measured (≤ {CONNECTIONS:.0}) + memory per \
             connection × ({CONNECTIONS:.0} − N); PSS of the server with its children, socket \
             buffers (the kernel's) not included"
        ),
        inputs,
    })
}

/// When a pool of processes made once is as cheap as a pool of threads: the job length above
/// which its extra cost per job is under 5%.
fn process_pool_vs_threads(s: &Summary) -> Result<Decision, String> {
    let pool = |variant, mechanism| find(s, ("parallel", "small_job", variant, mechanism), &[]);
    let (Some(processes), Some(threads)) = (
        pool("process", "process-pool"),
        pool("thread", "thread-pool"),
    ) else {
        return Err("process pool vs thread pool: parallel's small job did not run".into());
    };
    let extra = processes.figure.median - threads.figure.median;
    let answer = if extra > 0.0 {
        format!(
            "it adds {} per job here: under 5% for jobs of at least {}",
            format_ns_f(extra),
            format_ns_f(extra / SHARE)
        )
    } else {
        "already: it cost no more per job than the thread pool here, so no job is too short"
            .to_owned()
    };
    Ok(Decision {
        id: "process-pool",
        question: "When does a pool of processes, made once, cost as little as a pool of \
                   threads?"
            .into(),
        answer,
        formula: format!("job ≥ (small job on the process pool − on the thread pool) ÷ {SHARE}"),
        inputs: vec![
            (label(processes), format_ns_f(processes.figure.median)),
            (label(threads), format_ns_f(threads.figure.median)),
        ],
    })
}
