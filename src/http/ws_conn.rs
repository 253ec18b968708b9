//! A server-side WebSocket on a bare TCP stream, after the handshake.
//!
//! Frames are parsed and written by actix-http's WebSocket codec; what is
//! ours is only the buffering: an idle socket holds no buffer at all (the
//! read buffer exists while a frame is arriving, each write allocates just
//! its frame), which is what lets one hub hold many waiting browsers in a few
//! kilobytes each (docs/benchmarks.md).

use std::io;
use std::time::Duration;

use actix_http::ws::{self, CloseCode, CloseReason, Frame, Item, ProtocolError};
use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::{Decoder, Encoder};

/// Longest a write may wait for a browser that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a close waits for the browser's closing frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Bytes asked of the kernel per read.
const READ_CHUNK: usize = 512;

/// A whole message from the browser (continuations joined).
#[derive(Debug)]
pub enum Incoming {
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    Close,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecvError {
    #[error("WebSocket protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
}

impl RecvError {
    /// The close code that tells the browser why.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::TooLarge(_) | Self::Protocol(ProtocolError::Overflow) => CloseCode::Size,
            Self::Protocol(_) => CloseCode::Protocol,
        }
    }
}

/// One upgraded connection.
pub struct WsConn {
    io: TcpStream,
    codec: ws::Codec,
    read_buf: BytesMut,
    /// A fragmented message being joined: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
    max_message: usize,
}

impl WsConn {
    /// Wraps `io` right after the 101 answer. `early` holds bytes the browser
    /// sent behind its request head; messages above `max_message` bytes end
    /// the socket.
    pub fn new(io: TcpStream, early: &[u8], max_message: usize) -> Self {
        Self {
            io,
            codec: ws::Codec::new().max_size(max_message),
            read_buf: BytesMut::from(early),
            partial: None,
            max_message,
        }
    }

    /// The next message; `None` once the browser is gone. Cancel-safe: the
    /// only await is for readiness, so it can sit in a `select!`.
    pub async fn recv(&mut self) -> Option<Result<Incoming, RecvError>> {
        loop {
            match self.codec.decode(&mut self.read_buf) {
                Ok(Some(frame)) => match self.join(frame) {
                    Ok(Some(msg)) => return Some(Ok(msg)),
                    Ok(None) => continue,
                    Err(e) => return Some(Err(e)),
                },
                Ok(None) => {}
                Err(e) => return Some(Err(e.into())),
            }
            if self.read_buf.is_empty() && self.read_buf.capacity() > 0 {
                // Idle again: give the buffer back.
                self.read_buf = BytesMut::new();
            }
            if self.io.readable().await.is_err() {
                return None;
            }
            self.read_buf.reserve(READ_CHUNK);
            match self.io.try_read_buf(&mut self.read_buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return None,
            }
        }
    }

    /// Joins continuation frames into one message, bounded by `max_message`.
    fn join(&mut self, frame: Frame) -> Result<Option<Incoming>, RecvError> {
        Ok(Some(match frame {
            Frame::Text(b) => Incoming::Text(b),
            Frame::Binary(b) => Incoming::Binary(b),
            Frame::Ping(b) => Incoming::Ping(b),
            Frame::Pong(_) => Incoming::Pong,
            Frame::Close(_) => Incoming::Close,
            Frame::Continuation(item) => {
                let (text, last, bytes) = match item {
                    Item::FirstText(b) => (Some(true), false, b),
                    Item::FirstBinary(b) => (Some(false), false, b),
                    Item::Continue(b) => (None, false, b),
                    Item::Last(b) => (None, true, b),
                };
                let (is_text, mut buf) = match (text, self.partial.take()) {
                    (Some(t), _) => (t, BytesMut::new()),
                    (None, Some(p)) => p,
                    (None, None) => return Err(ProtocolError::ContinuationNotStarted.into()),
                };
                if buf.len() + bytes.len() > self.max_message {
                    return Err(RecvError::TooLarge(self.max_message));
                }
                buf.extend_from_slice(&bytes);
                if !last {
                    self.partial = Some((is_text, buf));
                    return Ok(None);
                }
                if is_text {
                    Incoming::Text(buf.freeze())
                } else {
                    Incoming::Binary(buf.freeze())
                }
            }
        }))
    }

    /// Writes one message; fails when the browser is gone or has not read
    /// for `WRITE_TIMEOUT`.
    pub async fn send(&mut self, msg: ws::Message) -> io::Result<()> {
        let mut frame = BytesMut::new();
        self.codec
            .encode(msg, &mut frame)
            .map_err(io::Error::other)?;
        match tokio::time::timeout(WRITE_TIMEOUT, self.io.write_all(&frame)).await {
            Ok(done) => done,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// A text message.
    pub async fn text(&mut self, text: String) -> io::Result<()> {
        self.send(ws::Message::Text(text.into())).await
    }

    /// Sends the closing frame, waits briefly for the browser's, and ends
    /// the connection.
    pub async fn close(mut self, reason: Option<CloseReason>) {
        if self.send(ws::Message::Close(reason)).await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(msg)) = self.recv().await {
                if matches!(msg, Incoming::Close) {
                    break;
                }
            }
        })
        .await;
        let _ = self.io.shutdown().await;
    }
}
