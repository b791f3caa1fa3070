//! The observation behind `comm.process-needs-ipc`: a child process cannot see our memory, so
//! what it learns from us must come through a kernel object.
//!
//! The parent sets aside a buffer and starts a child with the buffer's address on its command
//! line (`--probe ADDR`); only then does it write a fresh random nonce into the buffer, so a
//! copy of our memory made when the child was created (a fork without exec) holds no nonce,
//! and only memory truly shared with us could. It sends the same nonce through the lesson's
//! mechanism (a pipe, a socket, a message queue). The child, once the nonce has arrived, reads
//! *its own* memory at that address through `/proc/self/mem` (which answers an unmapped address
//! with an error instead of a fault) and sends back a [`Probe`]: what it found at the address,
//! and what arrived. The claim holds when the nonce was not at the address and did arrive
//! through the mechanism; it does not hold when the child read our nonce out of its own memory.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use labkit::Verdict;

/// Bytes in a nonce.
pub const NONCE_LEN: usize = 16;

/// Bytes of an encoded [`Probe`]: a flag, what was at the address, what arrived.
pub const PROBE_LEN: usize = 1 + 2 * NONCE_LEN;

/// A nonce in its own heap buffer, so that it has an address to hand over: zeros until
/// [`Nonce::fill`] writes it.
pub struct Nonce {
    bytes: Box<[u8; NONCE_LEN]>,
}

impl Nonce {
    /// The buffer, still zeros: hand its address to the child first.
    pub fn blank() -> Nonce {
        Nonce {
            bytes: Box::new([0u8; NONCE_LEN]),
        }
    }

    /// Sixteen fresh bytes from `/dev/urandom`, written once the child exists.
    pub fn fill(&mut self) -> io::Result<()> {
        File::open("/dev/urandom")?.read_exact(&mut self.bytes[..])
    }

    /// Where the nonce lies in this process's memory.
    pub fn addr(&self) -> usize {
        self.bytes.as_ptr() as usize
    }

    pub fn bytes(&self) -> &[u8; NONCE_LEN] {
        &self.bytes
    }

    /// The command-line arguments that tell a child where to look.
    pub fn args(&self) -> [String; 2] {
        ["--probe".to_owned(), self.addr().to_string()]
    }
}

/// What a child saw: at the parent's address in its own memory (`None`: nothing mapped there),
/// and through the mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub at_address: Option<[u8; NONCE_LEN]>,
    pub through_mechanism: [u8; NONCE_LEN],
}

impl Probe {
    pub fn encode(&self) -> [u8; PROBE_LEN] {
        let mut b = [0u8; PROBE_LEN];
        if let Some(seen) = self.at_address {
            b[0] = 1;
            b[1..1 + NONCE_LEN].copy_from_slice(&seen);
        }
        b[1 + NONCE_LEN..].copy_from_slice(&self.through_mechanism);
        b
    }

    pub fn decode(b: &[u8; PROBE_LEN]) -> Probe {
        let part = |at: usize| -> [u8; NONCE_LEN] {
            b[at..at + NONCE_LEN].try_into().expect("NONCE_LEN bytes")
        };
        Probe {
            at_address: (b[0] == 1).then(|| part(1)),
            through_mechanism: part(1 + NONCE_LEN),
        }
    }
}

/// The child's side: the bytes at `addr` in this process's own memory, read through
/// `/proc/self/mem`; `None` where nothing is mapped (the kernel answers EIO, not a fault).
pub fn read_own_memory(addr: usize) -> io::Result<Option<[u8; NONCE_LEN]>> {
    let mem = File::open("/proc/self/mem")?;
    let mut seen = [0u8; NONCE_LEN];
    match mem.read_exact_at(&mut seen, addr as u64) {
        Ok(()) => Ok(Some(seen)),
        Err(e) if e.raw_os_error() == Some(libc::EIO) || e.raw_os_error() == Some(libc::EFAULT) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The child's side, whole: the nonce as it arrives through the mechanism (`receive` fills
/// it), then what lies at `addr` in its own memory (by now the parent has written the nonce
/// there); the [`Probe`] to send back.
pub fn look_and_receive(
    addr: usize,
    receive: impl FnOnce(&mut [u8; NONCE_LEN]) -> io::Result<()>,
) -> io::Result<Probe> {
    let mut through_mechanism = [0u8; NONCE_LEN];
    receive(&mut through_mechanism)?;
    let at_address = read_own_memory(addr)?;
    Ok(Probe {
        at_address,
        through_mechanism,
    })
}

/// The verdict on `comm.process-needs-ipc` from what the child saw, with the evidence in words.
pub fn judge(nonce: &Nonce, probe: &Probe, mechanism: &str) -> (Verdict, String) {
    let at = match probe.at_address {
        None => format!("nothing mapped at our nonce's address {:#x}", nonce.addr()),
        Some(seen) if seen == *nonce.bytes() => {
            format!("our nonce itself at our address {:#x}", nonce.addr())
        }
        Some(_) => format!(
            "other bytes than our nonce at our address {:#x}",
            nonce.addr()
        ),
    };
    let arrived = probe.through_mechanism == *nonce.bytes();
    let evidence = format!(
        "a child process read its own memory (/proc/self/mem) and found {at}; the nonce sent \
         through {mechanism} {}",
        if arrived {
            "arrived intact"
        } else {
            "did NOT arrive intact"
        }
    );
    let verdict = match (probe.at_address == Some(*nonce.bytes()), arrived) {
        // It saw our memory without any IPC: the claim is false here.
        (true, _) => Verdict::DoesNotHold,
        (false, true) => Verdict::Holds,
        // The mechanism itself failed: this run shows nothing either way.
        (false, false) => Verdict::Inconclusive,
    };
    (verdict, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_survives_its_encoding() {
        for at_address in [None, Some([7u8; NONCE_LEN])] {
            let p = Probe {
                at_address,
                through_mechanism: [9u8; NONCE_LEN],
            };
            assert_eq!(Probe::decode(&p.encode()), p);
        }
    }

    #[test]
    fn our_own_memory_is_readable_and_an_unmapped_address_is_not() {
        let mut nonce = Nonce::blank();
        nonce.fill().unwrap();
        assert_eq!(read_own_memory(nonce.addr()).unwrap(), Some(*nonce.bytes()));
        // Page 0 is never mapped for a user process.
        assert_eq!(read_own_memory(16).unwrap(), None);
    }

    /// The observation forced each way: a child that finds our nonce in its own memory (as a
    /// thread would) makes the claim not hold.
    #[test]
    fn the_verdict_follows_what_the_child_saw() {
        let mut nonce = Nonce::blank();
        nonce.fill().unwrap();
        let saw = |at_address, arrived: bool| {
            let through_mechanism = if arrived {
                *nonce.bytes()
            } else {
                [0u8; NONCE_LEN]
            };
            judge(
                &nonce,
                &Probe {
                    at_address,
                    through_mechanism,
                },
                "a pipe",
            )
        };
        assert_eq!(saw(None, true).0, Verdict::Holds);
        assert_eq!(saw(Some([1u8; NONCE_LEN]), true).0, Verdict::Holds);
        let (v, evidence) = saw(Some(*nonce.bytes()), true);
        assert_eq!(v, Verdict::DoesNotHold);
        assert!(evidence.contains("our nonce itself"), "{evidence}");
        assert_eq!(saw(None, false).0, Verdict::Inconclusive);
        // Read in this very process, as a thread would: the nonce is there.
        let own = Probe {
            at_address: read_own_memory(nonce.addr()).unwrap(),
            through_mechanism: *nonce.bytes(),
        };
        assert_eq!(judge(&nonce, &own, "a pipe").0, Verdict::DoesNotHold);
    }
}
