//! `cargo xtask torture`: every topic's bad paths, from the outside, with counts.
//!
//! * **kill**: each topic runs at its default size and is SIGKILLed at a random moment: the
//!   parent in even rounds, a child (found through `/proc`) in odd ones. A killed parent must
//!   leave no process (its children die with it) and nothing that `clean` cannot remove (its
//!   ledger lists what it had not unlinked yet); a surviving parent must exit 1 with a message
//!   that names the death, and leave nothing at all.
//! * **signals**: SIGINT or SIGTERM at a random moment: exit 130 or 143, nothing left.
//! * **crowd**: `--copies` copies of each topic at once (`--quick`): all pass, nothing left.
//! * **clean**: `clean` removes what a dead creator left and leaves a live creator's objects.
//!
//! POSIX message queues are looked for in an mqueue file system mounted on a private temporary
//! directory (where mounting is permitted; else the ledger is the only witness). The random
//! moments come from `--seed` (printed), so a failing round can be replayed.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use labkit::report::{Report, Status};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::leftovers::{self, Snapshot};
use crate::text::{say, table};
use crate::workspace::{self, Topic};

mod clean;
mod kill;
mod limits;
mod refusals;
mod runs;
mod squat;

pub use clean::leave_one;
use clean::*;
use kill::*;
use limits::*;
use refusals::*;
use runs::*;
use squat::*;

/// A run that takes longer than this is hung.
const HANG_GUARD: Duration = Duration::from_secs(120);
/// Signals wait this long at least: a topic installs its handlers first thing, within a few ms.
const SIGNAL_EARLIEST: Duration = Duration::from_millis(15);

/// Where the random moments fall: from 2 ms after the start to 90% of a calibration run.
#[derive(Clone, Copy)]
struct Window {
    earliest: u64,
    latest: u64,
}

impl Window {
    fn new(run: Duration) -> Window {
        let latest = (run.as_millis() as u64 * 9 / 10).max(3);
        Window {
            earliest: 2,
            latest,
        }
    }

    fn pick(self, rng: &mut Rng) -> Duration {
        Duration::from_millis(rng.between(self.earliest, self.latest))
    }
}

const USAGE: &str =
    "usage: cargo xtask torture [--kills N] [--signals N] [--copies N] [--seed N] [TOPIC...]

  --kills N     SIGKILL rounds per topic, parent and child alternately [default: 2]
  --signals N   SIGINT/SIGTERM rounds per topic, alternately [default: 2]
  --copies N    copies of each topic run at once, --quick [default: 8]
  --refusals N  refused flag sets run end to end per topic [default: 5]
  --cases N     in-process parser fuzz cases per topic, run here through each topic's unit test
                [default: 0: `cargo test` already ran 100 per topic]
  --seed N      the seed of the random moments [default: from the clock]
  --limits      also run every topic under resource limits (descriptors, address space, queue
                bytes, a pids cgroup, a tiny /dev/shm) and count what became of each run";

struct Options {
    cases: u32,
    refusals: u32,
    kills: u32,
    signals: u32,
    copies: usize,
    seed: u64,
    limits: bool,
    topics: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        cases: 0,
        refusals: 5,
        kills: 2,
        signals: 2,
        copies: 8,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        limits: false,
        topics: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut number = |max: u64| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{a} needs a number"))?;
            let n: u64 = v
                .parse()
                .map_err(|_| format!("{a} {v}: not a whole number"))?;
            if n > max {
                return Err(format!("{a} {n}: at most {max}"));
            }
            Ok(n)
        };
        match a.as_str() {
            "--kills" => o.kills = number(100_000)? as u32,
            "--signals" => o.signals = number(100_000)? as u32,
            "--copies" => o.copies = number(64)? as usize,
            "--refusals" => o.refusals = number(10_000)? as u32,
            "--cases" => o.cases = number(1_000_000)? as u32,
            "--seed" => o.seed = number(u64::MAX)?,
            "--limits" => o.limits = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            topic => o.topics.push(topic.to_owned()),
        }
    }
    Ok(o)
}

pub fn run(args: &[String]) -> Result<bool> {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask torture: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let topics = workspace::topics(&o.topics)?;
    if o.cases > 0 {
        fuzz_parsers(&topics, o.cases)?;
    }
    // Both builds before we become a subreaper: a daemon cargo starts must not look like a
    // topic's leftover.
    workspace::build_release(&topics)?;
    let debug = workspace::build_debug(&topics)?;
    let mq = MqueueView::mount();
    workspace::become_subreaper()?;
    say(&format!(
        "torture: {} topic(s), seed {}, message queues seen {}",
        topics.len(),
        o.seed,
        mq.describe()
    ));
    let mut rng = Rng(o.seed.max(1));
    let mut tally = Tally::default();
    let mut rows = vec![
        [
            "topic",
            "kills",
            "reported",
            "unnoticed",
            "cleaned",
            "signals",
            "refused",
            "crowd",
            "result",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for topic in &topics {
        let mut t = Tally::default();
        // The moments fall inside the run: how long a run lasts, from one untimed run.
        let calibration = Instant::now();
        if o.kills + o.signals > 0 {
            let e = finish(start(topic, &["--json"])?)?;
            judge_normal(topic, &e, "the calibration run", &mut t);
        }
        let window = Window::new(calibration.elapsed());
        for round in 0..o.kills {
            kill_round(topic, &mut rng, window, round % 2 == 1, &mq, &mut t)?;
        }
        for round in 0..o.signals {
            let sig = if round % 2 == 0 {
                Signal::SIGINT
            } else {
                Signal::SIGTERM
            };
            signal_round(topic, &mut rng, window, sig, &mq, &mut t)?;
        }
        refused_flags(topic, &mut rng, o.refusals, &mq, &mut t)?;
        if o.copies > 0 {
            crowd(topic, o.copies, &mq, &mut t)?;
        }
        rows.push(vec![
            topic.name.clone(),
            t.kills.to_string(),
            t.reported.to_string(),
            t.unnoticed.to_string(),
            t.cleaned.to_string(),
            t.signals.to_string(),
            t.refused.to_string(),
            t.copies.to_string(),
            if t.failures.is_empty() { "ok" } else { "FAIL" }.to_owned(),
        ]);
        tally.add(t);
    }
    let clean_ok = prove_clean(&mut tally)?;
    let limits_ok = !o.limits || limits_stage(&topics)?.bad.is_empty();
    squat(&topics, &debug, &mq, &mut tally)?;
    say(&table(&rows));
    for u in &tally.unnoticed_what {
        say(&format!("  unnoticed (every check passed): {u}"));
    }
    for f in &tally.failures {
        say(&format!("  - {f}"));
    }
    say(&format!(
        "torture: {} kills landed ({} on a parent, {} on a child: {} reported by the parent \
         with exit 1, {} unnoticed with every check passing), {} runs ended before the kill or \
         signal (and passed); {} leftovers of killed parents, all removed by clean; {} signals; \
         {} refused flag sets; {} copies at once; {} runs against squatted names ({} met the \
         squat and refused it with exit 1, squatters untouched; {} use no name; {} used it for \
         a kind not planted and passed); clean {}; {} \
         failure(s), {} hang(s), {} panic(s)",
        tally.kills_parent + tally.kills_child,
        tally.kills_parent,
        tally.kills_child,
        tally.reported,
        tally.unnoticed,
        tally.finished_first,
        tally.cleaned,
        tally.signals,
        tally.refused,
        tally.copies,
        tally.squats,
        tally.squats_refused,
        tally.squats_unused,
        tally.squats - tally.squats_refused - tally.squats_unused,
        if clean_ok { "proved" } else { "FAILED" },
        tally.failures.len(),
        tally.hangs,
        tally.panics
    ));
    Ok(tally.failures.is_empty() && clean_ok && limits_ok)
}

/// Counts over the rounds, and what went wrong.
#[derive(Default)]
struct Tally {
    kills: u64,
    kills_parent: u64,
    kills_child: u64,
    reported: u64,
    unnoticed_what: Vec<String>,
    unnoticed: u64,
    finished_first: u64,
    cleaned: u64,
    signals: u64,
    copies: u64,
    refused: u64,
    squats: u64,
    squats_refused: u64,
    squats_unused: u64,
    hangs: u64,
    panics: u64,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, t: Tally) {
        // Every count adds up; every list of cases is joined.
        macro_rules! add {
            ($($count:ident),*; $($list:ident),*) => {
                $(self.$count += t.$count;)*
                $(self.$list.extend(t.$list);)*
            };
        }
        add!(
            kills, kills_parent, kills_child, reported, unnoticed, finished_first, cleaned,
            signals, copies, refused, squats, squats_refused, squats_unused, hangs, panics;
            unnoticed_what, failures
        );
    }

    fn fail(&mut self, topic: &Topic, what: String) {
        self.failures.push(format!("{}: {what}", topic.name));
    }
}

/// xorshift64*: enough to spread the moments, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}
