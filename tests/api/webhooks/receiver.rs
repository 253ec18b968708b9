//! The loopback receiver that records deliveries, and the stock verifier
//! that checks their signatures.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use super::WAIT;
use crate::helpers::required::{Part, missing};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub(super) id: String,
    pub(super) timestamp: String,
    pub(super) signature: String,
    pub(super) content_type: String,
    pub(super) body: String,
    /// What the receiver answered.
    pub(super) status: u16,
    /// How long the receiver waited before answering.
    pub(super) delay: Duration,
    pub(super) at: Instant,
}

#[derive(Default)]
struct Script {
    /// Answers to give first, in order; then `then`.
    answers: VecDeque<u16>,
    then: u16,
    /// Waits before the first answers, in order; then none.
    delays: VecDeque<Duration>,
    seen: Vec<Delivery>,
}

/// A loopback webhook receiver.
pub(super) struct Receiver {
    port: u16,
    script: Arc<Mutex<Script>>,
    handle: actix_web::dev::ServerHandle,
}

fn header(req: &HttpRequest, name: &str) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    script: web::Data<Arc<Mutex<Script>>>,
) -> HttpResponse {
    let (status, delay) = {
        let mut s = script.lock().expect("script lock");
        let status = s.answers.pop_front().unwrap_or(s.then);
        let delay = s.delays.pop_front().unwrap_or_default();
        s.seen.push(Delivery {
            id: header(&req, "webhook-id"),
            timestamp: header(&req, "webhook-timestamp"),
            signature: header(&req, "webhook-signature"),
            content_type: header(&req, "content-type"),
            body: String::from_utf8_lossy(&body).into_owned(),
            status,
            delay,
            at: Instant::now(),
        });
        (status, delay)
    };
    tokio::time::sleep(delay).await;
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("status")).finish()
}

impl Receiver {
    /// Listens on `port` (0: any) and answers `answers`, then `then`.
    pub(super) fn start(port: u16, answers: &[u16], then: u16) -> Receiver {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        Self::start_on(listener, answers, then)
    }

    /// Takes over `down`'s port (held all along) and answers as [`start`].
    ///
    /// [`start`]: Receiver::start
    pub(super) fn start_after(down: Down, answers: &[u16], then: u16) -> Receiver {
        down.task.abort();
        Self::start_on(down.listener, answers, then)
    }

    fn start_on(listener: std::net::TcpListener, answers: &[u16], then: u16) -> Receiver {
        let script = Arc::new(Mutex::new(Script {
            answers: answers.iter().copied().collect(),
            then,
            delays: VecDeque::new(),
            seen: Vec::new(),
        }));
        let data = web::Data::new(script.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("serve on the receiver's listener");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            port,
            script,
            handle,
        }
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub(super) fn seen(&self) -> Vec<Delivery> {
        self.script.lock().expect("script lock").seen.clone()
    }

    /// The next answers wait this long first.
    pub(super) fn delay_answers(&self, delays: &[Duration]) {
        self.script.lock().expect("script lock").delays = delays.iter().copied().collect();
    }

    pub(super) fn answer_from_now(&self, status: u16) {
        self.script.lock().expect("script lock").then = status;
    }

    /// Waits until at least `n` deliveries arrived.
    pub(super) async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        let deadline = Instant::now() + WAIT;
        loop {
            let seen = self.seen();
            if seen.len() >= n {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} deliveries within {WAIT:?}: {seen:?}",
                seen.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A receiver that is down: its port is held (no other test can take it),
/// and every connection is closed unanswered.
pub(super) struct Down {
    listener: std::net::TcpListener,
    task: tokio::task::JoinHandle<()>,
}

impl Down {
    pub(super) fn start() -> Down {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
        let refusing = listener.try_clone().expect("clone the listener");
        refusing.set_nonblocking(true).expect("non-blocking");
        let refusing = tokio::net::TcpListener::from_std(refusing).expect("tokio listener");
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = refusing.accept().await {
                drop(conn);
            }
        });
        Down { listener, task }
    }

    pub(super) fn url(&self) -> String {
        let port = self.listener.local_addr().expect("address").port();
        format!("http://127.0.0.1:{port}/hook")
    }
}

/// Runs each delivery (and the extra `(headers, body)` pairs) through the
/// npm `standardwebhooks` verifier; `None` when it cannot run here.
pub(super) async fn stock_verify(secret: &str, items: &[(Value, String)]) -> Option<Vec<Value>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let node = tokio::process::Command::new("node")
        .arg("--version")
        .output()
        .await;
    let reason = if !node.is_ok_and(|o| o.status.success()) {
        Some("node is not on PATH")
    } else if !root.join("web/node_modules/standardwebhooks").is_dir() {
        Some("web/node_modules/standardwebhooks is missing (run `npm ci` in web/)")
    } else {
        None
    };
    if let Some(reason) = reason {
        // Fails when SCANLOGIN_REQUIRE_BROWSER is set; else a SKIPPED line
        // cargo shows (a `println!` is hidden for a passing test).
        missing(
            Part::Browser,
            &format!("the stock webhook verifier cannot run: {reason}"),
        );
        return None;
    }
    let input = tempfile::NamedTempFile::new().expect("temp file");
    let deliveries: Vec<Value> = items
        .iter()
        .map(|(headers, body)| json!({"headers": headers, "body": body}))
        .collect();
    std::fs::write(
        input.path(),
        json!({"secret": secret, "deliveries": deliveries}).to_string(),
    )
    .expect("write the deliveries");
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("node")
            .arg(root.join("web/tests/webhook_verify.js"))
            .arg(input.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("node finishes within 60 s")
    .expect("run node");
    assert!(
        out.status.success(),
        "webhook_verify.js failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("verifier output is JSON"))
}

pub(super) fn headers_of(d: &Delivery) -> Value {
    json!({"webhook-id": d.id, "webhook-timestamp": d.timestamp, "webhook-signature": d.signature})
}

/// Every delivery verifies with the stock library and yields its body; a
/// tampered copy of the first does not.
pub(super) async fn assert_verified(secret: &str, deliveries: &[Delivery]) {
    let mut items: Vec<(Value, String)> = deliveries
        .iter()
        .map(|d| (headers_of(d), d.body.clone()))
        .collect();
    // Every event type has a `data` object.
    let tampered = deliveries[0]
        .body
        .replacen("\"data\":{", "\"data\":{\"tampered\":true,", 1);
    assert_ne!(tampered, deliveries[0].body);
    items.push((headers_of(&deliveries[0]), tampered));
    let Some(results) = stock_verify(secret, &items).await else {
        return;
    };
    assert_eq!(results.len(), items.len(), "{results:?}");
    for (d, r) in deliveries.iter().zip(&results) {
        assert_eq!(r["ok"], true, "standardwebhooks refused {d:?}: {r}");
        let body: Value = serde_json::from_str(&d.body).expect("JSON body");
        assert_eq!(r["payload"], body);
    }
    assert_eq!(
        results[deliveries.len()]["ok"],
        false,
        "a tampered body must not verify"
    );
}
