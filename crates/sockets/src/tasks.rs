//! The fifth server model, **async**: one process, one runtime thread per CPU (tokio's
//! multi-thread runtime), and an async task per connection on non-blocking sockets. A task that
//! waits for its socket returns to the runtime, which polls whichever task's socket is ready
//! (epoll underneath): a connection costs a task, a few hundred bytes and its buffer, not a
//! thread or a process.
//!
//! It serves exactly what the other models serve (see `server.rs`): frames checked and echoed,
//! a receipt when the client is done, a record per connection on the stats pipe, a client that
//! leaves mid-request logged and counted; it stops accepting when `stop` reads EOF, and waits for
//! the connections in progress.

use std::fs::File;
use std::io::{self, Read};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::server::{self, ConnStats, Model};
use crate::wire::{self, HEADER};

/// Runtime threads: one per CPU this process may use.
pub fn runtime_threads() -> usize {
    labkit::pin::allowed_cpus().map_or(1, |c| c.len().max(1))
}

/// Serves on `listener` until `stop` reads EOF; returns the connections accepted.
pub fn run(max_frame: usize, listener: TcpListener, stop: OwnedFd, stats: File) -> io::Result<u64> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(runtime_threads())
        .thread_name("async-server")
        .enable_io()
        .build()?;
    let stats = Arc::new(stats);
    // A thread of its own waits for EOF on the stop pipe (a blocking read), then says so.
    let (stopped, mut stop_seen) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("stop-watch".into())
        .spawn(move || {
            let (mut stop, mut byte) = (File::from(stop), [0u8; 1]);
            while matches!(stop.read(&mut byte), Ok(n) if n > 0) {}
            let _ = stopped.send(());
        })?;
    runtime.block_on(async {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut connections = JoinSet::new();
        let mut accepted = 0;
        loop {
            tokio::select! {
                biased; // A connection already waiting is taken even when the stop came too.
                got = listener.accept() => {
                    let (stream, _) = got?;
                    accepted += 1;
                    let stats = Arc::clone(&stats);
                    connections.spawn(async move {
                        let mut record = ConnStats::default();
                        let result = serve_connection(stream, max_frame, &mut record).await;
                        server::end_connection(Model::Async, record, result, &stats);
                    });
                }
                _ = &mut stop_seen => break,
            }
        }
        drop(listener);
        // Wind down: every connection in progress is served to its end.
        while let Some(done) = connections.join_next().await {
            done.map_err(|_| io::Error::other("a connection task panicked"))?;
        }
        Ok(accepted)
    })
}

/// Serves one connection: every request checked and echoed (counted in `record`) until the
/// client is done, then a receipt.
async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    max_frame: usize,
    record: &mut ConnStats,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; max_frame.max(HEADER)];
    while let Some(n) = read_frame(&mut stream, &mut buf).await? {
        wire::check(&buf[..n], record.requests)?;
        stream.write_all(&buf[..n]).await?;
        record.requests += 1;
    }
    stream.write_all(&wire::receipt(record.requests)).await
}

/// Reads one frame into the start of `buf`: `None` at a clean end (EOF before a frame begins),
/// `UnexpectedEof` if the client left inside one.
async fn read_frame(
    stream: &mut tokio::net::TcpStream,
    buf: &mut [u8],
) -> io::Result<Option<usize>> {
    let mut got = 0;
    while got < HEADER {
        match stream.read(&mut buf[got..HEADER]).await? {
            0 if got == 0 => return Ok(None),
            0 => return Err(wire::mid_frame(got, HEADER)),
            n => got += n,
        }
    }
    let len = wire::frame_len(buf)?;
    while got < len {
        match stream.read(&mut buf[got..len]).await? {
            0 => return Err(wire::mid_frame(got, len)),
            n => got += n,
        }
    }
    Ok(Some(len))
}
