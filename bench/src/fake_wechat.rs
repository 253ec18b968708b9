//! A fake WeChat on loopback (`scanlogin-bench fake-wechat`), so that a hub
//! in `wechat.mode = "live"` exchanges codes with a separate process, as in
//! production, and WeChat's side of the work is not counted in the hub's CPU.
//!
//! It speaks WeChat's wire format for what the hub calls on a login
//! (as WeChat documents it): `POST /cgi-bin/stable_token` and
//! `GET /sns/jscode2session`, errors as HTTP 200 with
//! `{"errcode", "errmsg"}`. Anything else is a 404 with a WeChat-style error.
//!
//! Codes are made by the load tool itself ([`new_code`]): `bc-USER-T-NONCE`,
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
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
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

/// Prefix of every code the load tool makes.
const CODE_PREFIX: &str = "bc-";
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
/// Longest user part of a code.
const MAX_USER: usize = 64;

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
}

/// Unix time in milliseconds.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A fresh one-time code for bench user `user` (as `wx.login` would give
/// that person's phone). `user` should be 1..=64 characters of
/// `[A-Za-z0-9._-]`; others make codes the fake refuses with 40029.
pub fn new_code(user: &str) -> String {
    format!(
        "{CODE_PREFIX}{user}-{:x}-{:016x}",
        unix_ms(),
        rand::random::<u64>()
    )
}

/// What a well-formed code says: its user and when it was issued.
#[derive(Debug, PartialEq, Eq)]
struct CodeParts<'a> {
    user: &'a str,
    issued_ms: u64,
}

fn parse_code(code: &str) -> Option<CodeParts<'_>> {
    let rest = code.strip_prefix(CODE_PREFIX)?;
    let (rest, nonce) = rest.rsplit_once('-')?;
    let (user, t) = rest.rsplit_once('-')?;
    let hex = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_hexdigit())
    };
    if nonce.len() != 16 || !hex(nonce, 16) || !hex(t, 16) {
        return None;
    }
    let user_ok = !user.is_empty()
        && user.len() <= MAX_USER
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !user_ok {
        return None;
    }
    Some(CodeParts {
        user,
        issued_ms: u64::from_str_radix(t, 16).ok()?,
    })
}

/// A person's openid in one app (stable: the same user, the same openid).
fn openid(app_id: &str, user: &str) -> String {
    let digest = Sha256::digest(format!("fake-openid|{app_id}|{user}"));
    format!("o{}", &URL_SAFE_NO_PAD.encode(digest)[..27])
}

/// A person's unionid (the same in every app of one Open Platform account).
fn unionid(user: &str) -> String {
    let digest = Sha256::digest(format!("fake-unionid|{user}"));
    format!("u{}", &URL_SAFE_NO_PAD.encode(digest)[..27])
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
            "errors": {"40029_invalid_code": n(&s.invalid_code), "40163_code_used": n(&s.code_used),
                "bad_appid_or_secret": n(&s.bad_app), "busy": n(&s.busy), "other": n(&s.other)},
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
mod tests {
    use super::*;

    fn fake() -> Fake {
        Fake::new(&FakeArgs {
            bind: "127.0.0.1:0".parse().expect("addr"),
            app_id: "wxbench".into(),
            app_secret: "s3cret".into(),
            no_unionid: false,
            max_secs: 1,
        })
    }

    async fn body(res: Response<Full<Bytes>>) -> Value {
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        serde_json::from_slice(&bytes).expect("json")
    }

    fn session_query(code: &str) -> String {
        format!("appid=wxbench&secret=s3cret&js_code={code}&grant_type=authorization_code")
    }

    #[test]
    fn codes_round_trip() {
        let code = new_code("bench-l-17");
        let parts = parse_code(&code).expect("parsed");
        assert_eq!(parts.user, "bench-l-17");
        assert!(unix_ms() - parts.issued_ms < 10_000);
        for bad in [
            "",
            "bc-",
            "bc-u-1",
            "sim123",
            "bc--18f-0123456789abcdef",
            "bc-u-zz-0123456789abcdef",
            "bc-u-18f-0123456789abcde",
            "bc-u v-18f-0123456789abcdef",
        ] {
            assert_eq!(parse_code(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn exchanges_each_code_once_with_stable_openid() {
        let f = fake();
        let (c1, c2) = (new_code("alice"), new_code("alice"));
        let a = body(f.jscode2session(&session_query(&c1))).await;
        let b = body(f.jscode2session(&session_query(&c2))).await;
        assert_eq!(a["openid"], b["openid"]);
        assert_eq!(a["unionid"], b["unionid"]);
        assert_ne!(a["session_key"], b["session_key"]);
        let key = STANDARD
            .decode(a["session_key"].as_str().expect("key"))
            .expect("base64");
        assert_eq!(key.len(), 16);
        let other = body(f.jscode2session(&session_query(&new_code("bob")))).await;
        assert_ne!(other["openid"], a["openid"]);
        let again = body(f.jscode2session(&session_query(&c1))).await;
        assert_eq!(again["errcode"], 40163);
        assert!(again.get("openid").is_none());
    }

    #[tokio::test]
    async fn wechat_errors() {
        let f = fake();
        let q = session_query("nope");
        assert_eq!(body(f.jscode2session(&q)).await["errcode"], 40029);
        let old = format!(
            "bc-u-{:x}-0123456789abcdef",
            unix_ms() - CODE_LIFE_MS - 1000
        );
        assert_eq!(
            body(f.jscode2session(&session_query(&old))).await["errcode"],
            40029
        );
        let code = new_code("u");
        let wrong_secret =
            format!("appid=wxbench&secret=x&js_code={code}&grant_type=authorization_code");
        assert_eq!(
            body(f.jscode2session(&wrong_secret)).await["errcode"],
            40125
        );
        let wrong_app =
            format!("appid=wx0&secret=s3cret&js_code={code}&grant_type=authorization_code");
        assert_eq!(body(f.jscode2session(&wrong_app)).await["errcode"], 40013);
        // A refused call does not use the code up.
        assert!(body(f.jscode2session(&session_query(&code))).await["openid"].is_string());
    }

    #[tokio::test]
    async fn stable_token_is_stable_until_forced() {
        let f = fake();
        let ask = |force: bool| {
            json!({"grant_type": "client_credential", "appid": "wxbench", "secret": "s3cret", "force_refresh": force})
                .to_string()
        };
        let a = body(f.stable_token(ask(false).as_bytes())).await;
        let b = body(f.stable_token(ask(false).as_bytes())).await;
        assert_eq!(a["access_token"], b["access_token"]);
        assert!(a["expires_in"].as_u64().expect("expires_in") > 7000);
        let c = body(f.stable_token(ask(true).as_bytes())).await;
        assert_ne!(a["access_token"], c["access_token"]);
        let bad = json!({"grant_type": "client_credential", "appid": "wxbench", "secret": "no"});
        assert_eq!(
            body(f.stable_token(bad.to_string().as_bytes())).await["errcode"],
            40125
        );
        assert_eq!(body(f.stable_token(b"not json")).await["errcode"], 47001);
    }

    #[test]
    fn used_codes_are_bounded_and_forgotten() {
        let f = fake();
        let now = unix_ms();
        assert!(matches!(f.mark_used("a", now, now), Mark::Fresh));
        assert!(matches!(f.mark_used("a", now, now), Mark::Used));
        let old = now - CODE_LIFE_MS - 1;
        assert!(matches!(f.mark_used("old", old, now), Mark::Fresh));
        // The next prune (10 s on) forgets the expired one.
        let later = now + PRUNE_EVERY_MS;
        assert!(matches!(f.mark_used("b", later, later), Mark::Fresh));
        let used = f.used.lock().expect("lock");
        assert!(!used.codes.contains_key("old"));
        assert!(used.codes.contains_key("a"));
    }

    #[test]
    fn refuses_other_addresses() {
        let mut args = FakeArgs {
            bind: "0.0.0.0:0".parse().expect("addr"),
            app_id: "wx".into(),
            app_secret: "s".into(),
            no_unionid: false,
            max_secs: 1,
        };
        assert!(run(&args).is_err());
        args.bind = "10.1.2.3:0".parse().expect("addr");
        assert!(run(&args).is_err());
    }
}
