//! # isolation: what a process keeps to itself, and what threads share
//!
//! **Claims** (from the seed, checked on this machine):
//! * `mem.process-isolated`: a process cannot directly access another's memory;
//! * `mem.threads-share`: threads of a process share its memory;
//! * `resources.shared`: threads share resources such as open files; processes do not;
//! * `isolation.fault-contained`: a fault in one process does not take down another, while a
//!   fault in a thread takes down its whole process;
//! * `usecase.isolation`: so processes suit tasks that must be isolated.
//!
//! **Steps**
//! 1. [`show_memory`]: after `fork`, a child writes a global and a heap value; we still see
//!    the old values at the very same addresses (copy-on-write). With ptrace permission,
//!    `process_vm_readv` reads the child's value anyway: "not directly", but not impossible.
//!    A thread's write to the same values is seen at once.
//! 2. [`measure_first_writes`]: what that copy costs: the first write to each page in a forked
//!    child (a copy-on-write fault) against the same write by a thread (a plain store).
//! 3. [`show_fd_tables`]: a thread's `close` closes the descriptor for every thread; a child's
//!    `close` leaves ours open; but a child's `read` moves our offset (one shared description).
//! 4. [`show_faults`]: a child that faults for real dies of SIGSEGV and we carry on; a thread
//!    that faults kills its whole process and the work of its other thread (shown inside a
//!    sacrificial child, [`child::watch_thread_fault`]); a thread that *panics* only ends itself.
//! 5. [`judge_claims`]: each claim from what was observed ([`observe`]: the yes/no and the
//!    words of each demonstration).
//!
//! The mechanisms are in `fork.rs` (copy-on-write), `fds.rs` (descriptor tables) and
//! `fault.rs` (a real segmentation fault). Every crashing process first sets `RLIMIT_CORE` to
//! 0 and `PR_SET_DUMPABLE` to 0: no core file. Forks happen while this process has a single
//! thread.
//!
//! **Run it**: `cargo run --release -p isolation` (well under a second), `-- --json` for the
//! Report, `-- --pages 65536` to time copy-on-write over 256 MiB.

mod child;
mod fault;
mod fds;
mod fork;
mod measure;
mod observe;

use std::io::PipeWriter;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use clap::Parser;
use labkit::exit::usage;
use labkit::limits::{Ask, check};
use labkit::names::PrivateDir;
use labkit::{CommonArgs, Measurement, Outcome, Report, RoleArgs, Size, Variant, Verdict};
use nix::sys::wait::WaitStatus;
use serde_json::json;

use observe::{Faults, Files, Memory};

/// Pages whose first write is timed, by default and with `--quick`; at most 1 GiB of 4 KiB pages.
const PAGES: Size = Size::new(4096, 256, 1 << 18);
/// The value the child writes, and the one the thread writes.
const CHILD_VALUE: u64 = 0xC0FFEE;
const THREAD_VALUE: u64 = 0xBEEF;
/// Bytes the child reads from the shared description.
const MOVED_BY: usize = 4;
/// Units of work the panicking thread's sibling does.
const PANIC_UNITS: u64 = 1000;

#[derive(Parser, Debug)]
#[command(
    about = "What a process keeps to itself and what threads share: memory, descriptors, faults.",
    after_help = labkit::examples!(
        "",
        " -- --json | jq .claims",
        " -- --pages 65536"
    )
)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,

    /// Pages whose first write is timed [default: 4096; --quick: 256; from 1 to 262144].
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, PAGES.max))]
    pages: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,
}

fn main() -> ExitCode {
    labkit::dispatch(Args::parse(), |a| &a.role, run, run_child)
}

/// A builder for one of this topic's threads, named for `ps` and `perf` (at most 15 bytes).
fn named(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(name.into())
}

fn run(args: Args) -> Result<Outcome> {
    let (mut report, _shutdown) = labkit::start(env!("CARGO_PKG_NAME"))?;
    let common = &args.common;
    let pages = common.size(args.pages, PAGES) as usize;
    // Each side maps the pages it writes (4 KiB each), one side at a time.
    check(
        &format!("--pages {pages}"),
        Ask::AddressSpace(pages as u64 * 4096),
    )?;
    report.param("pages", pages);
    if common.both_sides() {
        let memory = show_memory(&mut report)?;
        measure_first_writes(&mut report, pages, common)?;
        let files = show_fd_tables(&mut report)?;
        let faults = show_faults(&mut report)?;
        judge_claims(&mut report, &memory, &files, &faults);
    } else {
        // Steps 1, 3 and 4 set a child against a thread: with one side, only step 2's
        // measurement runs, for that side.
        measure_first_writes(&mut report, pages, common)?;
        report.skip(
            "the demonstrations (memory, descriptor tables, faults)",
            "each sets a child against a thread: they need both sides",
        );
        report.summary = "one side only: the first writes to pages, timed".to_owned();
    }
    report.note_one_side(common);
    report.end(common.json)
}

/// Step 1: one address, two values after `fork`; one value for all threads.
fn show_memory(report: &mut Report) -> Result<Memory> {
    let mut heap = Box::new(1u64);
    fork::GLOBAL.store(1, Ordering::SeqCst);
    let cow = fork::copy_on_write(&mut heap, CHILD_VALUE).context("fork the writing child")?;
    if !matches!(cow.status, WaitStatus::Exited(_, 0)) {
        bail!("the writing child ended badly: {:?}", cow.status);
    }
    // The same writes from a thread: one address space, one value.
    std::thread::scope(|s| {
        named("iso-writer")
            .spawn_scoped(s, || {
                fork::GLOBAL.store(THREAD_VALUE, Ordering::SeqCst);
                *heap = THREAD_VALUE;
            })
            .map(drop)
    })
    .context("spawn the writing thread")?;
    let memory = Memory::observe(&cow, (fork::GLOBAL.load(Ordering::SeqCst), *heap));
    report.check(
        "a forked child's writes stay in the child",
        memory.child_isolated,
        memory.child_seen.clone(),
    );
    let name = "another process's memory can be read only through the kernel, with permission";
    match memory.kernel_read_allowed {
        Some(ok) => report.check(name, ok, memory.read_through_kernel.clone()),
        None => report.skip(name, "process_vm_readv is not available here (ENOSYS)"),
    }
    report.check(
        "a thread's writes are everyone's",
        memory.thread_shared,
        memory.thread_seen.clone(),
    );
    Ok(memory)
}

/// Step 2: the first write to a page, in a forked child (a copy-on-write fault) and in a
/// thread (a store to a page already ours).
fn measure_first_writes(report: &mut Report, pages: usize, common: &CommonArgs) -> Result<()> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .context("sysconf(PAGE_SIZE)")?
        .map_or(4096, |p| p as usize);
    let config = json!({ "pages": pages, "page_bytes": page });
    for (variant, mechanism) in [
        (Variant::Process, "cow-fault"),
        (Variant::Thread, "shared-page"),
    ] {
        if common.wants(variant) {
            let latency = measure::first_writes(variant, pages, page)?;
            report.measure(Measurement::histogram(
                "first_write",
                variant,
                mechanism,
                config.clone(),
                &latency,
                None,
            ));
        }
    }
    Ok(())
}

/// Step 3: descriptor tables.
fn show_fd_tables(report: &mut Report) -> Result<Files> {
    let dir = PrivateDir::create()?;
    let path = dir.path().join("alphabet");
    let content = b"abcdefghijklmnopqrstuvwxyz";
    std::fs::write(&path, content).with_context(|| format!("write {}", path.display()))?;
    let tables = fds::demonstrate(&path, MOVED_BY).context("descriptor demos")?;
    let files = Files::observe(&tables, content);
    for (name, ok, seen) in [
        (
            "a thread's close closes the descriptor for every thread",
            files.thread_closed_for_all,
            &files.seen[0],
        ),
        (
            "a child's close leaves the parent's descriptor open",
            files.child_close_contained,
            &files.seen[1],
        ),
        (
            "a forked child shares the open file description, offset included",
            files.offset_shared,
            &files.seen[2],
        ),
    ] {
        report.check(name, ok, seen.clone());
    }
    Ok(files)
}

/// Step 4: faults and panics.
fn show_faults(report: &mut Report) -> Result<Faults> {
    // A child faults: it dies, we go on.
    let child = fork::fork_and_run(|| {
        if fault::no_core_dumps().is_err() {
            return 1; // Never crash on purpose where a core file could be left.
        }
        fault::segfault_now()
    })
    .context("fork the faulting child")?;
    let status = fork::wait(child).context("waitpid")?;
    let (child_fault_contained, child_seen) = observe::child_fault(status);
    report.check(
        "a child that faults dies alone",
        child_fault_contained,
        &child_seen,
    );

    // A thread faults, inside a sacrificial process: the whole process goes, with the work of
    // its other thread.
    let (done, status) = child::watch_thread_fault()?;
    let (thread_fault_killed_all, thread_seen) = observe::thread_fault(status, done);
    report.check(
        "a thread that faults takes its whole process down",
        thread_fault_killed_all,
        &thread_seen,
    );

    // A thread panics: it ends, and the process does not.
    let (joined, units) = fault::panic_beside_worker(PANIC_UNITS)?;
    let (panic_contained, panic_seen) = observe::thread_panic(joined, units, PANIC_UNITS);
    report.check(
        "a thread that panics ends alone",
        panic_contained,
        &panic_seen,
    );
    Ok(Faults {
        child_fault_contained,
        child_seen,
        thread_fault_killed_all,
        thread_seen,
        panic_seen,
    })
}

/// Step 5: the claims, each decided by what steps 1 to 4 saw, its evidence what they saw.
fn judge_claims(report: &mut Report, memory: &Memory, files: &Files, faults: &Faults) {
    let contained = faults.child_fault_contained && faults.thread_fault_killed_all;
    let claims = [
        (
            "mem.process-isolated",
            memory.child_isolated,
            format!("{}; {}", memory.child_seen, memory.read_through_kernel),
        ),
        (
            "mem.threads-share",
            memory.thread_shared,
            memory.thread_seen.clone(),
        ),
        // The seed simplifies: a forked child shares the open file *description* (the
        // offset); said, but not required, since the claim is about the tables.
        (
            "resources.shared",
            files.thread_closed_for_all && files.child_close_contained,
            files.seen.join("; "),
        ),
        (
            "isolation.fault-contained",
            contained,
            format!(
                "{}; {}; {}",
                faults.child_seen, faults.thread_seen, faults.panic_seen
            ),
        ),
        (
            "usecase.isolation",
            contained,
            format!("{}; {}", faults.child_seen, faults.thread_seen),
        ),
    ];
    let held = claims.iter().filter(|(_, ok, _)| *ok).count();
    let total = claims.len();
    for (id, ok, evidence) in claims {
        let verdict = if ok {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        };
        report.claim_observed(id, verdict, evidence);
    }
    report.conclude(format!(
        "fork gave a child its own copy of memory and descriptors (but a shared file offset); \
         threads shared both; a fault killed one process, or every thread of one; {held} of \
         {total} claims hold"
    ));
}

/// The sacrificial process of step 4 (`--role thread-fault`): it takes back the write end of
/// the progress pipe it was given, and dies of its own thread's fault.
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    match args.role.role.as_deref().unwrap_or_default() {
        "thread-fault" => {
            let mut fds = args.role.take_fds()?.into_iter();
            let fd = fds.next().context("no progress fd passed")?;
            child::sacrifice(PipeWriter::from(fd))
        }
        other => Err(usage(format!("unknown role `{other}`"))),
    }
}

#[cfg(test)]
testkit::fuzz_test!(Args);

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(what: &str) -> String {
        format!("seen: {what}")
    }

    /// What a run on Linux observes, or (`false`) the other way round.
    fn observations(as_linux: bool) -> (Memory, Files, Faults) {
        (
            Memory {
                child_isolated: as_linux,
                child_seen: seen("child"),
                kernel_read_allowed: Some(as_linux),
                read_through_kernel: seen("kernel"),
                thread_shared: as_linux,
                thread_seen: seen("thread"),
            },
            Files {
                thread_closed_for_all: as_linux,
                child_close_contained: as_linux,
                offset_shared: as_linux,
                seen: [seen("close"), seen("child close"), seen("offset")],
            },
            Faults {
                child_fault_contained: as_linux,
                child_seen: seen("child fault"),
                thread_fault_killed_all: as_linux,
                thread_seen: seen("thread fault"),
                panic_seen: seen("panic"),
            },
        )
    }

    /// Every observed claim follows its observation: forced the other way, it does not hold,
    /// and its evidence is what was seen.
    #[test]
    fn each_claim_follows_what_was_observed() {
        for as_linux in [true, false] {
            let (m, f, x) = observations(as_linux);
            let mut report = Report::new(env!("CARGO_PKG_NAME"));
            judge_claims(&mut report, &m, &f, &x);
            assert_eq!(report.claims.len(), 5);
            for c in &report.claims {
                let expected = if as_linux {
                    Verdict::Holds
                } else {
                    Verdict::DoesNotHold
                };
                assert_eq!(c.verdict, expected, "{}", c.id);
                assert!(c.evidence.contains("seen: "), "{}: {}", c.id, c.evidence);
            }
        }
        // One observation alone decides its claim.
        let (mut m, f, x) = observations(true);
        m.thread_shared = false;
        let mut report = Report::new(env!("CARGO_PKG_NAME"));
        judge_claims(&mut report, &m, &f, &x);
        let verdict = |id: &str| report.claims.iter().find(|c| c.id == id).unwrap().verdict;
        assert_eq!(verdict("mem.threads-share"), Verdict::DoesNotHold);
        assert_eq!(verdict("mem.process-isolated"), Verdict::Holds);
    }
}
