//! Response bodies produced while they are sent: a blocking reader writes
//! into a [`ChunkWriter`], which hands fixed-size chunks through a bounded
//! channel to a [`ChannelBody`] that hyper sends chunked. Memory stays at a
//! few chunks whatever the answer's length; a client that reads slowly
//! slows the reader (the channel fills), and one that hangs up stops it (the
//! channel closes).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// Bytes per chunk sent.
pub const CHUNK: usize = 64 * 1024;
/// Chunks waiting to be sent at most.
pub const CHUNKS_QUEUED: usize = 8;

/// The receiving end, as a hyper body. An `Err` from the producer aborts the
/// response, so the client sees a cut-off body, never a silently short one.
pub struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// The producing end, for blocking code (call it off the async workers).
pub struct ChunkWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

/// A connected writer and body.
pub fn channel() -> (ChunkWriter, ChannelBody) {
    let (tx, rx) = mpsc::channel(CHUNKS_QUEUED);
    (
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        ChannelBody { rx },
    )
}

impl ChunkWriter {
    fn send(&mut self, item: io::Result<Bytes>) -> io::Result<()> {
        self.tx
            .blocking_send(item)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Ends the body with an error: the connection is cut rather than the
    /// answer looking complete.
    pub fn abort(mut self, why: String) {
        let _ = self.send(Err(io::Error::other(why)));
    }
}

impl io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.send(Ok(Bytes::from(chunk)))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.buf);
        self.send(Ok(Bytes::from(chunk)))
    }
}
