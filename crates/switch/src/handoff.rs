//! Two ways for one side to hand the CPU to the other and wait for it back.
//!
//! * **Pipe**, as `perf bench sched pipe` does: write 4 bytes, block in `read` until the other
//!   side writes back. Each hand-off is a system call that wakes the peer and one that sleeps.
//! * **Futex**: a 32-bit word in a shared mapping. The waiting side sleeps in `FUTEX_WAIT`
//!   while the word holds the value it saw; the other side stores the next value and calls
//!   `FUTEX_WAKE`. No data is copied; the kernel only parks and wakes. The mapping comes from
//!   `memfd_create` (no name anywhere) and works alike between threads and processes, since the
//!   futex is not `FUTEX_PRIVATE`.
//!
//! The values carry sequence numbers: the pinging side writes `2i + 1`, the other answers
//! `2i + 2`, and each checks it got what it expected, so a lost or repeated hand-off is caught.
//! The count of voluntary context switches of the calling thread (`RUSAGE_THREAD`) shows that
//! each hand-off really is a sleep and a wake-up.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use memmap2::MmapRaw;

/// The value that tells the other side to stop.
pub const STOP: u32 = u32::MAX;

/// Voluntary and involuntary context switches of the calling thread so far.
pub fn switches() -> io::Result<(u64, u64)> {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_THREAD)?;
    Ok((
        u.voluntary_context_switches() as u64,
        u.involuntary_context_switches() as u64,
    ))
}

/// One pipe round trip from the pinging side: send `2i + 1`, wait for `2i + 2`.
pub fn pipe_round_trip(tx: &mut impl Write, rx: &mut impl Read, i: u32) -> io::Result<()> {
    tx.write_all(&(2 * i + 1).to_le_bytes())?;
    let mut back = [0u8; 4];
    rx.read_exact(&mut back)?;
    expect(u32::from_le_bytes(back), 2 * i + 2)
}

/// The other side over pipes: answer each value until EOF; returns the round trips served.
pub fn pipe_pong(mut rx: impl Read, mut tx: impl Write) -> io::Result<u32> {
    let mut i = 0;
    let mut got = [0u8; 4];
    loop {
        match rx.read_exact(&mut got) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(i),
            other => other?,
        }
        expect(u32::from_le_bytes(got), 2 * i + 1)?;
        tx.write_all(&(2 * i + 2).to_le_bytes())?;
        i += 1;
    }
}

fn expect(got: u32, want: u32) -> io::Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected hand-off {want}, got {got}"),
        ))
    }
}

/// A page of shared memory from `memfd_create`, holding the futex word at its start.
pub struct SharedWord {
    map: MmapRaw,
}

/// A new anonymous memory file of one page, to map here and in a child.
pub fn memfd() -> io::Result<OwnedFd> {
    // SAFETY: the name is a valid NUL-terminated string; the flags are valid.
    let fd = unsafe { libc::memfd_create(c"switch-futex".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create just returned this descriptor, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = std::fs::File::from(fd);
    file.set_len(4096)?;
    Ok(OwnedFd::from(file))
}

impl SharedWord {
    /// Maps the memory file shared (`MAP_SHARED`): writes are seen by every mapping of it.
    pub fn map(fd: &OwnedFd) -> io::Result<SharedWord> {
        let map = MmapRaw::map_raw(fd.as_raw_fd())?;
        if map.len() < 4 {
            return Err(io::Error::other("the shared page is too small"));
        }
        Ok(SharedWord { map })
    }

    /// The word. Any process or thread that maps the same file sees the same word.
    pub fn word(&self) -> &AtomicU32 {
        // SAFETY: the mapping is at least 4 bytes, page-aligned (so aligned for u32), lives as
        // long as `self`, and is only ever accessed through atomics, here and in the peer.
        unsafe { &*self.map.as_mut_ptr().cast::<AtomicU32>() }
    }
}

/// Sleeps while `word` holds `seen`, at most `timeout`. Returns early if the value changed
/// (EAGAIN), a wake-up came, or a signal arrived: the caller re-checks the word in all cases.
fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call; `ts` outlives it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts,
            0,
            0,
        )
    };
    if r == -1 {
        let e = io::Error::last_os_error();
        if !matches!(
            e.raw_os_error(),
            Some(libc::EAGAIN | libc::ETIMEDOUT | libc::EINTR)
        ) {
            return Err(e);
        }
    }
    Ok(())
}

/// Wakes one waiter on `word`.
fn futex_wake(word: &AtomicU32) -> io::Result<()> {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE reads no other memory.
    let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1, 0, 0, 0) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// How often a waiting side looks up from the futex to check that its peer is still there.
const RECHECK: Duration = Duration::from_millis(50);

/// Waits until `word` holds `want`; `peer_alive` is asked at every [`RECHECK`].
fn wait_for(word: &AtomicU32, want: u32, peer_alive: &dyn Fn() -> bool) -> io::Result<u32> {
    loop {
        let now = word.load(Ordering::Acquire);
        if now == want || now == STOP {
            return Ok(now);
        }
        futex_wait(word, now, RECHECK)?;
        if word.load(Ordering::Acquire) == now && !peer_alive() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the other side is gone",
            ));
        }
    }
}

/// One futex round trip from the pinging side.
pub fn futex_round_trip(word: &AtomicU32, i: u32, peer_alive: &dyn Fn() -> bool) -> io::Result<()> {
    word.store(2 * i + 1, Ordering::Release);
    futex_wake(word)?;
    let got = wait_for(word, 2 * i + 2, peer_alive)?;
    expect(got, 2 * i + 2)
}

/// Tells the other side to stop.
pub fn futex_stop(word: &AtomicU32) -> io::Result<()> {
    word.store(STOP, Ordering::Release);
    futex_wake(word)
}

/// The other side over a futex: answer each value until [`STOP`]; returns the round trips.
pub fn futex_pong(word: &AtomicU32, peer_alive: &dyn Fn() -> bool) -> io::Result<u32> {
    let mut i = 0;
    loop {
        let got = wait_for(word, 2 * i + 1, peer_alive)?;
        if got == STOP {
            return Ok(i);
        }
        word.store(2 * i + 2, Ordering::Release);
        futex_wake(word)?;
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn futex_ping_pong_between_threads() {
        let fd = memfd().unwrap();
        let (a, b) = (SharedWord::map(&fd).unwrap(), SharedWord::map(&fd).unwrap());
        let pong = std::thread::spawn(move || futex_pong(b.word(), &|| true));
        for i in 0..200 {
            futex_round_trip(a.word(), i, &|| true).unwrap();
        }
        futex_stop(a.word()).unwrap();
        assert_eq!(pong.join().unwrap().unwrap(), 200);
    }

    #[test]
    fn a_dead_peer_is_noticed() {
        let fd = memfd().unwrap();
        let a = SharedWord::map(&fd).unwrap();
        let err = futex_round_trip(a.word(), 0, &|| false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn pipe_ping_pong_checks_sequence() {
        let (a_rx, mut a_tx) = std::io::pipe().unwrap();
        let (mut b_rx, b_tx) = std::io::pipe().unwrap();
        let pong = std::thread::spawn(move || pipe_pong(a_rx, b_tx));
        for i in 0..100 {
            pipe_round_trip(&mut a_tx, &mut b_rx, i).unwrap();
        }
        drop(a_tx);
        assert_eq!(pong.join().unwrap().unwrap(), 100);
    }
}
