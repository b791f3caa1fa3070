//! The process side's other end: where a child starts, what it inherits (two queue
//! descriptors), and what it does in each role: an echo (step 2), a sink that checks streams
//! (step 3), a probe of our memory (step 5).

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};

use crate::nonce as probe;
use anyhow::{Context, Result};
use labkit::child::{Peer, cpu_arg, explain_break, fd_args, this_binary};
use labkit::names::{Kind, Reservation, reserve};
use nix::unistd::Pid;

use crate::Plan;
use crate::protocol::{self, END, RECEIPT, Receipt, STOP};
use crate::queue::Queue;

/// The size of the queue back from a child: a message, or a receipt, whichever is larger.
pub fn back_size(plan: &Plan) -> u64 {
    plan.bytes.max(RECEIPT as u64)
}

/// A child process in one role, and our two queues: to it, and back from it.
pub struct Child {
    pub to: Queue,
    pub from: Queue,
    /// In a `RefCell`: a liveness check borrows it while an error report may need it too.
    peer: RefCell<Peer>,
}

impl Child {
    /// Starts this binary again in `role` (with `more` flags), holding two new queues; the
    /// names are unlinked once it has them.
    pub fn start(role: &str, plan: &Plan, more: &[String]) -> Result<Child> {
        let ([to, from], reservations) = queue_pair(plan)?;
        // The child is this binary again, in `role`. On Linux a queue descriptor (`mqd_t`) is a
        // file descriptor, so the child inherits both queues at the same numbers, named by
        // `--fd` in order (inbox, outbox); it takes them back with `args.role.take_fds()`.
        // `--bytes` sizes its receive buffer to the queues' message size, `--cpu` places it.
        let mut command = this_binary(role)?; // <this binary> --role <role>
        command
            .args(fd_args(&[to.as_fd(), from.as_fd()]))
            .args(cpu_arg(plan.cpus.peer))
            .args(["--bytes", &plan.bytes.to_string()])
            .args(more);
        // `Peer::start` keeps exactly these two open across exec, makes the child die with us
        // and ignore Ctrl-C, and kills and reaps it if we leave early (the `Peer` is dropped).
        let peer = Peer::start(command, &[to.as_fd(), from.as_fd()])?;
        // The child inherited both descriptors: the names have done their job.
        for mut r in reservations {
            r.unlink().context("mq_unlink")?;
        }
        Ok(Child {
            to,
            from,
            peer: RefCell::new(peer),
        })
    }

    /// Whether the child is still there (it has not ended badly); never blocks.
    pub fn alive(&self) -> bool {
        !self.peer.borrow_mut().died()
    }

    pub fn pid(&self) -> Pid {
        self.peer.borrow().pid()
    }

    /// A copy of the child's pidfd, readable once it ends: for a watchdog thread.
    pub fn exit_fd(&self) -> Result<OwnedFd> {
        self.peer
            .borrow()
            .exit_fd()
            .context("pidfd_open is needed to watch the child")?
            .try_clone_to_owned()
            .context("dup a pidfd")
    }

    /// The error for a broken exchange with the child (see `labkit::child::explain_break`).
    pub fn broke(&self, err: std::io::Error) -> anyhow::Error {
        explain_break(std::slice::from_mut(&mut *self.peer.borrow_mut()), err)
    }

    /// Waits for a child that finished its part; an error says how it ended otherwise.
    pub fn finish(self) -> Result<()> {
        self.peer.into_inner().finish()
    }
}

/// Two new queues (to the child, and back), created here, and their reservations.
fn queue_pair(plan: &Plan) -> Result<([Queue; 2], Vec<Reservation>)> {
    let mut reservations = Vec::new();
    let mut queues = Vec::new();
    for size in [plan.bytes, back_size(plan)] {
        let mut r = reserve(Kind::Mq)?;
        queues.push(Queue::create(r.name(), plan.depth, size, false)?);
        r.mark_created();
        reservations.push(r);
    }
    let [a, b]: [Queue; 2] = queues
        .try_into()
        .map_err(|_| anyhow::anyhow!("two queues"))?;
    Ok(([a, b], reservations))
}

// In the child. Our parent's death kills us (PR_SET_PDEATHSIG): this side can wait untimed,
// as C does.

/// The echo: every message goes back as it came, until an empty one.
pub fn echo(inbox: &Queue, outbox: &Queue, buf: &mut [u8]) -> Result<()> {
    loop {
        let (n, _) = inbox.receive_untimed(buf).context("mq_receive")?;
        if n == 0 {
            return Ok(());
        }
        outbox.send_untimed(&buf[..n], 0).context("mq_send")?;
    }
}

/// The sink: checks every message of a stream, answers its end with a receipt, and stops at
/// a one-byte message.
pub fn sink(inbox: &Queue, outbox: &Queue, buf: &mut [u8]) -> Result<()> {
    let mut r = Receipt::default();
    let mut crc = crc32fast::Hasher::new();
    loop {
        let (n, _) = inbox.receive_untimed(buf).context("mq_receive")?;
        match &buf[..n] {
            END => {
                r.crc = std::mem::replace(&mut crc, crc32fast::Hasher::new()).finalize();
                outbox
                    .send_untimed(&r.encode(), 0)
                    .context("mq_send the receipt")?;
                r = Receipt::default();
            }
            msg if msg.len() == STOP.len() => return Ok(()),
            msg => protocol::tally(&mut r, &mut crc, msg),
        }
    }
}

/// The probe: looks at the parent's address in its own memory, then receives the nonce through
/// the queue, and sends back both.
pub fn probe(inbox: &Queue, outbox: &Queue, buf: &mut [u8], addr: usize) -> Result<()> {
    let seen = probe::look_and_receive(addr, |nonce| {
        let (n, _) = inbox.receive_untimed(buf)?;
        // A nonce of the wrong length stays zeros: it did not arrive.
        if let Ok(got) = buf[..n].try_into() {
            *nonce = got;
        }
        Ok(())
    })
    .context("read /proc/self/mem, then mq_receive")?;
    outbox
        .send_untimed(&seen.encode(), 0)
        .context("mq_send the probe")?;
    Ok(())
}
