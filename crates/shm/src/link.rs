//! The near end of each contender's exchange, driven alike by the measuring loop: a pair of
//! rings (to the echo child over shared memory, or to an echo thread in ordinary memory), or a
//! pair of channels (to an echo thread).

use std::cell::RefCell;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use labkit::child::{Peer, explain_break};
use nix::unistd::Pid;
use shm::ring::Ring;
use shm::wait::{self, Mode as WaitMode};

use crate::protocol::{self, Buffer, STOP};

/// One contender's near end.
pub enum Link<'a> {
    Rings(Rings<'a>),
    Channels(Channels),
}

/// Two rings, out and back; `peer` is the child on the other side, if there is one, and
/// `alive` says whether it still runs (and no shutdown was asked for).
pub struct Rings<'a> {
    out: Ring<'a>,
    back: Ring<'a>,
    mode: WaitMode,
    peer: Option<&'a RefCell<Peer>>,
    alive: &'a dyn Fn() -> bool,
}

/// Two channels, out and back: `buf` travels for round trips, `pool` for streams.
pub struct Channels {
    out: Sender<Buffer>,
    back: Receiver<Buffer>,
    buf: Option<Buffer>,
    pool: Vec<Buffer>,
}

impl<'a> Link<'a> {
    pub fn rings(
        out: Ring<'a>,
        back: Ring<'a>,
        mode: WaitMode,
        peer: Option<&'a RefCell<Peer>>,
        alive: &'a dyn Fn() -> bool,
    ) -> Self {
        Link::Rings(Rings {
            out,
            back,
            mode,
            peer,
            alive,
        })
    }

    /// Channels whose buffers, one for round trips and one per slot for streams, are made now,
    /// before any clock runs.
    pub fn channels(out: Sender<Buffer>, back: Receiver<Buffer>, size: usize, slots: u64) -> Self {
        let buffer = || vec![0u8; size].into_boxed_slice();
        Link::Channels(Channels {
            out,
            back,
            buf: Some(buffer()),
            pool: (0..slots).map(|_| buffer()).collect(),
        })
    }

    /// The processes besides this one whose CPU time counts with ours: the child, if any.
    pub fn watch(&self) -> Vec<Pid> {
        match self {
            Link::Rings(r) => r.peer.iter().map(|p| p.borrow().pid()).collect(),
            Link::Channels(_) => Vec::new(),
        }
    }

    /// One round trip of message `seq`, timed by the caller; [`Link::came_back`] then checks
    /// it (a CRC over the payload is work of its own, not the hand-off's, so it stays out of
    /// the clock, for rings and channels alike).
    pub fn round_trip(&mut self, seq: u64) -> Result<()> {
        match self {
            Link::Rings(r) => r.checked(protocol::round_trip_ring(
                &r.out, &r.back, r.mode, r.alive, seq,
            )),
            Link::Channels(c) => protocol::round_trip_channel(&c.out, &c.back, &mut c.buf, seq),
        }
    }

    /// Takes what the last round trip brought back: whether it is message `seq`, intact.
    pub fn came_back(&mut self, seq: u64) -> Result<bool> {
        match self {
            Link::Rings(r) => r.checked(protocol::came_back(&r.back, r.mode, r.alive, seq)),
            Link::Channels(c) => Ok(c.buf.as_ref().is_some_and(|m| protocol::is_message(m, seq))),
        }
    }

    /// A stream of `n` messages from `first`; how many did not arrive once, in order, intact.
    pub fn stream(&mut self, first: u64, n: u64) -> Result<u64> {
        match self {
            Link::Rings(r) => r.checked(protocol::stream_ring(
                &r.out, &r.back, r.mode, r.alive, first, n,
            )),
            Link::Channels(c) => protocol::stream_channel(&c.out, &c.back, &mut c.pool, first, n),
        }
    }

    /// Tells the far side to stop: a STOP message, or an empty buffer.
    pub fn stop(&self) -> Result<()> {
        match self {
            Link::Rings(r) => r.checked(wait::push(&r.out, r.mode, r.alive, |m| {
                protocol::set_kind(m, STOP)
            })),
            Link::Channels(c) => c.out.send(Box::new([])).context("the echo thread is gone"),
        }
    }
}

impl Rings<'_> {
    /// The result of an exchange; if it broke, with a child on the other side, the error says
    /// how the child ended (see `labkit::child::explain_break`).
    fn checked<T>(&self, result: std::io::Result<T>) -> Result<T> {
        result.map_err(|err| match self.peer {
            Some(peer) => explain_break(std::slice::from_mut(&mut *peer.borrow_mut()), err),
            None => err.into(),
        })
    }
}
