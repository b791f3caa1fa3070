//! Step 4, what a message queue promises, shown on one queue of our own opened `O_NONBLOCK`:
//! message boundaries are kept, a higher priority overtakes queued lower ones, and a full queue
//! says `EAGAIN` instead of blocking.

use anyhow::{Context, Result, bail};
use labkit::Report;
use labkit::names::{Kind, reserve};

use crate::Plan;
use crate::queue::Queue;

/// Step 4: boundaries, priorities, a full queue.
pub fn show(report: &mut Report, plan: &Plan) -> Result<()> {
    let mut r = reserve(Kind::Mq)?;
    let q = Queue::create(r.name(), plan.depth, plan.bytes, true)?;
    r.mark_created();
    r.unlink().context("mq_unlink")?; // Our descriptor is all we need.
    let mut buf = vec![0u8; plan.bytes as usize];
    show_boundaries(report, plan, &q, &mut buf)?;
    show_priorities(report, plan, &q, &mut buf)?;
    show_full_queue(report, plan, &q)
}

/// Messages of several sizes, each received whole: one send is one receive.
fn show_boundaries(report: &mut Report, plan: &Plan, q: &Queue, buf: &mut [u8]) -> Result<()> {
    let sizes: Vec<usize> = [1, 3, 8, plan.bytes as usize / 2, plan.bytes as usize]
        .into_iter()
        .filter(|&s| s >= 1)
        .collect();
    let sizes = &sizes[..sizes.len().min(plan.depth as usize)];
    for &size in sizes {
        q.send(&vec![b'x'; size], 0, &|| true)?;
    }
    let mut got = Vec::new();
    while let Some((n, _)) = q.try_receive(buf)? {
        got.push(n);
    }
    report.check(
        "a message queue keeps message boundaries",
        got == sizes,
        format!("sent messages of {sizes:?} bytes; each receive returned exactly one: {got:?}"),
    );
    Ok(())
}

/// A few messages at priority 0, then one at 9: the first receive gets the 9.
fn show_priorities(report: &mut Report, plan: &Plan, q: &Queue, buf: &mut [u8]) -> Result<()> {
    if plan.depth < 2 {
        report.skip(
            "a higher priority overtakes queued lower ones",
            "--depth 1 holds one message",
        );
        return Ok(());
    }
    let lows = (plan.depth - 1).min(3);
    for i in 0..lows {
        q.send(&[b'l', i as u8], 0, &|| true)?;
    }
    q.send(b"HIGH", 9, &|| true)?;
    let first = q.try_receive(buf)?;
    let overtook = first == Some((4, 9)) && &buf[..4] == b"HIGH";
    while q.try_receive(buf)?.is_some() {}
    report.check(
        "a higher priority overtakes queued lower ones",
        overtook,
        format!("{lows} messages queued at priority 0, then one at 9: the first receive got {first:?} (length, priority)"),
    );
    Ok(())
}

/// Sends until the queue is full: the next send says `EAGAIN` at once.
fn show_full_queue(report: &mut Report, plan: &Plan, q: &Queue) -> Result<()> {
    let mut accepted = 0;
    while q.try_send(b"fill", 0)? {
        accepted += 1;
        if accepted > plan.depth {
            bail!("the queue accepted more than its depth");
        }
    }
    report.check(
        "a full queue opened O_NONBLOCK says EAGAIN",
        accepted == plan.depth,
        format!("{accepted} sends filled the {}-message queue; the next returned EAGAIN instead of blocking", plan.depth),
    );
    Ok(())
}
