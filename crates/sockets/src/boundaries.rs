//! What a stream socket does to message boundaries, and what a datagram socket keeps.
//!
//! Each function sets up a fresh socket pair in this thread, writes first and reads after, so
//! what it shows does not depend on timing: every byte is queued before the first read.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};

use anyhow::{Context, Result};
use labkit::Report;
use labkit::report::format_bytes;

/// Writes one message per size (one `write` each) to a Unix stream socket, then reads with a
/// buffer large enough for all: returns the size of every read it took.
pub fn stream_reads(sizes: &[usize]) -> io::Result<Vec<usize>> {
    let (mut a, mut b) = UnixStream::pair()?;
    for &size in sizes {
        a.write_all(&vec![b'x'; size])?;
    }
    drop(a);
    let mut reads = Vec::new();
    let mut buf = vec![0u8; sizes.iter().sum::<usize>() + 1];
    loop {
        match b.read(&mut buf)? {
            0 => return Ok(reads),
            n => reads.push(n),
        }
    }
}

/// The same over a Unix datagram socket: one `send` per message, then one `recv` per message.
pub fn datagram_reads(sizes: &[usize]) -> io::Result<Vec<usize>> {
    let (a, b) = UnixDatagram::pair()?;
    for &size in sizes {
        a.send(&vec![b'x'; size])?;
    }
    let mut buf = vec![0u8; sizes.iter().sum::<usize>() + 1];
    sizes.iter().map(|_| b.recv(&mut buf)).collect()
}

/// One `write` of `len` bytes to a non-blocking Unix stream socket nobody reads: returns how
/// many bytes it took, and whether a second write then said `EAGAIN` (`WouldBlock`).
pub fn partial_write(len: usize) -> io::Result<(usize, bool)> {
    let (mut a, _b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    // Asked for, not assumed: under a low RLIMIT_AS the buffer is an error naming the limit
    // (ENOMEM), not an abort.
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
    buf.resize(len, 0u8);
    let took = a.write(&buf)?;
    let again = match a.write(&[0u8]) {
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        Ok(_) => false,
    };
    Ok((took, again))
}

/// Step 3: boundaries, and a partial write.
pub fn show(report: &mut Report) -> Result<()> {
    let sizes = [10, 20, 30];
    let stream = stream_reads(&sizes).context("unix stream socketpair")?;
    report.check(
        "a stream socket keeps no message boundaries",
        stream == [60],
        format!("three writes of {sizes:?} bytes, queued before the first read, came out as reads of {stream:?} bytes: every reader of a stream needs framing"),
    );
    let dgram = datagram_reads(&sizes).context("unix datagram socketpair")?;
    report.check(
        "a datagram socket keeps message boundaries",
        dgram == sizes,
        format!("three datagrams of {sizes:?} bytes came out as receives of {dgram:?} bytes"),
    );
    let want = 8 << 20;
    let (took, again) = partial_write(want)
        .with_context(|| format!("a non-blocking write of {}", format_bytes(want as u64)))?;
    report.check(
        "a write to a stream socket may take only part of the buffer",
        took > 0 && took < want && again,
        format!(
            "one write of {} to a non-blocking Unix stream socket nobody read took {}; the next \
             said EAGAIN{}: a writer must loop (write_all)",
            format_bytes(want as u64),
            format_bytes(took as u64),
            if again { "" } else { " (it did NOT)" }
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_merges_and_datagrams_keep_boundaries() {
        assert_eq!(stream_reads(&[10, 20, 30]).unwrap(), vec![60]);
        assert_eq!(datagram_reads(&[10, 20, 30]).unwrap(), vec![10, 20, 30]);
    }

    #[test]
    fn a_big_write_to_a_full_socket_is_partial() {
        let (took, again) = partial_write(8 << 20).unwrap();
        assert!(took > 0 && took < 8 << 20, "{took}");
        assert!(again);
    }
}
