//! A server-side WebSocket on a bare TCP stream, after the handshake.
//!
//! Frames are parsed and written by actix-http's WebSocket codec; what is
//! ours is only the buffering: an idle socket holds no buffer at all (the
//! read buffer exists while a frame is arriving, each write allocates just
//! its frame), which is what lets one hub hold many waiting browsers in a few
//! kilobytes each (docs/benchmarks.md).
//!
//! The codec checks a frame's size only once the whole frame is buffered, so
//! each frame header is looked at first ([`check_header`]): a frame, or a
//! joined message, above the limit ends the socket (1009) before any of its
//! payload is read, and the read buffer never holds more than the limit plus
//! one frame header. Text must be UTF-8 (1007).

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
/// The longest frame header from a client: 2 bytes, a 64-bit length, a mask
/// (RFC 6455 §5.2).
const MAX_HEADER: usize = 14;
/// The largest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL: u64 = 125;

/// A whole message from the browser (continuations joined).
#[derive(Debug)]
pub enum Incoming {
    /// A text message, checked to be UTF-8.
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
    #[error("text message is not UTF-8")]
    NotUtf8,
    #[error("control frame fragmented or longer than 125 bytes")]
    BadControl,
}

impl RecvError {
    /// The close code that tells the browser why.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Self::TooLarge(_) | Self::Protocol(ProtocolError::Overflow) => CloseCode::Size,
            Self::NotUtf8 => CloseCode::Invalid,
            Self::BadControl | Self::Protocol(_) => CloseCode::Protocol,
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
            let joined = self.partial.as_ref().map_or(0, |(_, b)| b.len());
            if let Err(e) = check_header(&self.read_buf, joined, self.max_message) {
                return Some(Err(e));
            }
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
            // What is buffered is one unfinished frame whose header passed,
            // so it fits in `max_message + MAX_HEADER`; read no further.
            let room = (self.max_message + MAX_HEADER).saturating_sub(self.read_buf.len());
            if room == 0 {
                return Some(Err(RecvError::TooLarge(self.max_message)));
            }
            let mut chunk = [0; READ_CHUNK];
            match self.io.try_read(&mut chunk[..room.min(READ_CHUNK)]) {
                Ok(0) => return None,
                Ok(n) => self.read_buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return None,
            }
        }
    }

    /// Joins continuation frames into one message, bounded by `max_message`.
    fn join(&mut self, frame: Frame) -> Result<Option<Incoming>, RecvError> {
        Ok(Some(match frame {
            Frame::Text(b) => Incoming::Text(utf8(b)?),
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
                    Incoming::Text(utf8(buf.freeze())?)
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

/// `bytes` if they are UTF-8 (RFC 6455 §8.1: else fail the connection, 1007).
fn utf8(bytes: Bytes) -> Result<Bytes, RecvError> {
    match std::str::from_utf8(&bytes) {
        Ok(_) => Ok(bytes),
        Err(_) => Err(RecvError::NotUtf8),
    }
}

/// Looks at the header of the frame at the start of `buf` (RFC 6455 §5.2),
/// before its payload arrives: a control frame must be final and at most 125
/// bytes; any other frame must keep the message (`joined` bytes so far, of a
/// fragmented one) within `max`. Fine, too, while the header is incomplete.
/// Everything else (masking, opcodes, reserved bits) the codec checks.
fn check_header(buf: &[u8], joined: usize, max: usize) -> Result<(), RecvError> {
    let [first, second, rest @ ..] = buf else {
        return Ok(());
    };
    let (fin, opcode, short) = (first & 0x80 != 0, first & 0x0F, second & 0x7F);
    if opcode & 0x08 != 0 {
        // A control frame's length is never an extended one.
        return if fin && u64::from(short) <= MAX_CONTROL {
            Ok(())
        } else {
            Err(RecvError::BadControl)
        };
    }
    let len = match short {
        126 => match rest.first_chunk::<2>() {
            Some(bytes) => u64::from(u16::from_be_bytes(*bytes)),
            None => return Ok(()),
        },
        127 => match rest.first_chunk::<8>() {
            Some(bytes) => u64::from_be_bytes(*bytes),
            None => return Ok(()),
        },
        short => u64::from(short),
    };
    let so_far = if opcode == 0 { joined } else { 0 };
    match usize::try_from(len) {
        Ok(len) if len <= max.saturating_sub(so_far) => Ok(()),
        _ => Err(RecvError::TooLarge(max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_judged_by_their_declared_length() {
        let max = 4096;
        // Incomplete headers wait for more.
        for partial in [
            &[][..],
            &[0x81],
            &[0x81, 0xFE, 0x10],
            &[0x81, 0xFF, 0, 0, 0],
        ] {
            assert!(check_header(partial, 0, max).is_ok(), "{partial:?}");
        }
        // 7-, 16- and 64-bit lengths.
        assert!(check_header(&[0x81, 0x80 | 125], 0, max).is_ok());
        assert!(check_header(&[0x81, 0xFE, 0x10, 0x00], 0, max).is_ok());
        let too_big = [0x81, 0xFE, 0x10, 0x01];
        assert!(matches!(
            check_header(&too_big, 0, max),
            Err(RecvError::TooLarge(4096))
        ));
        let gib = [0x81, 0xFF, 0, 0, 0, 0, 0x40, 0, 0, 0];
        assert!(matches!(
            check_header(&gib, 0, max),
            Err(RecvError::TooLarge(_))
        ));
        let msb = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            check_header(&msb, 0, max),
            Err(RecvError::TooLarge(_))
        ));
        // A continuation counts what is already joined; a new message does not.
        let cont = [0x80, 0xFE, 0x08, 0x00];
        assert!(check_header(&cont, 2048, max).is_ok());
        assert!(matches!(
            check_header(&cont, 2049, max),
            Err(RecvError::TooLarge(_))
        ));
        assert!(check_header(&[0x81, 0xFE, 0x10, 0x00], 4000, max).is_ok());
        // Control frames: final, at most 125 bytes.
        assert!(check_header(&[0x89, 0x80 | 125], 0, max).is_ok());
        assert!(matches!(
            check_header(&[0x89, 0x80 | 126], 0, max),
            Err(RecvError::BadControl)
        ));
        assert!(matches!(
            check_header(&[0x09, 0x80], 0, max),
            Err(RecvError::BadControl)
        ));
        assert!(matches!(
            check_header(&[0x88, 0x80 | 127], 0, max),
            Err(RecvError::BadControl)
        ));
    }

    #[test]
    fn close_codes_name_the_fault() {
        assert_eq!(u16::from(RecvError::TooLarge(1).close_code()), 1009);
        assert_eq!(u16::from(RecvError::NotUtf8.close_code()), 1007);
        assert_eq!(u16::from(RecvError::BadControl.close_code()), 1002);
    }
}
