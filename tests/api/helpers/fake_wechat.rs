//! An independent fake of WeChat's server API, written from WeChat's wire
//! format (not from the hub's simulator): `cgi-bin/stable_token`,
//! `wxa/getwxacodeunlimit`, `sns/jscode2session` and
//! `wxa/business/getuserphonenumber` on 127.0.0.1:0. Tests register
//! `wx.login` and phone codes, count calls per API and queue one-shot faults.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde_json::{Value, json};

/// One of the faked WeChat APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    StableToken,
    CodeImage,
    CodeToSession,
    PhoneNumber,
}

/// A one-shot misbehaviour of the next call to an API.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer `{"errcode": N, "errmsg": ...}`.
    Errcode(i64, &'static str),
    /// Answer 200 with an HTML page (neither JSON nor an image).
    Garbage,
    /// Answer 200 with this JSON text (e.g. a success missing a field).
    Json(&'static str),
    /// Answer 200 with this `Content-Type` and body (e.g. an SVG as the
    /// code image).
    Typed(&'static str, &'static [u8]),
    /// Wait this long before answering normally (longer than the hub's timeout
    /// makes a timeout; shorter makes a slow but good answer).
    Delay(Duration),
}

/// A `wx.login` code and the person behind it.
#[derive(Debug, Clone)]
struct Code {
    app_id: Option<String>,
    openid: String,
    unionid: Option<String>,
    session_key: String,
    used: bool,
}

#[derive(Default)]
struct Inner {
    /// app_id -> secret.
    apps: HashMap<String, String>,
    codes: Mutex<HashMap<String, Code>>,
    faults: Mutex<HashMap<Api, VecDeque<Fault>>>,
    /// app_id -> current access token.
    tokens: Mutex<HashMap<String, String>>,
    token_seq: AtomicUsize,
    stable_token_calls: AtomicUsize,
    code_image_calls: AtomicUsize,
    session_calls: AtomicUsize,
    phone_calls: AtomicUsize,
    /// `getPhoneNumber` code -> phone number (one use each).
    phone_codes: Mutex<HashMap<String, String>>,
    /// Every JSON body sent to stable_token and getwxacodeunlimit.
    token_requests: Mutex<Vec<Value>>,
    code_requests: Mutex<Vec<Value>>,
}

/// A running fake; stops when dropped.
pub struct FakeWechat {
    inner: Arc<Inner>,
    port: u16,
    handle: ServerHandle,
}

/// The image bytes the fake answers for `scene`: a JPEG start and end marker
/// around the scene, so each scene's image differs.
pub fn fake_image(scene: &str) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend_from_slice(b"FAKEJPEG:");
    bytes.extend_from_slice(scene.as_bytes());
    bytes.extend_from_slice(&[0xFF, 0xD9]);
    bytes
}

impl FakeWechat {
    /// Starts a fake that knows these `(app_id, secret)` pairs.
    pub async fn start(apps: &[(String, String)]) -> Self {
        let inner = Arc::new(Inner {
            apps: apps.iter().cloned().collect(),
            ..Inner::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake WeChat");
        let port = listener.local_addr().expect("fake address").port();
        let data = web::Data::from(inner.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024))
                .route("/cgi-bin/stable_token", web::post().to(stable_token))
                .route("/wxa/getwxacodeunlimit", web::post().to(code_image))
                .route("/sns/jscode2session", web::get().to(jscode2session))
                .route(
                    "/wxa/business/getuserphonenumber",
                    web::post().to(phone_number),
                )
        })
        .listen(listener)
        .expect("fake listens")
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            inner,
            port,
            handle,
        }
    }

    /// The base URL to configure as `wechat.api_base`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Registers a `wx.login` code valid in any configured app.
    pub fn add_code(&self, code: &str, openid: &str, unionid: Option<&str>, session_key: &str) {
        self.insert_code(code, None, openid, unionid, session_key);
    }

    /// Registers a `wx.login` code valid only in `app_id`.
    pub fn add_code_for(
        &self,
        app_id: &str,
        code: &str,
        openid: &str,
        unionid: Option<&str>,
        session_key: &str,
    ) {
        self.insert_code(code, Some(app_id), openid, unionid, session_key);
    }

    fn insert_code(
        &self,
        code: &str,
        app_id: Option<&str>,
        openid: &str,
        unionid: Option<&str>,
        session_key: &str,
    ) {
        self.inner.codes.lock().expect("codes").insert(
            code.to_owned(),
            Code {
                app_id: app_id.map(str::to_owned),
                openid: openid.to_owned(),
                unionid: unionid.map(str::to_owned),
                session_key: session_key.to_owned(),
                used: false,
            },
        );
    }

    /// Registers a `getPhoneNumber` code that gives `number` once.
    pub fn add_phone_code(&self, code: &str, number: &str) {
        self.inner
            .phone_codes
            .lock()
            .expect("phone codes")
            .insert(code.to_owned(), number.to_owned());
    }

    /// Queues a one-shot fault for the next call to `api`.
    pub fn fail_next(&self, api: Api, fault: Fault) {
        self.inner
            .faults
            .lock()
            .expect("faults")
            .entry(api)
            .or_default()
            .push_back(fault);
    }

    /// How many times `api` was called.
    pub fn calls(&self, api: Api) -> usize {
        let counter = match api {
            Api::StableToken => &self.inner.stable_token_calls,
            Api::CodeImage => &self.inner.code_image_calls,
            Api::CodeToSession => &self.inner.session_calls,
            Api::PhoneNumber => &self.inner.phone_calls,
        };
        counter.load(Ordering::SeqCst)
    }

    /// The JSON bodies the hub sent to getwxacodeunlimit, in order.
    pub fn code_requests(&self) -> Vec<Value> {
        self.inner.code_requests.lock().expect("requests").clone()
    }

    /// The JSON bodies the hub sent to stable_token, in order.
    pub fn token_requests(&self) -> Vec<Value> {
        self.inner.token_requests.lock().expect("requests").clone()
    }
}

impl Drop for FakeWechat {
    fn drop(&mut self) {
        let stop = self.handle.stop(false);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(stop);
        }
    }
}

fn wx_error(errcode: i64, errmsg: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json!({"errcode": errcode, "errmsg": errmsg}).to_string())
}

fn garbage() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html")
        .body("<html><body>502 Bad Gateway</body></html>")
}

/// Takes the next queued fault of `api`; a delay is served here and the call
/// then proceeds normally. Returns an answer when the fault replaces it.
async fn apply_fault(inner: &Inner, api: Api) -> Option<HttpResponse> {
    let fault = inner
        .faults
        .lock()
        .expect("faults")
        .get_mut(&api)
        .and_then(VecDeque::pop_front);
    match fault? {
        Fault::Errcode(code, msg) => Some(wx_error(code, msg)),
        Fault::Garbage => Some(garbage()),
        Fault::Json(text) => Some(
            HttpResponse::Ok()
                .content_type("application/json")
                .body(text),
        ),
        Fault::Typed(content_type, body) => Some(
            HttpResponse::Ok()
                .content_type(content_type)
                .body(body.to_vec()),
        ),
        Fault::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
    }
}

async fn stable_token(inner: web::Data<Inner>, body: web::Bytes) -> HttpResponse {
    inner.stable_token_calls.fetch_add(1, Ordering::SeqCst);
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    if let Some(v) = &parsed {
        inner
            .token_requests
            .lock()
            .expect("requests")
            .push(v.clone());
    }
    if let Some(answer) = apply_fault(&inner, Api::StableToken).await {
        return answer;
    }
    let Some(v) = parsed.filter(Value::is_object) else {
        return wx_error(47001, "data format error");
    };
    if v["grant_type"] != "client_credential" {
        return wx_error(40002, "invalid grant_type");
    }
    let app_id = v["appid"].as_str().unwrap_or("");
    let Some(secret) = inner.apps.get(app_id) else {
        return wx_error(40013, "invalid appid");
    };
    if v["secret"].as_str() != Some(secret.as_str()) {
        return wx_error(40125, "invalid appsecret");
    }
    let force = v["force_refresh"].as_bool().unwrap_or(false);
    let mut tokens = inner.tokens.lock().expect("tokens");
    if force || !tokens.contains_key(app_id) {
        let n = inner.token_seq.fetch_add(1, Ordering::SeqCst);
        tokens.insert(app_id.to_owned(), format!("ACCESS_TOKEN_{app_id}_{n}"));
    }
    let token = tokens[app_id].clone();
    HttpResponse::Ok().json(json!({"access_token": token, "expires_in": 7200}))
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

async fn code_image(
    inner: web::Data<Inner>,
    query: web::Query<TokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    inner.code_image_calls.fetch_add(1, Ordering::SeqCst);
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    if let Some(v) = &parsed {
        inner
            .code_requests
            .lock()
            .expect("requests")
            .push(v.clone());
    }
    if let Some(answer) = apply_fault(&inner, Api::CodeImage).await {
        return answer;
    }
    let known = {
        let tokens = inner.tokens.lock().expect("tokens");
        query
            .access_token
            .as_deref()
            .is_some_and(|t| tokens.values().any(|v| v == t))
    };
    if !known {
        return wx_error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
    }
    let Some(v) = parsed.filter(Value::is_object) else {
        return wx_error(
            40169,
            "invalid length for scene, or the data is not json string",
        );
    };
    let scene = v["scene"].as_str().unwrap_or("");
    if scene.is_empty() || scene.len() > 32 {
        return wx_error(
            40169,
            "invalid length for scene, or the data is not json string",
        );
    }
    if v["page"]
        .as_str()
        .is_some_and(|p| p.starts_with('/') || p.contains('?'))
    {
        return wx_error(41030, "invalid page");
    }
    HttpResponse::Ok()
        .content_type("image/jpeg")
        .body(fake_image(scene))
}

#[derive(Deserialize)]
struct SessionQuery {
    appid: Option<String>,
    secret: Option<String>,
    js_code: Option<String>,
    grant_type: Option<String>,
}

async fn jscode2session(inner: web::Data<Inner>, q: web::Query<SessionQuery>) -> HttpResponse {
    inner.session_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(answer) = apply_fault(&inner, Api::CodeToSession).await {
        return answer;
    }
    let app_id = q.appid.as_deref().unwrap_or("");
    let Some(secret) = inner.apps.get(app_id) else {
        return wx_error(40013, "invalid appid");
    };
    if q.secret.as_deref() != Some(secret.as_str()) {
        return wx_error(40125, "invalid appsecret");
    }
    if q.grant_type.as_deref() != Some("authorization_code") {
        return wx_error(40002, "invalid grant_type");
    }
    let mut codes = inner.codes.lock().expect("codes");
    let Some(code) = q.js_code.as_deref().and_then(|c| codes.get_mut(c)) else {
        return wx_error(40029, "invalid code");
    };
    if code.used || code.app_id.as_deref().is_some_and(|a| a != app_id) {
        return wx_error(40029, "invalid code");
    }
    code.used = true;
    let mut answer = json!({"openid": code.openid, "session_key": code.session_key});
    if let Some(u) = &code.unionid {
        answer["unionid"] = json!(u);
    }
    HttpResponse::Ok().json(answer)
}

async fn phone_number(
    inner: web::Data<Inner>,
    query: web::Query<TokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    inner.phone_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(answer) = apply_fault(&inner, Api::PhoneNumber).await {
        return answer;
    }
    let known = {
        let tokens = inner.tokens.lock().expect("tokens");
        query
            .access_token
            .as_deref()
            .is_some_and(|t| tokens.values().any(|v| v == t))
    };
    if !known {
        return wx_error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
    }
    let Some(code) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
    else {
        return wx_error(47001, "data format error");
    };
    let Some(number) = inner.phone_codes.lock().expect("phone codes").remove(&code) else {
        return wx_error(40029, "invalid code");
    };
    HttpResponse::Ok().json(json!({
        "errcode": 0,
        "errmsg": "ok",
        "phone_info": {
            "phoneNumber": number,
            "purePhoneNumber": number,
            "countryCode": "86",
            "watermark": {"appid": "", "timestamp": 0}
        }
    }))
}
