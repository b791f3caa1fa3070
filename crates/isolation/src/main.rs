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
//!    sacrificial child); a thread that *panics* only ends itself.
//! 5. [`judge_claims`]: each claim from what was observed.
//!
//! Every crashing process first sets `RLIMIT_CORE` to 0 and `PR_SET_DUMPABLE` to 0: no core file.
//! Forks happen while this process has a single thread.
//!
//! **Run it**: `cargo run --release -p isolation` (well under a second), `-- --json` for the
//! Report, `-- --pages 65536` to time copy-on-write over 256 MiB.

mod fault;
mod fds;
mod fork;

use std::io::Read;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use labkit::child::{Peer, describe};
use labkit::exit::usage;
use labkit::names::PrivateDir;
use labkit::{
    CommonArgs, LatencyRecorder, Measurement, Outcome, Report, RoleArgs, Variant, Verdict,
};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use serde_json::json;

/// Pages whose first write is timed, by default and with `--quick`; at most 1 GiB of 4 KiB pages.
const PAGES: u64 = 4096;
const QUICK_PAGES: u64 = 256;
const MAX_PAGES: u64 = 1 << 18;
/// The value the child writes, and the one the thread writes.
const CHILD_VALUE: u64 = 0xC0FFEE;
const THREAD_VALUE: u64 = 0xBEEF;
/// Bytes the child reads from the shared description.
const MOVED_BY: usize = 4;
/// Units of work the doomed process's worker thread plans, and after how many its sibling faults.
const PLANNED_UNITS: u64 = 1_000_000;
const FAULT_AFTER: u64 = 20;
/// Waits that should end at once; reaching one means something is wrong, not slow.
const HANG_GUARD: Duration = Duration::from_secs(30);

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
    #[arg(long, value_name = "N", value_parser = labkit::cli::bounded(1, MAX_PAGES))]
    pages: Option<u64>,

    #[command(flatten)]
    role: RoleArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.role.role.is_some() {
        return labkit::finish(concat!(env!("CARGO_PKG_NAME"), " (child)"), run_child(args));
    }
    labkit::finish(env!("CARGO_PKG_NAME"), run(args))
}

fn run(args: Args) -> Result<Outcome> {
    labkit::signals::install().context("install SIGINT/SIGTERM handlers")?;
    let common = &args.common;
    let pages = args
        .pages
        .unwrap_or(if common.quick { QUICK_PAGES } else { PAGES }) as usize;

    let mut report = Report::new(env!("CARGO_PKG_NAME"));
    report.param("pages", pages);
    if common.both_sides() {
        let memory = show_memory(&mut report)?;
        measure_first_writes(&mut report, pages, [true, true])?;
        let files = show_fd_tables(&mut report)?;
        let faults = show_faults(&mut report)?;
        judge_claims(&mut report, &memory, &files, &faults);
    } else {
        // Steps 1, 3 and 4 set a child against a thread: with one side, only step 2's
        // measurement runs, for that side.
        let sides = [
            common.wants(Variant::Process),
            common.wants(Variant::Thread),
        ];
        measure_first_writes(&mut report, pages, sides)?;
        report.skip(
            "the demonstrations (memory, descriptor tables, faults)",
            "each sets a child against a thread: they need both sides",
        );
        report.summary = "one side only: the first writes to pages, timed".to_owned();
    }
    common.note_one_side(&mut report);
    report
        .emit(common.json)
        .context("write the report to stdout")?;
    Ok(Outcome::of(&report))
}

/// What step 1 found, and what was seen, in words.
struct Memory {
    child_isolated: bool,
    child_seen: String,
    thread_shared: bool,
    thread_seen: String,
    read_through_kernel: String,
}

/// Step 1: one address, two values after `fork`; one value for all threads.
fn show_memory(report: &mut Report) -> Result<Memory> {
    let mut heap = Box::new(1u64);
    fork::GLOBAL.store(1, Ordering::SeqCst);
    let cow = fork::copy_on_write(&mut heap, CHILD_VALUE).context("fork the writing child")?;
    if !matches!(cow.status, WaitStatus::Exited(_, 0)) {
        bail!("the writing child ended badly: {:?}", cow.status);
    }
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
    report.check(
        "a forked child's writes stay in the child",
        child_isolated,
        child_seen.clone(),
    );
    // Which of the two outcomes the seed's "not directly" allows happened: the kernel read the
    // child's memory for us (ptrace permission), or it refused. Anything else is a failure.
    let (read_status, read_through_kernel) = match cow.read_through_kernel {
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
        Err(e @ (nix::errno::Errno::EPERM | nix::errno::Errno::EACCES)) => (
            Some(true),
            format!("refused: process_vm_readv failed with {e} (no ptrace permission here)"),
        ),
        Err(nix::errno::Errno::ENOSYS) => (None, "process_vm_readv: ENOSYS".to_owned()),
        Err(e) => (
            Some(false),
            format!("process_vm_readv failed with {e}, neither a read nor a refusal"),
        ),
    };
    let name = "another process's memory can be read only through the kernel, with permission";
    match read_status {
        Some(ok) => report.check(name, ok, read_through_kernel.clone()),
        None => report.skip(name, "process_vm_readv is not available here (ENOSYS)"),
    }

    // The same writes from a thread: one address space, one value.
    std::thread::scope(|s| {
        s.spawn(|| {
            fork::GLOBAL.store(THREAD_VALUE, Ordering::SeqCst);
            *heap = THREAD_VALUE;
        });
    });
    let thread_shared =
        fork::GLOBAL.load(Ordering::SeqCst) == THREAD_VALUE && *heap == THREAD_VALUE;
    let thread_seen = format!(
        "a thread wrote {THREAD_VALUE:#x} to the same global and heap value; the main thread \
         then read ({:#x}, {:#x})",
        fork::GLOBAL.load(Ordering::SeqCst),
        *heap
    );
    report.check(
        "a thread's writes are everyone's",
        thread_shared,
        thread_seen.clone(),
    );
    Ok(Memory {
        child_isolated,
        child_seen,
        thread_shared,
        thread_seen,
        read_through_kernel,
    })
}

/// Step 2: the first write to a page, in a forked child (a copy-on-write fault) and in a
/// thread (a store to a page already ours).
fn measure_first_writes(report: &mut Report, pages: usize, sides: [bool; 2]) -> Result<()> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .context("sysconf(PAGE_SIZE)")?
        .map_or(4096, |p| p as usize);
    let mut times = vec![0u64; pages];
    let config = json!({ "pages": pages, "page_bytes": page });

    if sides[0] {
        time_child_first_writes(report, pages, page, &mut times, &config)?;
    }
    if !sides[1] {
        return Ok(());
    }
    // A fresh buffer, written first by this thread; another thread's write is a plain store.
    let mut buf = vec![1u8; pages * page];
    std::thread::scope(|s| {
        s.spawn(|| fork::time_first_writes(&mut buf, page, &mut times))
            .join()
    })
    .map_err(|_| anyhow::anyhow!("the timing thread panicked"))?;
    let thread = record(&times);
    report.measure(Measurement::histogram(
        "first_write",
        Variant::Thread,
        "shared-page",
        config,
        &thread,
        None,
    ));
    Ok(())
}

/// Step 2, the process side: a forked child's first write to each page, timed in the child.
fn time_child_first_writes(
    report: &mut Report,
    pages: usize,
    page: usize,
    times: &mut [u64],
    config: &serde_json::Value,
) -> Result<()> {
    // Every page is written (present, private) before the fork, so the child's first write to
    // each is a copy-on-write fault: the kernel copies the page for it.
    let mut buf = vec![1u8; pages * page];
    let status =
        fork::time_first_writes_in_child(&mut buf, page, times).context("fork the timing child")?;
    if !matches!(status, WaitStatus::Exited(_, 0)) {
        bail!("the timing child ended badly: {status:?}");
    }
    let process = record(times);
    report.measure(Measurement::histogram(
        "first_write",
        Variant::Process,
        "cow-fault",
        config.clone(),
        &process,
        None,
    ));
    Ok(()) // The buffer goes here, before the thread's: `--pages` can ask for a gigabyte.
}

fn record(times: &[u64]) -> LatencyRecorder {
    let mut r = LatencyRecorder::new();
    times.iter().for_each(|&t| r.record_ns(t));
    r
}

/// What step 3 found, and what was seen, in words.
struct Files {
    thread_closed_for_all: bool,
    child_close_contained: bool,
    offset_shared: bool,
    seen: [String; 3],
}

/// Step 3: descriptor tables.
fn show_fd_tables(report: &mut Report) -> Result<Files> {
    let dir = PrivateDir::create()?;
    let path = dir.path().join("alphabet");
    let content = b"abcdefghijklmnopqrstuvwxyz";
    std::fs::write(&path, content).with_context(|| format!("write {}", path.display()))?;
    let t = fds::demonstrate(&path, MOVED_BY).context("descriptor demos")?;
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
            "the child read {MOVED_BY} bytes; our next read returned {:?} (from the start: {:?}){}",
            String::from_utf8_lossy(&t.read_after_child),
            String::from_utf8_lossy(&content[..MOVED_BY]),
            unless_died(t.children[1])
        ),
    ];
    let files = Files {
        thread_closed_for_all: t.closed_by_thread,
        child_close_contained: t.open_after_child_closed,
        offset_shared: t.read_after_child == content[MOVED_BY..2 * MOVED_BY],
        seen,
    };
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
struct Faults {
    child_fault_contained: bool,
    child_seen: String,
    thread_fault_killed_all: bool,
    thread_seen: String,
    panic_seen: String,
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
    let child_fault_contained = matches!(status, WaitStatus::Signaled(_, Signal::SIGSEGV, false));
    let child_seen = format!(
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
    report.check(
        "a child that faults dies alone",
        child_fault_contained,
        child_seen.clone(),
    );

    // A thread faults, inside a sacrificial process: the whole process goes, with the work of
    // its other thread.
    let (mut progress, progress_tx) = std::io::pipe().context("pipe")?;
    let mut peer = Peer::spawn("thread-fault", &[progress_tx.as_fd()], None, &[])?;
    drop(progress_tx); // Only the child may write, so its death is our EOF.
    let bytes = read_until_eof(&mut progress, HANG_GUARD)
        .context("read the worker's progress")?
        .context("hang guard: the faulting process did not end")?;
    let done = bytes
        .chunks_exact(8)
        .last()
        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    let status = peer
        .wait_for(HANG_GUARD)?
        .context("hang guard: the faulting process did not end")?;
    let killed = status_signal(status) == Some(libc::SIGSEGV);
    let thread_fault_killed_all = killed && done < PLANNED_UNITS;
    let thread_seen = format!(
        "in a sacrificial process, one thread faulted after its sibling had done {done} units; \
         the process {}, and the sibling lost {} of its {PLANNED_UNITS} planned units",
        describe(status),
        PLANNED_UNITS - done
    );
    report.check(
        "a thread that faults takes its whole process down",
        thread_fault_killed_all,
        thread_seen.clone(),
    );

    // A thread panics: it ends, and the process does not.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // This panic is on purpose: keep stderr clean.
    let worker = AtomicU64::new(0);
    let joined = std::thread::scope(|s| {
        let panicking = s.spawn(|| panic!("on purpose"));
        let working = s.spawn(|| (0..1000u64).for_each(|i| worker.store(i + 1, Ordering::Relaxed)));
        (panicking.join().is_err(), working.join().is_ok())
    });
    std::panic::set_hook(previous);
    let units = worker.load(Ordering::Relaxed);
    let panic_contained = joined == (true, true) && units == 1000;
    let panic_seen = format!(
        "a thread panicked: join returned {} for it; its sibling {} and finished {units} of 1000 \
         units, and the process went on (a panic unwinds one thread; a fault is a signal to the \
         whole process)",
        if joined.0 { "Err" } else { "Ok" },
        if joined.1 {
            "joined Ok"
        } else {
            "ended with Err"
        },
    );
    report.check(
        "a thread that panics ends alone",
        panic_contained,
        panic_seen.clone(),
    );
    Ok(Faults {
        child_fault_contained,
        child_seen,
        thread_fault_killed_all,
        thread_seen,
        panic_seen,
    })
}

/// Reads `pipe` to EOF, but gives up after `limit` (`None`): a process that should have died
/// and did not must not hang the demo.
fn read_until_eof(
    pipe: &mut std::io::PipeReader,
    limit: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = std::time::Instant::now() + limit;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms))? == 0 {
            continue;
        }
        match pipe.read(&mut chunk)? {
            0 => return Ok(Some(bytes)),
            n => bytes.extend_from_slice(&chunk[..n]),
        }
    }
}

fn status_signal(status: std::process::ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

/// Step 5: the claims, each decided by what steps 1 to 4 saw, its evidence what they saw.
fn judge_claims(report: &mut Report, memory: &Memory, files: &Files, faults: &Faults) {
    let observed = |ok: bool| {
        if ok {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        }
    };
    report.claim_observed(
        "mem.process-isolated",
        observed(memory.child_isolated),
        format!("{}; {}", memory.child_seen, memory.read_through_kernel),
    );
    report.claim_observed(
        "mem.threads-share",
        observed(memory.thread_shared),
        memory.thread_seen.clone(),
    );
    // The seed simplifies: a forked child shares the open file *description* (the offset);
    // said, but not required, since the claim is about the tables.
    report.claim_observed(
        "resources.shared",
        observed(files.thread_closed_for_all && files.child_close_contained),
        files.seen.join("; "),
    );
    let contained = faults.child_fault_contained && faults.thread_fault_killed_all;
    report.claim_observed(
        "isolation.fault-contained",
        observed(contained),
        format!(
            "{}; {}; {}",
            faults.child_seen, faults.thread_seen, faults.panic_seen
        ),
    );
    report.claim_observed(
        "usecase.isolation",
        observed(contained),
        format!("{}; {}", faults.child_seen, faults.thread_seen),
    );
    let held = report
        .claims
        .iter()
        .filter(|c| c.verdict == Verdict::Holds)
        .count();
    report.summary = format!(
        "fork gave a child its own copy of memory and descriptors (but a shared file offset); \
         threads shared both; a fault killed one process, or every thread of one; {held} of {} \
         claims hold{}",
        report.claims.len(),
        if report.passed() {
            "."
        } else {
            "; a check FAILED."
        }
    );
}

/// The sacrificial process of step 4: a worker thread reports progress while its sibling faults.
fn run_child(mut args: Args) -> Result<Outcome> {
    args.role.enter_child()?;
    match args.role.role.as_deref().unwrap_or_default() {
        "thread-fault" => {
            let fd = args
                .role
                .take_fds()?
                .into_iter()
                .next()
                .context("no progress fd passed")?;
            let progress = std::io::PipeWriter::from(fd);
            fault::no_core_dumps().context("no core dumps")?;
            let done = AtomicU64::new(0);
            std::thread::scope(|s| {
                s.spawn(|| {
                    use std::io::Write;
                    for unit in 1..=PLANNED_UNITS {
                        std::thread::sleep(Duration::from_micros(100));
                        done.store(unit, Ordering::SeqCst);
                        if (&progress).write_all(&unit.to_le_bytes()).is_err() {
                            return;
                        }
                    }
                });
                s.spawn(|| {
                    while done.load(Ordering::SeqCst) < FAULT_AFTER {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                    fault::segfault_now()
                });
            });
            bail!("the faulting thread did not end the process")
        }
        other => Err(usage(format!("unknown role `{other}`"))),
    }
}

#[cfg(test)]
mod flag_tests {
    /// Random command lines (see `testkit::fuzz_flags`): accepted or refused with a
    /// message naming the limit, never a panic. `LAB_FUZZ_CASES=10000` for the full figure.
    #[test]
    fn random_flags_are_accepted_or_refused_never_a_panic() {
        testkit::fuzz_flags::<super::Args>(testkit::fuzz_cases());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;

    fn seen(what: &str) -> String {
        format!("seen: {what}")
    }

    /// What a run on Linux observes, or (`false`) the other way round.
    fn observations(as_linux: bool) -> (Memory, Files, Faults) {
        (
            Memory {
                child_isolated: as_linux,
                child_seen: seen("child"),
                thread_shared: as_linux,
                thread_seen: seen("thread"),
                read_through_kernel: seen("kernel"),
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
