//! The built-in WeChat simulator (`wechat.mode = "simulator"`). It serves
//! WeChat's own endpoints under `/sim/wechat/` with WeChat's wire format (JSON
//! errors, image bytes with `Content-Type: image/png`), so the hub's client
//! talks to it exactly as to WeChat. For the simulated phone it also plays
//! the WeChat app: `/sim/api/login` hands out `wx.login` codes for a pretend
//! user, `/sim/api/userinfo` the legacy encrypted profile and
//! `/sim/api/phone` the `getPhoneNumber` button's code, which
//! `getuserphonenumber` turns into the pretend user's number ([`sim_phone`]);
//! `/sim/api/quota` makes an app's next code requests answer 45009.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use dashmap::DashMap;
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::config::AppSettings;
use crate::keys::{now_ms, random_token, secrets_equal};

const CODE_LIFE_MS: i64 = 5 * 60 * 1000;
/// How long a pretend person's session key is kept for `/sim/api/userinfo`.
const SESSION_LIFE_MS: i64 = 30 * 60 * 1000;
/// Most codes, and most sessions, the simulator holds at once: past it,
/// `/sim/api/login` answers 503 until old ones run out.
pub const MAX_HELD: usize = 10_000;
const TOKEN_LIFE_S: i64 = 7200;

struct SimCode {
    app_id: String,
    user: String,
    session_key: String,
    created_at: i64,
    used: bool,
}

/// The simulator's state: apps it knows, tokens it issued, codes it handed out.
pub struct Simulator {
    apps: HashMap<String, AppSettings>,
    public_url: String,
    tokens: DashMap<String, (String, i64)>,
    codes: DashMap<String, SimCode>,
    /// Latest session key per (app, user), as WeChat keeps one per person,
    /// with when it was made.
    sessions: DashMap<(String, String), (String, i64)>,
    /// `getPhoneNumber` codes: code -> (app, user, made at).
    phone_codes: DashMap<String, (String, String, i64)>,
    /// Quota errors on demand: app -> how many more code calls answer 45009.
    quota_failures: DashMap<String, u32>,
}

/// Why the simulator hands out no code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimRefusal {
    UnknownApp,
    /// It holds [`MAX_HELD`] codes or sessions already.
    Full,
}

/// A pretend person's identity in one app.
pub fn sim_openid(app_id: &str, user: &str) -> String {
    format!(
        "o{}",
        &URL_SAFE_NO_PAD.encode(Sha256::digest(format!("openid|{app_id}|{user}")))[..27]
    )
}

/// A pretend person's phone number: 11 digits starting with 1, made from the
/// name, the same in every app.
pub fn sim_phone(user: &str) -> String {
    let digest = Sha256::digest(format!("phone|{user}"));
    let mut n = String::from("13");
    for b in digest.iter().take(9) {
        n.push(char::from(b'0' + b % 10));
    }
    n
}

/// A pretend person's unionid (the same in every app, as on one Open Platform account).
pub fn sim_unionid(user: &str) -> String {
    format!(
        "u{}",
        &URL_SAFE_NO_PAD.encode(Sha256::digest(format!("unionid|{user}")))[..27]
    )
}

impl Simulator {
    pub fn new(apps: &[AppSettings], public_url: &str) -> Self {
        Self {
            apps: apps.iter().map(|a| (a.app_id.clone(), a.clone())).collect(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            tokens: DashMap::new(),
            codes: DashMap::new(),
            sessions: DashMap::new(),
            phone_codes: DashMap::new(),
            quota_failures: DashMap::new(),
        }
    }

    /// The app whose access token this is, if valid.
    fn token_app(&self, token: &str) -> Option<String> {
        let now = now_ms();
        self.tokens
            .iter()
            .find(|e| secrets_equal(&e.value().0, token) && e.value().1 > now)
            .map(|e| e.key().clone())
    }

    /// Whether the next code call of `app_id` answers 45009 (and counts it).
    fn take_quota_failure(&self, app_id: &str) -> bool {
        let mut spent = false;
        self.quota_failures.remove_if_mut(app_id, |_, left| {
            spent = *left > 0;
            *left = left.saturating_sub(1);
            *left == 0
        });
        spent
    }

    /// Plays the `getPhoneNumber` button for `user` in `app_id`: a fresh
    /// one-time code for `getuserphonenumber`.
    pub fn phone_code(&self, app_id: &str, user: &str) -> Result<String, SimRefusal> {
        if !self.apps.contains_key(app_id) {
            return Err(SimRefusal::UnknownApp);
        }
        let now = now_ms();
        self.phone_codes
            .retain(|_, (_, _, made)| now - *made < CODE_LIFE_MS);
        if self.phone_codes.len() >= MAX_HELD {
            return Err(SimRefusal::Full);
        }
        let code = format!("simphone{}", random_token());
        self.phone_codes
            .insert(code.clone(), (app_id.to_owned(), user.to_owned(), now));
        Ok(code)
    }

    /// Plays `wx.login` for `user` in `app_id`: a fresh one-time code.
    pub fn login(&self, app_id: &str, user: &str) -> Result<String, SimRefusal> {
        if !self.apps.contains_key(app_id) {
            return Err(SimRefusal::UnknownApp);
        }
        let mut key = [0u8; 16];
        rand::rng().fill_bytes(&mut key);
        let session_key = STANDARD.encode(key);
        let code = format!("sim{}", random_token());
        let now = now_ms();
        self.codes.retain(|_, c| now - c.created_at < CODE_LIFE_MS);
        self.sessions
            .retain(|_, (_, made)| now - *made < SESSION_LIFE_MS);
        let session = (app_id.to_owned(), user.to_owned());
        if self.codes.len() >= MAX_HELD
            || (self.sessions.len() >= MAX_HELD && !self.sessions.contains_key(&session))
        {
            return Err(SimRefusal::Full);
        }
        self.sessions.insert(session, (session_key.clone(), now));
        self.codes.insert(
            code.clone(),
            SimCode {
                app_id: app_id.to_owned(),
                user: user.to_owned(),
                session_key,
                created_at: now,
                used: false,
            },
        );
        Ok(code)
    }

    fn token_valid(&self, token: &str) -> bool {
        let now = now_ms();
        self.tokens
            .iter()
            .any(|e| secrets_equal(&e.value().0, token) && e.value().1 > now)
    }

    /// The routes, to mount at the hub's root.
    pub fn configure(cfg: &mut web::ServiceConfig) {
        cfg.service(
            web::scope("/sim/wechat")
                .route("/cgi-bin/stable_token", web::post().to(stable_token))
                .route("/wxa/getwxacodeunlimit", web::post().to(getwxacodeunlimit))
                .route("/sns/jscode2session", web::get().to(jscode2session))
                .route(
                    "/wxa/business/getuserphonenumber",
                    web::post().to(getuserphonenumber),
                ),
        )
        .service(
            web::scope("/sim/api")
                .route("/login", web::post().to(sim_login))
                .route("/userinfo", web::post().to(sim_userinfo))
                .route("/phone", web::post().to(sim_phone_code))
                .route("/quota", web::post().to(sim_quota)),
        );
    }
}

fn wx_error(errcode: i64, errmsg: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json!({"errcode": errcode, "errmsg": errmsg}).to_string())
}

/// Body as WeChat reads it: JSON regardless of the declared content type.
fn json_body(body: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .filter(Value::is_object)
}

async fn stable_token(sim: web::Data<Arc<Simulator>>, body: web::Bytes) -> HttpResponse {
    let Some(v) = json_body(&body) else {
        return wx_error(47001, "data format error");
    };
    if v["grant_type"] != "client_credential" {
        return wx_error(40002, "invalid grant_type");
    }
    let Some(app) = v["appid"].as_str().and_then(|id| sim.apps.get(id)) else {
        return wx_error(40013, "invalid appid");
    };
    if !secrets_equal(
        v["secret"].as_str().unwrap_or(""),
        app.secret.expose_secret(),
    ) {
        return wx_error(40125, "invalid appsecret");
    }
    let now = now_ms();
    let force = v["force_refresh"].as_bool().unwrap_or(false);
    let mut entry = sim
        .tokens
        .entry(app.app_id.clone())
        .or_insert_with(|| (random_token(), now + TOKEN_LIFE_S * 1000));
    if force || entry.1 - now < 5 * 60 * 1000 {
        *entry = (random_token(), now + TOKEN_LIFE_S * 1000);
    }
    let (token, expires_at) = entry.clone();
    HttpResponse::Ok().json(json!({"access_token": token, "expires_in": (expires_at - now) / 1000}))
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

async fn getwxacodeunlimit(
    sim: web::Data<Arc<Simulator>>,
    query: web::Query<TokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(app_id) = query.access_token.as_deref().and_then(|t| sim.token_app(t)) else {
        return wx_error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
    };
    if sim.take_quota_failure(&app_id) {
        return wx_error(45009, "reach max api daily quota limit");
    }
    let Some(v) = json_body(&body) else {
        return wx_error(
            40169,
            "invalid length for scene, or the data is not json string",
        );
    };
    let scene = v["scene"].as_str().unwrap_or("");
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!#$&'()*+,/:;=?@-._~".contains(c);
    if scene.is_empty() || scene.len() > 32 {
        return wx_error(
            40169,
            "invalid length for scene, or the data is not json string",
        );
    }
    if !scene.chars().all(allowed) {
        return wx_error(40129, "invalid scene");
    }
    if let Some(page) = v["page"].as_str()
        && (page.starts_with('/') || page.contains('?'))
    {
        return wx_error(41030, "invalid page rid");
    }
    if let Some(env) = v["env_version"].as_str()
        && !matches!(env, "release" | "trial" | "develop")
    {
        return wx_error(40097, "invalid args");
    }
    let width = v["width"].as_u64().unwrap_or(430).clamp(280, 1280) as u32;
    let target = format!("{}/sim/phone?scene={scene}", sim.public_url);
    match qr_png(&target, width) {
        Ok(png) => HttpResponse::Ok().content_type("image/png").body(png),
        Err(e) => {
            tracing::error!(error = %e, "simulator could not draw a code");
            wx_error(-1, "system error")
        }
    }
}

/// A scannable QR code of `text`, about `width` pixels wide, as PNG.
pub fn qr_png(text: &str, width: u32) -> Result<Vec<u8>, String> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| e.to_string())?;
    let img = code
        .render::<image::Luma<u8>>()
        .min_dimensions(width, width)
        .max_dimensions(width.max(300), width.max(300))
        .build();
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(out.into_inner())
}

#[derive(Deserialize)]
struct SessionQuery {
    appid: Option<String>,
    secret: Option<String>,
    js_code: Option<String>,
    grant_type: Option<String>,
}

async fn jscode2session(
    sim: web::Data<Arc<Simulator>>,
    q: web::Query<SessionQuery>,
) -> HttpResponse {
    let Some(app) = q.appid.as_deref().and_then(|id| sim.apps.get(id)) else {
        return wx_error(40013, "invalid appid");
    };
    if !secrets_equal(
        q.secret.as_deref().unwrap_or(""),
        app.secret.expose_secret(),
    ) {
        return wx_error(40125, "invalid appsecret");
    }
    if q.grant_type.as_deref() != Some("authorization_code") {
        return wx_error(40002, "invalid grant_type");
    }
    let code = q.js_code.as_deref().unwrap_or("");
    let Some(mut c) = sim.codes.get_mut(code) else {
        return wx_error(40029, "invalid code");
    };
    if c.app_id != app.app_id || now_ms() - c.created_at > CODE_LIFE_MS {
        return wx_error(40029, "invalid code");
    }
    if c.used {
        return wx_error(40163, "code been used");
    }
    c.used = true;
    HttpResponse::Ok().json(json!({
        "openid": sim_openid(&c.app_id, &c.user),
        "unionid": sim_unionid(&c.user),
        "session_key": c.session_key,
    }))
}

async fn getuserphonenumber(
    sim: web::Data<Arc<Simulator>>,
    query: web::Query<TokenQuery>,
    body: web::Bytes,
) -> HttpResponse {
    if !query
        .access_token
        .as_deref()
        .is_some_and(|t| sim.token_valid(t))
    {
        return wx_error(
            40001,
            "invalid credential, access_token is invalid or not latest",
        );
    }
    let Some(code) = json_body(&body).and_then(|v| v["code"].as_str().map(str::to_owned)) else {
        return wx_error(47001, "data format error");
    };
    let now = now_ms();
    let held = sim
        .phone_codes
        .remove(&code)
        .filter(|(_, (_, _, made))| now - made < CODE_LIFE_MS);
    let Some((_, (app_id, user, _))) = held else {
        return wx_error(40029, "invalid code");
    };
    let number = sim_phone(&user);
    HttpResponse::Ok().json(json!({
        "errcode": 0, "errmsg": "ok",
        "phone_info": {"phoneNumber": number, "purePhoneNumber": number, "countryCode": "86",
            "watermark": {"appid": app_id, "timestamp": now / 1000}}
    }))
}

/// Plays the `getPhoneNumber` button: `{user, app_id?}` -> `{code}`.
async fn sim_phone_code(sim: web::Data<Arc<Simulator>>, req: web::Json<LoginReq>) -> HttpResponse {
    hand_out(
        &sim,
        &req,
        |app_id, user| sim.phone_code(app_id, user),
        false,
    )
}

#[derive(Deserialize)]
struct LoginReq {
    app_id: Option<String>,
    user: String,
}

async fn sim_login(sim: web::Data<Arc<Simulator>>, req: web::Json<LoginReq>) -> HttpResponse {
    hand_out(&sim, &req, |app_id, user| sim.login(app_id, user), true)
}

/// A code `make` hands out for the pretend person `req` names (the app
/// defaults to the first), or why not; `with_app` adds the app to the answer.
fn hand_out(
    sim: &Simulator,
    req: &LoginReq,
    make: impl FnOnce(&str, &str) -> Result<String, SimRefusal>,
    with_app: bool,
) -> HttpResponse {
    let app_id = req
        .app_id
        .clone()
        .or_else(|| sim.apps.keys().min().cloned())
        .unwrap_or_default();
    let user = req.user.trim();
    if user.is_empty() || user.len() > 64 {
        return HttpResponse::BadRequest().json(json!({"errmsg": "user must be 1-64 characters"}));
    }
    match make(&app_id, user) {
        Ok(code) if with_app => HttpResponse::Ok().json(json!({"code": code, "app_id": app_id})),
        Ok(code) => HttpResponse::Ok().json(json!({"code": code})),
        Err(SimRefusal::UnknownApp) => {
            HttpResponse::BadRequest().json(json!({"errmsg": "unknown app"}))
        }
        Err(SimRefusal::Full) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "60"))
            .json(json!({"errmsg": "the simulator holds too many codes; retry later"})),
    }
}

#[derive(Deserialize)]
struct QuotaReq {
    app_id: Option<String>,
    calls: u32,
}

/// Quota errors on demand: `{app_id?, calls}` makes the app's next `calls`
/// code requests (at most 100) answer 45009, as a spent daily quota does.
async fn sim_quota(sim: web::Data<Arc<Simulator>>, req: web::Json<QuotaReq>) -> HttpResponse {
    let app_id = req
        .app_id
        .clone()
        .or_else(|| sim.apps.keys().min().cloned())
        .unwrap_or_default();
    if !sim.apps.contains_key(&app_id) {
        return HttpResponse::BadRequest().json(json!({"errmsg": "unknown app"}));
    }
    if req.calls > 100 {
        return HttpResponse::BadRequest().json(json!({"errmsg": "calls must be 0-100"}));
    }
    if req.calls == 0 {
        sim.quota_failures.remove(&app_id);
    } else {
        sim.quota_failures.insert(app_id.clone(), req.calls);
    }
    HttpResponse::Ok().json(json!({"app_id": app_id, "calls": req.calls}))
}

#[derive(Deserialize)]
struct UserInfoReq {
    app_id: Option<String>,
    user: String,
    nickname: Option<String>,
    avatar_url: Option<String>,
}

/// Plays `wx.getUserInfo`: encrypted data, iv, raw data and signature made
/// with the person's current session key, as WeChat's client returns them.
async fn sim_userinfo(sim: web::Data<Arc<Simulator>>, req: web::Json<UserInfoReq>) -> HttpResponse {
    let app_id = req
        .app_id
        .clone()
        .or_else(|| sim.apps.keys().min().cloned())
        .unwrap_or_default();
    let Some(key_b64) = sim
        .sessions
        .get(&(app_id.clone(), req.user.clone()))
        .map(|k| k.0.clone())
    else {
        return HttpResponse::BadRequest().json(json!({"errmsg": "call /sim/api/login first"}));
    };
    let nickname = req.nickname.clone().unwrap_or_else(|| "微信用户".into());
    let avatar = req.avatar_url.clone().unwrap_or_default();
    let raw =
        json!({"nickName": nickname, "gender": 0, "language": "zh_CN", "city": "", "province": "",
        "country": "", "avatarUrl": avatar})
        .to_string();
    let mut full: Value = serde_json::from_str(&raw).unwrap_or_default();
    full["openId"] = json!(sim_openid(&app_id, &req.user));
    full["unionId"] = json!(sim_unionid(&req.user));
    full["watermark"] = json!({"appid": app_id, "timestamp": now_ms() / 1000});
    let Ok(key) = STANDARD.decode(&key_b64) else {
        return wx_error(-1, "system error");
    };
    let mut iv = [0u8; 16];
    rand::rng().fill_bytes(&mut iv);
    let Ok(enc) = cbc::Encryptor::<aes::Aes128>::new_from_slices(&key, &iv) else {
        return wx_error(-1, "system error");
    };
    let cipher = enc.encrypt_padded_vec_mut::<Pkcs7>(full.to_string().as_bytes());
    let mut sha = Sha1::new();
    sha.update(raw.as_bytes());
    sha.update(key_b64.as_bytes());
    HttpResponse::Ok().json(json!({
        "encrypted_data": STANDARD.encode(cipher),
        "iv": STANDARD.encode(iv),
        "raw_data": raw,
        "signature": hex::encode(sha.finalize()),
    }))
}

#[cfg(test)]
mod bounds {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn codes_and_sessions_are_bounded() {
        let app = AppSettings {
            app_id: "wxsim".into(),
            secret: SecretString::from("s"),
            page: "pages/x".into(),
            env_version: "release".into(),
            check_path: true,
            width: 430,
            auto_color: false,
            line_color: None,
            is_hyaline: false,
        };
        let sim = Simulator::new(&[app], "http://127.0.0.1:1");
        for i in 0..MAX_HELD {
            assert!(sim.login("wxsim", &format!("user{i}")).is_ok());
        }
        assert_eq!(sim.login("wxsim", "one-more"), Err(SimRefusal::Full));
        assert_eq!(sim.login("wxnope", "x"), Err(SimRefusal::UnknownApp));
        assert!(sim.codes.len() <= MAX_HELD && sim.sessions.len() <= MAX_HELD);
    }
}
