//! The timing of step 2: the first write to each page of a buffer, by a forked child (each
//! one a copy-on-write fault) and by a thread (a plain store), as latency histograms.

use anyhow::{Context, Result, anyhow, bail};
use labkit::{LatencyRecorder, Variant};
use nix::sys::wait::WaitStatus;

use crate::fork;

/// The first write to each of `pages` pages of `page` bytes: by a forked child for
/// [`Variant::Process`], by another thread for [`Variant::Thread`].
pub fn first_writes(variant: Variant, pages: usize, page: usize) -> Result<LatencyRecorder> {
    match variant {
        Variant::Process => first_writes_in_child(pages, page),
        _ => first_writes_in_thread(pages, page),
    }
}

/// A forked child's first write to each page, timed in the child.
fn first_writes_in_child(pages: usize, page: usize) -> Result<LatencyRecorder> {
    // Every page is written (present, private) before the fork, so the child's first write to
    // each is a copy-on-write fault: the kernel copies the page for it.
    let mut buf = vec![1u8; pages * page];
    let mut times = vec![0u64; pages];
    let status = fork::time_first_writes_in_child(&mut buf, page, &mut times)
        .context("fork the timing child")?;
    if !matches!(status, WaitStatus::Exited(_, 0)) {
        bail!("the timing child ended badly: {status:?}");
    }
    Ok(record(&times)) // The buffer goes here, before the thread's: `--pages` can ask for a gigabyte.
}

/// Another thread's first write to each page of a fresh buffer, which this thread wrote
/// first: a plain store to a page already ours.
fn first_writes_in_thread(pages: usize, page: usize) -> Result<LatencyRecorder> {
    let mut buf = vec![1u8; pages * page];
    let mut times = vec![0u64; pages];
    std::thread::scope(|s| -> Result<()> {
        crate::named("iso-timer")
            .spawn_scoped(s, || fork::time_first_writes(&mut buf, page, &mut times))
            .context("spawn the timing thread")?
            .join()
            .map_err(|_| anyhow!("the timing thread panicked"))
    })?;
    Ok(record(&times))
}

fn record(times: &[u64]) -> LatencyRecorder {
    let mut r = LatencyRecorder::new();
    times.iter().for_each(|&t| r.record_ns(t));
    r
}
