//! A browser's socket that goes silent: the hub pings it every 20 s and
//! drops it after 60 s without an answer.

use std::time::Duration;

use serde_json::json;

use super::upgrade_head;
use crate::helpers::{ORIGIN, spawn_app};

/// The frames a server sent, as (opcode, payload), from raw bytes; the
/// rest of `buf` that is not a whole frame yet stays.
fn server_frames(buf: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    loop {
        if buf.len() < 2 {
            return frames;
        }
        let (len, at) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 => panic!("no frame here is that large"),
            126 => return frames,
            n => (usize::from(n), 2),
        };
        if buf.len() < at + len {
            return frames;
        }
        frames.push((buf[0] & 0x0f, buf[at..at + len].to_vec()));
        buf.drain(..at + len);
    }
}

/// A browser that authenticates, then neither reads nor answers pings: the
/// hub drops it after 60 s of silence (close 1001) instead of keeping it
/// forever. The limit is a constant (`SILENCE_LIMIT` in src/http/socket.rs,
/// no setting), so this test takes about 80 s.
#[tokio::test]
async fn a_socket_silent_for_sixty_seconds_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    // A raw socket: tungstenite would answer the pings by itself.
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let head = upgrade_head("GET", &format!("/api/v1/scenes/{}/ws", scene.id))
        .replace("\r\n\r\n", &format!("\r\nOrigin: {ORIGIN}\r\n\r\n"));
    conn.write_all(head.as_bytes()).await.expect("upgrade");
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk))
            .await
            .expect("an answer to the upgrade")
            .expect("read");
        assert!(n > 0, "closed during the upgrade");
        buf.extend_from_slice(&chunk[..n]);
    }
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert!(
        buf.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    buf.drain(..end);
    // The auth frame, masked with a zero key (client frames must be masked).
    let auth = json!({"type": "auth", "browser_token": scene.browser_token}).to_string();
    let len = u16::try_from(auth.len()).expect("short");
    let mut frame = vec![0x81, 0x80 | 126];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(auth.as_bytes());
    conn.write_all(&frame).await.expect("auth");
    // Silence: nothing read, nothing answered, past the 60 s.
    tokio::time::sleep(Duration::from_secs(85)).await;
    let mut seen = Vec::new();
    let close = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "the connection ended without a close frame: {seen:?}"
            );
            buf.extend_from_slice(&chunk[..n]);
            for (opcode, payload) in server_frames(&mut buf) {
                if opcode == 0x8 {
                    return payload;
                }
                seen.push((opcode, String::from_utf8_lossy(&payload).into_owned()));
            }
        }
    })
    .await
    .expect("the hub closed the silent socket");
    assert!(close.len() >= 2, "a close code: {close:?}");
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 1001, "going away");
    assert!(
        seen.first()
            .is_some_and(|(op, text)| *op == 0x1 && text.contains("\"waiting\"")),
        "the state came first: {seen:?}"
    );
    let pings = seen.iter().filter(|(op, _)| *op == 0x9).count();
    assert!(pings >= 2, "the hub pinged before giving up: {seen:?}");
}
