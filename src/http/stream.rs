//! Response bodies produced while they are sent: a blocking reader writes
//! into a [`ChunkWriter`], which hands fixed-size chunks through a bounded
//! channel to a [`ChannelBody`] that hyper sends chunked. Memory stays at a
//! few chunks whatever the answer's length; a client that reads slowly
//! slows the reader (the channel fills), and one that hangs up stops it (the
//! channel closes). A producer that is async itself (it awaits a database
//! between writes) sends through an [`AsyncChunkSender`] instead.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Either;
use hyper::body::{Body, Frame};
use hyper::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use hyper::{Response, StatusCode};
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

/// The 200 answer that sends `body` as a file download.
pub fn attachment(content_type: &str, file: &str, body: ChannelBody) -> Response<super::Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, content_type)
        .header(
            CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        )
        .body(Either::Right(body))
        .expect("static response parts are valid")
}

/// The producing end for a producer running as an async task (the fleet's
/// export reads PostgreSQL between sends). It hands over whole buffers and
/// awaits room in the channel, so a client that reads slowly parks the
/// task, holding nothing but the buffer: no thread, and (the caller's job)
/// no database connection.
pub struct AsyncChunkSender {
    tx: mpsc::Sender<io::Result<Bytes>>,
}

/// A connected async sender and body.
pub fn async_channel() -> (AsyncChunkSender, ChannelBody) {
    let (tx, rx) = mpsc::channel(CHUNKS_QUEUED);
    (AsyncChunkSender { tx }, ChannelBody { rx })
}

impl AsyncChunkSender {
    /// Sends `data` in chunks of at most [`CHUNK`] bytes, each once the
    /// channel has room. `BrokenPipe` once the client went away.
    pub async fn send(&mut self, data: Vec<u8>) -> io::Result<()> {
        let data = Bytes::from(data);
        let mut at = 0;
        while at < data.len() {
            let end = (at + CHUNK).min(data.len());
            self.tx
                .send(Ok(data.slice(at..end)))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
            at = end;
        }
        Ok(())
    }

    /// [`ChunkWriter::abort`].
    pub async fn abort(self, why: String) {
        let _ = self.tx.send(Err(io::Error::other(why))).await;
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// More than the channel holds, sent by an async task while the body
    /// is read: every byte arrives, in order, and the sender waited for
    /// room rather than failing.
    #[test]
    fn an_async_producer_streams_more_than_the_channel_holds() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let total = CHUNK * (CHUNKS_QUEUED + 4) + 123;
        let expected: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let sent = expected.clone();
        let received = runtime.block_on(async move {
            let (mut writer, body) = async_channel();
            let producer = tokio::spawn(async move {
                for piece in sent.chunks(CHUNK / 3 + 7) {
                    writer.send(piece.to_vec()).await.unwrap();
                }
            });
            let bytes = body.collect().await.unwrap().to_bytes();
            producer.await.unwrap();
            bytes
        });
        assert_eq!(received.len(), total);
        assert!(received == expected);
    }
}
