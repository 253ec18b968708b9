//! The WebSocket under attack, byte by byte over TCP: frames larger than
//! 4 KiB are refused from their header (1009) and the hub stops reading,
//! text must be UTF-8 (1007), control frames must be short and whole (1002),
//! and a scene holds at most 8 sockets (429 at the upgrade, 1008 after auth).
//! The raw frames are written here because stock clients refuse to send
//! them; the refusals a stock client sees are checked with tungstenite.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

use crate::helpers::{ORIGIN, Scene, TestApp, WAIT, spawn_app};

/// The generous bound for "promptly".
const PROMPTLY: Duration = Duration::from_secs(5);
/// The most junk an attack sends after its header.
const JUNK_CAP: usize = 256 * 1024;
/// A client's masking key (any will do).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// A client frame header: FIN, opcode, the declared length, the mask.
fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 | opcode } else { opcode }];
    match len {
        0..=125 => h.push(0x80 | len as u8),
        126..=0xFFFF => {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    h.extend_from_slice(&MASK);
    h
}

/// A whole masked client frame.
fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = header(fin, opcode, payload.len() as u64);
    f.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    f
}

/// A server frame: (opcode, payload); `None` once the connection has ended.
async fn read_frame(io: &mut (impl AsyncRead + Unpin)) -> Option<(u8, Vec<u8>)> {
    let mut head = [0; 2];
    io.read_exact(&mut head).await.ok()?;
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7F {
        126 => u64::from(io.read_u16().await.ok()?),
        127 => io.read_u64().await.ok()?,
        n => u64::from(n),
    };
    assert!(len <= 64 * 1024, "an outsized frame from the hub: {len}");
    let mut payload = vec![0; len as usize];
    io.read_exact(&mut payload).await.ok()?;
    Some((head[0] & 0x0F, payload))
}

/// Reads until the hub's close frame (skipping events and pings), within
/// `limit`: its code, or `None` when the connection ended without one.
async fn close_code(io: &mut (impl AsyncRead + Unpin), limit: Duration) -> Option<u16> {
    tokio::time::timeout(limit, async {
        while let Some((opcode, payload)) = read_frame(io).await {
            if opcode == CLOSE {
                return payload.first_chunk::<2>().map(|c| u16::from_be_bytes(*c));
            }
        }
        None
    })
    .await
    .expect("the hub did not close in time")
}

/// Reads until the connection ends, within `limit`.
async fn ended(io: &mut (impl AsyncRead + Unpin), limit: Duration) {
    let mut sink = vec![0; 4096];
    tokio::time::timeout(limit, async {
        while let Ok(n @ 1..) = io.read(&mut sink).await {
            assert!(n <= sink.len());
        }
    })
    .await
    .expect("the hub did not end the connection in time");
}

/// A WebSocket spoken by hand.
struct Raw {
    io: TcpStream,
}

impl Raw {
    /// Connects and upgrades on `scene_id`'s socket from the allowed origin.
    async fn open(app: &TestApp, scene_id: &str) -> Raw {
        let mut io = TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connect");
        let head = format!(
            "GET /api/v1/scenes/{scene_id}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Connection: Upgrade\r\nUpgrade: websocket\r\nOrigin: {ORIGIN}\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        io.write_all(head.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, async {
            while !answer.ends_with(b"\r\n\r\n") {
                answer.push(io.read_u8().await.expect("the upgrade answer"));
                assert!(answer.len() < 4096, "an endless answer head");
            }
        })
        .await
        .expect("no upgrade answer in time");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        Raw { io }
    }

    async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(WAIT, self.io.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write");
    }

    /// The next event (pings skipped); panics on anything else.
    async fn next_event(&mut self) -> Value {
        loop {
            let got = tokio::time::timeout(WAIT, read_frame(&mut self.io))
                .await
                .expect("no event in time");
            match got {
                Some((TEXT, text)) => return serde_json::from_slice(&text).expect("JSON event"),
                Some((PING, _)) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// Sends the auth frame; the hub answers with the scene's state.
    async fn auth(&mut self, scene: &Scene) -> Value {
        let auth = json!({"type": "auth", "browser_token": scene.browser_token}).to_string();
        self.send(&frame(true, TEXT, auth.as_bytes())).await;
        self.next_event().await
    }

    /// Reads the close code, then the end of the connection, both promptly.
    async fn closed(mut self) -> Option<u16> {
        let code = close_code(&mut self.io, PROMPTLY).await;
        ended(&mut self.io, PROMPTLY).await;
        code
    }

    /// Sends a text frame header declaring 1 GiB, then streams junk (at most
    /// `JUNK_CAP` bytes) while reading what the hub says: its close code,
    /// read within `PROMPTLY`; the connection must end by then too. Then
    /// checks the hub no longer reads: more junk is refused by the socket
    /// instead of piling up.
    async fn flood(self) -> u16 {
        let (mut rd, mut wr) = self.io.into_split();
        let writer = tokio::spawn(async move {
            wr.write_all(&header(true, TEXT, 1 << 30)).await?;
            let junk = vec![0x5a; 16 * 1024];
            let mut sent = 0;
            while sent < JUNK_CAP {
                wr.write_all(&junk).await?;
                sent += junk.len();
            }
            Ok::<_, std::io::Error>(wr)
        });
        let code = close_code(&mut rd, PROMPTLY).await;
        ended(&mut rd, PROMPTLY).await;
        let written = tokio::time::timeout(PROMPTLY, writer)
            .await
            .expect("the junk writer is stuck")
            .expect("writer task");
        if let Ok(mut wr) = written {
            // The hub has closed its end: the kernel answers more junk with a
            // reset instead of buffering it for a reader that is gone.
            let junk = vec![0x5a; 64 * 1024];
            let refused = tokio::time::timeout(PROMPTLY, async {
                for _ in 0..1024 {
                    wr.write_all(&junk).await?;
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            assert!(
                matches!(refused, Ok(Err(_))),
                "the hub still takes junk: {refused:?}"
            );
        }
        code.expect("a close frame before the end")
    }
}

#[tokio::test]
async fn a_frame_declaring_one_gib_is_refused_from_its_header_before_auth() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let raw = Raw::open(&app, &scene.id).await;
    assert_eq!(raw.flood().await, 1009);
    // The hub and the scene are fine.
    let mut ws = Raw::open(&app, &scene.id).await;
    assert_eq!(ws.auth(&scene).await["state"], "waiting");
}

#[tokio::test]
async fn a_frame_declaring_one_gib_is_refused_from_its_header_after_auth() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut raw = Raw::open(&app, &scene.id).await;
    assert_eq!(raw.auth(&scene).await["state"], "waiting");
    assert_eq!(raw.flood().await, 1009);
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
}

#[tokio::test]
async fn a_message_over_4_kib_in_two_fragments_is_refused_at_the_second_header() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    // Before auth and after: 2.5 KiB, then a last fragment whose header
    // declares 2.5 KiB more and whose payload never comes.
    for authenticated in [false, true] {
        let mut raw = Raw::open(&app, &scene.id).await;
        if authenticated {
            assert_eq!(raw.auth(&scene).await["state"], "waiting");
        }
        raw.send(&frame(false, TEXT, &[b' '; 2560])).await;
        raw.send(&header(true, CONTINUATION, 2560)).await;
        assert_eq!(
            raw.closed().await,
            Some(1009),
            "authenticated: {authenticated}"
        );
    }
    // 4 KiB in two fragments is fine: the auth frame padded with spaces.
    let auth = json!({"type": "auth", "browser_token": scene.browser_token}).to_string();
    let padded = format!("{auth:<4096}");
    let (first, last) = padded.as_bytes().split_at(2048);
    let mut raw = Raw::open(&app, &scene.id).await;
    raw.send(&frame(false, TEXT, first)).await;
    raw.send(&frame(true, CONTINUATION, last)).await;
    assert_eq!(raw.next_event().await["state"], "waiting");
}

#[tokio::test]
async fn text_that_is_not_utf8_closes_1007() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    // One frame, before auth.
    let mut raw = Raw::open(&app, &scene.id).await;
    raw.send(&frame(
        true,
        TEXT,
        b"{\"type\":\"auth\",\"x\":\"\xc3\x28\"}",
    ))
    .await;
    assert_eq!(raw.closed().await, Some(1007));
    // Fragments, after auth: each alone could be the start of valid text,
    // together they are not.
    let mut raw = Raw::open(&app, &scene.id).await;
    assert_eq!(raw.auth(&scene).await["state"], "waiting");
    raw.send(&frame(false, TEXT, b"caf\xc3")).await;
    raw.send(&frame(true, CONTINUATION, b"\xff")).await;
    assert_eq!(raw.closed().await, Some(1007));
    // A character split across fragments is valid text: the auth works.
    let auth = json!({"type": "auth", "browser_token": scene.browser_token, "x": "é"}).to_string();
    let at = auth.find('é').expect("é") + 1;
    let mut raw = Raw::open(&app, &scene.id).await;
    raw.send(&frame(false, TEXT, &auth.as_bytes()[..at])).await;
    raw.send(&frame(true, CONTINUATION, &auth.as_bytes()[at..]))
        .await;
    assert_eq!(raw.next_event().await["state"], "waiting");
}

#[tokio::test]
async fn broken_control_frames_close_1002() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    // A 126-byte ping, before auth.
    let mut raw = Raw::open(&app, &scene.id).await;
    raw.send(&frame(true, PING, &[7; 126])).await;
    assert_eq!(raw.closed().await, Some(1002));
    // A fragmented ping, after auth.
    let mut raw = Raw::open(&app, &scene.id).await;
    assert_eq!(raw.auth(&scene).await["state"], "waiting");
    raw.send(&frame(false, PING, b"half")).await;
    assert_eq!(raw.closed().await, Some(1002));
    // A 125-byte ping is answered.
    let mut raw = Raw::open(&app, &scene.id).await;
    assert_eq!(raw.auth(&scene).await["state"], "waiting");
    raw.send(&frame(true, PING, &[7; 125])).await;
    let pong = tokio::time::timeout(WAIT, read_frame(&mut raw.io))
        .await
        .expect("a pong in time");
    assert_eq!(pong, Some((0xA, vec![7; 125])));
}

#[tokio::test]
async fn a_scene_holds_eight_sockets_the_ninth_is_refused_with_429() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    let mut first = Raw::open(&app, &scene.id).await;
    assert_eq!(first.auth(&scene).await["state"], "waiting");
    let mut others = Vec::new();
    for _ in 1..8 {
        let mut ws = app.ws_connect(&scene).await;
        assert_eq!(ws.next_event().await["state"], "waiting");
        others.push(ws);
    }
    // The ninth: a problem, no 101.
    match app.ws_connect_raw(&scene.id, Some(ORIGIN)).await {
        Err(tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 429);
            let retry = res.headers().get("retry-after").expect("Retry-After");
            let secs: u64 = retry.to_str().expect("ascii").parse().expect("seconds");
            assert!(secs >= 1, "{secs}");
            let body = res.body().as_deref().expect("a problem body");
            let v: Value = serde_json::from_slice(body).expect("JSON problem");
            assert_eq!(v["code"], "rate_limited", "{v}");
            assert_eq!(v["status"], 429, "{v}");
        }
        Err(e) => panic!("expected a 429, got {e}"),
        Ok(_) => panic!("a ninth socket was accepted"),
    }
    // Another scene is not affected.
    let other = app.create_scene().await;
    let mut ws = app.ws_connect(&other).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    // One browser leaves (close handshake): its place is free again.
    first
        .send(&frame(true, CLOSE, &1000u16.to_be_bytes()))
        .await;
    assert_eq!(first.closed().await, Some(1000));
    let mut ws = app.ws_connect(&scene).await;
    assert_eq!(ws.next_event().await["state"], "waiting");
    // And the scene is full again.
    match app.ws_connect_raw(&scene.id, Some(ORIGIN)).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 429),
        Err(e) => panic!("expected a 429, got {e}"),
        Ok(_) => panic!("a ninth socket was accepted"),
    }
    // The sockets still carry events.
    app.scanned(&scene.id, &app.login_code("o_eight")).await;
    for ws in &mut others {
        assert_eq!(ws.next_event().await["state"], "scanned");
    }
}

#[tokio::test]
async fn sockets_past_the_upgrade_together_get_1008_beyond_eight() {
    let app = spawn_app().await;
    let scene = app.create_scene().await;
    // Nine upgrades before any auth: an unauthenticated socket takes no
    // place, so all get their 101.
    let mut raws = Vec::new();
    for _ in 0..9 {
        raws.push(Raw::open(&app, &scene.id).await);
    }
    let ninth = raws.pop().expect("nine");
    for raw in &mut raws {
        assert_eq!(raw.auth(&scene).await["state"], "waiting");
    }
    let mut ninth = ninth;
    let auth = json!({"type": "auth", "browser_token": scene.browser_token}).to_string();
    ninth.send(&frame(true, TEXT, auth.as_bytes())).await;
    assert_eq!(ninth.closed().await, Some(1008));
}
