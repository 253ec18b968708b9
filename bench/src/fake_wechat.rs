//! A fake WeChat on loopback (`scanlogin-bench fake-wechat`), so that a hub
//! in `wechat.mode = "live"` exchanges codes with a separate process, as in
//! production, and WeChat's side of the work is not counted in the hub's CPU.
//!
//! It speaks WeChat's wire format for what the hub calls on a login
//! (as WeChat documents it): `POST /cgi-bin/stable_token`,
//! `GET /sns/jscode2session` and `POST /wxa/getwxacodeunlimit` (the code
//! image, `image/jpeg`, see [`code_image`]), errors as HTTP 200 with
//! `{"errcode", "errmsg"}`. Anything else is a 404 with a WeChat-style error.
//!
//! Codes are made by the load tool itself ([`new_code`], in [`codes`]): `bc-USER-T-NONCE`,
//! with `T` the issue time (Unix ms, hex) and `NONCE` 64 random bits (hex).
//! The fake needs no list of issued codes: it checks the form, answers 40029
//! for a malformed or older than 5 minutes code and 40163 for one already
//! exchanged. The openid is derived from (app id, user), the unionid from the
//! user, so one bench user is one WeChat person; the session key is random.
//! Used codes are remembered until they could no longer be valid anyway
//! (5 minutes), at most [`MAX_USED`] at once.
//!
//! Cheap by design: hyper's HTTP/1 server on a single-threaded tokio runtime,
//! a mutex-guarded map, no logging per request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rand::RngCore;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

pub mod code_image;
mod codes;

pub use codes::new_code;
use codes::{openid, parse_code, unionid, unix_ms};

/// A `wx.login` code lives 5 minutes.
const CODE_LIFE_MS: u64 = 5 * 60 * 1000;
/// Codes stamped this far in the future are still accepted (clock steps).
const CLOCK_SLACK_MS: u64 = 60 * 1000;
/// Used codes remembered at once; past this the fake answers -1 (busy).
pub const MAX_USED: usize = 300_000;
/// How often expired used codes are forgotten.
const PRUNE_EVERY_MS: u64 = 10 * 1000;
/// Open connections at once; more are closed at accept.
const MAX_CONNECTIONS: usize = 4096;
/// Largest request body read.
const MAX_BODY: usize = 16 * 1024;
/// Access tokens live 2 hours; WeChat renews them 5 minutes before the end.
const TOKEN_LIFE_MS: u64 = 7200 * 1000;
const TOKEN_RENEW_MS: u64 = 5 * 60 * 1000;

/// Options of `scanlogin-bench fake-wechat`.
#[derive(clap::Args, Debug, Clone)]
pub struct FakeArgs {
    /// Where to listen: a loopback address only (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:18182")]
    pub bind: SocketAddr,
    /// The one mini-program app id it knows.
    #[arg(long)]
    pub app_id: String,
    /// That app's secret.
    #[arg(long)]
    pub app_secret: String,
    /// Leave `unionid` out of `jscode2session` answers (an app bound to no
    /// Open Platform account).
    #[arg(long)]
    pub no_unionid: bool,
    /// Stop after this many seconds (it also stops on SIGTERM or Ctrl-C).
    #[arg(long, default_value_t = 3600)]
    pub max_secs: u64,
    /// Size of each code image `getwxacodeunlimit` answers, in bytes
    /// (at most 1 MiB).
    #[arg(long, default_value_t = code_image::DEFAULT_IMAGE_BYTES)]
    pub code_image_bytes: usize,
}

fn random_b64(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    rand::rng().fill_bytes(&mut bytes);
    STANDARD.encode(bytes)
}

/// Codes already exchanged, with their issue time.
struct Used {
    codes: HashMap<String, u64>,
    pruned_at: u64,
}

/// Counters printed when the fake stops.
#[derive(Default)]
struct Stats {
    tokens: AtomicU64,
    sessions_ok: AtomicU64,
    code_images: AtomicU64,
    bad_token: AtomicU64,
    invalid_code: AtomicU64,
    code_used: AtomicU64,
    bad_app: AtomicU64,
    busy: AtomicU64,
    other: AtomicU64,
    connections: AtomicU64,
    refused_connections: AtomicU64,
}

/// The fake's state.
struct Fake {
    app_id: String,
    secret: String,
    unionid: bool,
    /// Size of each code image.
    image_bytes: usize,
    /// The current access token and when it ends (Unix ms).
    token: Mutex<(String, u64)>,
    used: Mutex<Used>,
    stats: Stats,
}

/// A WeChat answer: HTTP 200, JSON.
fn wx_json(v: &Value) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(v.to_string())));
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; encoding=utf-8"),
    );
    res
}

fn wx_error(errcode: i64, errmsg: &str) -> Response<Full<Bytes>> {
    wx_json(&json!({"errcode": errcode, "errmsg": errmsg}))
}

impl Fake {
    fn new(args: &FakeArgs) -> Self {
        Self {
            app_id: args.app_id.clone(),
            secret: args.app_secret.clone(),
            unionid: !args.no_unionid,
            image_bytes: args.code_image_bytes,
            token: Mutex::new((String::new(), 0)),
            used: Mutex::new(Used {
                codes: HashMap::new(),
                pruned_at: 0,
            }),
            stats: Stats::default(),
        }
    }

    /// Checks app id and secret as WeChat does: 40013, then 40125.
    fn check_app(&self, appid: Option<&str>, secret: Option<&str>) -> Option<(i64, &'static str)> {
        if appid != Some(self.app_id.as_str()) {
            self.stats.bad_app.fetch_add(1, Ordering::Relaxed);
            return Some((40013, "invalid appid"));
        }
        if secret != Some(self.secret.as_str()) {
            self.stats.bad_app.fetch_add(1, Ordering::Relaxed);
            return Some((40125, "invalid appsecret"));
        }
        None
    }

    /// `POST /cgi-bin/stable_token`.
    fn stable_token(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let Some(v) = serde_json::from_slice::<Value>(body)
            .ok()
            .filter(Value::is_object)
        else {
            self.stats.other.fetch_add(1, Ordering::Relaxed);
            return wx_error(47001, "data format error");
        };
        if v["grant_type"] != "client_credential" {
            self.stats.other.fetch_add(1, Ordering::Relaxed);
            return wx_error(40002, "invalid grant_type");
        }
        if let Some((code, msg)) = self.check_app(v["appid"].as_str(), v["secret"].as_str()) {
            return wx_error(code, msg);
        }
        let force = v["force_refresh"].as_bool().unwrap_or(false);
        let now = unix_ms();
        let Ok(mut token) = self.token.lock() else {
            return wx_error(-1, "system error");
        };
        if force || token.1.saturating_sub(now) < TOKEN_RENEW_MS {
            *token = (
                format!("fake{}", random_b64(48).replace(['+', '/', '='], "")),
                now + TOKEN_LIFE_MS,
            );
        }
        let expires_in = token.1.saturating_sub(now) / 1000;
        self.stats.tokens.fetch_add(1, Ordering::Relaxed);
        wx_json(&json!({"access_token": token.0, "expires_in": expires_in}))
    }

    /// `GET /sns/jscode2session?appid&secret&js_code&grant_type`.
    fn jscode2session(&self, query: &str) -> Response<Full<Bytes>> {
        let (mut appid, mut secret, mut code, mut grant) = (None, None, None, None);
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()).take(16) {
            match k.as_ref() {
                "appid" => appid = Some(v),
                "secret" => secret = Some(v),
                "js_code" => code = Some(v),
                "grant_type" => grant = Some(v),
                _ => {}
            }
        }
        if let Some((c, msg)) = self.check_app(appid.as_deref(), secret.as_deref()) {
            return wx_error(c, msg);
        }
        if grant.as_deref() != Some("authorization_code") {
            self.stats.other.fetch_add(1, Ordering::Relaxed);
            return wx_error(40002, "invalid grant_type");
        }
        let code = code.unwrap_or_default();
        let now = unix_ms();
        let parts = parse_code(&code).filter(|p| {
            p.issued_ms <= now + CLOCK_SLACK_MS && now.saturating_sub(p.issued_ms) <= CODE_LIFE_MS
        });
        let Some(parts) = parts else {
            self.stats.invalid_code.fetch_add(1, Ordering::Relaxed);
            return wx_error(40029, "invalid code");
        };
        match self.mark_used(&code, parts.issued_ms, now) {
            Mark::Fresh => {}
            Mark::Used => {
                self.stats.code_used.fetch_add(1, Ordering::Relaxed);
                return wx_error(40163, "code been used");
            }
            Mark::Full => {
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
                return wx_error(-1, "system error");
            }
        }
        let mut answer = json!({
            "openid": openid(&self.app_id, parts.user),
            "session_key": random_b64(16),
        });
        if self.unionid {
            answer["unionid"] = json!(unionid(parts.user));
        }
        self.stats.sessions_ok.fetch_add(1, Ordering::Relaxed);
        wx_json(&answer)
    }

    /// `POST /wxa/getwxacodeunlimit?access_token=...`: 40001 for a token
    /// that is not the current one, the image otherwise.
    fn code_image(&self, query: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let token = url::form_urlencoded::parse(query.as_bytes())
            .take(16)
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let current = self
            .token
            .lock()
            .map(|t| !t.0.is_empty() && t.0 == token && t.1 > unix_ms())
            .unwrap_or(false);
        if !current {
            self.stats.bad_token.fetch_add(1, Ordering::Relaxed);
            return wx_error(
                40001,
                "invalid credential, access_token is invalid or not latest",
            );
        }
        match code_image::check(body) {
            Ok(scene) => {
                self.stats.code_images.fetch_add(1, Ordering::Relaxed);
                let mut res = Response::new(Full::new(Bytes::from(code_image::image(
                    &scene,
                    self.image_bytes,
                ))));
                res.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
                res
            }
            Err((errcode, errmsg)) => {
                self.stats.other.fetch_add(1, Ordering::Relaxed);
                wx_error(errcode, errmsg)
            }
        }
    }

    /// Remembers `code` as exchanged, forgetting codes past their life now
    /// and then.
    fn mark_used(&self, code: &str, issued_ms: u64, now: u64) -> Mark {
        let Ok(mut used) = self.used.lock() else {
            return Mark::Full;
        };
        if used.codes.contains_key(code) {
            return Mark::Used;
        }
        if now.saturating_sub(used.pruned_at) >= PRUNE_EVERY_MS || used.codes.len() >= MAX_USED {
            let oldest = now.saturating_sub(CODE_LIFE_MS);
            used.codes.retain(|_, t| *t >= oldest);
            used.pruned_at = now;
        }
        if used.codes.len() >= MAX_USED {
            return Mark::Full;
        }
        used.codes.insert(code.to_owned(), issued_ms);
        Mark::Fresh
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let res = match (req.method(), req.uri().path()) {
            (&Method::GET, "/sns/jscode2session") => {
                self.jscode2session(req.uri().query().unwrap_or(""))
            }
            (&Method::POST, "/wxa/getwxacodeunlimit") => {
                let query = req.uri().query().unwrap_or("").to_owned();
                match Limited::new(req.into_body(), MAX_BODY).collect().await {
                    Ok(body) => self.code_image(&query, &body.to_bytes()),
                    Err(_) => {
                        self.stats.other.fetch_add(1, Ordering::Relaxed);
                        wx_error(47001, "data format error")
                    }
                }
            }
            (&Method::POST, "/cgi-bin/stable_token") => {
                match Limited::new(req.into_body(), MAX_BODY).collect().await {
                    Ok(body) => self.stable_token(&body.to_bytes()),
                    Err(_) => {
                        self.stats.other.fetch_add(1, Ordering::Relaxed);
                        wx_error(47001, "data format error")
                    }
                }
            }
            _ => {
                self.stats.other.fetch_add(1, Ordering::Relaxed);
                let mut res = wx_error(40066, "invalid url");
                *res.status_mut() = StatusCode::NOT_FOUND;
                res
            }
        };
        Ok(res)
    }

    fn summary(&self) -> Value {
        let s = &self.stats;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "stable_token": n(&s.tokens),
            "jscode2session_ok": n(&s.sessions_ok),
            "getwxacodeunlimit_ok": n(&s.code_images),
            "errors": {"40029_invalid_code": n(&s.invalid_code), "40163_code_used": n(&s.code_used),
                "bad_appid_or_secret": n(&s.bad_app), "40001_bad_token": n(&s.bad_token), "busy": n(&s.busy), "other": n(&s.other)},
            "connections": n(&s.connections),
            "refused_connections": n(&s.refused_connections),
        })
    }
}

enum Mark {
    Fresh,
    Used,
    Full,
}

/// Runs the fake until SIGTERM, Ctrl-C or `--max-secs`; prints a summary
/// line on stderr at the end.
pub fn run(args: &FakeArgs) -> anyhow::Result<()> {
    ensure!(
        args.bind.ip().is_loopback(),
        "--bind {}: the fake WeChat listens on loopback addresses only",
        args.bind
    );
    ensure!(
        !args.app_id.is_empty() && !args.app_secret.is_empty(),
        "--app-id and --app-secret must not be empty"
    );
    ensure!(
        args.code_image_bytes <= code_image::MAX_IMAGE_BYTES,
        "--code-image-bytes: at most {} bytes",
        code_image::MAX_IMAGE_BYTES
    );
    // One thread: the fake shares the machine with the hub and the tool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(serve(args));
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn serve(args: &FakeArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let local = listener.local_addr()?;
    eprintln!(
        "fake-wechat: listening on http://{local}/ for app {}",
        args.app_id
    );
    let fake = Arc::new(Fake::new(args));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = sleep_until(deadline) => break,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors and the like: wait a little.
                        eprintln!("fake-wechat: accept: {e}");
                        sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    fake.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                fake.stats.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let fake = fake.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| fake.clone().handle(req));
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(stream), svc);
                    // A connection lives at most as long as the server.
                    let _ = timeout_at(deadline, conn).await;
                    drop(slot);
                });
            }
        }
    }
    conns.abort_all();
    eprintln!("fake-wechat: stopped; {}", fake.summary());
    Ok(())
}

#[cfg(test)]
mod tests;
